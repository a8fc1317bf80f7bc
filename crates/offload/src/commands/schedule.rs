//! `offload schedule ...`: manage cron schedules through the API, and `schedule next`, which evaluates an
//! expression locally (no server) for people checking what it means.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use offload_core::cron::{
    Cadence, CatchUp, CronExpr, FireTimes, JobTemplateSpec, ListSchedulesQuery, Overlap,
    ScheduleInfo, ScheduleSpec, time_zone,
};
use offload_core::{DurationSpec, Timestamp};

use super::GlobalArgs;
use super::parse::{UsageError, parse_duration, parse_timestamp};
use crate::output::{self, Table, cut, time};

/// `offload schedule ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// List schedules with their next fire time.
    #[command(visible_alias = "list")]
    Ls,
    /// Show a schedule with its next fire times and recent ticks.
    Get {
        /// The schedule's name.
        name: String,
    },
    /// Create a schedule, or replace the one with this name.
    Put(PutArgs),
    /// Delete a schedule (its jobs stay).
    #[command(visible_alias = "delete")]
    Rm {
        /// The schedule's name.
        name: String,
    },
    /// Stop firing a schedule until it is resumed.
    Pause {
        /// The schedule's name.
        name: String,
    },
    /// Fire a paused schedule again; ticks due meanwhile follow its catch-up policy.
    Resume {
        /// The schedule's name.
        name: String,
    },
    /// Create the schedule's job now, outside its expression.
    Trigger {
        /// The schedule's name.
        name: String,
    },
    /// Print the next fire times of an expression (computed locally; no server needed).
    Next(NextArgs),
}

/// `offload schedule put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// Unique name (letters, digits, `-_.:`).
    pub(crate) name: String,
    /// Cron expression: 5 fields (minute first), 6 (second first) or @hourly/@daily/@weekly/@monthly/@yearly.
    #[arg(long, allow_hyphen_values = true, value_name = "EXPR")]
    pub(crate) cron: String,
    /// IANA time zone the expression is read in [default: UTC].
    #[arg(long = "tz", visible_alias = "timezone", value_name = "ZONE")]
    pub(crate) timezone: Option<String>,
    /// Queue of the jobs each tick creates.
    #[arg(long)]
    pub(crate) queue: String,
    /// Name (kind) of the jobs.
    #[arg(long = "job-name", value_name = "NAME")]
    pub(crate) job_name: Option<String>,
    /// JSON payload of the jobs; `@FILE` reads it from a file, `-` from standard input.
    #[arg(long, allow_hyphen_values = true, value_name = "JSON")]
    pub(crate) payload: Option<String>,
    /// Priority of the jobs (higher runs first).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub(crate) priority: Option<i32>,
    /// Attempts allowed per job.
    #[arg(long, value_name = "N")]
    pub(crate) max_attempts: Option<u32>,
    /// Lease length of one attempt, e.g. 5m.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub(crate) timeout: Option<DurationSpec>,
    /// allow, skip (default) or buffer_one.
    #[arg(long, value_name = "POLICY")]
    pub(crate) overlap: Option<Overlap>,
    /// none, latest (default) or all.
    #[arg(long, value_name = "POLICY")]
    pub(crate) catch_up: Option<CatchUp>,
    /// With --catch-up all: how far back late ticks still run [default: 24h].
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub(crate) catch_up_window: Option<DurationSpec>,
    /// Spread each job's start by a random delay up to this.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub(crate) jitter: Option<DurationSpec>,
    /// Make each tick's job a push job: the server POSTs the payload to this URL (signed).
    #[arg(long, value_name = "URL")]
    pub(crate) target: Option<String>,
    /// Create (or replace) it paused.
    #[arg(long)]
    pub(crate) paused: bool,
}

/// `offload schedule next`.
#[derive(Debug, Args)]
pub(crate) struct NextArgs {
    /// The cron expression.
    #[arg(allow_hyphen_values = true, value_name = "EXPR")]
    pub(crate) cron: String,
    /// IANA time zone the expression is read in [default: UTC].
    #[arg(long = "tz", visible_alias = "timezone", value_name = "ZONE")]
    pub(crate) timezone: Option<String>,
    /// How many fire times.
    #[arg(long, short = 'n', default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000), value_name = "N")]
    pub(crate) count: u32,
    /// Start after this instant instead of now (RFC 3339).
    #[arg(long, value_parser = parse_timestamp, value_name = "RFC3339")]
    pub(crate) after: Option<Timestamp>,
}

/// Runs one schedule command.
pub(crate) async fn run(global: &GlobalArgs, command: ScheduleCommand) -> Result<()> {
    if let ScheduleCommand::Next(args) = command {
        return next(global, args);
    }
    let client = super::client(global)?;
    let (info, verb) = match command {
        ScheduleCommand::Ls => return list(global, &client).await,
        ScheduleCommand::Get { name } => {
            let info = client.get_schedule(&name).await?;
            if global.json {
                output::print_json(&info)?;
            } else {
                output::print(&details(&info))?;
            }
            return Ok(());
        }
        ScheduleCommand::Put(args) => {
            let name = args.name.clone();
            let spec = spec(args)?;
            let put = client.put_schedule(&name, &spec).await?;
            let verb = if put.created { "created" } else { "replaced" };
            (put.schedule, verb)
        }
        ScheduleCommand::Rm { name } => {
            client.delete_schedule(&name).await?;
            if !global.json {
                output::print(&format!("deleted schedule {name}"))?;
            }
            return Ok(());
        }
        ScheduleCommand::Pause { name } => (client.pause_schedule(&name).await?, "paused"),
        ScheduleCommand::Resume { name } => (client.resume_schedule(&name).await?, "resumed"),
        ScheduleCommand::Trigger { name } => {
            let triggered = client.trigger_schedule(&name).await?;
            if global.json {
                output::print_json(&triggered)?;
            } else {
                output::print(&format!(
                    "triggered schedule {name}: job {}",
                    triggered.job_id
                ))?;
            }
            return Ok(());
        }
        ScheduleCommand::Next(_) => unreachable!("handled above"),
    };
    if global.json {
        output::print_json(&info)?;
    } else {
        let next = info
            .next_fire_at
            .map(|t| format!(", next fire {}", time(t)))
            .unwrap_or_default();
        output::print(&format!("{verb} schedule {}{next}", info.name))?;
    }
    Ok(())
}

/// Builds the API body from `schedule put`'s arguments.
fn spec(args: PutArgs) -> Result<ScheduleSpec> {
    let payload = match &args.payload {
        Some(source) => {
            let raw = super::job::read_payload(source)?;
            Some(serde_json::from_str(raw.get()).context("the payload is not a JSON value")?)
        }
        None => None,
    };
    Ok(ScheduleSpec {
        name: None,
        cron: args.cron,
        timezone: args.timezone,
        job: JobTemplateSpec {
            queue: args.queue,
            name: args.job_name,
            payload,
            priority: args.priority,
            max_attempts: args.max_attempts,
            timeout: args.timeout,
            target: args.target.map(offload_core::push::Target::post),
        },
        overlap: args.overlap,
        catch_up: args.catch_up,
        catch_up_window: args.catch_up_window,
        jitter: args.jitter,
        paused: args.paused.then_some(true),
    })
}

async fn list(global: &GlobalArgs, client: &offload_sdk::Client) -> Result<()> {
    let mut all = Vec::new();
    let mut query = ListSchedulesQuery::default();
    loop {
        let page = client.list_schedules(&query).await?;
        all.extend(page.schedules);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    if global.json {
        output::print_json(&all)?;
    } else if all.is_empty() {
        output::print("no schedules yet: create one with `offload schedule put`")?;
    } else {
        output::print(&table(&all))?;
    }
    Ok(())
}

/// Schedules as a table.
pub(crate) fn table(schedules: &[ScheduleInfo]) -> String {
    let mut table = Table::new(&[
        "NAME",
        "CRON",
        "TIMEZONE",
        "QUEUE",
        "STATUS",
        "NEXT FIRE",
        "SOURCE",
    ]);
    for s in schedules {
        table.row(vec![
            cut(&s.name, 40),
            s.cron.clone(),
            s.timezone.clone(),
            cut(&s.job.queue, 40),
            if s.paused { "paused" } else { "active" }.to_owned(),
            s.next_fire_at.map(time).unwrap_or_else(|| "never".into()),
            s.source.as_str().to_owned(),
        ]);
    }
    table.render()
}

/// One schedule in full: its fields, next fire times and recent ticks.
pub(crate) fn details(s: &ScheduleInfo) -> String {
    let mut fields: Vec<(&str, String)> = vec![
        ("name", s.name.clone()),
        ("cron", s.cron.clone()),
        ("timezone", s.timezone.clone()),
        ("status", if s.paused { "paused" } else { "active" }.into()),
        ("source", s.source.as_str().into()),
        ("queue", s.job.queue.clone()),
        ("job name", s.job.name.clone().unwrap_or_else(|| "-".into())),
        ("payload", s.job.payload.get().to_owned()),
        ("priority", s.job.priority.to_string()),
        ("max attempts", s.job.max_attempts.to_string()),
        ("timeout", s.job.timeout.to_string()),
        ("overlap", s.overlap.to_string()),
        (
            "catch up",
            match s.catch_up_window {
                Some(w) => format!("{} (window {w})", s.catch_up),
                None => s.catch_up.to_string(),
            },
        ),
        ("jitter", s.jitter.to_string()),
    ];
    if s.next_fire_times.is_empty() {
        fields.push((
            "next fire",
            s.next_fire_at.map(time).unwrap_or_else(|| "never".into()),
        ));
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in &fields {
        out.push_str(&format!("{:width$}  {value}\n", format!("{key}:")));
    }
    if !s.next_fire_times.is_empty() {
        out.push_str("\nnext fire times:\n");
        for t in &s.next_fire_times {
            out.push_str(&format!("  {}\n", local(*t, &s.timezone)));
        }
    }
    if let Some(ticks) = s.recent_ticks.as_ref().filter(|t| !t.is_empty()) {
        let mut table = Table::new(&["FIRE AT", "OUTCOME", "JOB", "NOTE"]);
        for t in ticks {
            let note = match (t.manual, t.count, t.last_fire_at) {
                (true, _, _) => "triggered by hand".to_owned(),
                (_, n, Some(last)) if n > 1 => format!("{n} ticks up to {}", time(last)),
                _ => String::new(),
            };
            table.row(vec![
                time(t.fire_at),
                t.outcome.as_str().to_owned(),
                t.job_id
                    .map(|id| id.to_string())
                    .unwrap_or_else(|| "-".into()),
                note,
            ]);
        }
        out.push_str("\nrecent ticks:\n");
        out.push_str(&table.render());
    }
    out
}

/// An instant in a zone and in UTC: `2026-03-08T03:00:00-04:00 (2026-03-08T07:00:00Z)`.
fn local(t: Timestamp, zone: &str) -> String {
    match time_zone(zone) {
        Ok((tz, _)) => format!(
            "{} ({})",
            t.to_zoned(tz).strftime("%Y-%m-%dT%H:%M:%S%:z"),
            time(t)
        ),
        Err(_) => time(t),
    }
}

/// `offload schedule next`: evaluates locally, so it works without a server.
fn next(global: &GlobalArgs, args: NextArgs) -> Result<()> {
    let expr = CronExpr::parse(&args.cron).map_err(|e| UsageError(format!("cron: {e}")))?;
    let zone = args.timezone.as_deref().unwrap_or("UTC");
    let cadence = Cadence::new(expr, zone).map_err(|e| UsageError(format!("--tz: {e}")))?;
    let after = args.after.unwrap_or_else(Timestamp::now);
    let fire_times: Vec<Timestamp> = cadence
        .iter_after(after)
        .take(args.count as usize)
        .collect();
    if fire_times.is_empty() {
        return Err(UsageError(format!(
            "cron: `{}` never fires: no date matches it (such as 30 February)",
            cadence.expr()
        ))
        .into());
    }
    if global.json {
        output::print_json(&FireTimes {
            cron: cadence.expr().as_str().to_owned(),
            timezone: cadence.time_zone().to_owned(),
            fire_times,
        })?;
    } else {
        let lines: Vec<String> = fire_times
            .iter()
            .map(|t| local(*t, cadence.time_zone()))
            .collect();
        output::print(&lines.join("\n"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `offload schedule ...` on its own.
    #[derive(Debug, Parser)]
    struct ScheduleLine {
        #[command(subcommand)]
        command: ScheduleCommand,
    }

    fn put(args: &[&str]) -> PutArgs {
        let mut all = vec!["schedule", "put"];
        all.extend_from_slice(args);
        match ScheduleLine::try_parse_from(all).unwrap().command {
            ScheduleCommand::Put(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_put_option_lands_in_the_body() {
        let spec = spec(put(&[
            "nightly",
            "--cron",
            "30 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--queue",
            "reports",
            "--job-name",
            "report",
            "--payload",
            r#"{"a":1}"#,
            "--priority",
            "-2",
            "--max-attempts",
            "3",
            "--timeout",
            "1m",
            "--overlap",
            "buffer_one",
            "--catch-up",
            "all",
            "--catch-up-window",
            "2h",
            "--jitter",
            "30s",
            "--paused",
        ]))
        .unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin",
                "job": {"queue": "reports", "name": "report", "payload": {"a": 1}, "priority": -2,
                        "max_attempts": 3, "timeout": 60000},
                "overlap": "buffer_one", "catch_up": "all", "catch_up_window": 7200000, "jitter": 30000,
                "paused": true})
        );
        let bare = spec_of(&["s", "--cron", "@daily", "--queue", "q"]);
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            serde_json::json!({"cron": "@daily", "job": {"queue": "q"}})
        );
    }

    fn spec_of(args: &[&str]) -> ScheduleSpec {
        spec(put(args)).unwrap()
    }

    #[test]
    fn bad_policies_are_usage_errors() {
        for args in [
            vec![
                "schedule",
                "put",
                "s",
                "--cron",
                "@daily",
                "--queue",
                "q",
                "--overlap",
                "x",
            ],
            vec!["schedule", "next", "@daily", "--count", "0"],
            vec!["schedule", "put", "s", "--queue", "q"],
        ] {
            assert_eq!(
                ScheduleLine::try_parse_from(&args).unwrap_err().exit_code(),
                2,
                "{args:?}"
            );
        }
    }
}
