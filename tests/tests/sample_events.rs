//! The sample events in `events/` are what `cargo lambda invoke --data-file` and
//! `sam local invoke -e` send: each must parse as the event its name says, and the SQS
//! samples must drive the real worker.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use symphony_adapters::sms::dynamo::{enrollment_to_item, sequence_to_item};
use symphony_aws::SqsWorker;
use symphony_core::Envelope;
use symphony_jobs::email::EmailMessage;
use symphony_tests::world::{CampaignJob, EmailJob, SmsJob};
use symphony_tests::world::{NEVER_QUIET, World};
use symphony_tests::{project_root, seed};

/// Invokes a worker with a sample file, as `cargo lambda invoke --data-file` would, and
/// returns the positions (in the file) of the records it reported failed.
async fn invoke_with_sample(worker: &SqsWorker, name: &str) -> Vec<usize> {
    let event: SqsEvent = serde_json::from_str(&sample(name)).expect("a sample SQS event");
    let ids: Vec<String> = event
        .records
        .iter()
        .map(|r| r.message_id.clone().expect("a message id"))
        .collect();
    let Ok(response) = worker
        .handle(LambdaEvent::new(event, Context::default()))
        .await;
    response
        .batch_item_failures
        .iter()
        .map(|failure| {
            ids.iter()
                .position(|id| *id == failure.item_identifier)
                .expect("a failure names a record of the batch")
        })
        .collect()
}

/// The dead letters of a sample file's records: (position in the file, kind, reason),
/// by position.
fn dead_letters_of(dead: &[seed::DeadLetter], name: &str) -> Vec<(usize, String, String)> {
    let event: SqsEvent = serde_json::from_str(&sample(name)).expect("a sample SQS event");
    let mut letters: Vec<(usize, String, String)> = dead
        .iter()
        .filter_map(|letter| {
            let original = Envelope::from_body(Some(&letter.body)).ok().map(|e| e.id);
            event
                .records
                .iter()
                .position(|record| {
                    let body = record.body.as_deref().unwrap_or_default();
                    body == letter.body || original.as_deref().is_some_and(|id| body.contains(id))
                })
                .map(|position| (position, letter.kind.clone(), letter.reason.clone()))
        })
        .collect();
    letters.sort();
    letters
}

/// Checks the dead letters of a sample: at these positions, of these kinds, each reason
/// saying what was wrong with its record.
fn assert_dead_letters(dead: &[seed::DeadLetter], name: &str, expected: &[(usize, &str, &str)]) {
    let letters = dead_letters_of(dead, name);
    assert_eq!(letters.len(), expected.len(), "{letters:#?}");
    for ((position, kind, reason), (want_position, want_kind, want_reason)) in
        letters.iter().zip(expected)
    {
        assert_eq!(
            (*position, kind.as_str()),
            (*want_position, *want_kind),
            "{letters:#?}"
        );
        assert!(reason.contains(want_reason), "record {position}: {reason}");
    }
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(project_root().join("events").join(name))
        .expect("cannot read a sample event")
}

#[test]
fn every_sample_event_parses_as_the_event_its_name_says() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(project_root().join("events")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.starts_with("example-sqs-") {
            let event: SqsEvent =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!event.records.is_empty(), "{name} has no records");
            assert!(
                event
                    .records
                    .iter()
                    .all(|r| r.message_id.is_some() && r.body.is_some()),
                "{name}"
            );
        } else if name.starts_with("example-function-url-") {
            let request =
                lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                request.uri().path().starts_with("/api/symphony/"),
                "{name}: {}",
                request.uri()
            );
        } else if name.starts_with("example-eventbridge-") {
            let event: EventBridgeEvent =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(event.detail_type, "Scheduled Event", "{name}");
        } else {
            panic!("{name}: sample events are named example-<service>-<variant>.json");
        }
        checked.push(name);
    }
    // Every job's schedule, every worker's good and bad batch: none missing, none unchecked
    checked.sort();
    assert_eq!(
        checked,
        [
            "example-eventbridge-campaigns.json",
            "example-eventbridge-email-queue.json",
            "example-eventbridge-sms-drip.json",
            "example-function-url-health.json",
            "example-function-url-metrics.json",
            "example-sqs-campaign-bad.json",
            "example-sqs-campaign.json",
            "example-sqs-email-mixed.json",
            "example-sqs-email.json",
            "example-sqs-sms-bad.json",
            "example-sqs-sms.json",
        ]
    );
}

#[test]
fn the_email_sample_carries_valid_email_messages() {
    let event: SqsEvent = serde_json::from_str(&sample("example-sqs-email.json")).unwrap();
    for record in &event.records {
        let envelope = Envelope::from_body(record.body.as_deref()).unwrap();
        let message: EmailMessage = envelope.decode().unwrap();
        message.validate().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_handles_the_sample_batches() {
    // Given the emails the samples name, queued, and the mailbox they use
    let world = World::start().await;
    for (id, to) in [
        ("email-0001", "lead.one@example.com"),
        ("email-0002", "lead.two@example.com"),
        ("email-0101", "lead.ok@example.com"),
    ] {
        seed::put_email(
            &world.dynamo,
            world.emails_table(),
            &seed::queued_email(id, "mailbox-1", to),
        )
        .await;
    }
    let worker = world.worker::<EmailJob>(&[]).await;

    // When handle-email is invoked with each sample, as `cargo lambda invoke` would
    assert!(
        invoke_with_sample(&worker, "example-sqs-email.json")
            .await
            .is_empty()
    );
    // Then the good batch fully succeeds, and of the mixed one only the malformed body
    // and the unknown type fail: straight to the dead-letter queue, so none is reported
    assert!(
        invoke_with_sample(&worker, "example-sqs-email-mixed.json")
            .await
            .is_empty()
    );
    let dead = seed::dead_letters(&world.sqs, &world.stack.queue("EmailDeadLetterQueue").url).await;
    assert_dead_letters(
        &dead,
        "example-sqs-email-mixed.json",
        &[
            (1, "malformed", "message body is not a valid envelope"),
            (2, "permanent", "unknown message type \"FaxMessage\""),
        ],
    );
    assert_eq!(
        world.delivered_ids(),
        ["email-0001", "email-0002", "email-0101"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_campaign_worker_fails_only_the_bad_samples() {
    // Given the campaign the samples name, with one due lead
    let world = World::start().await;
    seed::put_campaign(
        &world.dynamo,
        world.stack.table("CampaignsTable"),
        &seed::campaign("campaign-spring", "mailbox-1", 1),
    )
    .await;
    seed::put_lead(
        &world.dynamo,
        world.stack.table("CampaignLeadsTable"),
        &seed::lead("campaign-spring", "lead-1"),
    )
    .await;
    let worker = world.worker::<CampaignJob>(&[]).await;

    // When handle-campaign gets the good sample, then the bad one
    assert!(
        invoke_with_sample(&worker, "example-sqs-campaign.json")
            .await
            .is_empty()
    );
    // Then the good one made the lead's email, and only the missing campaignId and the
    // unknown action went to the dead-letter queue (the valid first record of the bad
    // sample is a redelivery)
    assert!(
        invoke_with_sample(&worker, "example-sqs-campaign-bad.json")
            .await
            .is_empty()
    );
    let dead = seed::dead_letters(
        &world.sqs,
        &world.stack.queue("CampaignDeadLetterQueue").url,
    )
    .await;
    assert_dead_letters(
        &dead,
        "example-sqs-campaign-bad.json",
        &[
            (1, "permanent", "missing field `campaignId`"),
            (
                2,
                "permanent",
                "unknown variant `archive`, expected `process`",
            ),
        ],
    );
    assert_eq!(world.all_emails().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sms_worker_fails_only_the_bad_samples() {
    // Given the enrollments the samples name, and their sequence
    let world = World::start().await;
    let sequences = world.stack.table("SmsSequencesTable");
    seed::put_item(
        &world.dynamo,
        sequences,
        sequence_to_item(&seed::sequence("welcome", 1)),
    )
    .await;
    for (id, phone) in [
        ("enrollment-1", "+15550100"),
        ("enrollment-2", "555-0100"),
        ("enrollment-3", "+15550111"),
    ] {
        let enrollment = enrollment_to_item(&seed::enrollment(id, "welcome", phone));
        seed::put_item(
            &world.dynamo,
            world.stack.table("SmsEnrollmentsTable"),
            enrollment,
        )
        .await;
    }
    let worker = world.worker::<SmsJob>(&NEVER_QUIET).await;

    // When handle-sms gets the good sample, then the bad one
    assert!(
        invoke_with_sample(&worker, "example-sqs-sms.json")
            .await
            .is_empty()
    );
    // Then one text went out, and only the invalid number and the wrong JSON type went to
    // the dead-letter queue
    assert!(
        invoke_with_sample(&worker, "example-sqs-sms-bad.json")
            .await
            .is_empty()
    );
    let dead = seed::dead_letters(&world.sqs, &world.stack.queue("SmsDeadLetterQueue").url).await;
    assert_dead_letters(
        &dead,
        "example-sqs-sms-bad.json",
        &[
            (1, "permanent", "toPhone is not an E.164 number"),
            (
                2,
                "permanent",
                "invalid type: string \"first\", expected usize",
            ),
        ],
    );
    assert_eq!(
        world.moto.recorded_sms(),
        [("+15550100".to_owned(), "Step 0, Kim".to_owned())]
    );
}

#[test]
fn a_schedule_event_of_the_wrong_shape_is_refused_naming_the_field() {
    // What the Lambda runtime does with the bytes before any of our code runs
    let mut event: serde_json::Value =
        serde_json::from_str(&sample("example-eventbridge-email-queue.json")).unwrap();
    event.as_object_mut().unwrap().remove("detail-type");
    let error = serde_json::from_value::<EventBridgeEvent>(event.clone()).unwrap_err();
    assert!(error.to_string().contains("detail-type"), "{error}");
    event["detail-type"] = serde_json::json!(42);
    let error = serde_json::from_value::<EventBridgeEvent>(event).unwrap_err();
    assert!(error.to_string().contains("invalid type"), "{error}");
}
