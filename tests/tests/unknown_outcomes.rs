//! Sends whose outcome cannot be known: the mail server stored the mail but its verdict
//! came too late, or the connection dropped after the data's final dot. Such a unit is
//! held (status `unknown`) with a dead letter for a person, and never sent again by itself.

use std::time::Duration;
use symphony_tests::world::EmailJob;

use symphony_core::FailureKind;
use symphony_jobs::email::EmailStatus;
use symphony_tests::SmtpServer;
use symphony_tests::seed;
use symphony_tests::world::World;

/// The server's verdict on `late@` mail comes after this long.
const LATE_ACK: Duration = Duration::from_secs(4);
/// Each step before the final dot, and the wait for the verdict: both well under `LATE_ACK`.
const TIMEOUTS: [(&str, &str); 2] = [
    ("SMTP_TIMEOUT_SECONDS", "1"),
    ("SMTP_REPLY_TIMEOUT_SECONDS", "2"),
];

async fn world_with_an_unsure_server() -> World {
    World::start_with(SmtpServer::start_unsure("late@", LATE_ACK, "dropped@")).await
}

fn times_delivered(world: &World, email_id: &str) -> usize {
    world
        .delivered_ids()
        .iter()
        .filter(|id| *id == email_id)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_acknowledged_late_goes_out_once_and_is_held_for_a_person() {
    // Given the email flag on, one email to a recipient whose verdict comes late, one fine
    let world = world_with_an_unsure_server().await;
    world.set_email_flag(true).await;
    world
        .queue_email("late", "mailbox-1", "late@example.com")
        .await;
    world.seed_emails("fine", 1).await;
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!(report.dispatched, 2, "{report:?}");

    // When the worker sends them, waiting 2 s for a verdict that takes 4 s
    let worker = world.worker::<EmailJob>(&TIMEOUTS).await;
    world.drain::<EmailJob>(&worker).await;

    // Then the late one is held as unknown, with the evidence, and dead-lettered at once
    let email = world.email("late").await;
    assert_eq!(email.status, EmailStatus::Unknown);
    let evidence = email.last_error.unwrap_or_default();
    assert!(
        evidence.contains("after the data's final dot"),
        "{evidence}"
    );
    assert!(!evidence.contains("late@example.com"), "{evidence}");
    let dlq = world.stack.queue("EmailDeadLetterQueue");
    let letters = seed::dead_letters(&world.sqs, &dlq.url).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (letters[0].kind.as_str(), letters[0].attempts),
        ("unknown-outcome", 1)
    );
    assert!(
        letters[0].reason.contains("no verdict"),
        "{}",
        letters[0].reason
    );

    // And after the late verdict, further ticks and deliveries never send it again
    tokio::time::sleep(LATE_ACK).await;
    let again = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!(again.due, 0, "{again:?}");
    world.drain::<EmailJob>(&worker).await;
    assert_eq!(times_delivered(&world, "late"), 1);
    assert_eq!(times_delivered(&world, "fine-1"), 1);
    assert_eq!(world.email("fine-1").await.status, EmailStatus::Sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_after_the_final_dot_is_held_on_the_legacy_path() {
    // Given the email flag off, and one email whose connection the server drops after
    // storing it, one acknowledged late, and one fine
    let world = world_with_an_unsure_server().await;
    world.set_email_flag(false).await;
    world
        .queue_email("dropped", "mailbox-1", "dropped@example.com")
        .await;
    world
        .queue_email("late", "mailbox-1", "late@example.com")
        .await;
    world.seed_emails("fine", 1).await;
    let mut env = world.tick_env::<EmailJob>();
    env.extend(TIMEOUTS.map(|(name, value)| (name.to_owned(), value.to_owned())));

    // When the tick sends them inline
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;

    // Then the two unsure ones are held, neither released nor failed; the fine one is sent
    assert_eq!(
        (report.legacy, report.held, report.failed),
        (1, 2, 0),
        "{report:?}"
    );
    for failure in &report.failures {
        assert_eq!(failure.kind, FailureKind::UnknownOutcome, "{failure:?}");
        assert!(!failure.released, "{failure:?}");
    }
    for id in ["dropped", "late"] {
        assert_eq!(world.email(id).await.status, EmailStatus::Unknown, "{id}");
    }
    // and dead-lettered, as a worker would, where an operator looks
    let dlq = world.stack.queue("EmailDeadLetterQueue");
    let letters = seed::dead_letters(&world.sqs, &dlq.url).await;
    let mut held: Vec<(String, &str)> = letters
        .iter()
        .map(|letter| {
            let envelope = symphony_core::Envelope::from_body(Some(&letter.body)).unwrap();
            (envelope.meta.correlation_id, letter.kind.as_str())
        })
        .collect();
    held.sort();
    assert_eq!(
        held,
        [
            ("dropped".to_owned(), "unknown-outcome"),
            ("late".to_owned(), "unknown-outcome")
        ]
    );
    assert!(
        letters[0].reason.contains("final dot"),
        "{}",
        letters[0].reason
    );

    // And no later tick sends them again
    tokio::time::sleep(LATE_ACK).await;
    let again = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;
    assert_eq!((again.due, again.legacy), (0, 0), "{again:?}");
    assert_eq!(times_delivered(&world, "dropped"), 1);
    assert_eq!(times_delivered(&world, "late"), 1);
}

/// A mailer that panics once it has been handed the mail: where a bug would hurt most.
struct PanickingMailer;

#[async_trait::async_trait]
impl symphony_jobs::email::ports::Mailer for PanickingMailer {
    async fn send(
        &self,
        _: &symphony_jobs::email::Mailbox,
        _: &symphony_jobs::email::ports::OutgoingEmail,
        _: Option<std::time::Instant>,
    ) -> Result<(), symphony_core::HandlerError> {
        panic!("the mailer exploded mid-send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_mid_send_holds_the_email_not_only_its_message() {
    use std::sync::Arc;
    use symphony_adapters::email::dynamo::{DynamoMailboxStore, email_ledger};
    use symphony_core::{Envelope, HandlerContext, HandlerRegistry, Route};
    use symphony_jobs::email::handler::SendEmailHandler;

    // Given a queued email, and its handler with a mailer that panics mid-send
    let world = World::start().await;
    world
        .queue_email("boom", "mailbox-1", "lead@example.com")
        .await;
    let handler = SendEmailHandler::new(
        Arc::new(email_ledger(world.dynamo.clone(), world.emails_table())),
        Arc::new(DynamoMailboxStore::new(
            world.dynamo.clone(),
            world.stack.table("MailboxesTable"),
        )),
        Arc::new(PanickingMailer),
    );
    let registry = HandlerRegistry::new().register(handler).unwrap();
    let message = world.email("boom").await.message;
    let envelope = Envelope::wrap(&message, "test", Some("boom".into())).unwrap();

    // When a delivery runs it
    let error = registry
        .dispatch(&envelope, &HandlerContext::new(Route::Symphony, "req-1"))
        .await
        .unwrap_err();

    // Then the email is held as unknown (it may have gone out), saying why
    assert_eq!(error.kind, FailureKind::UnknownOutcome, "{error}");
    let email = world.email("boom").await;
    assert_eq!(email.status, EmailStatus::Unknown);
    assert!(
        email
            .last_error
            .unwrap_or_default()
            .contains("exploded mid-send"),
        "the reason is kept"
    );
}
