//! `offload queue ...`: list, read, limit, pause and resume queues.
//!
//! Invariant: `queue set` sends only the limits given (others keep their value), and a value it cannot read
//! is a usage error before any request is sent.

use anyhow::Result;
use clap::{Args, Subcommand};
use offload_core::DurationSpec;
use serde_json::{Map, Value, json};

use super::GlobalArgs;
use super::parse::UsageError;
use crate::output;

/// `offload queue ...`
#[derive(Debug, Subcommand)]
pub(crate) enum QueueCommand {
    /// List queues with their job counts.
    #[command(visible_alias = "list")]
    Ls,
    /// Show a queue: counts, limits, usage and the groups with most waiting jobs.
    Get {
        /// The queue.
        queue: String,
    },
    /// Change a queue's limits (only the ones given; `none` removes one).
    Set(SetArgs),
    /// Stop handing out jobs from a queue (enqueueing still works).
    Pause {
        /// The queue.
        queue: String,
    },
    /// Hand out jobs from a paused queue again.
    Resume {
        /// The queue.
        queue: String,
    },
}

/// `offload queue set`.
#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// The queue.
    pub(crate) queue: String,
    /// Most running jobs of the queue, across every worker and server, or `none`.
    #[arg(long, value_parser = parse_limit, value_name = "N|none")]
    pub(crate) concurrency: Option<Limit>,
    /// Most running jobs per group, or `none`.
    #[arg(long, value_parser = parse_limit, value_name = "N|none")]
    pub(crate) group_concurrency: Option<Limit>,
    /// Most job starts per period, e.g. `100/1s` or `5/1m`, or `none`.
    #[arg(long, value_parser = parse_throttle, value_name = "N/PERIOD|none")]
    pub(crate) throttle: Option<Throttle>,
    /// With --throttle: starts allowed at once after a quiet spell (default 1).
    #[arg(long, requires = "throttle", value_name = "N")]
    pub(crate) burst: Option<u32>,
    /// With --throttle: one throttle per group instead of one for the queue.
    #[arg(long, requires = "throttle")]
    pub(crate) per_group: bool,
    /// Whether claims take groups in turn.
    #[arg(long, value_name = "true|false")]
    pub(crate) fair: Option<bool>,
}

/// A limit as typed: a number, or `none` (remove it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(Option<u32>);

/// A throttle as typed: `N/PERIOD`, or `none` (remove it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttle(Option<(u32, DurationSpec)>);

/// Runs one queue command.
pub(crate) async fn run(global: &GlobalArgs, command: QueueCommand) -> Result<()> {
    let client = super::client(global)?;
    let (info, details) = match command {
        QueueCommand::Ls => {
            let list = client.list_queues().await?;
            if global.json {
                output::print_json(&list)?;
            } else if list.queues.is_empty() {
                output::print("no queues yet: a queue appears when its first job is enqueued")?;
            } else {
                output::print(&output::queue_table(&list.queues))?;
            }
            return Ok(());
        }
        QueueCommand::Get { queue } => (client.get_queue(&queue).await?, true),
        QueueCommand::Set(args) => {
            let queue = args.queue.clone();
            let patch = limits_patch(args)?;
            (client.set_queue_limits(&queue, &patch).await?, true)
        }
        QueueCommand::Pause { queue } => (client.pause_queue(&queue).await?, false),
        QueueCommand::Resume { queue } => (client.resume_queue(&queue).await?, false),
    };
    if global.json {
        output::print_json(&info)?
    } else if details {
        output::print(&output::queue_details(&info))?
    } else {
        output::print(&output::queue_line(&info))?
    }
    Ok(())
}

/// The body of `PATCH /v1/queues/{queue}` for `queue set`: only the options given, `none` as `null`.
fn limits_patch(args: SetArgs) -> Result<Value, UsageError> {
    let mut patch = Map::new();
    if let Some(Limit(c)) = args.concurrency {
        patch.insert("concurrency".into(), json!(c));
    }
    if let Some(Limit(c)) = args.group_concurrency {
        patch.insert("group_concurrency".into(), json!(c));
    }
    match args.throttle.map(|t| t.0) {
        Some(Some((limit, period))) => {
            let mut throttle =
                json!({"limit": limit, "period": period, "per_group": args.per_group});
            if let Some(burst) = args.burst {
                throttle["burst"] = json!(burst);
            }
            patch.insert("throttle".into(), throttle);
        }
        Some(None) if args.burst.is_some() || args.per_group => {
            return Err(UsageError(
                "--burst and --per-group go with a throttle, not --throttle none".into(),
            ));
        }
        Some(None) => {
            patch.insert("throttle".into(), Value::Null);
        }
        None => {}
    }
    if let Some(fair) = args.fair {
        patch.insert("fair".into(), json!(fair));
    }
    if patch.is_empty() {
        return Err(UsageError(
            "nothing to change: give --concurrency, --group-concurrency, --throttle or --fair"
                .into(),
        ));
    }
    Ok(Value::Object(patch))
}

/// Parses a limit: a positive integer, or `none` to remove it.
fn parse_limit(text: &str) -> Result<Limit, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Limit(None));
    }
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(Limit(Some(n))),
        _ => Err(format!(
            "`{text}` is not a limit; use a whole number of at least 1, or `none`"
        )),
    }
}

/// Parses a throttle `N/PERIOD` (`100/1s`, `5/1m`), or `none` to remove it.
fn parse_throttle(text: &str) -> Result<Throttle, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Throttle(None));
    }
    let bad =
        || format!("`{text}` is not a throttle; use N/PERIOD such as 100/1s or 5/1m, or `none`");
    let (limit, period) = text.trim().split_once('/').ok_or_else(bad)?;
    let limit = match limit.trim().parse::<u32>() {
        Ok(n) if n >= 1 => n,
        _ => return Err(bad()),
    };
    let period = DurationSpec::parse(period).map_err(|e| format!("{}: {e}", bad()))?;
    if period.0 < std::time::Duration::from_millis(1) {
        return Err(format!("`{text}`: the period must be at least 1ms"));
    }
    Ok(Throttle(Some((limit, period))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(queue: &str) -> SetArgs {
        SetArgs {
            queue: queue.into(),
            concurrency: None,
            group_concurrency: None,
            throttle: None,
            burst: None,
            per_group: false,
            fair: None,
        }
    }

    #[test]
    fn limits_and_throttles_parse_or_say_why_not() {
        assert_eq!(parse_limit("10"), Ok(Limit(Some(10))));
        assert_eq!(parse_limit("none"), Ok(Limit(None)));
        assert!(parse_limit("0").is_err());
        assert!(parse_limit("-1").is_err());
        let (limit, period) = parse_throttle("100/1s").unwrap().0.unwrap();
        assert_eq!((limit, period.as_millis()), (100, 1000));
        assert_eq!(parse_throttle("none"), Ok(Throttle(None)));
        for bad in ["100", "0/1s", "5/soon", "5/0"] {
            assert!(parse_throttle(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_holds_only_what_was_given() {
        let mut set = args("q");
        set.concurrency = Some(Limit(Some(10)));
        set.group_concurrency = Some(Limit(None));
        set.throttle = Some(Throttle(Some((5, DurationSpec::parse("1m").unwrap()))));
        set.burst = Some(3);
        set.per_group = true;
        set.fair = Some(true);
        assert_eq!(
            limits_patch(set).unwrap(),
            json!({"concurrency": 10, "group_concurrency": null,
                   "throttle": {"limit": 5, "period": 60000, "burst": 3, "per_group": true}, "fair": true})
        );
        assert!(limits_patch(args("q")).is_err(), "nothing to change");
        let mut none = args("q");
        none.throttle = Some(Throttle(None));
        none.per_group = true;
        assert!(limits_patch(none).is_err());
    }
}
