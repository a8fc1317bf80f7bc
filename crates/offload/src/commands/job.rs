//! `offload job ...`: enqueue, inspect and manage jobs.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};
use offload_core::api::ListJobsQuery;
use offload_core::spec::EnqueueRequest;
use serde_json::value::RawValue;

use crate::cli::{EnqueueArgs, GlobalArgs, JobCommand, ListArgs, UsageError};
use crate::output;

/// Runs one job command.
pub(crate) async fn run(global: &GlobalArgs, command: JobCommand) -> Result<()> {
    let client = super::client(global)?;
    let (verb, job) = match command {
        JobCommand::Enqueue(args) => {
            let payload = match &args.payload {
                Some(source) => Some(read_payload(source)?),
                None => None,
            };
            let request = build_request(args, payload)?;
            let enqueued = client.enqueue(&request).await?;
            return if global.json {
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
    })
}

fn list_query(args: ListArgs) -> ListJobsQuery {
    ListJobsQuery {
        queue: args.queue,
        state: args.state,
        name: args.name,
        tag: args.tag,
        cursor: args.cursor,
        limit: args.limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn enqueue_args(args: &[&str]) -> EnqueueArgs {
        let argv = ["offload", "job", "enqueue"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Job(JobCommand::Enqueue(args)) => args,
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
            crate::cli::Cli::try_parse_from([
                "offload",
                "job",
                "enqueue",
                "q",
                "--callback-url",
                "http://x"
            ])
            .is_err(),
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
