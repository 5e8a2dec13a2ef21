//! The Rust half of `scripts/dev-stack.sh`, which starts and stops the processes:
//!
//! - `dev-stack setup <moto endpoint> <smtp port> <dir>`: creates the tables and queues
//!   `template.yaml` declares on the moto server, seeds a small data set for each job, and
//!   writes each function's environment (`<dir>/env/<function>.env`, for
//!   `cargo lambda watch --env-file` or `dev-stack invoke`) and `<dir>/sam-env.json`
//!   (for `sam local invoke --env-vars`).
//! - `dev-stack invoke <dir> <function> <event file>`: runs the function's debug build
//!   with its environment under a local Lambda Runtime API, gives it the event, and
//!   prints its answer (its log lines go to stderr).
//! - `dev-stack mail <dir>`: the mails the SMTP server received.
//! - `dev-stack texts <moto port>`: the texts SNS (moto) published.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use symphony_adapters::sms::dynamo::{enrollment_to_item, sequence_to_item};
use symphony_jobs::campaign::CAMPAIGN_FLAG;
use symphony_jobs::email::EMAIL_FLAG;
use symphony_jobs::sms::SMS_FLAG;
use symphony_tests::runtime_api;
use symphony_tests::services::{received_in, recorded_sms_at, sdk_config_at};
use symphony_tests::stack::{FUNCTIONS, Stack, function_timeout, load_template};
use symphony_tests::{project_root, seed};

/// The dev stack's name: its tables and queues are `symphony-dev-...`.
pub const STACK: &str = "symphony-dev";

/// The emails the sample SQS events carry (`events/example-sqs-email*.json`), and a few
/// more for the tick.
const EMAILS: [(&str, &str); 6] = [
    ("email-0001", "lead.one@example.com"),
    ("email-0002", "lead.two@example.com"),
    ("email-0101", "lead.ok@example.com"),
    ("welcome-1", "ana@example.com"),
    ("welcome-2", "ben@example.com"),
    ("welcome-3", "chloe@example.com"),
];

/// SMS quiet hours that never apply, so the dev stack works at any time of day.
const NEVER_QUIET: [(&str, &str); 2] = [("SMS_QUIET_START_HOUR", "0"), ("SMS_QUIET_END_HOUR", "0")];

fn print(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn fail(text: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr().lock(), "dev-stack: {text}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["setup", endpoint, smtp_port, dir] => match smtp_port.parse() {
            Ok(port) => setup(endpoint, port, Path::new(dir)).await,
            Err(_) => fail(&format!("{smtp_port} is not a port")),
        },
        ["invoke", dir, function, event] => invoke(Path::new(dir), function, event).await,
        ["mail", dir] => {
            mail(Path::new(dir));
            ExitCode::SUCCESS
        }
        ["texts", moto_port] => match moto_port.parse() {
            Ok(port) => {
                texts(port);
                ExitCode::SUCCESS
            }
            Err(_) => fail(&format!("{moto_port} is not a port")),
        },
        _ => fail(
            "usage: dev-stack setup <moto endpoint> <smtp port> <dir> | invoke <dir> <function> <event file> | mail <dir> | texts <moto port>",
        ),
    }
}

async fn setup(endpoint: &str, smtp_port: u16, dir: &Path) -> ExitCode {
    let sdk = sdk_config_at(endpoint).await;
    let stack = Stack::provision(&sdk, STACK).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    seed_data(&dynamo, &stack, smtp_port).await;
    if let Err(e) = write_environments(&stack, endpoint, dir) {
        return fail(&format!(
            "cannot write the environment files in {}: {e}",
            dir.display()
        ));
    }
    print(&format!(
        "tables and queues of template.yaml created as {STACK}-*; seeded: a mailbox (mailbox-1 → 127.0.0.1:{smtp_port}), {} queued emails, campaign-spring with 2 leads, sequence welcome with 2 enrollments; every flag off",
        EMAILS.len()
    ));
    print(&format!(
        "environments: {}/env/<function>.env, {}/sam-env.json",
        dir.display(),
        dir.display()
    ));
    ExitCode::SUCCESS
}

async fn seed_data(dynamo: &aws_sdk_dynamodb::Client, stack: &Stack, smtp_port: u16) {
    seed::put_loopback_mailbox_with_sender(
        dynamo,
        stack.table("MailboxesTable"),
        "mailbox-1",
        smtp_port,
        ("Acme", "hello@acme.example"),
    )
    .await;
    for (id, to) in EMAILS {
        seed::put_email(
            dynamo,
            stack.table("EmailsTable"),
            &seed::queued_email(id, "mailbox-1", to),
        )
        .await;
    }
    seed::put_campaign(
        dynamo,
        stack.table("CampaignsTable"),
        &seed::campaign("campaign-spring", "mailbox-1", 1),
    )
    .await;
    for lead in ["lead-1", "lead-2"] {
        seed::put_lead(
            dynamo,
            stack.table("CampaignLeadsTable"),
            &seed::lead("campaign-spring", lead),
        )
        .await;
    }
    seed::put_item(
        dynamo,
        stack.table("SmsSequencesTable"),
        sequence_to_item(&seed::sequence("welcome", 2)),
    )
    .await;
    for (id, phone) in [("enrollment-1", "+15550100"), ("enrollment-2", "+15550101")] {
        seed::put_item(
            dynamo,
            stack.table("SmsEnrollmentsTable"),
            enrollment_to_item(&seed::enrollment(id, "welcome", phone)),
        )
        .await;
    }
    let flags = stack.table("FlagsTable");
    for flag in ["SYMPHONY_ENABLED", EMAIL_FLAG, CAMPAIGN_FLAG, SMS_FLAG] {
        // The global switch on, each job off: one command turns a job on.
        seed::put_flag(dynamo, flags, flag, flag == "SYMPHONY_ENABLED", 100).await;
    }
}

/// Each function (binary, logical id) and its environment: what Lambda sets, a local
/// AWS, and every variable the function's template entry sets (the stack's names resolved).
type Environment = (&'static str, &'static str, BTreeMap<String, String>);

fn environments(stack: &Stack, endpoint: &str) -> Vec<Environment> {
    FUNCTIONS
        .iter()
        .map(|&(function, logical_id)| {
            let mut env: BTreeMap<String, String> = runtime_api::lambda_env(endpoint, function)
                .into_iter()
                .collect();
            env.extend(stack.function_env(logical_id));
            if function.contains("sms") {
                env.extend(NEVER_QUIET.map(|(name, value)| (name.to_owned(), value.to_owned())));
            }
            (function, logical_id, env)
        })
        .collect()
}

fn write_environments(stack: &Stack, endpoint: &str, dir: &Path) -> std::io::Result<()> {
    let env_dir = dir.join("env");
    std::fs::create_dir_all(&env_dir)?;
    let mut sam = serde_json::Map::new();
    for (function, logical_id, env) in environments(stack, endpoint) {
        // Single quotes: dotenv readers (`cargo lambda watch --env-file`) take the value
        // as written, `$LATEST` included.
        let lines: String = env
            .iter()
            .map(|(name, value)| format!("{name}='{value}'\n"))
            .collect();
        std::fs::write(env_dir.join(format!("{function}.env")), lines)?;
        sam.insert(
            logical_id.to_owned(),
            serde_json::to_value(env).unwrap_or_default(),
        );
    }
    std::fs::write(
        dir.join("sam-env.json"),
        serde_json::to_string_pretty(&sam).unwrap_or_default(),
    )
}

/// Reads a `NAME=value` file as `dev-stack setup` writes it.
fn read_env_file(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (is the dev stack up? scripts/dev-stack.sh up)",
            path.display()
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let value = value
                .strip_prefix('\'')
                .and_then(|quoted| quoted.strip_suffix('\''))
                .unwrap_or(value);
            (name.to_owned(), value.to_owned())
        })
        .collect())
}

/// The function's binary: in `DEV_STACK_FUNCTIONS_DIR` (the script sets it), else the
/// debug build of the target dir.
fn function_binary(function: &str) -> PathBuf {
    std::env::var_os("DEV_STACK_FUNCTIONS_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|dir| PathBuf::from(dir).join("debug"))
        })
        .unwrap_or_else(|| project_root().join("target").join("debug"))
        .join(function)
}

async fn invoke(dir: &Path, function: &str, event_file: &str) -> ExitCode {
    let Some(&(_, logical_id)) = FUNCTIONS.iter().find(|(name, _)| *name == function) else {
        let names: Vec<&str> = FUNCTIONS.iter().map(|(name, _)| *name).collect();
        return fail(&format!(
            "no function {function}; the functions are {}",
            names.join(", ")
        ));
    };
    let env = match read_env_file(&dir.join("env").join(format!("{function}.env"))) {
        Ok(env) => env,
        Err(e) => return fail(&e),
    };
    let event = match std::fs::read_to_string(event_file) {
        Ok(event) => event,
        Err(e) => return fail(&format!("{event_file}: {e}")),
    };
    let program = vec![function_binary(function).to_string_lossy().into_owned()];
    let timeout = function_timeout(&load_template(), logical_id);
    match runtime_api::invoke(&program, &env, &event, timeout).await {
        Ok(answer) => {
            let pretty = serde_json::from_str::<serde_json::Value>(&answer)
                .ok()
                .and_then(|value| serde_json::to_string_pretty(&value).ok())
                .unwrap_or(answer);
            print(&pretty);
            ExitCode::SUCCESS
        }
        Err(error) => fail(&format!("{function} failed: {error}")),
    }
}

fn mail(dir: &Path) {
    let received = received_in(&dir.join("mail"));
    print(&format!("{} mails received", received.len()));
    for mail in received {
        let subject = mail
            .data
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned();
        print(&format!(
            "  {} → {}: {subject}",
            mail.mail_from,
            mail.rcpt_tos.join(", ")
        ));
    }
}

fn texts(moto_port: u16) {
    let texts = recorded_sms_at(moto_port);
    print(&format!("{} texts sent", texts.len()));
    for (phone, text) in texts {
        print(&format!("  {phone}: {text}"));
    }
}
