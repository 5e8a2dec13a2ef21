//! The SQS transport: the symphony path's way onto a queue.
//!
//! Envelopes go out through `SendMessageBatch`, at most ten a call and never more bytes a
//! call than the service accepts, with a bounded number of calls in flight. A message
//! over the queue's `MaximumMessageSize` fails alone with a clear error. Entries the
//! service returns in `Failed` are retried when the fault is the service's, and reported
//! otherwise: every envelope gets a delivery result.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use chrono::Utc;
use futures::{StreamExt, stream};
use symphony_core::{Delivery, Envelope, Retryable, Transport, TransportError};
use tracing::{debug, warn};

use crate::AwsError;

/// The service's ceiling on one `SendMessageBatch` request and on one message (1 MiB).
pub const SQS_MAX_REQUEST_BYTES: usize = 1_048_576;
pub const SQS_MAX_BATCH_ENTRIES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqsLimits {
    pub max_entries_per_request: usize,
    pub max_request_bytes: usize,
    /// The queue's own `MaximumMessageSize`, which can be below the service's.
    pub max_message_bytes: usize,
    pub max_requests_in_flight: usize,
    /// How many times an entry the service failed on its side is sent again.
    pub entry_retries: u32,
    pub retry_delay: Duration,
}

impl Default for SqsLimits {
    fn default() -> Self {
        Self {
            max_entries_per_request: SQS_MAX_BATCH_ENTRIES,
            max_request_bytes: SQS_MAX_REQUEST_BYTES,
            max_message_bytes: SQS_MAX_REQUEST_BYTES,
            max_requests_in_flight: 4,
            entry_retries: 2,
            retry_delay: Duration::from_millis(100),
        }
    }
}

/// A FIFO queue's URL (and name) ends in `.fifo`.
pub fn is_fifo_queue(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}

/// What a FIFO queue needs of each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoIds {
    /// Messages of one group are delivered in order.
    pub group: String,
    /// A second send with the same id within five minutes is dropped by SQS.
    pub deduplication: String,
}

/// One message ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEntry {
    pub envelope_id: String,
    pub body: String,
    /// (name, string value) pairs sent as `String` message attributes.
    pub attributes: Vec<(String, String)>,
    pub delay_seconds: Option<i32>,
    /// Set for a FIFO queue only.
    pub fifo: Option<FifoIds>,
}

impl OutgoingEntry {
    /// The entry for a FIFO queue: grouped by the envelope's correlation id (the unit of
    /// work, so one unit's messages keep their order), deduplicated by the envelope id.
    /// FIFO queues have no per-message delay: `deliverAt` is left to the handler.
    pub fn from_envelope_fifo(envelope: &Envelope) -> Self {
        Self {
            delay_seconds: None,
            fifo: Some(FifoIds {
                group: envelope.meta.correlation_id.clone(),
                deduplication: envelope.id.clone(),
            }),
            ..Self::from_envelope(envelope)
        }
    }

    pub fn from_envelope(envelope: &Envelope) -> Self {
        let delay_seconds = envelope.meta.deliver_at.map(|at| {
            let seconds = (at - Utc::now()).num_seconds().max(0);
            i32::try_from(seconds).unwrap_or(i32::MAX)
        });
        Self {
            envelope_id: envelope.id.clone(),
            body: envelope.to_body(),
            attributes: vec![
                ("type".to_owned(), envelope.message_type.clone()),
                (
                    "correlationId".to_owned(),
                    envelope.meta.correlation_id.clone(),
                ),
            ],
            delay_seconds,
            fifo: None,
        }
    }

    /// The size SQS counts against its limits: the UTF-8 bytes of the body and of each
    /// attribute's name, data type and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>()
    }
}

/// Groups entries (by their sizes, in order) into requests that respect both the entry
/// count and the byte limit. Every size must already be within `max_request_bytes`.
pub fn plan_requests(sizes: &[usize], max_entries: usize, max_bytes: usize) -> Vec<Vec<usize>> {
    let mut requests: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_bytes = 0;
    for (index, &size) in sizes.iter().enumerate() {
        if !current.is_empty() && (current.len() == max_entries || current_bytes + size > max_bytes)
        {
            requests.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(index);
        current_bytes += size;
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

/// One entry the service returned in `Failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    pub code: String,
    pub message: String,
    pub sender_fault: bool,
}

/// The answer to one batch request, entries named by the request's entry ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchAnswer {
    pub successful: Vec<String>,
    pub failed: Vec<FailedEntry>,
}

/// The one SQS call the transport needs; the SDK client implements it, and unit tests
/// can answer with partial failures the service rarely produces on demand.
#[async_trait]
pub trait SendMessageBatchApi: Send + Sync {
    async fn send_message_batch(
        &self,
        queue_url: &str,
        entries: Vec<(String, &OutgoingEntry)>,
    ) -> Result<BatchAnswer, AwsError>;
}

#[async_trait]
impl SendMessageBatchApi for aws_sdk_sqs::Client {
    async fn send_message_batch(
        &self,
        queue_url: &str,
        entries: Vec<(String, &OutgoingEntry)>,
    ) -> Result<BatchAnswer, AwsError> {
        let mut request = self.send_message_batch().queue_url(queue_url);
        for (id, entry) in entries {
            let mut builder = SendMessageBatchRequestEntry::builder()
                .id(id)
                .message_body(entry.body.clone())
                .set_delay_seconds(entry.delay_seconds)
                .set_message_group_id(entry.fifo.as_ref().map(|ids| ids.group.clone()))
                .set_message_deduplication_id(
                    entry.fifo.as_ref().map(|ids| ids.deduplication.clone()),
                );
            for (name, value) in &entry.attributes {
                let attribute = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value.clone())
                    .build()
                    .map_err(|e| AwsError::invalid_request("SendMessageBatch", e))?;
                builder = builder.message_attributes(name.clone(), attribute);
            }
            request = request.entries(
                builder
                    .build()
                    .map_err(|e| AwsError::invalid_request("SendMessageBatch", e))?,
            );
        }
        let output = request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("SendMessageBatch", e))?;
        Ok(BatchAnswer {
            successful: output
                .successful()
                .iter()
                .map(|s| s.id().to_owned())
                .collect(),
            failed: output
                .failed()
                .iter()
                .map(|f| FailedEntry {
                    id: f.id().to_owned(),
                    code: f.code().to_owned(),
                    message: f.message().unwrap_or_default().to_owned(),
                    sender_fault: f.sender_fault(),
                })
                .collect(),
        })
    }
}

/// Sends envelopes to one SQS queue.
#[derive(Debug, Clone)]
pub struct SqsTransport<C = aws_sdk_sqs::Client> {
    client: C,
    queue_url: String,
    limits: SqsLimits,
    fifo: bool,
}

/// Queue limits the deployment states (`template.yaml` sets them on the queues and gives
/// them to the functions), so a function need not ask SQS for them when it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KnownQueueLimits {
    /// Every queue's `MaximumMessageSize` (`QUEUE_MAX_MESSAGE_BYTES`).
    pub max_message_bytes: Option<usize>,
    /// The worker queue's redrive `maxReceiveCount` (`MAX_RECEIVE_COUNT`).
    pub max_receive_count: Option<u32>,
}

impl KnownQueueLimits {
    /// `QUEUE_MAX_MESSAGE_BYTES` (1,024 to 1,048,576) and `MAX_RECEIVE_COUNT` (at least 1),
    /// each optional: unset, it is read from SQS when first needed.
    pub fn from_env(
        env: &dyn symphony_core::config::EnvSource,
    ) -> Result<Self, symphony_core::config::ConfigError> {
        use symphony_core::config::{ConfigError, parsed_or};
        let invalid = |name: &str, value: String, reason: &str| ConfigError::Invalid {
            name: name.to_owned(),
            value,
            reason: reason.to_owned(),
        };
        let size = parsed_or(env, "QUEUE_MAX_MESSAGE_BYTES", 0_usize)?;
        if size != 0 && !(1_024..=SQS_MAX_REQUEST_BYTES).contains(&size) {
            return Err(invalid(
                "QUEUE_MAX_MESSAGE_BYTES",
                size.to_string(),
                "must be from 1024 to 1048576, as SQS allows",
            ));
        }
        let receives = parsed_or(env, "MAX_RECEIVE_COUNT", 0_u32)?;
        if receives > 1_000 {
            return Err(invalid(
                "MAX_RECEIVE_COUNT",
                receives.to_string(),
                "must be from 1 to 1000, as SQS allows",
            ));
        }
        Ok(Self {
            max_message_bytes: (size != 0).then_some(size),
            max_receive_count: (receives != 0).then_some(receives),
        })
    }
}

impl SqsTransport<aws_sdk_sqs::Client> {
    /// Builds the transport for a queue, reading the queue's own `MaximumMessageSize`.
    pub async fn connect(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
    ) -> Result<Self, AwsError> {
        Self::connect_known(client, queue_url, &KnownQueueLimits::default()).await
    }

    /// The same, asking SQS only for what `known` does not state: with the size known, no
    /// call at all.
    pub async fn connect_known(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        known: &KnownQueueLimits,
    ) -> Result<Self, AwsError> {
        let queue_url = queue_url.into();
        let max_message_bytes = match known.max_message_bytes {
            Some(size) => size,
            None => maximum_message_size(&client, &queue_url).await?,
        };
        let limits = SqsLimits {
            max_message_bytes,
            ..SqsLimits::default()
        };
        debug!(
            max_message_bytes = limits.max_message_bytes,
            "queue limits read"
        );
        Ok(Self::with_limits(client, queue_url, limits))
    }
}

/// The longest a queue attribute read may take, retries included.
const ATTRIBUTE_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One attribute of a queue, as SQS gives it (none when the queue has no such attribute).
pub(crate) async fn queue_attribute(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    name: QueueAttributeName,
) -> Result<Option<String>, AwsError> {
    // Bounded: a worker reads this at the start of a batch, and a read that hangs would
    // spend the invocation (a failed refresh keeps the value it had).
    let bounded = aws_sdk_sqs::config::Builder::default().timeout_config(
        aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .connect_timeout(ATTRIBUTE_READ_TIMEOUT)
            .operation_timeout(ATTRIBUTE_READ_TIMEOUT)
            .build(),
    );
    let output = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(name.clone())
        .customize()
        .config_override(bounded)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetQueueAttributes", e))?;
    Ok(output.attributes().and_then(|a| a.get(&name)).cloned())
}

/// A queue's `MaximumMessageSize`, at most what one request can carry.
pub(crate) async fn maximum_message_size(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<usize, AwsError> {
    Ok(
        queue_attribute(client, queue_url, QueueAttributeName::MaximumMessageSize)
            .await?
            .and_then(|size| size.parse::<usize>().ok())
            .unwrap_or(SQS_MAX_REQUEST_BYTES)
            .min(SQS_MAX_REQUEST_BYTES),
    )
}

impl<C: SendMessageBatchApi> SqsTransport<C> {
    pub fn with_limits(client: C, queue_url: impl Into<String>, limits: SqsLimits) -> Self {
        let queue_url = queue_url.into();
        Self {
            fifo: is_fifo_queue(&queue_url),
            client,
            queue_url,
            limits,
        }
    }

    pub fn limits(&self) -> SqsLimits {
        self.limits
    }

    /// Sends one request's entries, resending those the service failed on its side.
    async fn send_request(&self, entries: Vec<&OutgoingEntry>) -> Vec<Delivery> {
        let mut deliveries = Vec::with_capacity(entries.len());
        let mut pending = entries;
        let mut attempt = 0;
        while !pending.is_empty() {
            let request: Vec<(String, &OutgoingEntry)> = pending
                .iter()
                .enumerate()
                .map(|(index, entry)| (format!("m{index}"), *entry))
                .collect();
            let answer = match self
                .client
                .send_message_batch(&self.queue_url, request)
                .await
            {
                Ok(answer) => answer,
                Err(error) => {
                    warn!(error = %symphony_core::error::chain(&error), entries = pending.len(), "SendMessageBatch failed");
                    let retryable = error.is_retryable();
                    let reason = std::sync::Arc::new(error);
                    deliveries.extend(pending.iter().map(|entry| Delivery {
                        envelope_id: entry.envelope_id.clone(),
                        result: Err(TransportError::Request {
                            retryable,
                            source: Box::new(SharedError(reason.clone())),
                        }),
                    }));
                    return deliveries;
                }
            };
            let mut retry = Vec::new();
            for (index, entry) in pending.iter().enumerate() {
                let id = format!("m{index}");
                if answer.successful.contains(&id) {
                    deliveries.push(Delivery {
                        envelope_id: entry.envelope_id.clone(),
                        result: Ok(()),
                    });
                } else if let Some(failed) = answer.failed.iter().find(|f| f.id == id) {
                    if !failed.sender_fault && attempt < self.limits.entry_retries {
                        retry.push(*entry);
                        continue;
                    }
                    warn!(envelope_id = %entry.envelope_id, code = %failed.code, sender_fault = failed.sender_fault, "queue rejected a message");
                    deliveries.push(Delivery {
                        envelope_id: entry.envelope_id.clone(),
                        result: Err(TransportError::Rejected {
                            envelope_id: entry.envelope_id.clone(),
                            code: failed.code.clone(),
                            message: failed.message.clone(),
                            sender_fault: failed.sender_fault,
                        }),
                    });
                } else {
                    deliveries.push(Delivery {
                        envelope_id: entry.envelope_id.clone(),
                        result: Err(TransportError::Missing {
                            envelope_id: entry.envelope_id.clone(),
                        }),
                    });
                }
            }
            if !retry.is_empty() {
                attempt += 1;
                tokio::time::sleep(self.limits.retry_delay * attempt).await;
            }
            pending = retry;
        }
        deliveries
    }
}

/// Lets one request failure be the source of every entry it failed.
#[derive(Debug, Clone)]
struct SharedError(std::sync::Arc<AwsError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

#[async_trait]
impl<C: SendMessageBatchApi> Transport for SqsTransport<C> {
    async fn send(&self, envelopes: Vec<Envelope>) -> Vec<Delivery> {
        let entry_for = if self.fifo {
            OutgoingEntry::from_envelope_fifo
        } else {
            OutgoingEntry::from_envelope
        };
        let entries: Vec<OutgoingEntry> = envelopes.iter().map(entry_for).collect();
        let mut deliveries = Vec::with_capacity(entries.len());
        let mut sendable = Vec::with_capacity(entries.len());
        for entry in &entries {
            let size = entry.size();
            if size > self.limits.max_message_bytes {
                deliveries.push(Delivery {
                    envelope_id: entry.envelope_id.clone(),
                    result: Err(TransportError::TooLarge {
                        envelope_id: entry.envelope_id.clone(),
                        size,
                        limit: self.limits.max_message_bytes,
                    }),
                });
            } else {
                sendable.push(entry);
            }
        }
        let sizes: Vec<usize> = sendable.iter().map(|e| e.size()).collect();
        let requests = plan_requests(
            &sizes,
            self.limits.max_entries_per_request,
            self.limits.max_request_bytes,
        );
        let sent: Vec<Vec<Delivery>> = stream::iter(requests)
            .map(|indexes| self.send_request(indexes.into_iter().map(|i| sendable[i]).collect()))
            .buffer_unordered(self.limits.max_requests_in_flight.max(1))
            .collect()
            .await;
        deliveries.extend(sent.into_iter().flatten());
        deliveries
    }
}

impl AwsError {
    /// A request the SDK refused to build (a required field missing): a bug, not a retry.
    pub fn invalid_request<E>(operation: &'static str, error: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self {
            operation,
            code: None,
            retryable: false,
            source: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::sync::Mutex;
    use symphony_core::{Dispatcher, Message};

    #[derive(Debug, Serialize, Deserialize)]
    struct Blob {
        text: String,
    }
    impl Message for Blob {
        const TYPE: &'static str = "Blob";
    }

    fn envelope(bytes: usize) -> Envelope {
        Envelope::wrap(
            &Blob {
                text: "x".repeat(bytes),
            },
            "test",
            None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_queue_attribute_read_that_gets_no_answer_ends_as_a_retryable_error() {
        // Given an endpoint that takes connections and never answers
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(format!("http://{address}"))
            .build();
        let client = aws_sdk_sqs::Client::from_conf(config);

        // When a worker reads the queue's redrive policy from it (an outer bound, far
        // above ours, only keeps a regression from hanging the test run)
        let read = tokio::time::timeout(
            Duration::from_secs(120),
            queue_attribute(&client, "http://queue", QueueAttributeName::RedrivePolicy),
        )
        .await
        .expect("the read is bounded");

        // Then it ends, as an error worth retrying, rather than spend the invocation
        let error = read.unwrap_err();
        assert!(error.retryable, "{error:?}");
        silent.abort();
    }

    #[test]
    fn requests_hold_at_most_ten_entries_and_at_most_the_byte_limit() {
        assert_eq!(
            plan_requests(&[1; 23], 10, 1_000)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            [10, 10, 3]
        );
        assert_eq!(
            plan_requests(&[400, 400, 400, 100], 10, 1_000),
            [vec![0, 1], vec![2, 3]]
        );
        assert_eq!(plan_requests(&[1_000, 1], 10, 1_000), [vec![0], vec![1]]);
        assert!(plan_requests(&[], 10, 1_000).is_empty());
    }

    #[test]
    fn size_counts_utf8_bytes_of_body_and_attributes() {
        let entry = OutgoingEntry {
            envelope_id: "e".into(),
            body: "é".into(),
            attributes: vec![("type".into(), "Blob".into())],
            delay_seconds: None,
            fifo: None,
        };
        assert_eq!(entry.size(), 2 + 4 + 6 + 4);
    }

    #[test]
    fn a_fifo_entry_is_grouped_by_unit_deduplicated_by_envelope_and_never_delayed() {
        let mut envelope = Envelope::wrap(
            &Blob { text: "x".into() },
            "test",
            Some("email-7".to_owned()),
        )
        .unwrap();
        envelope.meta.deliver_at = Some(Utc::now() + chrono::Duration::minutes(5));
        assert!(
            OutgoingEntry::from_envelope(&envelope)
                .delay_seconds
                .is_some()
        );

        let entry = OutgoingEntry::from_envelope_fifo(&envelope);
        assert_eq!(
            entry.fifo,
            Some(FifoIds {
                group: "email-7".into(),
                deduplication: envelope.id.clone(),
            })
        );
        assert_eq!(entry.delay_seconds, None);
        assert!(is_fifo_queue(
            "https://sqs.eu-west-1.amazonaws.com/1/jobs.fifo"
        ));
        assert!(!is_fifo_queue("https://sqs.eu-west-1.amazonaws.com/1/jobs"));
    }

    /// Fails, on the service's side, the first time it sees each entry whose body is
    /// marked, and records every request.
    #[derive(Default)]
    struct FlakyQueue {
        requests: Mutex<Vec<Vec<usize>>>,
        seen: Mutex<Vec<String>>,
        sender_fault: bool,
    }

    #[async_trait]
    impl SendMessageBatchApi for FlakyQueue {
        async fn send_message_batch(
            &self,
            _: &str,
            entries: Vec<(String, &OutgoingEntry)>,
        ) -> Result<BatchAnswer, AwsError> {
            self.requests
                .lock()
                .unwrap()
                .push(entries.iter().map(|(_, e)| e.size()).collect());
            let mut answer = BatchAnswer::default();
            let mut seen = self.seen.lock().unwrap();
            for (id, entry) in entries {
                let first_time = !seen.contains(&entry.envelope_id);
                seen.push(entry.envelope_id.clone());
                if entry.body.contains("FAIL") && (first_time || self.sender_fault) {
                    answer.failed.push(FailedEntry {
                        id,
                        code: "InternalError".into(),
                        message: "try again".into(),
                        sender_fault: self.sender_fault,
                    });
                } else {
                    answer.successful.push(id);
                }
            }
            Ok(answer)
        }
    }

    /// The same queue, shared, so a test can read what it received.
    #[async_trait]
    impl SendMessageBatchApi for std::sync::Arc<FlakyQueue> {
        async fn send_message_batch(
            &self,
            queue_url: &str,
            entries: Vec<(String, &OutgoingEntry)>,
        ) -> Result<BatchAnswer, AwsError> {
            self.as_ref().send_message_batch(queue_url, entries).await
        }
    }

    fn limits() -> SqsLimits {
        SqsLimits {
            max_message_bytes: 2_000,
            max_request_bytes: 5_000,
            retry_delay: Duration::from_millis(1),
            ..SqsLimits::default()
        }
    }

    #[tokio::test]
    async fn entries_failed_by_the_service_are_resent_and_delivered() {
        // Given a queue that fails one entry on the service's side the first time
        let queue = std::sync::Arc::new(FlakyQueue::default());
        let transport = SqsTransport::with_limits(queue.clone(), "q", limits());
        let mut envelopes: Vec<Envelope> = (0..12).map(|_| envelope(10)).collect();
        envelopes[3] = Envelope::wrap(
            &Blob {
                text: "FAIL".into(),
            },
            "test",
            None,
        )
        .unwrap();
        let failing = envelopes[3].id.clone();
        let ids: Vec<String> = envelopes.iter().map(|e| e.id.clone()).collect();

        // When twelve envelopes are dispatched
        let deliveries = Dispatcher::new(std::sync::Arc::new(transport))
            .dispatch(envelopes)
            .await;

        // Then all are delivered: the failed entry was sent again, the others exactly once
        assert!(
            deliveries.iter().all(|d| d.result.is_ok()),
            "{deliveries:?}"
        );
        let seen = queue.seen.lock().unwrap();
        for id in &ids {
            let times = seen.iter().filter(|s| *s == id).count();
            assert_eq!(times, if *id == failing { 2 } else { 1 }, "{id}");
        }
    }

    #[tokio::test]
    async fn entries_failed_by_the_sender_are_reported_not_dropped() {
        let queue = FlakyQueue {
            sender_fault: true,
            ..FlakyQueue::default()
        };
        let transport = SqsTransport::with_limits(queue, "q", limits());
        let mut envelopes: Vec<Envelope> = (0..3).map(|_| envelope(10)).collect();
        envelopes[1] = Envelope::wrap(
            &Blob {
                text: "FAIL".into(),
            },
            "test",
            None,
        )
        .unwrap();
        let failed_id = envelopes[1].id.clone();
        let deliveries = Dispatcher::new(std::sync::Arc::new(transport))
            .dispatch(envelopes)
            .await;
        let failed: Vec<&Delivery> = deliveries.iter().filter(|d| d.result.is_err()).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].envelope_id, failed_id);
        assert!(!failed[0].result.as_ref().unwrap_err().is_retryable());
    }

    #[tokio::test]
    async fn an_oversized_message_fails_alone_and_requests_respect_the_byte_limit() {
        let queue = FlakyQueue::default();
        let transport = SqsTransport::with_limits(queue, "q", limits());
        let envelopes = vec![
            envelope(1_500),
            envelope(3_000),
            envelope(1_500),
            envelope(1_500),
            envelope(1_500),
        ];
        let oversized = envelopes[1].id.clone();
        let deliveries = transport.send(envelopes).await;
        let error = deliveries
            .iter()
            .find(|d| d.envelope_id == oversized)
            .unwrap()
            .result
            .as_ref()
            .unwrap_err();
        assert!(
            matches!(error, TransportError::TooLarge { limit: 2_000, .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("over the queue's limit of 2000 bytes")
        );
        assert_eq!(deliveries.iter().filter(|d| d.result.is_ok()).count(), 4);
        let requests = transport.client.requests.lock().unwrap();
        assert!(
            requests.iter().all(|r| r.iter().sum::<usize>() <= 5_000),
            "{requests:?}"
        );
        assert_eq!(requests.len(), 2);
    }

    #[test]
    fn queue_limits_stated_by_the_deployment_are_read_and_checked() {
        use symphony_core::config::from_pairs;
        let known = KnownQueueLimits::from_env(&from_pairs(&[
            ("QUEUE_MAX_MESSAGE_BYTES", "262144"),
            ("MAX_RECEIVE_COUNT", "5"),
        ]))
        .unwrap();
        assert_eq!(known.max_message_bytes, Some(262_144));
        assert_eq!(known.max_receive_count, Some(5));
        assert_eq!(
            KnownQueueLimits::from_env(&from_pairs(&[])).unwrap(),
            KnownQueueLimits::default(),
            "unset: read from SQS when needed"
        );
        for (name, value) in [
            ("QUEUE_MAX_MESSAGE_BYTES", "2000000"),
            ("QUEUE_MAX_MESSAGE_BYTES", "ten"),
            ("MAX_RECEIVE_COUNT", "-1"),
        ] {
            let error = KnownQueueLimits::from_env(&from_pairs(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(name), "{name}={value}: {error}");
        }
    }
}
