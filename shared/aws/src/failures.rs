//! Failure routes on SQS: a permanent failure goes to the dead-letter queue at once, with
//! its error details; a retryable one has its visibility timeout set to the backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use symphony_core::{Envelope, ErrorDetails, FailureRouteError, FailureRoutes, HeldLetters};
use tracing::debug;

use crate::AwsError;
use crate::operations::DeadLetterIndex;
use crate::sqs::{FifoIds, KnownQueueLimits, is_fifo_queue, maximum_message_size, queue_attribute};

/// An error reason is cut to this many bytes first, whatever the room.
pub const MAX_REASON_BYTES: usize = 1_024;
/// SQS refuses a visibility timeout that ends more than 12 hours after the message was
/// received; the record was received at most one invocation ago (Lambda's 15 minutes), so
/// a delay up to 12 hours less those 15 minutes is always accepted.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(43_200 - 900);

#[derive(Debug, Clone)]
pub struct SqsFailureRoutes {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_url: String,
    /// The dead-letter queue's own `MaximumMessageSize`.
    max_message_bytes: usize,
    /// The source queue's `maxReceiveCount`, from its redrive policy, and when it was read.
    max_receive_count: Arc<Mutex<(Option<u32>, Instant)>>,
    /// How long a `maxReceiveCount` read is trusted before it is read again.
    refresh: Duration,
    index: Option<DeadLetterIndex>,
}

/// A redrive policy changed in place reaches warm workers within this time.
pub const MAX_RECEIVE_COUNT_REFRESH: Duration = Duration::from_secs(300);

impl SqsFailureRoutes {
    /// Reads the dead-letter queue's `MaximumMessageSize` and the source queue's redrive
    /// policy once.
    pub async fn connect(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        dead_letter_url: impl Into<String>,
    ) -> Result<Self, AwsError> {
        Self::connect_known(
            client,
            queue_url,
            dead_letter_url,
            &KnownQueueLimits::default(),
        )
        .await
    }

    /// The same, asking SQS only for what `known` does not state: with both known, no call
    /// at start (`maxReceiveCount` is still read again, on a failure, once `refresh` old).
    pub async fn connect_known(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        dead_letter_url: impl Into<String>,
        known: &KnownQueueLimits,
    ) -> Result<Self, AwsError> {
        let queue_url = queue_url.into();
        // A stated count is trusted until the first failing batch, which reads the live
        // one (a policy changed in place is followed even by short-lived containers);
        // start itself makes no call.
        let (max_receive_count, read_at) = match known.max_receive_count {
            Some(count) => (
                Some(count),
                Instant::now()
                    .checked_sub(MAX_RECEIVE_COUNT_REFRESH)
                    .unwrap_or_else(Instant::now),
            ),
            None => (
                read_max_receive_count(&client, &queue_url).await?,
                Instant::now(),
            ),
        };
        let dead_letter_url = dead_letter_url.into();
        let max_message_bytes = match known.max_message_bytes {
            Some(size) => size,
            None => maximum_message_size(&client, &dead_letter_url).await?,
        };
        Ok(Self {
            client,
            queue_url,
            dead_letter_url,
            max_message_bytes,
            max_receive_count: Arc::new(Mutex::new((max_receive_count, read_at))),
            refresh: MAX_RECEIVE_COUNT_REFRESH,
            index: None,
        })
    }

    /// Indexes each dead letter in the operations table.
    pub fn with_index(mut self, table: crate::OperationsTable) -> Self {
        self.index = Some(DeadLetterIndex::new(table, &self.dead_letter_url));
        self
    }

    /// Reads `maxReceiveCount` again once a read is older than `refresh`.
    pub fn with_refresh(mut self, refresh: Duration) -> Self {
        self.refresh = refresh;
        self
    }
}

/// A queue's `maxReceiveCount`, from its redrive policy (none without one).
async fn read_max_receive_count(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Option<u32>, AwsError> {
    Ok(
        queue_attribute(client, queue_url, QueueAttributeName::RedrivePolicy)
            .await?
            .and_then(|policy| max_receive_count(&policy)),
    )
}

/// A job's dead-letter queue, where a tick puts the units it held (an unknown outcome on
/// the legacy path): the envelope with `meta.error`, as a worker's dead letter would be.
#[derive(Debug, Clone)]
pub struct SqsHeldLetters {
    client: aws_sdk_sqs::Client,
    dead_letter_url: String,
    max_message_bytes: usize,
    index: Option<DeadLetterIndex>,
}

impl SqsHeldLetters {
    /// Reads the dead-letter queue's `MaximumMessageSize` once.
    pub async fn connect(
        client: aws_sdk_sqs::Client,
        dead_letter_url: impl Into<String>,
    ) -> Result<Self, AwsError> {
        Self::connect_known(client, dead_letter_url, &KnownQueueLimits::default()).await
    }

    /// The same, with no call when `known` states the size.
    pub async fn connect_known(
        client: aws_sdk_sqs::Client,
        dead_letter_url: impl Into<String>,
        known: &KnownQueueLimits,
    ) -> Result<Self, AwsError> {
        let dead_letter_url = dead_letter_url.into();
        let max_message_bytes = match known.max_message_bytes {
            Some(size) => size,
            None => maximum_message_size(&client, &dead_letter_url).await?,
        };
        Ok(Self {
            client,
            dead_letter_url,
            max_message_bytes,
            index: None,
        })
    }

    /// Indexes each held unit's dead letter in the operations table.
    pub fn with_index(mut self, table: crate::OperationsTable) -> Self {
        self.index = Some(DeadLetterIndex::new(table, &self.dead_letter_url));
        self
    }
}

#[async_trait]
impl HeldLetters for SqsHeldLetters {
    async fn put(
        &self,
        envelope: &Envelope,
        details: &ErrorDetails,
    ) -> Result<(), FailureRouteError> {
        let fifo = is_fifo_queue(&self.dead_letter_url).then(|| FifoIds {
            group: envelope.meta.correlation_id.clone(),
            deduplication: envelope.id.clone(),
        });
        let body = envelope.to_body();
        let message_id = send_dead_letter(
            &self.client,
            &self.dead_letter_url,
            &body,
            details,
            self.max_message_bytes,
            fifo,
        )
        .await?;
        if let Some(index) = &self.index {
            index.add(&message_id, &body, details).await;
        }
        Ok(())
    }
}

/// Sends `body` with its error details to a dead-letter queue (see [`dead_letter_message`]).
async fn send_dead_letter(
    client: &aws_sdk_sqs::Client,
    dead_letter_url: &str,
    body: &str,
    details: &ErrorDetails,
    max_message_bytes: usize,
    fifo: Option<FifoIds>,
) -> Result<String, FailureRouteError> {
    let Some((message, attributes)) = dead_letter_message(body, details, max_message_bytes) else {
        return Err(FailureRouteError {
            reason: "the message and its error details do not fit the dead-letter queue".to_owned(),
            source: None,
        });
    };
    let mut request = client
        .send_message()
        .queue_url(dead_letter_url)
        .message_body(message)
        .set_message_group_id(fifo.as_ref().map(|ids| ids.group.clone()))
        .set_message_deduplication_id(fifo.map(|ids| ids.deduplication));
    for (name, value) in attributes {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| route_error("an error detail could not be built", e))?;
        request = request.message_attributes(name, value);
    }
    let sent = request.send().await.map_err(|e| {
        route_error(
            "sending to the dead-letter queue failed",
            AwsError::from_sdk("SendMessage", e),
        )
    })?;
    Ok(sent.message_id().unwrap_or_default().to_owned())
}

/// `maxReceiveCount` of a queue's `RedrivePolicy` attribute (JSON; AWS returns the number
/// as a number or as a string).
pub fn max_receive_count(policy: &str) -> Option<u32> {
    let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
    match &policy["maxReceiveCount"] {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// A FIFO dead-letter queue's ids for a record: its own message group (so dead letters
/// keep the order of their source), and its SQS message id, so a worker that dead-letters
/// a record twice (killed before it could delete it) leaves one copy.
pub fn dead_letter_fifo_ids(record: &SqsMessage) -> FifoIds {
    let message_id = record.message_id.clone().unwrap_or_default();
    FifoIds {
        group: record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_else(|| message_id.clone()),
        deduplication: message_id,
    }
}

/// The dead-lettered message: the envelope with `meta.error` set when the body is one,
/// else the body as it came, with the details in message attributes. The reason is cut
/// until the whole fits the limit; `None` when even the bare details cannot fit.
pub fn dead_letter_message(
    body: &str,
    details: &ErrorDetails,
    limit: usize,
) -> Option<(String, Vec<(String, String)>)> {
    let mut details = details.clone();
    details.reason = cut(&details.reason, MAX_REASON_BYTES).to_owned();
    loop {
        let (message, attributes) = match Envelope::from_body(Some(body)) {
            Ok(mut envelope) => {
                envelope.meta.error = Some(details.clone());
                (
                    envelope.to_body(),
                    vec![("errorKind".to_owned(), details.kind.as_str().to_owned())],
                )
            }
            Err(_) => (body.to_owned(), attributes_of(&details)),
        };
        let size = message.len()
            + attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>();
        if size <= limit {
            return Some((message, attributes));
        }
        if details.reason.is_empty() {
            return None;
        }
        let keep = details.reason.len().saturating_sub(size - limit);
        details.reason = cut(&details.reason, keep).to_owned();
    }
}

/// The error details of a dead-lettered message, read back from wherever
/// [`dead_letter_message`] put them: the envelope's `meta.error`, or the message attributes
/// of a body that is no envelope. `None` for a message SQS moved after `maxReceiveCount`:
/// no worker wrote details, and the unit's record says why.
pub fn error_details_of(
    body: &str,
    attributes: &std::collections::HashMap<String, String>,
) -> Option<ErrorDetails> {
    if let Ok(envelope) = Envelope::from_body(Some(body)) {
        return envelope.meta.error;
    }
    let kind = symphony_core::DeadLetterKind::from_name(attributes.get("errorKind")?);
    let time = |name: &str| {
        attributes
            .get(name)
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&chrono::Utc))
    };
    let last_failure_at = time("errorLastFailureAt").unwrap_or_default();
    Some(ErrorDetails {
        kind,
        reason: attributes.get("errorReason").cloned().unwrap_or_default(),
        attempts: attributes
            .get("errorAttempts")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        first_failure_at: time("errorFirstFailureAt").unwrap_or(last_failure_at),
        last_failure_at,
        source_queue: attributes.get("errorSourceQueue").cloned(),
    })
}

/// The body to put back on the source queue: an envelope without its `meta.error` (the
/// worker counts attempts afresh), or a body that is no envelope as it is.
pub fn redriven_body(body: &str) -> String {
    match Envelope::from_body(Some(body)) {
        Ok(mut envelope) => {
            envelope.meta.error = None;
            envelope.to_body()
        }
        Err(_) => body.to_owned(),
    }
}

fn attributes_of(details: &ErrorDetails) -> Vec<(String, String)> {
    let mut attributes = vec![
        ("errorKind".to_owned(), details.kind.as_str().to_owned()),
        ("errorAttempts".to_owned(), details.attempts.to_string()),
        (
            "errorFirstFailureAt".to_owned(),
            details.first_failure_at.to_rfc3339(),
        ),
        (
            "errorLastFailureAt".to_owned(),
            details.last_failure_at.to_rfc3339(),
        ),
    ];
    if !details.reason.is_empty() {
        attributes.push(("errorReason".to_owned(), details.reason.clone()));
    }
    if let Some(queue) = &details.source_queue {
        attributes.push(("errorSourceQueue".to_owned(), queue.clone()));
    }
    attributes
}

/// At most `max` bytes of `text`, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn route_error<E>(reason: &str, error: E) -> FailureRouteError
where
    E: std::error::Error + Send + Sync + 'static,
{
    FailureRouteError {
        reason: reason.to_owned(),
        source: Some(Box::new(error)),
    }
}

#[async_trait]
impl FailureRoutes for SqsFailureRoutes {
    /// The cached value, read again once older than `refresh`; a failed read keeps it.
    async fn max_receive_count(&self) -> Option<u32> {
        let (cached, read_at) = *self.max_receive_count.lock().await;
        if read_at.elapsed() < self.refresh {
            return cached;
        }
        match read_max_receive_count(&self.client, &self.queue_url).await {
            Ok(fresh) => {
                *self.max_receive_count.lock().await = (fresh, Instant::now());
                fresh
            }
            Err(error) => {
                tracing::warn!(error = %symphony_core::error::chain(&error), "could not read maxReceiveCount again; keeping the last one");
                cached
            }
        }
    }

    async fn dead_letter(
        &self,
        record: &SqsMessage,
        details: &ErrorDetails,
    ) -> Result<(), FailureRouteError> {
        let fifo = is_fifo_queue(&self.dead_letter_url).then(|| dead_letter_fifo_ids(record));
        let body = record.body.as_deref().unwrap_or_default();
        let message_id = send_dead_letter(
            &self.client,
            &self.dead_letter_url,
            body,
            details,
            self.max_message_bytes,
            fifo,
        )
        .await?;
        if let Some(index) = &self.index {
            index.add(&message_id, body, details).await;
        }
        Ok(())
    }

    async fn retry_later(
        &self,
        record: &SqsMessage,
        delay: Duration,
    ) -> Result<(), FailureRouteError> {
        let Some(receipt) = record.receipt_handle.as_deref() else {
            return Err(FailureRouteError {
                reason: "the record has no receipt handle".to_owned(),
                source: None,
            });
        };
        let seconds = i32::try_from(delay.min(MAX_RETRY_DELAY).as_secs()).unwrap_or(i32::MAX);
        debug!(seconds, "retry delayed");
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| {
                route_error(
                    "delaying the retry failed",
                    AwsError::from_sdk("ChangeMessageVisibility", e),
                )
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use chrono::Utc;
    use serde::{Deserialize, Serialize};
    use symphony_core::Message;

    #[derive(Debug, Serialize, Deserialize)]
    struct Note {
        text: String,
    }
    impl Message for Note {
        const TYPE: &'static str = "Note";
    }

    fn details(reason: &str) -> ErrorDetails {
        ErrorDetails {
            kind: symphony_core::DeadLetterKind::Permanent,
            reason: reason.into(),
            attempts: 1,
            first_failure_at: Utc::now(),
            last_failure_at: Utc::now(),
            source_queue: Some("arn:aws:sqs:us-east-1:123456789012:q".into()),
        }
    }

    #[test]
    fn details_never_push_a_message_over_the_limit() {
        // A body that is not an envelope, 300 bytes short of the limit, and a long reason
        let body = "x".repeat(1_700);
        let (message, attributes) =
            dead_letter_message(&body, &details(&"why ".repeat(500)), 2_000).unwrap();
        let size = message.len()
            + attributes
                .iter()
                .map(|(n, v)| n.len() + 6 + v.len())
                .sum::<usize>();
        assert!(size <= 2_000, "{size}");
        assert_eq!(message, body, "the original body is kept as it came");
        let reason = attributes
            .iter()
            .find(|(n, _)| n == "errorReason")
            .map(|(_, v)| v.len())
            .unwrap();
        assert!(
            reason > 0 && reason < 2_000,
            "the reason was cut to fit: {reason}"
        );
        // with no room at all, it refuses rather than cut the body
        assert!(dead_letter_message(&"x".repeat(2_000), &details("why"), 2_000).is_none());
    }

    #[test]
    fn details_read_back_from_an_envelope_or_from_attributes() {
        let details = details("the SMTP server replied 550");
        let as_map = |attributes: Vec<(String, String)>| attributes.into_iter().collect();

        let body = Envelope::wrap(&Note { text: "hi".into() }, "test", None)
            .unwrap()
            .to_body();
        let (message, attributes) = dead_letter_message(&body, &details, 10_000).unwrap();
        assert_eq!(
            error_details_of(&message, &as_map(attributes)),
            Some(details.clone())
        );
        // (not a search for "550" alone: the envelope's random id can hold those digits)
        let redriven = redriven_body(&message);
        assert!(
            Envelope::from_body(Some(&redriven))
                .unwrap()
                .meta
                .error
                .is_none(),
            "meta.error is dropped"
        );
        assert!(
            !redriven.contains("the SMTP server replied 550"),
            "{redriven}"
        );
        assert_eq!(
            Envelope::from_body(Some(&redriven_body(&message)))
                .unwrap()
                .id,
            Envelope::from_body(Some(&message)).unwrap().id
        );

        let (message, attributes) = dead_letter_message("{broken", &details, 10_000).unwrap();
        let mut expected = details.clone();
        // RFC 3339 keeps what the attribute kept
        let read = error_details_of(&message, &as_map(attributes)).unwrap();
        expected.first_failure_at = read.first_failure_at;
        expected.last_failure_at = read.last_failure_at;
        assert_eq!(read, expected);
        assert_eq!(
            read.last_failure_at.timestamp(),
            details.last_failure_at.timestamp()
        );
        assert_eq!(redriven_body("{broken"), "{broken");

        // Moved by SQS's redrive policy: no details
        assert_eq!(error_details_of("{broken", &HashMap::new()), None);
    }

    #[test]
    fn max_receive_count_reads_a_number_or_a_string() {
        let arn = "arn:aws:sqs:us-east-1:1:dlq";
        assert_eq!(
            max_receive_count(&format!(
                r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":5}}"#
            )),
            Some(5)
        );
        assert_eq!(
            max_receive_count(&format!(
                r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"7"}}"#
            )),
            Some(7)
        );
        assert_eq!(max_receive_count("{}"), None);
        assert_eq!(max_receive_count("not json"), None);
    }

    #[test]
    fn a_fifo_dead_letter_keeps_its_group_and_is_deduplicated_by_message_id() {
        let mut record = SqsMessage::default();
        record.message_id = Some("m-1".into());
        record
            .attributes
            .insert("MessageGroupId".into(), "enrollment-9".into());
        assert_eq!(
            dead_letter_fifo_ids(&record),
            FifoIds {
                group: "enrollment-9".into(),
                deduplication: "m-1".into()
            }
        );
        // A record without a group (not from a FIFO queue) gets a group of its own
        record.attributes.clear();
        assert_eq!(dead_letter_fifo_ids(&record).group, "m-1");
    }
}
