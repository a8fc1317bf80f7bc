//! `offload job ...`: enqueue, inspect and manage jobs.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use offload_core::api::ListJobsQuery;
use offload_core::flow::debounce::DebounceSpec;
use offload_core::spec::EnqueueRequest;
use offload_core::{DurationSpec, JobId, JobState, Timestamp};
use serde_json::value::RawValue;

use super::GlobalArgs;
use super::parse::{
    UsageError, parse_duration, parse_job_id, parse_tag, parse_tag_filter, parse_timestamp,
};
use crate::output;

/// `offload job ...`
#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Enqueue a job.
    Enqueue(Box<EnqueueArgs>),
    /// Show a job with its attempt history.
    Get {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// List jobs, newest first.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Cancel a job (a running job is asked to stop).
    Cancel {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// Make a dead or cancelled job available again.
    Retry {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// Delete a job and its history.
    #[command(visible_alias = "delete")]
    Rm {
        /// The job's id.
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
}

/// `offload job enqueue`.
#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// Queue to put the job on.
    pub(crate) queue: String,
    /// JSON payload; `@FILE` reads it from a file, `-` from standard input.
    #[arg(long, allow_hyphen_values = true, value_name = "JSON")]
    pub(crate) payload: Option<String>,
    /// Job name (kind), which workers dispatch on.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Run after this delay, e.g. 30s, 5m, 1h30m.
    #[arg(
        long,
        value_parser = parse_duration,
        allow_hyphen_values = true,
        conflicts_with = "run_at",
        value_name = "DURATION"
    )]
    pub(crate) delay: Option<DurationSpec>,
    /// Run at this instant (RFC 3339, e.g. 2026-06-01T12:00:00Z).
    #[arg(long, value_parser = parse_timestamp, value_name = "RFC3339")]
    pub(crate) run_at: Option<Timestamp>,
    /// Higher runs first (default 0).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub(crate) priority: Option<i32>,
    /// Attempts allowed before the job is dead.
    #[arg(long, value_name = "N")]
    pub(crate) max_attempts: Option<u32>,
    /// Lease length of one attempt, e.g. 5m; a worker must heartbeat within it.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true, value_name = "DURATION")]
    pub(crate) timeout: Option<DurationSpec>,
    /// De-duplication key: enqueueing the same request with the same key returns the first job.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
    /// A label, repeatable.
    #[arg(long = "tag", value_parser = parse_tag, value_name = "KEY=VALUE")]
    pub(crate) tags: Vec<(String, String)>,
    /// Make it a push job: the server POSTs the payload to this URL (signed) instead of handing it to workers.
    #[arg(long, value_name = "URL")]
    pub(crate) target: Option<String>,
    /// With --target: receives a signed POST with the result once the job succeeded.
    #[arg(long, requires = "target", value_name = "URL")]
    pub(crate) callback_url: Option<String>,
    /// With --target: receives a signed POST with the last error once the job is dead.
    #[arg(long, requires = "target", value_name = "URL")]
    pub(crate) failure_callback_url: Option<String>,
    /// The tenant, user or account the job belongs to (queue limits per group and fair claims use it).
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Option<String>,
    /// Debounce: while a job of the queue with this key waits to start, this enqueue replaces its payload and
    /// moves its start instead of adding a job. Needs --debounce-period.
    #[arg(
        long,
        requires = "debounce_period",
        conflicts_with_all = ["delay", "run_at"],
        value_name = "KEY"
    )]
    pub(crate) debounce_key: Option<String>,
    /// With --debounce-key: quiet time after the last enqueue before the job starts, e.g. 10s.
    #[arg(long, requires = "debounce_key", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) debounce_period: Option<DurationSpec>,
    /// With --debounce-key: longest delay after the first enqueue, e.g. 1m (at least the period).
    #[arg(long, requires = "debounce_key", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) debounce_max_wait: Option<DurationSpec>,
}

/// `offload job ls`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only this queue.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Only this state (scheduled, available, running, retrying, succeeded, dead, cancelled).
    #[arg(long)]
    pub(crate) state: Option<JobState>,
    /// Only this job name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Only jobs with this tag.
    #[arg(long, value_parser = parse_tag_filter, value_name = "KEY:VALUE")]
    pub(crate) tag: Option<String>,
    /// Only jobs of this group.
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Option<String>,
    /// Page size (1 to 500; the server's default is 50).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500), value_name = "N")]
    pub(crate) limit: Option<u32>,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    pub(crate) cursor: Option<String>,
}

/// Runs one job command.
pub(crate) async fn run(global: &GlobalArgs, command: JobCommand) -> Result<()> {
    let client = super::client(global)?;
    let (verb, job) = match command {
        JobCommand::Enqueue(args) => {
            let payload = match &args.payload {
                Some(source) => Some(read_payload(source)?),
                None => None,
            };
            let request = build_request(*args, payload)?;
            let enqueued = client.enqueue(&request).await?;
            return if global.json && enqueued.debounced {
                // As the server answered: the waiting job, marked as the one this enqueue went to.
                let mut shown = serde_json::to_value(&enqueued.job)?;
                if let Some(map) = shown.as_object_mut() {
                    map.insert("debounced".into(), serde_json::Value::Bool(true));
                }
                Ok(output::print_json(&shown)?)
            } else if global.json {
                Ok(output::print_json(&enqueued.job)?)
            } else {
                Ok(output::print(&output::enqueued(&enqueued))?)
            };
        }
        JobCommand::Get { id } => {
            let job = client.get_job(id).await?;
            return if global.json {
                Ok(output::print_json(&job)?)
            } else {
                Ok(output::print(&output::job_details(&job))?)
            };
        }
        JobCommand::Ls(args) => {
            let page = client.list_jobs(&list_query(args)).await?;
            if global.json {
                output::print_json(&page)?;
            } else if page.items.is_empty() {
                output::print("no jobs found")?;
            } else {
                let mut text = output::job_table(&page.items);
                if let Some(cursor) = &page.next_cursor {
                    text.push_str(&format!(
                        "\nmore: offload job ls --cursor {cursor} (with the same filters)\n"
                    ));
                }
                output::print(&text)?;
            }
            return Ok(());
        }
        JobCommand::Cancel { id } => ("cancelled", client.cancel_job(id).await?),
        JobCommand::Retry { id } => ("retried", client.retry_job(id).await?),
        JobCommand::Rm { id } => {
            client.delete_job(id).await?;
            if !global.json {
                output::print(&format!("deleted job {id}"))?;
            }
            return Ok(());
        }
    };
    let line = if verb == "cancelled" && !job.state.is_finished() {
        format!(
            "asked the worker of job {} to stop; it ends as cancelled at the worker's next heartbeat",
            job.id
        )
    } else {
        output::job_line(verb, &job)
    };
    if global.json {
        output::print_json(&job)?
    } else {
        output::print(&line)?
    }
    Ok(())
}

/// Reads a `--payload` value: inline JSON, `@FILE`, or `-` for standard input. The text must be valid JSON.
pub(crate) fn read_payload(source: &str) -> Result<Box<RawValue>> {
    let (text, origin) = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the payload from standard input")?;
        (text, "standard input".to_owned())
    } else if let Some(path) = source.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the payload file `{path}`"))?;
        (text, format!("`{path}`"))
    } else {
        (source.to_owned(), "--payload".to_owned())
    };
    Ok(parse_payload(&text, &origin)?)
}

/// Checks that `text` is one JSON value, keeping it as written (minus surrounding white space).
fn parse_payload(text: &str, origin: &str) -> Result<Box<RawValue>, UsageError> {
    serde_json::from_str::<Box<RawValue>>(text.trim())
        .map_err(|e| UsageError(format!("{origin} is not valid JSON: {e}")))
}

/// Builds the API request from `offload job enqueue`'s arguments.
fn build_request(
    args: EnqueueArgs,
    payload: Option<Box<RawValue>>,
) -> Result<EnqueueRequest, UsageError> {
    let mut tags = BTreeMap::new();
    for (key, value) in args.tags {
        if tags.insert(key.clone(), value).is_some() {
            return Err(UsageError(format!("tag `{key}` is given more than once")));
        }
    }
    Ok(EnqueueRequest {
        queue: args.queue,
        name: args.name,
        payload,
        run_at: args.run_at,
        delay: args.delay,
        priority: args.priority,
        max_attempts: args.max_attempts,
        backoff: None,
        timeout: args.timeout,
        idempotency_key: args.idempotency_key,
        tags: if tags.is_empty() { None } else { Some(tags) },
        target: args.target.map(|url| offload_core::push::Target {
            callback_url: args.callback_url,
            failure_callback_url: args.failure_callback_url,
            ..offload_core::push::Target::post(url)
        }),
        group: args.group,
        debounce: match (args.debounce_key, args.debounce_period) {
            (Some(key), Some(period)) => Some(DebounceSpec {
                key,
                period,
                max_wait: args.debounce_max_wait,
            }),
            _ => None,
        },
    })
}

fn list_query(args: ListArgs) -> ListJobsQuery {
    ListJobsQuery {
        queue: args.queue,
        state: args.state,
        name: args.name,
        tag: args.tag,
        group: args.group,
        cursor: args.cursor,
        limit: args.limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `offload job ...` on its own.
    #[derive(Debug, Parser)]
    struct JobLine {
        #[command(subcommand)]
        command: JobCommand,
    }

    fn enqueue_args(args: &[&str]) -> EnqueueArgs {
        let argv = ["job", "enqueue"].iter().chain(args);
        match JobLine::try_parse_from(argv).unwrap().command {
            JobCommand::Enqueue(args) => *args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_option_lands_in_the_request() {
        let args = enqueue_args(&[
            "emails",
            "--name",
            "welcome",
            "--delay",
            "1h30m",
            "--priority",
            "-3",
            "--max-attempts",
            "5",
            "--timeout",
            "2m",
            "--idempotency-key",
            "signup-42",
            "--tag",
            "env=prod",
            "--tag",
            "team=growth",
        ]);
        let payload = parse_payload(r#" {"user": 42} "#, "--payload").unwrap();
        let req = build_request(args, Some(payload)).unwrap();
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "queue": "emails", "name": "welcome", "payload": {"user": 42}, "delay": 5_400_000, "priority": -3,
                "max_attempts": 5, "timeout": 120_000, "idempotency_key": "signup-42",
                "tags": {"env": "prod", "team": "growth"}
            })
        );
        assert_eq!(
            req.payload.unwrap().get(),
            r#"{"user": 42}"#,
            "the payload is sent as written"
        );
    }

    #[test]
    fn target_options_make_a_push_job() {
        let req = build_request(
            enqueue_args(&[
                "hooks",
                "--target",
                "https://app.example/work",
                "--callback-url",
                "https://app.example/done",
            ]),
            None,
        )
        .unwrap();
        let target = req.target.unwrap();
        assert_eq!(target.url, "https://app.example/work");
        assert_eq!(target.method, "POST");
        assert_eq!(
            target.callback_url.as_deref(),
            Some("https://app.example/done")
        );
        assert!(
            JobLine::try_parse_from(["job", "enqueue", "q", "--callback-url", "http://x"]).is_err(),
            "a callback needs a target"
        );
    }

    #[test]
    fn a_bare_enqueue_sends_only_the_queue() {
        let req = build_request(enqueue_args(&["q"]), None).unwrap();
        assert_eq!(serde_json::to_string(&req).unwrap(), r#"{"queue":"q"}"#);
        let at = build_request(
            enqueue_args(&["q", "--run-at", "2026-06-01T14:00:00+02:00"]),
            None,
        )
        .unwrap();
        assert_eq!(at.run_at.unwrap().to_string(), "2026-06-01T12:00:00Z");
    }

    #[test]
    fn duplicate_tags_and_bad_payloads_are_usage_errors() {
        let err =
            build_request(enqueue_args(&["q", "--tag", "a=1", "--tag", "a=2"]), None).unwrap_err();
        assert_eq!(err.0, "tag `a` is given more than once");
        let err = parse_payload("{user: 42}", "--payload").unwrap_err();
        assert_eq!(
            err.0,
            "--payload is not valid JSON: key must be a string at line 1 column 2"
        );
        assert!(parse_payload("", "--payload").is_err());
        assert!(parse_payload("1 2", "--payload").is_err());
        assert_eq!(
            parse_payload("\"text\"\n", "--payload").unwrap().get(),
            "\"text\""
        );
    }

    #[test]
    fn payloads_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, "[1, 2]\n").unwrap();
        assert_eq!(
            read_payload(&format!("@{}", path.display())).unwrap().get(),
            "[1, 2]"
        );
        let err = read_payload("@/nonexistent/p.json").unwrap_err();
        assert_eq!(
            format!("{err:#}").lines().next().unwrap(),
            "cannot read the payload file `/nonexistent/p.json`: No such file or directory (os error 2)"
        );
    }
}
