//! The SMS drip end to end: process-sms-drip and handle-sms against moto, whose SNS
//! records every text it was asked to send.

use chrono::{Timelike, Utc};
use symphony_adapters::sms::dynamo::{enrollment_to_item, sequence_to_item};
use symphony_core::Envelope;
use symphony_jobs::sms::{EnrollmentStatus, SMS_FLAG, SmsDripMessage};
use symphony_tests::seed;
use symphony_tests::world::SmsJob;
use symphony_tests::world::{NEVER_QUIET, REJECTED_RECIPIENTS, TEMPFAIL_RECIPIENTS, World};

async fn seed_drip(world: &World, steps: usize, enrollments: &[(&str, &str)]) {
    let sequences = world.stack.table("SmsSequencesTable");
    seed::put_item(
        &world.dynamo,
        sequences,
        sequence_to_item(&seed::sequence("welcome", steps)),
    )
    .await;
    for (id, phone) in enrollments {
        let enrollment = seed::enrollment(id, "welcome", phone);
        seed::put_item(
            &world.dynamo,
            world.stack.table("SmsEnrollmentsTable"),
            enrollment_to_item(&enrollment),
        )
        .await;
    }
}

/// Quiet hours from the hour before the current one (UTC) to two hours after it.
fn quiet_now() -> [(&'static str, String); 2] {
    let hour = Utc::now().hour();
    [
        ("SMS_QUIET_START_HOUR", ((hour + 23) % 24).to_string()),
        ("SMS_QUIET_END_HOUR", ((hour + 2) % 24).to_string()),
    ]
}

fn enrollment_table(world: &World) -> &str {
    world.stack.table("SmsEnrollmentsTable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_reaches_sns_once_even_when_its_message_comes_twice() {
    // Given two enrollments due for step 0 of a two-step sequence
    let world = World::start().await;
    world.set_flag(SMS_FLAG, true).await;
    seed_drip(&world, 2, &[("e1", "+15550100"), ("e2", "+447700900123")]).await;

    // When a tick dispatches them, and one message is delivered twice
    let report = world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    assert_eq!((report.due, report.dispatched), (2, 2));
    let queue = world.stack.queue("SmsQueue");
    seed::redeliver_first(&world.sqs, &queue.url).await;
    let drained = world
        .drain::<SmsJob>(&world.worker::<SmsJob>(&NEVER_QUIET).await)
        .await;

    // Then SNS got exactly one text per enrollment, rendered for it
    assert_eq!(drained.succeeded, 3);
    let mut sent = world.moto.recorded_sms();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("+15550100".to_owned(), "Step 0, Kim".to_owned()),
            ("+447700900123".to_owned(), "Step 0, Kim".to_owned())
        ]
    );
    // and each enrollment moved to step 1, due a day later
    let e1 = seed::get_enrollment(&world.dynamo, enrollment_table(&world), "e1").await;
    assert_eq!((e1.current_step, e1.status), (1, EnrollmentStatus::Active));
    assert!(e1.next_send_at > Utc::now().timestamp() + 23 * 3_600);
    // and the next tick finds nothing due
    assert_eq!(
        world
            .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
            .await
            .due,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_number_lands_in_the_dead_letter_queue_with_its_reason() {
    let world = World::start().await;
    world.set_flag(SMS_FLAG, true).await;
    seed_drip(&world, 1, &[("bad", "555-0100"), ("good", "+15550100")]).await;

    world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    let drained = world
        .drain::<SmsJob>(&world.worker::<SmsJob>(&NEVER_QUIET).await)
        .await;

    // The invalid number is permanent: dead-lettered on its first receive, with the reason
    assert_eq!((drained.succeeded, drained.failed_deliveries), (2, 0));
    let dead = seed::dead_letters(&world.sqs, &world.stack.queue("SmsDeadLetterQueue").url).await;
    assert_eq!(dead.len(), 1);
    let message: SmsDripMessage = Envelope::from_body(Some(&dead[0].body))
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(message.enrollment_id, "bad");
    assert_eq!(dead[0].kind, "permanent");
    assert!(
        dead[0].reason.contains("toPhone is not an E.164 number"),
        "{}",
        dead[0].reason
    );
    let bad = seed::get_enrollment(&world.dynamo, enrollment_table(&world), "bad").await;
    assert_eq!(bad.status, EnrollmentStatus::Failed);
    let reason = world
        .dynamo
        .get_item()
        .table_name(enrollment_table(&world))
        .key(
            "enrollmentId",
            aws_sdk_dynamodb::types::AttributeValue::S("bad".into()),
        )
        .send()
        .await
        .unwrap()
        .item()
        .and_then(|item| item.get("lastError").and_then(|v| v.as_s().ok()).cloned())
        .unwrap();
    assert!(
        reason.contains("toPhone is not an E.164 number"),
        "{reason}"
    );
    assert_eq!(world.moto.recorded_sms().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_defer_the_text_without_failing_it() {
    // Given quiet hours around the current hour (UTC: from the hour before to two after,
    // so the hour turning during the test changes nothing)
    let world = World::start().await;
    world.set_flag(SMS_FLAG, true).await;
    seed_drip(&world, 1, &[("night", "+15550100")]).await;
    let quiet = quiet_now();
    let overrides: Vec<(&str, &str)> = quiet.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let worker = world.worker::<SmsJob>(&overrides).await;

    world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    let drained = world.drain::<SmsJob>(&worker).await;

    // Then nothing is sent, the message succeeded, and the enrollment waits for quiet hours to end
    assert_eq!((drained.succeeded, drained.failed_deliveries), (1, 0));
    assert!(world.moto.recorded_sms().is_empty());
    let night = seed::get_enrollment(&world.dynamo, enrollment_table(&world), "night").await;
    assert_eq!(
        (night.current_step, night.status),
        (0, EnrollmentStatus::Active)
    );
    assert!(
        night.next_send_at > Utc::now().timestamp(),
        "deferred into the future"
    );
    assert!(night.next_send_at <= Utc::now().timestamp() + 2 * 3_600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_out_number_is_skipped() {
    let world = World::start().await;
    world.set_flag(SMS_FLAG, true).await;
    seed_drip(&world, 1, &[("stop", "+15550199")]).await;
    let opt_out = std::collections::HashMap::from([(
        "phone".to_owned(),
        aws_sdk_dynamodb::types::AttributeValue::S("+15550199".into()),
    )]);
    seed::put_item(&world.dynamo, world.stack.table("SmsOptOutsTable"), opt_out).await;

    world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    world
        .drain::<SmsJob>(&world.worker::<SmsJob>(&NEVER_QUIET).await)
        .await;

    assert!(world.moto.recorded_sms().is_empty());
    let stop = seed::get_enrollment(&world.dynamo, enrollment_table(&world), "stop").await;
    assert_eq!(stop.status, EnrollmentStatus::OptedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_flip_sends_the_next_tick_down_the_legacy_path() {
    // Given a running process-sms-drip (no quiet hours) that dispatched one enrollment with
    // the flag on
    let world = World::start().await;
    let function = world.scheduled::<SmsJob>(&NEVER_QUIET).await;
    world.set_flag(SMS_FLAG, true).await;
    seed_drip(&world, 1, &[("queued", "+15550101")]).await;
    let first = world.tick::<SmsJob>(&function).await;

    // When the flag is turned off and another enrollment falls due
    world.set_flag(SMS_FLAG, false).await;
    let enrollment = seed::enrollment("inline", "welcome", "+15550100");
    seed::put_item(
        &world.dynamo,
        enrollment_table(&world),
        enrollment_to_item(&enrollment),
    )
    .await;
    let second = world.tick::<SmsJob>(&function).await;

    // Then the next tick handles it inline, never through the queue: the text went out
    assert_eq!((first.dispatched, first.legacy), (1, 0));
    assert_eq!((second.dispatched, second.legacy, second.failed), (0, 1, 0));
    assert_eq!(
        seed::queue_depth(&world.sqs, &world.stack.queue("SmsQueue").url).await,
        1
    );
    assert_eq!(
        world.moto.recorded_sms(),
        [("+15550100".to_owned(), "Step 0, Kim".to_owned())]
    );
    let inline = seed::get_enrollment(&world.dynamo, enrollment_table(&world), "inline").await;
    assert_eq!(inline.status, EnrollmentStatus::Finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_path_keeps_quiet_hours_too() {
    // Given the SMS flag off and quiet hours around the current hour
    let world = World::start().await;
    world.set_flag(SMS_FLAG, false).await;
    seed_drip(&world, 1, &[("inline", "+15550100")]).await;
    let quiet = quiet_now();
    let overrides: Vec<(&str, &str)> = quiet.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let function = world.scheduled::<SmsJob>(&overrides).await;

    // When a tick runs
    let report = world.tick::<SmsJob>(&function).await;

    // Then it handled the enrollment inline and deferred it past the quiet hours
    assert_eq!((report.legacy, report.failed), (1, 0), "{report:?}");
    assert!(world.moto.recorded_sms().is_empty());
    let inline = seed::get_enrollment(&world.dynamo, enrollment_table(&world), "inline").await;
    assert_eq!(
        (inline.status, inline.current_step),
        (EnrollmentStatus::Active, 0)
    );
    assert!(inline.next_send_at > Utc::now().timestamp());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_claim_abandoned_past_its_lease_is_taken_over_and_a_live_one_is_not() {
    // Given two enrollments: one claimed two hours ago by a tick that died, one claimed a
    // minute ago by a tick still at work; no message anywhere
    let world = World::start().await;
    seed_drip(&world, 1, &[("orphan", "+15550100"), ("busy", "+15550101")]).await;
    let now = Utc::now().timestamp();
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    for (id, claimed_at) in [("orphan", now - 7_200), ("busy", now - 60)] {
        world
            .dynamo
            .update_item()
            .table_name(enrollment_table(&world))
            .key("enrollmentId", S(id.into()))
            .update_expression("SET #s = :claimed, claimedAt = :at, claimToken = :token")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":claimed", S("claimed".into()))
            .expression_attribute_values(":at", N(claimed_at.to_string()))
            .expression_attribute_values(":token", S(format!("{id}-token")))
            .send()
            .await
            .unwrap();
    }
    world.set_flag(SMS_FLAG, true).await;

    // When a tick runs and the worker drains the queue
    let report = world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    world
        .drain::<SmsJob>(&world.worker::<SmsJob>(&NEVER_QUIET).await)
        .await;

    // Then the abandoned one was taken over and its step sent once, and the live one was
    // left to its owner: still claimed with its token, nothing sent to it
    assert_eq!((report.due, report.dispatched), (1, 1), "{report:?}");
    assert_eq!(
        world.moto.recorded_sms(),
        [("+15550100".to_owned(), "Step 0, Kim".to_owned())]
    );
    let busy = world
        .dynamo
        .get_item()
        .table_name(enrollment_table(&world))
        .key("enrollmentId", S("busy".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let busy = busy.item().expect("the enrollment is there");
    assert_eq!(busy.get("status"), Some(&S("claimed".into())));
    assert_eq!(busy.get("claimToken"), Some(&S("busy-token".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_text_comes_back_and_is_sent_once() {
    // Given SNS refusing every number four times, and the SDK retrying none of them: a
    // Publish that may have been taken must be our code's decision alone
    let world = World::start_on(
        symphony_tests::services::Moto::start_throttling_sms(1.0, 4),
        symphony_tests::services::SmtpServer::start(REJECTED_RECIPIENTS, TEMPFAIL_RECIPIENTS),
    )
    .await;
    world.set_flag(SMS_FLAG, true).await;
    seed_drip(&world, 1, &[("e1", "+15550100")]).await;

    // When the tick dispatches the text and the worker drains the queue
    world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    let drained = world
        .drain::<SmsJob>(&world.worker::<SmsJob>(&NEVER_QUIET).await)
        .await;

    // Then each throttled delivery failed and came back, and the fifth sent it, once
    assert_eq!((drained.failed_deliveries, drained.succeeded), (4, 1));
    assert_eq!(
        world.moto.recorded_sms(),
        [("+15550100".to_owned(), "Step 0, Kim".to_owned())]
    );
    let e1 = seed::get_enrollment(&world.dynamo, enrollment_table(&world), "e1").await;
    assert_eq!(e1.status, EnrollmentStatus::Finished);
    assert!(
        seed::dead_letters(&world.sqs, &world.stack.queue("SmsDeadLetterQueue").url)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_sns_took_but_did_not_confirm_is_held_and_never_sent_again() {
    // Given SNS that publishes texts to +1555013… and then answers 500, and one such
    // enrollment beside a fine one
    let world = World::start_on(
        symphony_tests::services::Moto::start_unsure_sms("+1555013"),
        symphony_tests::services::SmtpServer::start(REJECTED_RECIPIENTS, TEMPFAIL_RECIPIENTS),
    )
    .await;
    world.set_flag(SMS_FLAG, true).await;
    seed_drip(&world, 1, &[("unsure", "+15550130"), ("fine", "+15550100")]).await;

    // When the tick dispatches both and the worker drains the queue, twice over
    let worker = world.worker::<SmsJob>(&NEVER_QUIET).await;
    world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    world.drain::<SmsJob>(&worker).await;
    let again = world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    world.drain::<SmsJob>(&worker).await;

    // Then the unsure text is held as unknown, dead-lettered once with the evidence, and
    // went out once; the fine one finished
    let unsure = seed::get_enrollment(&world.dynamo, enrollment_table(&world), "unsure").await;
    assert_eq!(unsure.status, EnrollmentStatus::Unknown);
    assert_eq!(again.due, 0, "{again:?}");
    let letters =
        seed::dead_letters(&world.sqs, &world.stack.queue("SmsDeadLetterQueue").url).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (letters[0].kind.as_str(), letters[0].attempts),
        ("unknown-outcome", 1)
    );
    assert!(
        letters[0].reason.contains("Publish sent to SNS"),
        "{}",
        letters[0].reason
    );
    assert!(
        !letters[0].reason.contains("+1555013"),
        "{}",
        letters[0].reason
    );
    let sent_to: Vec<String> = world
        .moto
        .recorded_sms()
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    assert_eq!(sent_to.iter().filter(|to| *to == "+15550130").count(), 1);
    let fine = seed::get_enrollment(&world.dynamo, enrollment_table(&world), "fine").await;
    assert_eq!(fine.status, EnrollmentStatus::Finished);
}
