//! The email queue end to end: real functions against a moto server and an SMTP server
//! on loopback, with the queues and tables of `template.yaml`.

use std::sync::Arc;
use symphony_tests::world::EmailJob;

use aws_sdk_sqs::types::QueueAttributeName;
use chrono::Utc;
use symphony_aws::SqsTransport;
use symphony_core::{Dispatcher, Envelope, Retryable, TransportError};
use symphony_jobs::email::{EmailMessage, EmailStatus};
use symphony_tests::seed;
use symphony_tests::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatched_email_reaches_the_smtp_server() {
    // Given the email flag on and three due emails
    let world = World::start().await;
    world.set_email_flag(true).await;
    let ids = world.seed_emails("email", 3).await;

    // When a tick runs and the worker drains the queue
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!(
        (report.due, report.dispatched, report.legacy, report.failed),
        (3, 3, 0, 0)
    );
    assert_eq!(
        seed::queue_depth(&world.sqs, &world.stack.queue("EmailQueue").url).await,
        3
    );
    assert!(
        world.smtp.received().is_empty(),
        "nothing is sent before the worker runs"
    );
    let drained = world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;

    // Then each email reached the SMTP server once, and is marked sent
    assert_eq!(drained.succeeded, 3);
    assert_eq!(world.delivered_ids(), ids);
    let mail = &world.smtp.received()[0];
    assert!(mail.rcpt_tos[0].ends_with("@example.com"));
    assert!(mail.data.contains("Subject: Hello"));
    for id in &ids {
        assert_eq!(world.email(id).await.status, EmailStatus::Sent);
    }
    assert_eq!(
        seed::queue_depth(&world.sqs, &world.stack.queue("EmailQueue").url).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_flag_off_the_tick_sends_inline() {
    let world = World::start().await;
    world.set_email_flag(false).await;
    let ids = world.seed_emails("inline", 3).await;

    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    assert_eq!((report.dispatched, report.legacy, report.failed), (0, 3, 0));
    assert_eq!(world.delivered_ids(), ids);
    assert_eq!(
        seed::queue_depth(&world.sqs, &world.stack.queue("EmailQueue").url).await,
        0
    );
    let email = world.email(&ids[0]).await;
    assert_eq!(email.status, EmailStatus::Sent);
    assert_eq!(email.claimed_by, Some(symphony_core::Route::Legacy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_flip_takes_effect_at_the_next_tick() {
    let world = World::start().await;
    let function = world.scheduled::<EmailJob>(&[]).await;
    world.set_email_flag(true).await;
    world.seed_emails("first", 2).await;
    let first = world.tick::<EmailJob>(&function).await;

    // The same running function, the flag flipped between two ticks
    world.set_email_flag(false).await;
    world.seed_emails("second", 2).await;
    let second = world.tick::<EmailJob>(&function).await;

    assert_eq!((first.dispatched, first.legacy), (2, 0));
    assert_eq!((second.dispatched, second.legacy), (0, 2));
    // What was queued before the rollback still drains: flags decide where new work goes.
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;
    assert_eq!(
        world.delivered_ids(),
        ["first-1", "first-2", "second-1", "second-2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_overlapping_ticks_enqueue_each_email_once() {
    let world = World::start().await;
    world.set_email_flag(true).await;
    let ids = world.seed_emails("overlap", 40).await;
    let (one, two) = (
        world.scheduled::<EmailJob>(&[]).await,
        world.scheduled::<EmailJob>(&[]).await,
    );

    let (a, b) = tokio::join!(world.tick::<EmailJob>(&one), world.tick::<EmailJob>(&two));

    assert_eq!(a.dispatched + b.dispatched, 40, "{a:?}\n{b:?}");
    assert_eq!(a.failed + b.failed, 0);
    let bodies = seed::peek_bodies(&world.sqs, &world.stack.queue("EmailQueue").url).await;
    let mut queued: Vec<String> = bodies
        .iter()
        .map(|body| {
            Envelope::from_body(Some(body))
                .unwrap()
                .decode::<EmailMessage>()
                .unwrap()
                .email_id
        })
        .collect();
    queued.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(queued, expected, "each email is on the queue exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_unknown_message_fails_alone() {
    // Given the sample mixed batch of events/ on the queue: a valid email, a malformed
    // body and an unknown type
    let world = World::start().await;
    world
        .queue_email("email-0101", "mailbox-1", "lead.ok@example.com")
        .await;
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            symphony_tests::project_root().join("events/example-sqs-email-mixed.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let queue = world.stack.queue("EmailQueue");
    for record in sample["Records"].as_array().unwrap() {
        seed::send_body(&world.sqs, &queue.url, record["body"].as_str().unwrap()).await;
    }

    // When the worker drains the queue
    let report = world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;

    // Then the valid email went out, and the two bad messages went to the dead-letter
    // queue at once, on their first receive, each with why
    assert_eq!(world.delivered_ids(), ["email-0101"]);
    assert_eq!((report.succeeded, report.failed_deliveries), (3, 0));
    let dead = seed::dead_letters(&world.sqs, &world.stack.queue("EmailDeadLetterQueue").url).await;
    assert_eq!(dead.len(), 2);
    let malformed = dead
        .iter()
        .find(|d| d.kind == "malformed")
        .expect("the malformed body");
    assert!(
        malformed.body.starts_with("{\"id\": \"broken\""),
        "kept as it came: {}",
        malformed.body
    );
    assert!(
        malformed.reason.contains("not a valid envelope"),
        "{}",
        malformed.reason
    );
    let unknown = dead
        .iter()
        .find(|d| d.kind == "permanent")
        .expect("the unknown type");
    assert!(
        unknown
            .reason
            .contains("unknown message type \"FaxMessage\""),
        "{}",
        unknown.reason
    );
    assert_eq!(unknown.attempts, 1);
    assert!(
        unknown
            .source_queue
            .as_deref()
            .is_some_and(|q| q.ends_with("symphony-local-email"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_entry_of_send_message_batch_is_reported_not_lost() {
    // Given three envelopes, one of which asks for a delay SQS refuses (over 15 minutes):
    // the service answers that entry in `Failed` and accepts the others
    let world = World::start().await;
    let queue = world.stack.queue("EmailQueue");
    let transport = SqsTransport::connect(world.sqs.clone(), &queue.url)
        .await
        .unwrap();
    let mut envelopes: Vec<Envelope> = (1..=3)
        .map(|n| {
            let email = seed::queued_email(&format!("e-{n}"), "mailbox-1", "a@example.com");
            Envelope::wrap(&email.message, "test", None).unwrap()
        })
        .collect();
    envelopes[1].meta.deliver_at = Some(Utc::now() + chrono::Duration::hours(1));
    let refused = envelopes[1].id.clone();

    // When they are dispatched
    let deliveries = Dispatcher::new(Arc::new(transport))
        .dispatch(envelopes)
        .await;

    // Then the refused entry comes back as an error, and only the others are queued
    assert_eq!(deliveries.len(), 3);
    let failure = deliveries
        .iter()
        .find(|d| d.envelope_id == refused)
        .unwrap()
        .result
        .as_ref()
        .unwrap_err();
    assert!(
        matches!(
            failure,
            TransportError::Rejected {
                sender_fault: true,
                ..
            }
        ),
        "{failure}"
    );
    assert!(!failure.is_retryable());
    assert_eq!(deliveries.iter().filter(|d| d.result.is_ok()).count(), 2);
    assert_eq!(seed::queue_depth(&world.sqs, &queue.url).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_lands_in_the_dead_letter_queue() {
    // Given an email whose recipient the SMTP server keeps deferring (451)
    let world = World::start().await;
    world.set_email_flag(true).await;
    world
        .queue_email("deferred", "mailbox-1", "busy@example.com")
        .await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    // When the worker drains the queue
    let report = world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;

    // Then it was tried maxReceiveCount (5) times, and is now in the DLQ, unsent: four
    // failed deliveries came back, and the fifth, the queue's last, put it in the DLQ
    // with the server's answer rather than leave SQS to move it without one
    assert_eq!((report.failed_deliveries, report.succeeded), (4, 1));
    assert!(world.smtp.received().is_empty());
    let dlq = world.stack.queue("EmailDeadLetterQueue");
    let letters = seed::dead_letters(&world.sqs, &dlq.url).await;
    assert_eq!(letters.len(), 1);
    let message: EmailMessage = Envelope::from_body(Some(&letters[0].body))
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(message.email_id, "deferred");
    assert_eq!(
        (letters[0].kind.as_str(), letters[0].attempts),
        ("exhausted", 5)
    );
    assert!(letters[0].reason.contains("451"), "{}", letters[0].reason);
    // A 451 is retryable: the email stays claimed by the symphony path, not failed
    assert_eq!(world.email("deferred").await.status, EmailStatus::Claimed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_recipient_is_permanent_and_recorded() {
    let world = World::start().await;
    world.set_email_flag(false).await;
    world
        .queue_email("rejected", "mailbox-1", "bounce@example.com")
        .await;
    world.seed_emails("fine", 1).await;

    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    assert_eq!((report.legacy, report.failed), (1, 1));
    let failure = &report.failures[0];
    assert_eq!(failure.unit_id, "rejected");
    assert!(!failure.released);
    assert!(failure.reason.contains("550"), "{}", failure.reason);
    let email = world.email("rejected").await;
    assert_eq!(email.status, EmailStatus::Failed);
    let last_error = email.last_error.unwrap();
    assert!(last_error.contains("550"), "{last_error}");
    // The server's reply quotes the address (as Postfix does); the record does not keep it
    assert!(!last_error.contains("bounce@example.com"), "{last_error}");
    assert!(
        !failure.reason.contains("bounce@example.com"),
        "{failure:?}"
    );
    assert_eq!(world.delivered_ids(), ["fine-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_mailbox_is_permanent() {
    let world = World::start().await;
    world.set_email_flag(false).await;
    world
        .queue_email("orphan", "mailbox-gone", "lead@example.com")
        .await;

    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    assert_eq!(report.failed, 1);
    assert!(
        report.failures[0]
            .reason
            .contains("mailbox mailbox-gone does not exist"),
        "{}",
        report.failures[0].reason
    );
    assert_eq!(world.email("orphan").await.status, EmailStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_flag_table_sends_the_tick_down_the_legacy_path() {
    // Given flags that say "symphony", in a table the function cannot read
    let world = World::start().await;
    world.set_email_flag(true).await;
    let ids = world.seed_emails("fallback", 2).await;
    let mut env = world.tick_env::<EmailJob>();
    env.insert("FLAGS_TABLE".into(), "no-such-table".into());
    env.insert("SYMPHONY_ENABLED".into(), "true".into());
    env.insert("SYMPHONY_EMAIL_QUEUE_ENABLED".into(), "true".into());

    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;

    assert_eq!((report.dispatched, report.legacy), (0, 2));
    assert!(
        report
            .flags
            .table_error
            .as_deref()
            .unwrap()
            .contains("no-such-table"),
        "{:?}",
        report.flags
    );
    assert_eq!(world.delivered_ids(), ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_email_fails_alone_with_a_clear_reason() {
    // Given a queue whose MaximumMessageSize is 4 KiB, and one email far over it
    let world = World::start().await;
    world.set_email_flag(true).await;
    let queue = world.stack.queue("EmailQueue");
    world
        .sqs
        .set_queue_attributes()
        .queue_url(&queue.url)
        .attributes(QueueAttributeName::MaximumMessageSize, "4096")
        .send()
        .await
        .unwrap();
    let mut big = seed::queued_email("big", "mailbox-1", "lead@example.com");
    big.message.html = "<p>".to_owned() + &"x".repeat(10_000) + "</p>";
    seed::put_email(&world.dynamo, world.emails_table(), &big).await;
    world.seed_emails("small", 2).await;

    // When a tick runs that is not told the limit (the template tells its functions the
    // size it gives the queues; this queue was resized in place), so it reads it from SQS
    // at start
    let mut env = world.tick_env::<EmailJob>();
    env.remove("QUEUE_MAX_MESSAGE_BYTES");
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;

    // Then the small ones are queued, and the big one is marked failed with the reason
    assert_eq!((report.dispatched, report.failed), (2, 1));
    assert!(
        report.failures[0]
            .reason
            .contains("over the queue's limit of 4096 bytes"),
        "{}",
        report.failures[0].reason
    );
    let email = world.email("big").await;
    assert_eq!(email.status, EmailStatus::Failed);
    assert!(email.last_error.unwrap().contains("4096"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_of_a_sent_email_sends_nothing() {
    let world = World::start().await;
    world.set_email_flag(true).await;
    world.seed_emails("once", 1).await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    let queue = world.stack.queue("EmailQueue");
    let body = seed::peek_bodies(&world.sqs, &queue.url).await.remove(0);
    let worker = world.worker::<EmailJob>(&[]).await;
    world.drain::<EmailJob>(&worker).await;

    // SQS delivers the same message again (at-least-once delivery)
    seed::send_body(&world.sqs, &queue.url, body).await;
    let again = world.drain::<EmailJob>(&worker).await;

    assert_eq!(again.succeeded, 1);
    assert_eq!(world.delivered_ids(), ["once-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_smtp_server_is_retryable_and_the_email_waits_for_the_next_tick() {
    // Given a mailbox whose SMTP server does not listen, on the legacy path
    let world = World::start().await;
    world.set_email_flag(false).await;
    let closed = symphony_tests::services::RefusingPort::bind();
    seed::put_loopback_mailbox(
        &world.dynamo,
        world.stack.table("MailboxesTable"),
        "mailbox-down",
        closed.port,
    )
    .await;
    world
        .queue_email("later", "mailbox-down", "lead@example.com")
        .await;
    let function = world.scheduled::<EmailJob>(&[]).await;

    // When a tick runs
    let report = world.tick::<EmailJob>(&function).await;

    // Then the email is not sent, its claim is released, and it is queued again
    assert_eq!((report.legacy, report.failed), (0, 1));
    assert!(report.failures[0].released, "{:?}", report.failures[0]);
    let email = world.email("later").await;
    assert_eq!(email.status, EmailStatus::Queued);
    assert_eq!(email.claimed_by, None);
    // and the next tick takes it again
    assert_eq!(world.tick::<EmailJob>(&function).await.due, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_of_a_message_in_one_batch_send_once() {
    // Given one dispatched email whose message SQS delivers twice, side by side
    let world = World::start().await;
    world.set_email_flag(true).await;
    world.seed_emails("twin", 1).await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    let queue = world.stack.queue("EmailQueue");
    seed::redeliver_first(&world.sqs, &queue.url).await;

    // When the worker drains them (both land in one batch, handled concurrently)
    let report = world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;

    // Then the mail went out once; the copy waited, found it sent, and succeeded
    assert_eq!(world.delivered_ids(), ["twin-1"]);
    assert_eq!(report.succeeded, 2);
    assert_eq!(world.email("twin-1").await.status, EmailStatus::Sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_checks_the_certificate_and_delivers_once_it_is_trusted() {
    // Given a mailbox on an SMTP server that requires STARTTLS, with a certificate from a
    // private CA
    let world = World::start().await;
    let (secure, ca) = symphony_tests::SmtpServer::start_requiring_starttls();
    let mailboxes = world.stack.table("MailboxesTable");
    seed::put_mailbox(
        &world.dynamo,
        mailboxes,
        "mailbox-tls",
        secure.port,
        "starttls",
    )
    .await;
    world.set_email_flag(false).await;
    world
        .queue_email("secure-1", "mailbox-tls", "lead@example.com")
        .await;

    // When a tick runs without trusting that CA, the TLS handshake refuses the server
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!((report.legacy, report.failed), (0, 1));
    assert!(
        report.failures[0].released,
        "a TLS failure is retried later"
    );
    assert!(secure.received().is_empty());

    // And when the CA is configured (SMTP_CA_FILE), the legacy path and the worker deliver
    let ca = ca.to_string_lossy().into_owned();
    let mut env = world.tick_env::<EmailJob>();
    env.insert("SMTP_CA_FILE".into(), ca.clone());
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;
    assert_eq!(report.legacy, 1);
    world.set_email_flag(true).await;
    world
        .queue_email("secure-2", "mailbox-tls", "lead@example.com")
        .await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[("SMTP_CA_FILE", &ca)]).await)
        .await;

    let delivered = secure.delivered_ids();
    assert_eq!(delivered, ["secure-1", "secure-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_near_its_deadline_starts_nothing_and_loses_nothing() {
    // Given a batch of two emails and an invocation with 30 seconds left: more than a
    // fixed margin would keep, less than one send can take (7 SMTP steps of 10 s and the
    // record: the worker's margin is derived from them)
    let world = World::start().await;
    world.set_email_flag(true).await;
    world.seed_emails("late", 2).await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    let queue = world.stack.queue("EmailQueue");
    let event = symphony_tests::receive_event(&world.sqs, queue, 180).await;
    let mut context = lambda_runtime::Context::default();
    context.deadline = u64::try_from(Utc::now().timestamp_millis()).unwrap() + 30_000;

    // When handle-email is invoked
    let response = world
        .worker::<EmailJob>(&[])
        .await
        .handle(lambda_runtime::LambdaEvent::new(event, context))
        .await
        .unwrap();

    // Then both records are reported failed (so SQS delivers them again), and none was sent
    assert_eq!(response.batch_item_failures.len(), 2);
    assert!(world.smtp.received().is_empty());
    assert_eq!(world.email("late-1").await.status, EmailStatus::Claimed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_comes_back_after_the_backoff() {
    // Given a dispatched email the SMTP server defers (451), received with a 2 s visibility
    let world = World::start().await;
    world.set_email_flag(true).await;
    world
        .queue_email("later", "mailbox-1", "busy@example.com")
        .await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    let queue = world.stack.queue("EmailQueue");
    let event = symphony_tests::receive_event(&world.sqs, queue, 2).await;
    assert_eq!(event.records.len(), 1);

    // When the worker fails it with a 30 s retry base
    let worker = world
        .worker::<EmailJob>(&[("RETRY_BASE_SECONDS", "30")])
        .await;
    let context = lambda_runtime::Context::default();
    let response = worker
        .handle(lambda_runtime::LambdaEvent::new(event, context))
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);

    // Then it stays away well past the 2 s it was received for (first attempt: 15–30 s)
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let again = world
        .sqs
        .receive_message()
        .queue_url(&queue.url)
        .send()
        .await
        .unwrap();
    assert!(
        again.messages().is_empty(),
        "the message came back before its backoff"
    );
    assert_eq!(
        seed::queue_depth(&world.sqs, &queue.url).await,
        1,
        "but it is not lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_whose_send_outcome_is_unknown_is_never_sent_again() {
    // Given an email left in `sending` (its worker died mid-send: did the mail go out?)
    // and its message back on the queue
    let world = World::start().await;
    world.set_email_flag(true).await;
    world.seed_emails("unknown", 1).await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    world
        .dynamo
        .update_item()
        .table_name(world.emails_table())
        .key(
            "emailId",
            aws_sdk_dynamodb::types::AttributeValue::S("unknown-1".into()),
        )
        .update_expression("SET #s = :sending")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(
            ":sending",
            aws_sdk_dynamodb::types::AttributeValue::S("sending".into()),
        )
        .send()
        .await
        .unwrap();

    // When the worker drains the queue
    let report = world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;

    // Then it is never sent: each delivery backs off, and on the queue's last attempt the
    // message goes to the DLQ for an operator, saying why, with the email still `sending`
    assert!(world.smtp.received().is_empty());
    assert_eq!(report.failed_deliveries, 4);
    let dlq = &world.stack.queue("EmailDeadLetterQueue").url;
    let letters = seed::dead_letters(&world.sqs, dlq).await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.contains("being sent by another delivery"),
        "{}",
        letters[0].reason
    );
    let email = world.email("unknown-1").await;
    assert_eq!(email.status, EmailStatus::Sending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_abandoned_past_its_lease_is_taken_over_and_a_live_one_is_not() {
    // Given two claimed emails with no message anywhere: one claimed two hours ago (its
    // tick died after claiming), one a minute ago (its owner may still be at work)
    let world = World::start().await;
    world.set_email_flag(false).await;
    world.seed_emails("claimed", 2).await;
    let now = Utc::now().timestamp();
    for (id, claimed_at) in [("claimed-1", now - 7_200), ("claimed-2", now - 60)] {
        world
            .dynamo
            .update_item()
            .table_name(world.emails_table())
            .key(
                "emailId",
                aws_sdk_dynamodb::types::AttributeValue::S(id.into()),
            )
            .update_expression(
                "SET #s = :claimed, claimedAt = :at, claimToken = :token, claimedBy = :route",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(
                ":claimed",
                aws_sdk_dynamodb::types::AttributeValue::S("claimed".into()),
            )
            .expression_attribute_values(
                ":at",
                aws_sdk_dynamodb::types::AttributeValue::N(claimed_at.to_string()),
            )
            .expression_attribute_values(
                ":token",
                aws_sdk_dynamodb::types::AttributeValue::S("dead".into()),
            )
            .expression_attribute_values(
                ":route",
                aws_sdk_dynamodb::types::AttributeValue::S("symphony".into()),
            )
            .send()
            .await
            .unwrap();
    }

    // When a tick runs (lease: the template's default, an hour)
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    // Then the abandoned one is taken over and sent, and the live one is left alone
    assert_eq!((report.due, report.legacy), (1, 1));
    assert_eq!(world.delivered_ids(), ["claimed-1"]);
    assert_eq!(world.email("claimed-2").await.status, EmailStatus::Claimed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_password_comes_from_secrets_manager_and_never_shows() {
    // Given an SMTP server that requires STARTTLS and a login, and a mailbox whose password
    // is in Secrets Manager
    let world = World::start().await;
    let (secure, ca) = symphony_tests::SmtpServer::start_requiring_login("symphony:s3cret-Pa55");
    world
        .put_login_mailbox("mailbox-right", secure.port, "s3cret-Pa55")
        .await;
    world.set_email_flag(false).await;
    world
        .queue_email("login-ok", "mailbox-right", "lead@example.com")
        .await;

    // When a tick sends it
    let mut env = world.tick_env::<EmailJob>();
    env.insert("SMTP_CA_FILE".into(), ca.to_string_lossy().into_owned());
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;

    // Then the password logged in and the mail went out, and the password shows neither
    // in the report nor in the emails table
    let delivered = secure.delivered_ids();
    assert_eq!(delivered, ["login-ok"]);
    assert_eq!(report.legacy, 1);
    let email = world.email("login-ok").await;
    assert_eq!(email.status, EmailStatus::Sent);
    assert!(
        !format!("{report:?} {email:?}").contains("Pa55"),
        "a password leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_named_in_smtp_secrets_are_read_at_start_and_a_missing_one_stops_it() {
    // Given a mailbox whose password is in Secrets Manager, named in SMTP_SECRETS
    let world = World::start().await;
    let (secure, ca) = symphony_tests::SmtpServer::start_requiring_login("symphony:s3cret-Pa55");
    let name = world
        .put_login_mailbox("mailbox-preloaded", secure.port, "s3cret-Pa55")
        .await;
    let reference = format!("secretsmanager:{name}");
    let ca = ca.to_string_lossy().into_owned();

    // When handle-email starts, and the secret is deleted after that
    let worker = world
        .worker::<EmailJob>(&[("SMTP_SECRETS", &reference), ("SMTP_CA_FILE", &ca)])
        .await;
    aws_sdk_secretsmanager::Client::new(&world.sdk)
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    world.set_email_flag(true).await;
    world
        .queue_email("preloaded", "mailbox-preloaded", "lead@example.com")
        .await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    world.drain::<EmailJob>(&worker).await;

    // Then the mail still goes out, with the password read at start
    let delivered = secure.delivered_ids();
    assert_eq!(delivered, ["preloaded"]);

    // And a worker naming a secret that does not exist does not start, and says which
    let env = world.function_env(
        "HandleEmailFunction",
        &[("SMTP_SECRETS", "secretsmanager:symphony-local/smtp/missing")],
    );
    let config = symphony_adapters::email::EmailWorkerConfig::from_env(&env).unwrap();
    let error = handle_email::function(&config, &world.sdk)
        .await
        .expect_err("a missing secret must stop the start")
        .to_string();
    assert!(error.contains("symphony-local/smtp/missing"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_on_implicit_tls_sends_over_tls_from_the_first_byte() {
    // Given a mailbox whose server speaks TLS from the first byte (port 465 style), with a
    // certificate from a private CA that the functions trust
    let world = World::start().await;
    let (secure, ca) = symphony_tests::SmtpServer::start_implicit_tls();
    seed::put_mailbox(
        &world.dynamo,
        world.stack.table("MailboxesTable"),
        "mailbox-465",
        secure.port,
        "tls",
    )
    .await;
    world.set_email_flag(false).await;
    world
        .queue_email("implicit-1", "mailbox-465", "lead@example.com")
        .await;
    let mut env = world.tick_env::<EmailJob>();
    env.insert("SMTP_CA_FILE".into(), ca.to_string_lossy().into_owned());

    // When a tick sends it
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;

    // Then it went out over TLS
    assert_eq!((report.legacy, report.failed), (1, 0), "{report:?}");
    let delivered = secure.delivered_ids();
    assert_eq!(delivered, ["implicit-1"]);

    // And a mailbox that asks for plain text to the same server gets no mail through
    seed::put_mailbox(
        &world.dynamo,
        world.stack.table("MailboxesTable"),
        "mailbox-plain",
        secure.port,
        "none",
    )
    .await;
    world
        .queue_email("implicit-2", "mailbox-plain", "lead@example.com")
        .await;
    env.insert("SMTP_TIMEOUT_SECONDS".into(), "2".into());
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;
    assert_eq!((report.legacy, report.failed), (0, 1), "{report:?}");
    assert_eq!(secure.received().len(), 1);
}

/// A mailbox whose password in Secrets Manager is wrong, on a server at `port` that
/// requires STARTTLS and a login, and one email to it for the legacy path. Returns
/// process-email-queue's environment: the server's CA, a 2 s SMTP timeout.
async fn seed_wrong_password(
    world: &World,
    port: u16,
    ca: &std::path::Path,
) -> std::collections::HashMap<String, String> {
    world
        .put_login_mailbox("mailbox-wrong", port, "not-it-Pa55")
        .await;
    world.set_email_flag(false).await;
    world
        .queue_email("login-bad", "mailbox-wrong", "lead@example.com")
        .await;
    let mut env = world.tick_env::<EmailJob>();
    env.insert("SMTP_CA_FILE".into(), ca.to_string_lossy().into_owned());
    env.insert("SMTP_TIMEOUT_SECONDS".into(), "2".into());
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_fails_no_email_and_shows_no_password() {
    // Given a mailbox whose password is wrong, on a server that answers it with 535
    let world = World::start().await;
    let (secure, ca) = symphony_tests::SmtpServer::start_requiring_login("symphony:s3cret-Pa55");
    let env = seed_wrong_password(&world, secure.port, &ca).await;

    // When a tick tries to send it
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;

    // Then nothing is delivered, and the email is released, not failed: the mailbox's
    // credentials are at fault, not the email, and it goes once they are fixed
    assert_eq!(
        (report.legacy, report.failed, report.infrastructure_faults),
        (0, 1, 1)
    );
    assert!(secure.received().is_empty());
    let failure = &report.failures[0];
    assert!(failure.released, "{failure:?}");
    assert_eq!(failure.kind, symphony_core::FailureKind::Infrastructure);
    assert!(failure.reason.contains("535"), "{failure:?}");
    let email = world.email("login-bad").await;
    assert_eq!(email.status, EmailStatus::Queued);
    // and the password shows neither in the report nor in the emails table
    assert!(
        !format!("{report:?} {email:?}").contains("Pa55"),
        "a password leaked: {report:?} {email:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_silent_after_a_refused_login_does_not_hold_the_send() {
    // Given a mailbox whose password is wrong, on a server that then says nothing at all
    let world = World::start().await;
    let (silent, ca) =
        symphony_tests::SmtpServer::start_stalling_on_bad_login("symphony:s3cret-Pa55");
    let env = seed_wrong_password(&world, silent.port, &ca).await;

    // When a tick tries to send it
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;

    // Then the login step is cut at the SMTP timeout, and the email goes back for a retry
    assert_eq!((report.legacy, report.failed), (0, 1));
    assert!(silent.received().is_empty());
    let failure = &report.failures[0];
    assert!(failure.released, "{failure:?}");
    assert!(
        failure
            .reason
            .contains("did not answer the login within 2s"),
        "{failure:?}"
    );
    assert!(!format!("{report:?}").contains("Pa55"), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_cannot_log_in_with_another_users_secret() {
    // Given another user's password in its owner's folder, and a mailbox of user-1 that
    // names it (a login server that would accept it)
    let world = World::start().await;
    let (secure, ca) = symphony_tests::SmtpServer::start_requiring_login("symphony:th3irs-Pa55");
    let theirs = format!("{}/smtp/user-2/their-mailbox", world.stack.name);
    seed::create_secret(&world.sdk, &theirs, "th3irs-Pa55").await;
    seed::put_login_mailbox(
        &world.dynamo,
        world.stack.table("MailboxesTable"),
        "mailbox-borrowing",
        secure.port,
        &format!("secretsmanager:{theirs}"),
    )
    .await;
    world.set_email_flag(false).await;
    world
        .queue_email("borrowed", "mailbox-borrowing", "lead@example.com")
        .await;
    let mut env = world.tick_env::<EmailJob>();
    env.insert("SMTP_CA_FILE".into(), ca.to_string_lossy().into_owned());

    // When a tick tries to send it
    let report = world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;

    // Then nothing goes out, and the email fails for good, saying which folder it may use
    assert_eq!((report.legacy, report.failed), (0, 1), "{report:?}");
    assert!(secure.received().is_empty());
    let email = world.email("borrowed").await;
    assert_eq!(email.status, EmailStatus::Failed);
    let reason = email.last_error.unwrap_or_default();
    let owners = format!("{}/smtp/user-1/", world.stack.name);
    assert!(reason.contains(&owners), "{reason}");
}
