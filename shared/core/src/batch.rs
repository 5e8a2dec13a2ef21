//! Turns an SQS event into a partial batch response: each record is decoded and handled
//! on its own, and only the records that failed are reported back to SQS.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::{StreamExt, stream};
use tracing::{Instrument, debug, debug_span, error, info, warn};

use crate::clock::{Clock, SystemClock};
use crate::envelope::{DeadLetterKind, ErrorDetails};
use crate::retry::{FailureRoutes, RetryPolicy};
use crate::{
    Envelope, EnvelopeError, FailureKind, HandlerContext, HandlerError, HandlerRegistry, Retryable,
};
use chrono::Utc;

/// Why one record failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Malformed(#[from] EnvelopeError),
    #[error(transparent)]
    Handler(#[from] HandlerError),
    /// Not started: an earlier record of the same FIFO message group failed, and order
    /// within a group must hold. It comes back after that one.
    #[error("not started: message {blocked_by} of the same message group failed before it")]
    GroupBlocked { blocked_by: String },
    /// Not started: too little of the invocation's time was left. It comes back later.
    #[error(
        "not started: {remaining_ms} ms of the invocation were left, under the {margin_ms} ms margin"
    )]
    OutOfTime { remaining_ms: u128, margin_ms: u128 },
}

impl Retryable for RecordError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Malformed(_) => false,
            Self::Handler(error) => error.is_retryable(),
            Self::OutOfTime { .. } | Self::GroupBlocked { .. } => true,
        }
    }

    fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Malformed(_) => FailureKind::Intrinsic,
            Self::Handler(error) => error.kind,
            Self::OutOfTime { .. } | Self::GroupBlocked { .. } => FailureKind::Transient,
        }
    }
}

/// What happened to one record.
#[derive(Debug)]
pub struct RecordOutcome {
    pub message_id: String,
    pub message_type: Option<String>,
    pub attempt: u32,
    pub result: Result<(), RecordError>,
    /// A failed record that went to the dead-letter queue, and so is acknowledged.
    pub dead_lettered: bool,
    /// How long its handler ran; none when it never started.
    pub handle_ms: Option<u64>,
    /// From when its unit was due (or dispatched) to done; only for a record that succeeded.
    pub latency_ms: Option<u64>,
}

impl RecordOutcome {
    /// A record that never reached its handler.
    fn unhandled(message_id: String, attempt: u32, error: RecordError) -> Self {
        Self {
            message_id,
            message_type: None,
            attempt,
            result: Err(error),
            dead_lettered: false,
            handle_ms: None,
            latency_ms: None,
        }
    }
}

/// What happened to a batch: the response for SQS and each record's outcome.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub response: SqsBatchResponse,
    pub outcomes: Vec<RecordOutcome>,
}

impl BatchReport {
    pub fn succeeded(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_ok()).count()
    }

    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.succeeded()
    }

    pub fn dead_lettered(&self) -> usize {
        self.outcomes.iter().filter(|o| o.dead_lettered).count()
    }

    /// The batch's figures on `route`: a record that reached its handler (or could not be
    /// read) was processed; one never started is only given back.
    pub fn figures(&self, route: crate::Route) -> crate::metrics::Recorder {
        let mut recorder = crate::metrics::Recorder::default();
        let figures = recorder.path(route);
        for outcome in &self.outcomes {
            let started = !matches!(
                outcome.result,
                Err(RecordError::OutOfTime { .. } | RecordError::GroupBlocked { .. })
            );
            match &outcome.result {
                Ok(()) => figures.counts.succeeded += 1,
                Err(error) if started => figures.counts.fail(error.failure_kind()),
                Err(_) => {}
            }
            figures.counts.processed += u64::from(started);
            if outcome.dead_lettered {
                figures.counts.dead_lettered += 1;
            } else if outcome.result.is_err() {
                figures.counts.retried += 1;
            }
            figures.time(outcome.latency_ms, outcome.handle_ms);
        }
        recorder
    }
}

/// Runs each record of a batch through the registry.
#[derive(Clone)]
pub struct BatchProcessor {
    registry: Arc<HandlerRegistry>,
    concurrency: usize,
    /// A record is not started when less than this is left before the deadline.
    deadline_margin: Duration,
    /// Where failed records go; without it, every failure is simply reported to SQS.
    routes: Option<(Arc<dyn FailureRoutes>, RetryPolicy)>,
    /// A FIFO queue: records of one message group run in order, one at a time.
    fifo: bool,
    /// What the time left before the deadline is measured with.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BatchProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("concurrency", &self.concurrency)
            .field("deadline_margin", &self.deadline_margin)
            .field("retry", &self.routes.as_ref().map(|(_, policy)| policy))
            .finish_non_exhaustive()
    }
}

/// The batch's INFO line names at most this many failed records.
const MAX_IDS_LOGGED: usize = 20;

/// Time kept in hand by default: enough to finish a record that just started and answer.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

impl BatchProcessor {
    /// `concurrency` bounds how many records of one batch run at once (at least one).
    pub fn new(registry: Arc<HandlerRegistry>, concurrency: usize) -> Self {
        Self {
            registry,
            concurrency: concurrency.max(1),
            deadline_margin: DEFAULT_DEADLINE_MARGIN,
            routes: None,
            fifo: false,
            clock: Arc::new(SystemClock),
        }
    }

    /// Measures the time left before the deadline with `clock` (a test's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// For a FIFO queue: groups run concurrently, but the records of one message group run
    /// in order, and after a failure the rest of its group is reported without running.
    pub fn fifo(mut self) -> Self {
        self.fifo = true;
        self
    }

    /// Sends permanent failures (and retryable ones on their last attempt) to the
    /// dead-letter queue at once, and keeps the other retryable ones away for a backoff,
    /// through `routes`.
    pub fn with_failure_routes(
        mut self,
        routes: Arc<dyn FailureRoutes>,
        policy: RetryPolicy,
    ) -> Self {
        self.routes = Some((routes, policy));
        self
    }

    pub fn with_deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    pub async fn process(&self, event: &SqsEvent, context: &HandlerContext) -> BatchReport {
        let started = std::time::Instant::now();
        let mut outcomes: Vec<RecordOutcome> = if self.fifo {
            self.process_by_group(event, context).await
        } else {
            stream::iter(&event.records)
                .map(|record| self.process_record(record, context))
                .buffered(self.concurrency)
                .collect()
                .await
        };
        if let Some((routes, policy)) = &self.routes
            && outcomes.iter().any(|outcome| outcome.result.is_err())
        {
            let mut policy = *policy;
            if let Some(max) = routes.max_receive_count().await {
                policy.max_attempts = Some(max);
            }
            for (record, outcome) in event.records.iter().zip(outcomes.iter_mut()) {
                route_failure(routes.as_ref(), &policy, record, outcome).await;
            }
        }

        let mut response = SqsBatchResponse::default();
        for outcome in outcomes
            .iter()
            .filter(|o| o.result.is_err() && !o.dead_lettered)
        {
            let mut failure = BatchItemFailure::default();
            // An empty identifier makes Lambda retry the whole batch: for a record
            // without an id that is the only way not to lose it.
            failure.item_identifier = outcome.message_id.clone();
            response.batch_item_failures.push(failure);
        }
        let report = BatchReport { response, outcomes };
        // The batch's one INFO line: its counts, how long it took, and which records
        // failed, comma-separated (a started one also has its WARN line with the reason).
        let failed_ids: Vec<&str> = report
            .outcomes
            .iter()
            .filter(|o| o.result.is_err())
            .take(MAX_IDS_LOGGED)
            .map(|o| o.message_id.as_str())
            .collect();
        let failed_ids = failed_ids.join(",");
        info!(
            records = report.outcomes.len(),
            succeeded = report.succeeded(),
            failed = report.failed(),
            dead_lettered = report.dead_lettered(),
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            failed_ids = %failed_ids,
            "batch processed"
        );
        report
    }

    async fn process_by_group(
        &self,
        event: &SqsEvent,
        context: &HandlerContext,
    ) -> Vec<RecordOutcome> {
        // Group ids in the order they first appear; each with its records' positions.
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (position, record) in event.records.iter().enumerate() {
            let group = record
                .attributes
                .get("MessageGroupId")
                .map(String::as_str)
                .unwrap_or_default();
            match groups.iter_mut().find(|(id, _)| *id == group) {
                Some((_, positions)) => positions.push(position),
                None => groups.push((group, vec![position])),
            }
        }
        let ran: Vec<Vec<(usize, RecordOutcome)>> = stream::iter(groups)
            .map(|(_, positions)| async move {
                let mut outcomes = Vec::with_capacity(positions.len());
                let mut blocked_by: Option<String> = None;
                for position in positions {
                    let record = &event.records[position];
                    let outcome = match &blocked_by {
                        Some(first) => RecordOutcome::unhandled(
                            record.message_id.clone().unwrap_or_default(),
                            receive_count(record),
                            RecordError::GroupBlocked {
                                blocked_by: first.clone(),
                            },
                        ),
                        None => self.process_record(record, context).await,
                    };
                    if outcome.result.is_err() && blocked_by.is_none() {
                        blocked_by = Some(outcome.message_id.clone());
                    }
                    outcomes.push((position, outcome));
                }
                outcomes
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut outcomes: Vec<(usize, RecordOutcome)> = ran.into_iter().flatten().collect();
        outcomes.sort_by_key(|(position, _)| *position);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    async fn process_record(&self, record: &SqsMessage, context: &HandlerContext) -> RecordOutcome {
        let message_id = record.message_id.clone().unwrap_or_default();
        let attempt = receive_count(record);
        // Only at DEBUG: a span per record costs more than the record's own decoding, and
        // every WARN line below names its message itself.
        let span = debug_span!("record", message_id = %message_id, attempt, message_type = tracing::field::Empty);
        let record_span = span.clone();
        let handling = async {
            // Checked as the record starts: a record the Lambda timeout would cut off is
            // left for a later delivery instead of being lost mid-way.
            if let Some(deadline) = context.deadline {
                let remaining = deadline.saturating_duration_since(self.clock.now());
                if remaining < self.deadline_margin {
                    warn!(message_id = %message_id, attempt, remaining_ms = remaining.as_millis(), "too little time left; record not started");
                    return RecordOutcome::unhandled(
                        message_id.clone(),
                        attempt,
                        RecordError::OutOfTime {
                            remaining_ms: remaining.as_millis(),
                            margin_ms: self.deadline_margin.as_millis(),
                        },
                    );
                }
            }
            let envelope = match Envelope::from_body(record.body.as_deref()) {
                Ok(mut envelope) => {
                    envelope.meta.attempt = attempt;
                    envelope
                }
                Err(error) => {
                    warn!(message_id = %message_id, attempt, error = %crate::redact::personal_data(&error.to_string()), "malformed message");
                    return RecordOutcome::unhandled(message_id.clone(), attempt, error.into());
                }
            };
            record_span.record("message_type", envelope.message_type.as_str());
            let started = std::time::Instant::now();
            let result = self.registry.dispatch(&envelope, context).await;
            let handle_ms = u64::try_from(started.elapsed().as_millis()).ok();
            let latency_ms = result.as_ref().ok().and_then(|()| {
                let from = envelope.meta.due_at.unwrap_or(envelope.meta.created_at);
                crate::metrics::elapsed_ms(from, Utc::now())
            });
            match &result {
                Ok(()) => debug!("message handled"),
                // Not the message's fault: said at ERROR, where the alarms look.
                Err(error) if error.kind == FailureKind::Infrastructure => {
                    error!(message_id = %message_id, attempt, message_type = %envelope.message_type, kind = %error.kind, error = %error.full_reason(), "INFRASTRUCTURE FAULT: message backed off")
                }
                Err(error) => {
                    warn!(message_id = %message_id, attempt, message_type = %envelope.message_type, kind = %error.kind, error = %error.full_reason(), "message failed")
                }
            }
            RecordOutcome {
                message_id: message_id.clone(),
                message_type: Some(envelope.message_type),
                attempt,
                result: result.map_err(RecordError::from),
                dead_lettered: false,
                handle_ms,
                latency_ms,
            }
        };
        // Entering a disabled span on every poll is work for nothing: most of the time
        // (INFO), the record runs bare.
        if span.is_disabled() {
            handling.await
        } else {
            handling.instrument(span).await
        }
    }
}

/// A permanent failure goes to the dead-letter queue (and is then acknowledged); a
/// retryable one is kept away for the policy's backoff, unless this was its last attempt:
/// then it goes to the dead-letter queue too, with why. Should either move fail, the
/// record is simply reported failed: SQS's redrive policy still has it.
async fn route_failure(
    routes: &dyn FailureRoutes,
    policy: &RetryPolicy,
    record: &SqsMessage,
    outcome: &mut RecordOutcome,
) {
    let Err(error) = &outcome.result else {
        return;
    };
    let exhausted = error.is_retryable() && policy.is_last(outcome.attempt);
    if error.is_retryable() && !exhausted {
        let delay = policy.delay(outcome.attempt);
        if let Err(moved) = routes.retry_later(record, delay).await {
            warn!(message_id = %outcome.message_id, error = %crate::error::chain(&moved), "could not delay the retry");
        }
        return;
    }
    let now = Utc::now();
    let details = ErrorDetails {
        kind: match error {
            RecordError::Malformed(_) => DeadLetterKind::Malformed,
            // Never ran on its last receive: its own reason, not an earlier failure's.
            RecordError::OutOfTime { .. } | RecordError::GroupBlocked { .. } if exhausted => {
                DeadLetterKind::NotStarted
            }
            _ if exhausted => DeadLetterKind::Exhausted,
            other => other.failure_kind().into(),
        },
        reason: match error {
            RecordError::Handler(handler) => handler.full_reason(),
            other => crate::error::chain(other),
        },
        attempts: outcome.attempt,
        first_failure_at: first_receive(record).unwrap_or(now),
        last_failure_at: now,
        source_queue: record.event_source_arn.clone(),
    };
    match routes.dead_letter(record, &details).await {
        Ok(()) => {
            outcome.dead_lettered = true;
            warn!(message_id = %outcome.message_id, kind = %details.kind, "message dead-lettered");
        }
        Err(moved) => {
            warn!(message_id = %outcome.message_id, error = %crate::error::chain(&moved), "could not dead-letter; reporting the failure instead");
        }
    }
}

/// When SQS first delivered the record (`ApproximateFirstReceiveTimestamp`, epoch ms).
fn first_receive(record: &SqsMessage) -> Option<chrono::DateTime<Utc>> {
    let millis: i64 = record
        .attributes
        .get("ApproximateFirstReceiveTimestamp")?
        .parse()
        .ok()?;
    chrono::DateTime::from_timestamp_millis(millis)
}

/// The delivery attempt, from SQS's `ApproximateReceiveCount` (1 when absent).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, Route, TypedHandler};
    use async_trait::async_trait;
    use serde::{Deserialize, Serialize};
    use std::sync::Mutex;
    use std::time::Duration;
    use std::time::Instant;

    #[derive(Debug, Serialize, Deserialize)]
    struct Work {
        outcome: String,
    }
    impl Message for Work {
        const TYPE: &'static str = "Work";
    }

    #[derive(Default)]
    struct Recorder {
        attempts: Mutex<Vec<u32>>,
    }
    #[async_trait]
    impl TypedHandler<Work> for Arc<Recorder> {
        async fn handle(
            &self,
            work: Work,
            envelope: &Envelope,
            _: &HandlerContext,
        ) -> Result<(), HandlerError> {
            self.attempts.lock().unwrap().push(envelope.meta.attempt);
            match work.outcome.as_str() {
                "ok" => Ok(()),
                "retry" => Err(HandlerError::retryable("try later")),
                "panic" => panic!("handler bug"),
                _ => Err(HandlerError::permanent("no")),
            }
        }
    }

    fn record(id: &str, body: Option<String>, receive_count: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.to_owned());
        record.body = body;
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), receive_count.into());
        record
    }

    fn work(outcome: &str) -> Option<String> {
        Some(
            Envelope::wrap(
                &Work {
                    outcome: outcome.into(),
                },
                "test",
                None,
            )
            .unwrap()
            .to_body(),
        )
    }

    #[derive(Default)]
    struct MemoryRoutes {
        dead: Mutex<Vec<(String, ErrorDetails)>>,
        delayed: Mutex<Vec<(String, Duration)>>,
        /// The dead-letter queue refuses this message id.
        refuse: String,
        /// The queue's current `maxReceiveCount`, when the routes know it.
        max_receive_count: Option<u32>,
    }

    #[async_trait]
    impl FailureRoutes for MemoryRoutes {
        async fn max_receive_count(&self) -> Option<u32> {
            self.max_receive_count
        }

        async fn dead_letter(
            &self,
            record: &SqsMessage,
            details: &ErrorDetails,
        ) -> Result<(), crate::FailureRouteError> {
            let id = record.message_id.clone().unwrap_or_default();
            if id == self.refuse {
                return Err(crate::FailureRouteError {
                    reason: "DLQ unavailable".into(),
                    source: None,
                });
            }
            self.dead.lock().unwrap().push((id, details.clone()));
            Ok(())
        }
        async fn retry_later(
            &self,
            record: &SqsMessage,
            delay: Duration,
        ) -> Result<(), crate::FailureRouteError> {
            self.delayed
                .lock()
                .unwrap()
                .push((record.message_id.clone().unwrap_or_default(), delay));
            Ok(())
        }
    }

    #[tokio::test]
    async fn permanent_failures_are_dead_lettered_at_once_and_retryable_ones_backed_off() {
        // Given routes whose DLQ refuses one message, and a batch of each kind of outcome
        let routes = Arc::new(MemoryRoutes {
            refuse: "permanent-refused".into(),
            ..MemoryRoutes::default()
        });
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(60),
            max_attempts: Some(5),
        };
        let registry = HandlerRegistry::new()
            .register(Arc::new(Recorder::default()))
            .unwrap();
        let processor =
            BatchProcessor::new(Arc::new(registry), 2).with_failure_routes(routes.clone(), policy);
        let mut event = SqsEvent::default();
        event.records = vec![
            record("good", work("ok"), "1"),
            record("malformed", Some("{".into()), "1"),
            record("permanent", work("permanent"), "2"),
            record("retry", work("retry"), "3"),
            record("permanent-refused", work("permanent"), "1"),
            record("retry-last", work("retry"), "5"),
        ];

        // When it is processed
        let report = processor
            .process(&event, &HandlerContext::new(Route::Symphony, "req"))
            .await;

        // Then the dead-lettered ones are acknowledged, with their details
        let reported: Vec<&str> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(reported, ["retry", "permanent-refused"]);
        assert_eq!(report.dead_lettered(), 3);
        let dead = routes.dead.lock().unwrap();
        assert_eq!(dead[0].0, "malformed");
        assert_eq!(dead[0].1.kind, DeadLetterKind::Malformed);
        assert_eq!(
            (
                dead[1].0.as_str(),
                dead[1].1.kind.as_str(),
                dead[1].1.attempts
            ),
            ("permanent", "permanent", 2)
        );
        assert!(dead[1].1.reason.contains("no"), "{}", dead[1].1.reason);
        // and a retryable failure on the queue's last attempt goes there too, saying why,
        // instead of being left for SQS to move without a reason
        let last = dead
            .iter()
            .find(|(id, _)| id == "retry-last")
            .expect("the last attempt was dead-lettered");
        assert_eq!((last.1.kind.as_str(), last.1.attempts), ("exhausted", 5));
        assert_eq!(last.1.reason, "try later");
        // and the retryable one stays away for attempt 3's backoff: 20–40 s
        let delayed = routes.delayed.lock().unwrap();
        assert_eq!(delayed.len(), 1);
        assert!(
            (Duration::from_secs(20)..=Duration::from_secs(40)).contains(&delayed[0].1),
            "{:?}",
            delayed[0].1
        );
    }

    #[tokio::test]
    async fn a_fifo_group_runs_in_order_and_stops_at_its_first_failure() {
        // Given group A (ok, retry, ok) and group B (ok, ok), interleaved
        let recorder = Arc::new(Recorder::default());
        let registry = HandlerRegistry::new().register(recorder.clone()).unwrap();
        let processor = BatchProcessor::new(Arc::new(registry), 2).fifo();
        let grouped = |id: &str, group: &str, outcome: &str| {
            let mut record = record(id, work(outcome), "1");
            record
                .attributes
                .insert("MessageGroupId".into(), group.into());
            record
        };
        let mut event = SqsEvent::default();
        event.records = vec![
            grouped("a1", "A", "ok"),
            grouped("b1", "B", "ok"),
            grouped("a2", "A", "retry"),
            grouped("b2", "B", "ok"),
            grouped("a3", "A", "ok"),
        ];

        // When the batch is processed
        let report = processor
            .process(&event, &HandlerContext::new(Route::Symphony, "req"))
            .await;

        // Then a2 failed, a3 was reported without running, and group B went on
        let failed: Vec<&str> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["a2", "a3"]);
        assert!(
            matches!(&report.outcomes[4].result, Err(RecordError::GroupBlocked { blocked_by }) if blocked_by == "a2")
        );
        assert_eq!(recorder.attempts.lock().unwrap().len(), 4, "a3 never ran");
    }

    #[tokio::test]
    async fn the_queues_current_max_receive_count_decides_the_last_attempt() {
        // Given a policy read with five attempts, and a queue now lowered to three
        let routes = Arc::new(MemoryRoutes {
            max_receive_count: Some(3),
            ..MemoryRoutes::default()
        });
        let policy = RetryPolicy {
            max_attempts: Some(5),
            ..RetryPolicy::default()
        };
        let registry = HandlerRegistry::new()
            .register(Arc::new(Recorder::default()))
            .unwrap();
        let processor =
            BatchProcessor::new(Arc::new(registry), 2).with_failure_routes(routes.clone(), policy);
        let mut event = SqsEvent::default();
        event.records = vec![record("third", work("retry"), "3")];

        // When a retryable failure meets its third attempt
        processor
            .process(&event, &HandlerContext::new(Route::Symphony, "req"))
            .await;

        // Then it was the last: dead-lettered as exhausted, not backed off
        let dead = routes.dead.lock().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].1.kind.as_str(), dead[0].1.attempts),
            ("exhausted", 3)
        );
        assert!(routes.delayed.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_record_that_never_ran_on_its_last_receive_is_dead_lettered_as_not_started() {
        // Given a FIFO group whose first record fails on its last receive, blocking the next
        let routes = Arc::new(MemoryRoutes::default());
        let policy = RetryPolicy {
            max_attempts: Some(5),
            ..RetryPolicy::default()
        };
        let registry = HandlerRegistry::new()
            .register(Arc::new(Recorder::default()))
            .unwrap();
        let processor = BatchProcessor::new(Arc::new(registry), 2)
            .fifo()
            .with_failure_routes(routes.clone(), policy);
        let grouped = |id: &str, outcome: &str| {
            let mut record = record(id, work(outcome), "5");
            record
                .attributes
                .insert("MessageGroupId".into(), "A".into());
            record
        };
        let mut event = SqsEvent::default();
        event.records = vec![grouped("first", "retry"), grouped("second", "ok")];

        // When the batch is processed
        processor
            .process(&event, &HandlerContext::new(Route::Symphony, "req"))
            .await;

        // Then the one that ran is exhausted with its own reason, and the one that never ran
        // says so, rather than carrying the other's failure as its own
        let dead = routes.dead.lock().unwrap();
        let kinds: Vec<(&str, &str)> = dead
            .iter()
            .map(|(id, details)| (id.as_str(), details.kind.as_str()))
            .collect();
        assert_eq!(kinds, [("first", "exhausted"), ("second", "not-started")]);
        assert!(
            dead[1].1.reason.starts_with("not started"),
            "{}",
            dead[1].1.reason
        );
    }

    /// A clock the test moves by hand.
    struct ManualClock {
        start: Instant,
        elapsed: Mutex<Duration>,
    }

    impl ManualClock {
        fn advance(&self, by: Duration) {
            *self.elapsed.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            self.start + *self.elapsed.lock().unwrap()
        }
    }

    /// Takes 150 ms of the clock, then succeeds.
    struct Slow(Arc<ManualClock>);
    #[async_trait]
    impl TypedHandler<Work> for Slow {
        async fn handle(
            &self,
            _: Work,
            _: &Envelope,
            _: &HandlerContext,
        ) -> Result<(), HandlerError> {
            self.0.advance(Duration::from_millis(150));
            Ok(())
        }
    }

    #[tokio::test]
    async fn records_are_not_started_when_the_deadline_is_near() {
        // Given three records handled one at a time, each taking 150 ms, with 300 ms left
        // and a 200 ms margin (on a clock the handler moves, so load changes nothing)
        let clock = Arc::new(ManualClock {
            start: Instant::now(),
            elapsed: Mutex::new(Duration::ZERO),
        });
        let registry = HandlerRegistry::new()
            .register(Slow(clock.clone()))
            .unwrap();
        let processor = BatchProcessor::new(Arc::new(registry), 1)
            .with_deadline_margin(Duration::from_millis(200))
            .with_clock(clock.clone());
        let mut event = SqsEvent::default();
        event.records = (0..3)
            .map(|n| record(&format!("m{n}"), work("ok"), "1"))
            .collect();
        let context = HandlerContext::new(Route::Symphony, "req")
            .with_deadline(clock.start + Duration::from_millis(300));

        // When the batch is processed
        let report = processor.process(&event, &context).await;

        // Then the first ran, and the others were reported, retryable, without running
        let failed: Vec<&str> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m1", "m2"]);
        assert!(matches!(
            report.outcomes[1].result,
            Err(RecordError::OutOfTime { .. })
        ));
        assert!(
            report.outcomes[1]
                .result
                .as_ref()
                .unwrap_err()
                .is_retryable()
        );
    }

    #[tokio::test]
    async fn only_the_failing_records_are_reported() {
        // Given a batch of a good record and one of each kind of failure
        let recorder = Arc::new(Recorder::default());
        let registry = HandlerRegistry::new().register(recorder.clone()).unwrap();
        let processor = BatchProcessor::new(Arc::new(registry), 4);
        let mut unknown = Envelope::wrap(
            &Work {
                outcome: "ok".into(),
            },
            "test",
            None,
        )
        .unwrap();
        unknown.message_type = "Unknown".into();
        let mut event = SqsEvent::default();
        event.records = vec![
            record("good", work("ok"), "3"),
            record("malformed", Some("{".into()), "1"),
            record("empty", None, "1"),
            record("unknown", Some(unknown.to_body()), "1"),
            record("retry", work("retry"), "1"),
            record("permanent", work("permanent"), "1"),
            record("panic", work("panic"), "1"),
            record("good-too", work("ok"), "1"),
        ];

        // When the batch is processed
        let report = processor
            .process(&event, &HandlerContext::new(Route::Symphony, "req"))
            .await;

        // Then every failure, and only they, is reported, in order
        let failed: Vec<&str> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "malformed",
                "empty",
                "unknown",
                "retry",
                "permanent",
                "panic"
            ]
        );
        assert_eq!(report.succeeded(), 2);
        let retryable: Vec<bool> = report
            .outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(Retryable::is_retryable))
            .collect();
        assert_eq!(retryable, [false, false, false, true, false, false]);
        // and the attempt comes from ApproximateReceiveCount
        assert!(recorder.attempts.lock().unwrap().contains(&3));
    }
}
