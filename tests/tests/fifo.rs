//! FIFO queues, end to end against moto: a tick produces onto a FIFO email queue (each
//! message in its unit's group), the worker consumes it, and a bad message goes to a FIFO
//! dead-letter queue at once, in its own group.

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use symphony_tests::stack::QueueRef;
use symphony_tests::world::EmailJob;
use symphony_tests::world::World;
use symphony_tests::{drain_queue, seed};

/// A FIFO queue and its FIFO dead-letter queue, redriven after five receives.
async fn fifo_queues(world: &World, name: &str) -> (QueueRef, QueueRef) {
    let create = |queue_name: String, redrive: Option<String>| async move {
        let mut request = world
            .sqs
            .create_queue()
            .queue_name(&queue_name)
            .attributes(QueueAttributeName::FifoQueue, "true");
        if let Some(dead_letter_arn) = redrive {
            let policy = serde_json::json!({
                "deadLetterTargetArn": dead_letter_arn,
                "maxReceiveCount": 5,
            });
            request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let url = request
            .send()
            .await
            .expect("cannot create a FIFO queue")
            .queue_url()
            .expect("a queue URL")
            .to_owned();
        let arn = world
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("cannot read the queue ARN")
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("a queue ARN");
        QueueRef { url, arn }
    };
    let dead = create(format!("{name}-dlq.fifo"), None).await;
    let queue = create(format!("{name}.fifo"), Some(dead.arn.clone())).await;
    (queue, dead)
}

/// (message group, body) of every message on a queue, left there.
async fn groups_and_bodies(world: &World, queue_url: &str) -> Vec<(String, String)> {
    let output = world
        .sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .send()
        .await
        .expect("ReceiveMessage failed");
    let mut found: Vec<(String, String)> = output
        .messages()
        .iter()
        .map(|message| {
            let group = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .unwrap_or_default();
            (group, message.body().unwrap_or_default().to_owned())
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_email_queue_groups_by_email_and_dead_letters_at_once() {
    // Given a FIFO email queue and DLQ, with process-email-queue and handle-email on them
    let world = World::start().await;
    let (queue, dead) = fifo_queues(&world, "symphony-local-email").await;
    let tick_env = world.function_env(
        "ProcessEmailQueueFunction",
        &[("EMAIL_QUEUE_URL", queue.url.as_str())],
    );
    let tick = world.scheduled_in::<EmailJob>(&tick_env).await;
    let worker = world
        .worker::<EmailJob>(&[
            ("QUEUE_URL", queue.url.as_str()),
            ("DEAD_LETTER_QUEUE_URL", dead.url.as_str()),
        ])
        .await;
    world.set_email_flag(true).await;
    let ids = world.seed_emails("fifo", 3).await;

    // When a tick dispatches the due emails
    let report = world.tick::<EmailJob>(&tick).await;

    // Then each message is in its email's group
    assert_eq!(report.dispatched, 3);
    let groups: Vec<String> = groups_and_bodies(&world, &queue.url)
        .await
        .into_iter()
        .map(|(group, _)| group)
        .collect();
    assert_eq!(groups, ids);

    // And when the web app puts a malformed body on the queue, and the worker drains it
    world
        .sqs
        .send_message()
        .queue_url(&queue.url)
        .message_body("{\"not\": \"an envelope")
        .message_group_id("web-app")
        .message_deduplication_id("malformed-1")
        .send()
        .await
        .expect("SendMessage to the FIFO queue failed");
    let drained = drain_queue(&world.sqs, &queue, 20, |event| async {
        worker
            .handle(event)
            .await
            .unwrap_or_else(|never| match never {})
    })
    .await;

    // Then the emails went out, and the malformed body is in the FIFO DLQ at once, in its
    // group, with its reason
    assert_eq!(world.delivered_ids(), ids);
    assert_eq!(drained.failed_deliveries, 0, "{drained:?}");
    assert_eq!(seed::queue_depth(&world.sqs, &queue.url).await, 0);
    let letters = seed::dead_letters(&world.sqs, &dead.url).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].body, "{\"not\": \"an envelope");
    assert_eq!(letters[0].kind, "malformed");
    assert!(
        letters[0].reason.contains("not a valid envelope"),
        "{}",
        letters[0].reason
    );
    assert_eq!(
        groups_and_bodies(&world, &dead.url).await[0].0,
        "web-app",
        "the dead letter keeps its group"
    );
}
