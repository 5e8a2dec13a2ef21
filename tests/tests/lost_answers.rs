//! A write DynamoDB committed but whose answer was lost is retried by the SDK, and the
//! retry meets the write it already made. Each conditional update carries its own token,
//! so that retry is recognised as done instead of being taken for someone else's write
//! (which left the unit `claimed` or `sending`, out of everyone's reach).

use symphony_jobs::email::EmailStatus;
use symphony_tests::services::{Moto, SmtpServer};
use symphony_tests::world::{MAILBOX_ID, REJECTED_RECIPIENTS, TEMPFAIL_RECIPIENTS, World};

/// Every second `UpdateItem` is applied and then answered 500.
async fn world_losing_answers() -> World {
    World::start_on(
        Moto::start_with(&["--dynamodb-lose-answers", "2"]),
        SmtpServer::start(REJECTED_RECIPIENTS, TEMPFAIL_RECIPIENTS),
    )
    .await
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
    let report = world.tick(&world.process_function().await).await;

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
    let report = world.tick(&world.process_function().await).await;
    assert_eq!(report.dispatched, 3, "{report:?}");

    // When the worker drains the queue
    let drained = world.drain(&world.handle_function().await).await;

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
