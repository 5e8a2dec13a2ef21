//! Drains a queue through a worker the way Lambda's SQS event source mapping does:
//! receive up to ten messages, hand them over as an `SqsEvent`, delete the ones that
//! succeeded and leave the failures on the queue.
//!
//! One liberty, to keep local runs short: a failed message's visibility timeout is set to
//! zero, as if its timeout had already passed. SQS still counts every receive, so the
//! redrive policy moves a message to the dead-letter queue after `maxReceiveCount` receives,
//! exactly as in AWS.

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use lambda_runtime::{Context, LambdaEvent};

use crate::stack::QueueRef;

/// What a drain did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// Batches handed to the worker.
    pub batches: usize,
    /// Messages the worker handled and that were deleted.
    pub succeeded: usize,
    /// Failed deliveries (a message failing three times counts three).
    pub failed_deliveries: usize,
}

/// Receives from the queue until it is empty (at most `max_batches` batches).
pub async fn drain_queue<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue: &QueueRef,
    max_batches: usize,
    worker: F,
) -> DrainReport
where
    F: Fn(LambdaEvent<SqsEvent>) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let mut report = DrainReport::default();
    while report.batches < max_batches {
        let received = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .wait_time_seconds(0)
            .send()
            .await
            .expect("ReceiveMessage failed");
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        report.batches += 1;
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| to_record(m, &queue.arn)).collect();
        let response = worker(LambdaEvent::new(event, Context::default())).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();

        let mut deletes = Vec::new();
        let mut retries = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            let id = message.message_id().unwrap_or_default();
            let handle = message.receipt_handle().unwrap_or_default();
            if failed.contains(&id) || failed.contains(&"") {
                report.failed_deliveries += 1;
                retries.push(
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("r{index}"))
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .build()
                        .expect("a visibility entry needs an id and a handle"),
                );
            } else {
                report.succeeded += 1;
                deletes.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("d{index}"))
                        .receipt_handle(handle)
                        .build()
                        .expect("a delete entry needs an id and a handle"),
                );
            }
        }
        if !deletes.is_empty() {
            sqs.delete_message_batch()
                .queue_url(&queue.url)
                .set_entries(Some(deletes))
                .send()
                .await
                .expect("DeleteMessageBatch failed");
        }
        if !retries.is_empty() {
            sqs.change_message_visibility_batch()
                .queue_url(&queue.url)
                .set_entries(Some(retries))
                .send()
                .await
                .expect("ChangeMessageVisibilityBatch failed");
        }
    }
    report
}

/// A record as Lambda's event source hands it over on its first delivery, for benches
/// that build their events without a queue.
pub fn first_delivery(message_id: String, body: Option<String>) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id);
    record.body = body;
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), "1".into());
    record
}

fn to_record(message: &aws_sdk_sqs::types::Message, queue_arn: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_owned);
    record.receipt_handle = message.receipt_handle().map(str::to_owned);
    record.body = message.body().map(str::to_owned);
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(queue_arn.to_owned());
    record.aws_region = Some("us-east-1".to_owned());
    if let Some(attributes) = message.attributes() {
        record.attributes = attributes
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
            .collect();
    }
    record
}

/// Receives one batch (at most ten, hidden for `visibility` seconds) as the `SqsEvent`
/// Lambda would hand a worker.
pub async fn receive_event(
    sqs: &aws_sdk_sqs::Client,
    queue: &QueueRef,
    visibility: i32,
) -> SqsEvent {
    let received = sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("ReceiveMessage failed");
    let mut event = SqsEvent::default();
    event.records = received
        .messages()
        .iter()
        .map(|m| to_record(m, &queue.arn))
        .collect();
    event
}
