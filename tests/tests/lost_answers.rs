//! Writes that go wrong around a send. A write DynamoDB committed but whose answer was
//! lost is retried by the SDK, and the retry meets the write it already made: each
//! conditional update carries its own token, so that retry is recognised as done instead
//! of being taken for someone else's write (which left the unit `claimed` or `sending`,
//! out of everyone's reach). A send that went out but cannot be recorded is held, with a
//! dead letter saying so, instead of being left `sending` unseen.

use symphony_adapters::sms::dynamo::{enrollment_to_item, sequence_to_item};
use symphony_jobs::email::EmailStatus;
use symphony_jobs::sms::SMS_FLAG;
use symphony_tests::seed;
use symphony_tests::services::{Moto, SmtpServer};
use symphony_tests::world::{EmailJob, SmsJob};
use symphony_tests::world::{
    MAILBOX_ID, NEVER_QUIET, REJECTED_RECIPIENTS, TEMPFAIL_RECIPIENTS, World,
};

/// A world whose moto runs with `options` (see `scripts/moto_server.py`).
async fn world_on_moto(options: &[&str]) -> World {
    World::start_on(
        Moto::start_with(options),
        SmtpServer::start(REJECTED_RECIPIENTS, TEMPFAIL_RECIPIENTS),
    )
    .await
}

/// Every second `UpdateItem` is applied and then answered 500.
async fn world_losing_answers() -> World {
    world_on_moto(&["--dynamodb-lose-answers", "2"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_path_sends_each_email_once_when_write_answers_are_lost() {
    // Given three queued emails, on the legacy path, and DynamoDB losing the answer to
    // every second update (claims, `sending`, `sent`)
    let world = world_losing_answers().await;
    world.set_email_flag(false).await;
    let ids = ["lost-1", "lost-2", "lost-3"];
    for id in ids {
        world
            .queue_email(id, MAILBOX_ID, &format!("{id}@example.com"))
            .await;
    }

    // When a tick runs
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    // Then every email went out once and is recorded sent
    assert_eq!(
        (report.legacy, report.failed, report.skipped),
        (3, 0, 0),
        "{report:?}"
    );
    assert_eq!(world.delivered_ids(), ids);
    for id in ids {
        assert_eq!(world.email(id).await.status, EmailStatus::Sent, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_sends_each_email_once_when_write_answers_are_lost() {
    // Given three queued emails dispatched to the queue, DynamoDB losing every second
    // update's answer
    let world = world_losing_answers().await;
    world.set_email_flag(true).await;
    let ids = ["lost-4", "lost-5", "lost-6"];
    for id in ids {
        world
            .queue_email(id, MAILBOX_ID, &format!("{id}@example.com"))
            .await;
    }
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!(report.dispatched, 3, "{report:?}");

    // When the worker drains the queue
    let drained = world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;

    // Then each went out once, at the first delivery, and is recorded sent
    assert_eq!(
        (drained.succeeded, drained.failed_deliveries),
        (3, 0),
        "{drained:?}"
    );
    assert_eq!(world.delivered_ids(), ids);
    for id in ids {
        assert_eq!(world.email(id).await.status, EmailStatus::Sent, "{id}");
    }
}

/// A world whose DynamoDB refuses (500, unapplied) every update containing `text`.
async fn world_refusing_updates(text: &str) -> World {
    world_on_moto(&["--dynamodb-refuse-updates", text]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_sent_but_not_recorded_is_held_with_its_dead_letter() {
    // Given an email on the queue, and a table that refuses to record it sent
    let world = world_refusing_updates("sentAt = :now").await;
    world.set_email_flag(true).await;
    world
        .queue_email("unrecorded", MAILBOX_ID, "lead@example.com")
        .await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    // When the worker handles it
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;

    // Then the mail went out once, the email stays `sending` (nothing sends it again), and
    // its dead letter says it was accepted but not recorded, for a person to mark sent
    assert_eq!(world.delivered_ids(), ["unrecorded"]);
    assert_eq!(world.email("unrecorded").await.status, EmailStatus::Sending);
    let letters =
        seed::all_dead_letters(&world.sqs, &world.stack.queue("EmailDeadLetterQueue").url).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].kind, "unknown-outcome");
    assert!(
        letters[0]
            .reason
            .contains("handed over, but could not be recorded as sent"),
        "{}",
        letters[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_sent_but_not_recorded_is_held_with_its_dead_letter() {
    // Given an enrollment's last step on the queue, and a table that refuses to record it
    // finished
    let world = world_refusing_updates("finishedAt = :now").await;
    world.set_flag(SMS_FLAG, true).await;
    seed::put_item(
        &world.dynamo,
        world.stack.table("SmsSequencesTable"),
        sequence_to_item(&seed::sequence("welcome", 1)),
    )
    .await;
    seed::put_item(
        &world.dynamo,
        world.stack.table("SmsEnrollmentsTable"),
        enrollment_to_item(&seed::enrollment("unrecorded", "welcome", "+15550100")),
    )
    .await;
    world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;

    // When the worker handles it
    world
        .drain::<SmsJob>(&world.worker::<SmsJob>(&NEVER_QUIET).await)
        .await;

    // Then the text went out once, and its dead letter says it was sent but not recorded
    assert_eq!(world.moto.recorded_sms().len(), 1);
    let letters =
        seed::all_dead_letters(&world.sqs, &world.stack.queue("SmsDeadLetterQueue").url).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].kind, "unknown-outcome");
    assert!(
        letters[0]
            .reason
            .contains("handed over, but could not be recorded as sent"),
        "{}",
        letters[0].reason
    );
}
