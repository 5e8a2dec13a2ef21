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
use symphony_tests::{Moto, SmtpServer};

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
    // The answer is the one JSON line; Node and the SDK may warn around it.
    let parse = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let line = text
            .lines()
            .find(|line| line.starts_with('{'))
            .unwrap_or_default();
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| {
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
    with_sender(World::start().await).await
}

async fn with_sender(world: World) -> World {
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

    // Then the first put it on the queue; the second found the row still claimed (as
    // after a dispatch that died before its send) and put it on the queue again
    assert_eq!(first["route"], "symphony");
    assert_eq!(first["emailId"], "web-1");
    assert!(first["messageId"].is_string(), "{first}");
    assert_eq!(second["route"], "symphony");
    assert_eq!(second["redispatched"], true, "{second}");
    let queue = &world.stack.queue("EmailQueue").url;
    assert_eq!(seed::queue_depth(&world.sqs, queue).await, 2);

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

    // and a dispatch after that is a duplicate that says the email was sent
    let third = dispatch(&world, guide_email("web-1")).expect("a duplicate is an answer");
    assert_eq!(
        (third["route"].as_str(), third["status"].as_str()),
        (Some("duplicate"), Some("sent"))
    );
    assert_eq!(seed::queue_depth(&world.sqs, queue).await, 0);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_whose_message_was_lost_is_taken_over_by_the_tick_once_its_lease_ends() {
    // Given an email the client wrote claimed and put on the queue, whose message is then
    // lost (as if the web app died between the row and the send)
    let world = world_with_sender().await;
    world.set_email_flag(true).await;
    assert_eq!(
        dispatch(&world, guide_email("web-lost")).expect("dispatched")["route"],
        "symphony"
    );
    let queue = &world.stack.queue("EmailQueue").url;
    world
        .sqs
        .purge_queue()
        .queue_url(queue)
        .send()
        .await
        .expect("purge");
    let tick = world
        .scheduled::<EmailJob>(&[("CLAIM_LEASE_SECONDS", "1")])
        .await;

    // When a tick runs within the lease, then after it
    let early = world.tick::<EmailJob>(&tick).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let late = world.tick::<EmailJob>(&tick).await;

    // Then only the late one takes the claim over, and the worker sends it once
    assert_eq!((early.due, early.dispatched), (0, 0));
    assert_eq!((late.due, late.dispatched), (1, 1), "{late:?}");
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;
    assert_eq!(world.delivered_ids(), ["web-lost"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_whose_send_is_refused_is_left_queued_and_the_next_tick_sends_it() {
    // Given a queue that refuses the client's send
    let moto = Moto::start_with(&["--sqs-refuse-sends", "symphony-local-email:1"]);
    let world =
        with_sender(World::start_on(moto, SmtpServer::start("^bounce", "^busy")).await).await;
    world.set_email_flag(true).await;

    // When the web app dispatches
    let refused = dispatch(&world, guide_email("web-refused")).expect_err("the send was refused");

    // Then it says where the email waits, and it waits there
    assert_eq!(refused["emailLeft"], "queued", "{refused}");
    assert_eq!(world.email("web-refused").await.status, EmailStatus::Queued);
    // and the next tick sends it (the queue takes sends again), once
    let tick = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!((tick.due, tick.dispatched), (1, 1));
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;
    assert_eq!(world.delivered_ids(), ["web-refused"]);
}

/// The client's address vectors (`clients/typescript/test/fixtures/addresses.json`) are
/// what lettre, which the worker parses addresses with, accepts and refuses: the client
/// refuses before writing exactly what the worker would refuse after.
#[test]
fn the_clients_address_vectors_are_lettres() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(client_dir().join("test/fixtures/addresses.json"))
            .expect("the address fixture"),
    )
    .expect("the fixture is JSON");
    for (list, accepted) in [("accepted", true), ("refused", false)] {
        let addresses = fixture[list].as_array().expect("a list of addresses");
        assert!(!addresses.is_empty(), "{list} is empty");
        for address in addresses {
            let address = address.as_str().expect("an address");
            assert_eq!(
                address.parse::<lettre::Address>().is_ok(),
                accepted,
                "lettre and the client disagree on {address:?}"
            );
        }
    }
}
