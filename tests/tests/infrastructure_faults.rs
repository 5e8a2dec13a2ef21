//! Faults of the infrastructure, not of the units: a queue that is gone, a table that
//! cannot be read, a secret that is missing. No unit is failed for them: each is released
//! untouched, the tick says so, and once the fault is mended the next tick sends it.

use symphony_core::FailureKind;
use symphony_jobs::email::EmailStatus;
use symphony_tests::world::EmailJob;
use symphony_tests::world::{MAILBOX_ID, World};
use symphony_tests::{SmtpServer, seed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_releases_the_units_and_they_go_once_it_is_back() {
    // Given the email flag on, three due emails, and the email queue deleted after the
    // function started (as a missing grant or a Deny in the queue policy would refuse it)
    let world = World::start().await;
    world.set_email_flag(true).await;
    let ids = world.seed_emails("stranded", 3).await;
    let function = world.scheduled::<EmailJob>(&[]).await;
    let queue = world.stack.queue("EmailQueue").url.clone();
    world
        .sqs
        .delete_queue()
        .queue_url(&queue)
        .send()
        .await
        .unwrap();

    // When a tick runs
    let report = world.tick::<EmailJob>(&function).await;

    // Then every email is released, not failed, and the tick counts the fault
    assert_eq!(
        (
            report.dispatched,
            report.failed,
            report.infrastructure_faults
        ),
        (0, 3, 3),
        "{report:?}"
    );
    for failure in &report.failures {
        assert_eq!(failure.kind, FailureKind::Infrastructure, "{failure:?}");
        assert!(failure.released, "{failure:?}");
    }
    for id in &ids {
        assert_eq!(world.email(id).await.status, EmailStatus::Queued, "{id}");
    }

    // And once the queue is back, the next tick dispatches them and the worker sends them
    let name = queue.rsplit('/').next().unwrap();
    world
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap();
    let report = world.tick::<EmailJob>(&function).await;
    assert_eq!((report.dispatched, report.failed), (3, 0), "{report:?}");
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;
    assert_eq!(world.delivered_ids(), ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_mailbox_table_fails_no_email() {
    // Given the email flag off, and a legacy path that reads mailboxes from a table that
    // does not exist (as a missing grant would refuse it)
    let world = World::start().await;
    world.set_email_flag(false).await;
    world.seed_emails("waiting", 2).await;
    let mut env = world.tick_env::<EmailJob>();
    env.insert("MAILBOXES_TABLE".into(), "no-such-table".into());

    // When a tick runs
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;

    // Then both emails are back in the queue, untouched, and nothing was sent
    assert_eq!(
        (report.legacy, report.failed, report.infrastructure_faults),
        (0, 2, 2),
        "{report:?}"
    );
    assert!(report.failures.iter().all(|f| f.released), "{report:?}");
    assert_eq!(world.email("waiting-1").await.status, EmailStatus::Queued);
    assert!(world.delivered_ids().is_empty());

    // And with the table readable again they go out
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!((report.legacy, report.failed), (2, 0), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_no_email() {
    // Given a mailbox whose password secret was deleted, and an email through it
    let world = World::start().await;
    world.set_email_flag(false).await;
    let secret = world
        .put_login_mailbox("mailbox-locked", world.smtp.port, "gone-Pa55")
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&world.sdk);
    client
        .delete_secret()
        .secret_id(&secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    world
        .queue_email("locked", "mailbox-locked", "lead@example.com")
        .await;

    // When a tick runs
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    // Then the email is released, not failed: the secret is the deployment's fault
    assert_eq!(
        (report.failed, report.infrastructure_faults),
        (1, 1),
        "{report:?}"
    );
    assert!(report.failures[0].released, "{report:?}");
    assert_eq!(world.email("locked").await.status, EmailStatus::Queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_wanting_a_login_the_mailbox_does_not_make_fails_no_email() {
    // Given a relay that answers MAIL FROM with 530 (log in first) to a mailbox without a
    // login, and an email
    let world = World::start_with(SmtpServer::start_rejecting_senders("^ada@")).await;
    world.set_email_flag(false).await;
    world
        .queue_email("from-refused", MAILBOX_ID, "lead@example.com")
        .await;

    // When a tick sends it
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    // Then the email is released, not failed: every email of the mailbox would meet the
    // same refusal, until the mailbox is given its login
    assert_eq!(
        (report.failed, report.infrastructure_faults),
        (1, 1),
        "{report:?}"
    );
    assert!(report.failures[0].released, "{report:?}");
    assert!(
        report.failures[0]
            .reason
            .contains("wants this mailbox to log in first"),
        "{report:?}"
    );
    assert_eq!(
        world.email("from-refused").await.status,
        EmailStatus::Queued
    );
    assert!(world.delivered_ids().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sender_is_the_mailboxs_fault_when_the_email_named_none() {
    // Given a relay that may not send as nobody@..., a mailbox whose sender is that
    // address, an email that names no sender and one that names it itself
    let world = World::start_with(SmtpServer::start_refusing_senders("^nobody@")).await;
    seed::put_loopback_mailbox_with_sender(
        &world.dynamo,
        world.stack.table("MailboxesTable"),
        MAILBOX_ID,
        world.smtp.port,
        ("Nobody", "nobody@acme.example"),
    )
    .await;
    world.set_email_flag(false).await;
    let mut mailboxs_sender = seed::queued_email("mailboxs-sender", MAILBOX_ID, "a@example.com");
    mailboxs_sender.message.from_name = None;
    mailboxs_sender.message.from_email = None;
    let mut own_sender = seed::queued_email("own-sender", MAILBOX_ID, "b@example.com");
    own_sender.message.from_email = Some("nobody@acme.example".to_owned());
    for email in [&mailboxs_sender, &own_sender] {
        seed::put_email(&world.dynamo, world.emails_table(), email).await;
    }

    // When a tick sends both
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    // Then the email that went out as its mailbox waits for the mailbox to be mended,
    // and the one that named the refused sender itself fails for good
    assert_eq!(
        (report.failed, report.infrastructure_faults),
        (2, 1),
        "{report:?}"
    );
    assert_eq!(
        world.email("mailboxs-sender").await.status,
        EmailStatus::Queued
    );
    assert_eq!(world.email("own-sender").await.status, EmailStatus::Failed);
    assert!(world.delivered_ids().is_empty());
}
