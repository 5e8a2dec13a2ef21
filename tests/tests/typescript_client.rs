//! The web app's TypeScript client (`clients/typescript`) with the Rust functions: the
//! client dispatches through the project's moto server, the Rust worker (or, with the
//! flag off, the legacy tick) sends, and the loopback SMTP server receives exactly one
//! mail. The client runs as the web app would run it: Node.js, the built package, its
//! example script (`examples/dispatch-email.mjs`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use symphony_jobs::email::EmailStatus;
use symphony_tests::project_root;
use symphony_tests::seed;
use symphony_tests::world::{EmailJob, MAILBOX_ID, World};

fn client_dir() -> PathBuf {
    project_root().join("clients/typescript")
}

fn run(command: &mut Command) {
    let status = command
        .current_dir(client_dir())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed: {status}");
}

/// Installs (from the lockfile, when not yet installed) and builds the package once.
fn built_client() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if !client_dir().join("node_modules").is_dir() {
            run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]));
        }
        run(Command::new("npm").args(["run", "build"]));
    });
}

/// The migration guide's six-field message: the sender comes from the mailbox.
fn guide_email(email_id: &str) -> Value {
    json!({
        "emailId": email_id,
        "userId": "user-1",
        "mailboxId": MAILBOX_ID,
        "toEmail": format!("{email_id}@example.com"),
        "subject": "Welcome",
        "html": "<p>Hello from the web app</p>",
    })
}

/// Runs the client's dispatch as the web app would: its answer, or its error report.
fn dispatch(world: &World, email: Value) -> Result<Value, Value> {
    built_client();
    let config = json!({
        "stack": world.stack.name,
        "region": "us-east-1",
        "endpoint": world.moto.endpoint,
        "email": email,
    });
    let output = Command::new("node")
        .arg("examples/dispatch-email.mjs")
        .arg(config.to_string())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .current_dir(client_dir())
        .output()
        .expect("cannot run node");
    // The answer is the first line; Node and the SDK may warn on the lines after it.
    let parse = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let first = text.lines().next().unwrap_or_default();
        serde_json::from_str::<Value>(first).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    };
    if output.status.success() {
        Ok(parse(&output.stdout))
    } else {
        Err(parse(&output.stderr))
    }
}

async fn world_with_sender() -> World {
    let world = World::start().await;
    seed::put_loopback_mailbox_with_sender(
        &world.dynamo,
        world.stack.table("MailboxesTable"),
        MAILBOX_ID,
        world.smtp.port,
        ("Acme", "hello@acme.example"),
    )
    .await;
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_the_web_app_dispatches_is_sent_once_by_the_rust_worker() {
    // Given the email job on symphony and a mailbox that names the sender
    let world = world_with_sender().await;
    world.set_email_flag(true).await;

    // When the web app dispatches the guide's message, twice
    let first = dispatch(&world, guide_email("web-1")).expect("dispatched");
    let second = dispatch(&world, guide_email("web-1")).expect("a duplicate is an answer");

    // Then the first put it on the queue and the second changed nothing
    assert_eq!(first["route"], "symphony");
    assert_eq!(first["emailId"], "web-1");
    assert!(first["messageId"].is_string(), "{first}");
    assert_eq!(second["route"], "duplicate");
    let queue = &world.stack.queue("EmailQueue").url;
    assert_eq!(seed::queue_depth(&world.sqs, queue).await, 1);

    // and the Rust worker sends it once, as the mailbox's sender; a tick after finds nothing
    let worker = world.worker::<EmailJob>(&[]).await;
    world.drain::<EmailJob>(&worker).await;
    let tick = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    world.drain::<EmailJob>(&worker).await;
    assert_eq!(tick.due, 0);
    assert_eq!(world.delivered_ids(), ["web-1"]);
    let mail = &world.smtp.received()[0];
    assert_eq!(mail.mail_from, "hello@acme.example");
    assert!(
        mail.data.contains("From: Acme <hello@acme.example>"),
        "{}",
        mail.data
    );
    assert_eq!(world.email("web-1").await.status, EmailStatus::Sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_flag_off_the_email_waits_for_the_legacy_tick() {
    let world = world_with_sender().await;
    world.set_email_flag(false).await;

    let answer = dispatch(&world, guide_email("web-legacy")).expect("dispatched");
    assert_eq!(answer["route"], "legacy");
    assert_eq!(world.email("web-legacy").await.status, EmailStatus::Queued);
    let queue = &world.stack.queue("EmailQueue").url;
    assert_eq!(seed::queue_depth(&world.sqs, queue).await, 0);

    let tick = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!((tick.due, tick.legacy), (1, 1));
    assert_eq!(world.delivered_ids(), ["web-legacy"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_its_field_and_nothing_is_written() {
    let world = world_with_sender().await;
    world.set_email_flag(true).await;
    let mut email = guide_email("web-bad");
    email["toEmail"] = json!("not-an-address");

    let refused = dispatch(&world, email).expect_err("refused");
    assert_eq!(refused["field"], "toEmail", "{refused}");
    assert!(world.all_emails().await.is_empty());
    let queue = &world.stack.queue("EmailQueue").url;
    assert_eq!(seed::queue_depth(&world.sqs, queue).await, 0);
}
