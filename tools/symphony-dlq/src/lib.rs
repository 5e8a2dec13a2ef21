//! `symphony-dlq`: an operator's tool for a job's dead-letter queue.
//!
//! ```text
//! symphony-dlq list <job> --stack NAME
//! symphony-dlq redrive <job> --stack NAME (--all | --message-id ID ...)
//! ```
//!
//! `list` prints one tab-separated line per message: its id, type, unit, error kind,
//! attempts, last failure and reason. Never a body: payloads carry addresses. `redrive`
//! moves the chosen messages back to the job's queue without their error details.
//! Queue names follow `template.yaml`: `<stack>-<job>` and `<stack>-<job>-dlq`.

use std::io::Write;

use symphony_aws::{AwsError, DeadLetter, DeadLetterQueue};
use symphony_core::config::EnvSource;

pub const USAGE: &str = "usage: symphony-dlq list <job> [--stack NAME]
       symphony-dlq redrive <job> [--stack NAME] (--all | --message-id ID ...)
<job> is email, campaign, sms or any job of the stack; the stack defaults to $SYMPHONY_STACK.";

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    #[error("queue {name} cannot be found")]
    NoSuchQueue {
        name: String,
        #[source]
        source: AwsError,
    },
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
}

/// What to do, parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub action: Action,
    pub job: String,
    pub stack: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    List,
    /// Every message (`None`) or those with these ids.
    Redrive(Option<Vec<String>>),
}

impl Command {
    pub fn parse(args: &[String], env: &dyn EnvSource) -> Result<Self, DlqError> {
        let usage = |reason: &str| DlqError::Usage(reason.to_owned());
        let mut args = args.iter();
        let action = args.next().ok_or_else(|| usage("no command given"))?;
        let job = args.next().ok_or_else(|| usage("no job given"))?;
        // Any job of the stack: its queues are named after it (`<stack>-<job>`).
        let well_formed = !job.is_empty()
            && job
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !well_formed {
            return Err(usage(&format!(
                "{job:?} is not a job name (email, campaign, sms, ...)"
            )));
        }
        let mut stack = env.get("SYMPHONY_STACK");
        let mut all = false;
        let mut ids = Vec::new();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--stack" => {
                    stack = Some(
                        args.next()
                            .ok_or_else(|| usage("--stack needs a name"))?
                            .clone(),
                    )
                }
                "--all" => all = true,
                "--message-id" => ids.push(
                    args.next()
                        .ok_or_else(|| usage("--message-id needs an id"))?
                        .clone(),
                ),
                other => return Err(usage(&format!("unknown option {other:?}"))),
            }
        }
        let stack = stack
            .filter(|s| !s.is_empty())
            .ok_or_else(|| usage("no stack: pass --stack NAME or set SYMPHONY_STACK"))?;
        let action = match (action.as_str(), all, ids.is_empty()) {
            ("list", false, true) => Action::List,
            ("list", _, _) => return Err(usage("list takes no --all or --message-id")),
            ("redrive", true, true) => Action::Redrive(None),
            ("redrive", false, false) => Action::Redrive(Some(ids)),
            ("redrive", _, _) => {
                return Err(usage("redrive needs either --all or --message-id ID"));
            }
            (other, _, _) => return Err(usage(&format!("unknown command {other:?}"))),
        };
        Ok(Self {
            action,
            job: job.clone(),
            stack,
        })
    }
}

/// Runs a command against the stack's queues, writing what it did to `out`.
pub async fn run(
    command: &Command,
    sqs: &aws_sdk_sqs::Client,
    out: &mut dyn Write,
) -> Result<(), DlqError> {
    let queue_name = format!("{}-{}", command.stack, command.job);
    let queue = DeadLetterQueue::new(
        sqs.clone(),
        queue_url(sqs, &queue_name).await?,
        queue_url(sqs, &format!("{queue_name}-dlq")).await?,
    );
    match &command.action {
        Action::List => {
            let letters = queue.list().await?;
            writeln!(out, "{} messages in {queue_name}-dlq", letters.len())?;
            writeln!(
                out,
                "message id\ttype\tunit\tkind\tattempts\tlast failure\treason"
            )?;
            for letter in &letters {
                writeln!(out, "{}", line(letter))?;
            }
        }
        Action::Redrive(ids) => {
            let report = queue
                .redrive(|letter| {
                    ids.as_ref()
                        .is_none_or(|ids| ids.contains(&letter.message_id))
                })
                .await?;
            for id in &report.moved {
                writeln!(out, "moved {id} to {queue_name}")?;
            }
            if let Some(ids) = ids {
                for missing in ids.iter().filter(|id| !report.moved.contains(id)) {
                    writeln!(out, "not found: {missing}")?;
                }
            }
            writeln!(
                out,
                "{} moved, {} left in {queue_name}-dlq",
                report.moved.len(),
                report.left
            )?;
        }
    }
    Ok(())
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, DlqError> {
    let output = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| DlqError::NoSuchQueue {
            name: name.to_owned(),
            source: AwsError::from_sdk("GetQueueUrl", e),
        })?;
    Ok(output.queue_url().unwrap_or_default().to_owned())
}

/// One message as a tab-separated line; a missing value is `-`.
pub fn line(letter: &DeadLetter) -> String {
    let or_dash = |value: Option<&str>| value.filter(|v| !v.is_empty()).unwrap_or("-").to_owned();
    let error = letter.error.as_ref();
    let fields = [
        letter.message_id.clone(),
        or_dash(letter.message_type.as_deref()),
        or_dash(letter.unit_id.as_deref()),
        // SQS moved it after maxReceiveCount: no worker wrote details.
        error.map_or("redriven by SQS".to_owned(), |e| e.kind.as_str().to_owned()),
        error.map_or("-".to_owned(), |e| e.attempts.to_string()),
        error.map_or("-".to_owned(), |e| e.last_failure_at.to_rfc3339()),
        or_dash(error.map(|e| e.reason.as_str())),
    ];
    fields
        .map(|field| field.replace(['\t', '\n', '\r'], " "))
        .join("\t")
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_core::config::from_pairs;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_parse_with_the_stack_from_an_option_or_the_environment() {
        let no_env = from_pairs(&[]);
        assert_eq!(
            Command::parse(&args("list email --stack prod"), &no_env).unwrap(),
            Command {
                action: Action::List,
                job: "email".into(),
                stack: "prod".into()
            }
        );
        let env = from_pairs(&[("SYMPHONY_STACK", "staging")]);
        assert_eq!(
            Command::parse(&args("redrive sms --message-id a --message-id b"), &env).unwrap(),
            Command {
                action: Action::Redrive(Some(vec!["a".into(), "b".into()])),
                job: "sms".into(),
                stack: "staging".into()
            }
        );
        assert_eq!(
            Command::parse(&args("redrive campaign --all"), &env)
                .unwrap()
                .action,
            Action::Redrive(None)
        );
    }

    #[test]
    fn a_line_names_a_message_moved_by_sqs_and_keeps_to_one_line() {
        let letter = |body: &str| {
            let mut letter = DeadLetter::default();
            letter.message_id = "m-1".into();
            letter.body = body.into();
            letter
        };
        assert_eq!(line(&letter("{")), "m-1\t-\t-\tredriven by SQS\t-\t-\t-");
        let mut with_reason = letter("{");
        with_reason.error = Some(symphony_core::ErrorDetails {
            kind: symphony_core::DeadLetterKind::Exhausted,
            reason: "451 busy\n\ttry later".into(),
            attempts: 5,
            first_failure_at: chrono::DateTime::UNIX_EPOCH,
            last_failure_at: chrono::DateTime::UNIX_EPOCH,
            source_queue: None,
        });
        assert_eq!(
            line(&with_reason),
            "m-1\t-\t-\texhausted\t5\t1970-01-01T00:00:00+00:00\t451 busy  try later"
        );
    }

    #[test]
    fn a_bad_command_line_says_what_is_wrong_and_shows_the_usage() {
        let env = from_pairs(&[("SYMPHONY_STACK", "prod")]);
        for (line, says) in [
            ("", "no command given"),
            ("list", "no job given"),
            ("list Fax!", "\"Fax!\" is not a job name"),
            ("purge email", "unknown command \"purge\""),
            ("redrive email", "either --all or --message-id"),
            (
                "redrive email --all --message-id a",
                "either --all or --message-id",
            ),
            ("list email --all", "list takes no"),
            ("list email --colour", "unknown option \"--colour\""),
        ] {
            let error = Command::parse(&args(line), &env).unwrap_err().to_string();
            assert!(error.contains(says), "{line:?}: {error}");
            assert!(error.contains("usage: symphony-dlq"), "{error}");
        }
        let error = Command::parse(&args("list email"), &from_pairs(&[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("SYMPHONY_STACK"), "{error}");
    }
}
