//! A row that does not parse fails alone: it is quarantined (status `failed`, the reason
//! naming the attribute) and the tick goes on with the rest, in every job.

use aws_sdk_dynamodb::types::AttributeValue;
use symphony_adapters::campaign::dynamo::campaign_to_item;
use symphony_adapters::email::dynamo::email_to_item;
use symphony_adapters::sms::dynamo::{enrollment_to_item, sequence_to_item};
use symphony_core::FailureKind;
use symphony_jobs::campaign::CAMPAIGN_FLAG;
use symphony_jobs::email::EmailStatus;
use symphony_jobs::sms::SMS_FLAG;
use symphony_tests::seed;
use symphony_tests::world::{CampaignJob, EmailJob, SmsJob};
use symphony_tests::world::{MAILBOX_ID, World};

/// The status and `lastError` of a row, read consistently.
async fn status_of(world: &World, table_id: &str, key: (&str, &str)) -> (String, String) {
    let item = world
        .dynamo
        .get_item()
        .table_name(world.stack.table(table_id))
        .key(key.0, AttributeValue::S(key.1.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("cannot read the row")
        .item
        .expect("the row is gone");
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => value.clone(),
        _ => String::new(),
    };
    (text("status"), text("lastError"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_email_without_a_subject_fails_alone() {
    // Given a queued email missing its subject, due before two good ones
    let world = World::start().await;
    world.set_email_flag(false).await;
    let mut poison = email_to_item(&seed::queued_email("poison", MAILBOX_ID, "p@example.com"));
    poison.remove("subject");
    poison.insert("dueAt".into(), AttributeValue::N("1".into()));
    seed::put_item(&world.dynamo, world.emails_table(), poison).await;
    let good = world.seed_emails("good", 2).await;

    // When a tick runs
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    // Then the bad row is failed, naming the attribute, and the good ones went out
    assert_eq!((report.legacy, report.failed), (2, 1), "{report:?}");
    let failure = &report.failures[0];
    assert_eq!(
        (failure.unit_id.as_str(), failure.kind, failure.released),
        ("poison", FailureKind::Intrinsic, false)
    );
    assert!(failure.reason.contains("subject is missing"), "{failure:?}");
    let (status, reason) = status_of(&world, "EmailsTable", ("emailId", "poison")).await;
    assert_eq!(status, "failed");
    assert!(reason.contains("subject is missing"), "{reason}");
    assert_eq!(world.delivered_ids(), good);
    for id in &good {
        assert_eq!(world.email(id).await.status, EmailStatus::Sent);
    }

    // And the next tick does not meet it again
    let again = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!((again.due, again.failed), (0, 0), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_in_an_unknown_time_zone_fails_alone() {
    // Given an enrollment whose time zone does not exist, beside a good one
    let world = World::start().await;
    world.set_flag(SMS_FLAG, true).await;
    let enrollments = world.stack.table("SmsEnrollmentsTable");
    seed::put_item(
        &world.dynamo,
        world.stack.table("SmsSequencesTable"),
        sequence_to_item(&seed::sequence("welcome", 1)),
    )
    .await;
    let mut poison = enrollment_to_item(&seed::enrollment("lost", "welcome", "+15550100"));
    poison.insert("timeZone".into(), AttributeValue::S("Mars/Olympus".into()));
    seed::put_item(&world.dynamo, enrollments, poison).await;
    let good = seed::enrollment("found", "welcome", "+15550101");
    seed::put_item(&world.dynamo, enrollments, enrollment_to_item(&good)).await;

    // When a tick runs
    let report = world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;

    // Then the bad one is failed, naming the attribute, and the good one is dispatched
    assert_eq!((report.dispatched, report.failed), (1, 1), "{report:?}");
    assert_eq!(report.failures[0].unit_id, "lost");
    let (status, reason) = status_of(&world, "SmsEnrollmentsTable", ("enrollmentId", "lost")).await;
    assert_eq!(status, "failed");
    assert!(reason.contains("Mars/Olympus"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_with_hour_25_fails_alone() {
    // Given a campaign whose sending window ends at hour 25, beside a good one
    let world = World::start().await;
    world.set_flag(CAMPAIGN_FLAG, true).await;
    let campaigns = world.stack.table("CampaignsTable");
    let mut poison = campaign_to_item(&seed::campaign("late-night", MAILBOX_ID, 1));
    poison.insert("windowEndHour".into(), AttributeValue::N("25".into()));
    seed::put_item(&world.dynamo, campaigns, poison).await;
    let good = seed::campaign("daytime", MAILBOX_ID, 1);
    seed::put_item(&world.dynamo, campaigns, campaign_to_item(&good)).await;

    // When a tick runs
    let report = world
        .tick::<CampaignJob>(&world.scheduled::<CampaignJob>(&[]).await)
        .await;

    // Then the bad one is failed, naming the attribute, and the good one is dispatched
    assert_eq!((report.dispatched, report.failed), (1, 1), "{report:?}");
    assert_eq!(report.failures[0].unit_id, "late-night");
    let (status, reason) = status_of(&world, "CampaignsTable", ("campaignId", "late-night")).await;
    assert_eq!(status, "failed");
    assert!(reason.contains("25"), "{reason}");
}
