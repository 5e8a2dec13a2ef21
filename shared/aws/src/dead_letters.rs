//! An operator's view of a dead-letter queue: what is in it and why, and moving messages
//! back to their queue once the cause is fixed.
//!
//! SQS has no way to look without receiving: listing receives every message with a short
//! visibility timeout and makes them all visible again at the end, so a worker never
//! sees them (no worker consumes a DLQ) and nothing is lost if the listing dies part-way.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
};
use symphony_core::{Envelope, ErrorDetails};

use crate::AwsError;
use crate::failures::{error_details_of, redriven_body};
use crate::sqs::is_fifo_queue;

/// How long messages stay hidden while they are listed or moved.
const HOLD: Duration = Duration::from_secs(60);
/// A pass handles at most this many messages; run it again for the rest.
pub const MAX_PER_PASS: usize = 1_000;
/// Each receive waits this long for messages: an empty long-polled answer means empty.
const LONG_POLL_SECONDS: i32 = 1;

/// One dead-lettered message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetter {
    pub message_id: String,
    /// The envelope's type, when the body is an envelope.
    pub message_type: Option<String>,
    /// The unit of work (`meta.correlationId`), when the body is an envelope.
    pub unit_id: Option<String>,
    /// Why it is here: `None` when SQS moved it after `maxReceiveCount` (then the unit's
    /// record says why).
    pub error: Option<ErrorDetails>,
    pub body: String,
    receipt_handle: String,
    group: Option<String>,
}

impl DeadLetter {
    /// Reads a message received from a dead-letter queue (with its message attributes).
    pub fn from_message(message: &Message) -> Self {
        let body = message.body().unwrap_or_default().to_owned();
        let attributes: HashMap<String, String> = message
            .message_attributes()
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())))
            .collect();
        let envelope = Envelope::from_body(Some(&body)).ok();
        Self {
            message_id: message.message_id().unwrap_or_default().to_owned(),
            message_type: envelope.as_ref().map(|e| e.message_type.clone()),
            unit_id: envelope.as_ref().map(|e| e.meta.correlation_id.clone()),
            error: error_details_of(&body, &attributes),
            receipt_handle: message.receipt_handle().unwrap_or_default().to_owned(),
            group: message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned(),
            body,
        }
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Message ids moved back to the source queue.
    pub moved: Vec<String>,
    /// Messages left in the dead-letter queue.
    pub left: usize,
}

/// A job's dead-letter queue and the queue its messages came from.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_url: String,
}

impl DeadLetterQueue {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        dead_letter_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: dead_letter_url.into(),
        }
    }

    pub fn dead_letter_url(&self) -> &str {
        &self.dead_letter_url
    }

    /// Every message in the dead-letter queue, left there.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, AwsError> {
        let letters = self.receive_all().await?;
        self.release(&letters).await?;
        Ok(letters)
    }

    /// Moves the messages `select` picks back to the source queue, without their error
    /// details, and deletes them from the dead-letter queue; the rest stay. A message is
    /// sent before it is deleted: a failure in between leaves a copy in both queues,
    /// which the handlers' idempotency makes harmless, rather than in neither.
    /// `progress` hears of each message moved: it, how many so far, and of how many.
    pub async fn redrive(
        &self,
        select: impl Fn(&DeadLetter) -> bool,
        mut progress: impl FnMut(&DeadLetter, usize, usize),
    ) -> Result<RedriveReport, AwsError> {
        let (chosen, left) = self.take(select).await?;
        let mut report = RedriveReport {
            left,
            ..RedriveReport::default()
        };
        let fifo = is_fifo_queue(&self.queue_url);
        for letter in &chosen {
            let group = fifo.then(|| {
                letter
                    .group
                    .clone()
                    .unwrap_or_else(|| letter.message_id.clone())
            });
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(redriven_body(&letter.body))
                .set_message_group_id(group)
                .set_message_deduplication_id(
                    fifo.then(|| format!("redrive-{}", letter.message_id)),
                )
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("SendMessage", e))?;
            self.delete(letter).await?;
            report.moved.push(letter.message_id.clone());
            progress(letter, report.moved.len(), chosen.len());
        }
        Ok(report)
    }

    /// Deletes the messages `select` picks from the dead-letter queue (they are gone for
    /// good: their units' records keep why); the rest stay. Returns the ids deleted.
    pub async fn remove(
        &self,
        select: impl Fn(&DeadLetter) -> bool,
    ) -> Result<Vec<String>, AwsError> {
        let (chosen, _) = self.take(select).await?;
        let mut removed = Vec::with_capacity(chosen.len());
        for letter in &chosen {
            self.delete(letter).await?;
            removed.push(letter.message_id.clone());
        }
        Ok(removed)
    }

    /// Receives the whole queue and keeps the messages `select` picks hidden; the others
    /// are made visible again. Returns the picked ones and how many were left.
    async fn take(
        &self,
        select: impl Fn(&DeadLetter) -> bool,
    ) -> Result<(Vec<DeadLetter>, usize), AwsError> {
        let letters = self.receive_all().await?;
        let (chosen, others): (Vec<DeadLetter>, Vec<DeadLetter>) =
            letters.into_iter().partition(|letter| select(letter));
        self.release(&others).await?;
        Ok((chosen, others.len()))
    }

    async fn delete(&self, letter: &DeadLetter) -> Result<(), AwsError> {
        self.client
            .delete_message()
            .queue_url(&self.dead_letter_url)
            .receipt_handle(&letter.receipt_handle)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteMessage", e))?;
        Ok(())
    }

    /// Receives until the queue has nothing visible left (long polls, so an empty answer
    /// means empty, not "this server had none"), hiding what it received; at most
    /// [`MAX_PER_PASS`] messages, so a pass always ends.
    async fn receive_all(&self) -> Result<Vec<DeadLetter>, AwsError> {
        let mut letters: Vec<DeadLetter> = Vec::new();
        while letters.len() < MAX_PER_PASS {
            let output = self
                .client
                .receive_message()
                .queue_url(&self.dead_letter_url)
                .max_number_of_messages(10)
                .visibility_timeout(i32::try_from(HOLD.as_secs()).unwrap_or(60))
                .wait_time_seconds(LONG_POLL_SECONDS)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ReceiveMessage", e))?;
            if output.messages().is_empty() {
                return Ok(letters);
            }
            for message in output.messages() {
                keep_newest(&mut letters, DeadLetter::from_message(message));
            }
        }
        Ok(letters)
    }

    /// Makes messages visible again.
    async fn release(&self, letters: &[DeadLetter]) -> Result<(), AwsError> {
        for chunk in letters.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, letter)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("v{index}"))
                        .receipt_handle(&letter.receipt_handle)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| AwsError::invalid_request("ChangeMessageVisibilityBatch", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.dead_letter_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ChangeMessageVisibilityBatch", e))?;
        }
        Ok(())
    }
}
/// Adds a received message, or, when it came back within one pass (a FIFO group, a
/// hold that ran out), keeps its newest receipt handle: only that one can delete it.
fn keep_newest(letters: &mut Vec<DeadLetter>, letter: DeadLetter) {
    match letters
        .iter_mut()
        .find(|l| l.message_id == letter.message_id)
    {
        Some(known) => known.receipt_handle = letter.receipt_handle,
        None => letters.push(letter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_received_twice_in_a_pass_keeps_its_newest_receipt_handle() {
        let letter = |handle: &str| DeadLetter {
            message_id: "m1".into(),
            message_type: None,
            unit_id: None,
            error: None,
            body: "{}".into(),
            receipt_handle: handle.into(),
            group: None,
        };
        let mut letters = Vec::new();
        keep_newest(&mut letters, letter("first"));
        keep_newest(&mut letters, letter("second"));
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].receipt_handle, "second");
    }
}
