//! The Lambda side of every function: a scheduled tick and an SQS worker, so each
//! function's crate only wires its job in.

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use symphony_core::{
    BatchProcessor, FailureRoutes, HandlerContext, HandlerRegistry, Heartbeat, MetricsSink,
    RetryPolicy, Route, Sample, Tick, TickReport, WorkSource,
};
use tracing::warn;

/// The invocation's deadline (epoch milliseconds in the Lambda context) as an instant;
/// none when the context has none (a local drain, a test).
fn deadline_of(context: &lambda_runtime::Context) -> Option<std::time::Instant> {
    if context.deadline == 0 {
        return None;
    }
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let remaining = std::time::Duration::from_millis(context.deadline.saturating_sub(now_ms));
    Some(std::time::Instant::now() + remaining)
}

/// A scheduled function (`process-*`): one tick per EventBridge event.
#[derive(Debug)]
pub struct ScheduledFunction<S> {
    tick: Tick<S>,
    /// The `errorType` Lambda reports when a tick fails.
    error_type: &'static str,
    /// The job's name in metrics, and where each tick's figures go.
    metrics: Option<(&'static str, Arc<dyn MetricsSink>)>,
}

impl<S: WorkSource> ScheduledFunction<S> {
    pub fn new(tick: Tick<S>, error_type: &'static str) -> Self {
        Self {
            tick,
            error_type,
            metrics: None,
        }
    }

    /// Writes each tick's figures (per path, as `job`'s) and a heartbeat to `sink`.
    pub fn with_metrics(mut self, job: &'static str, sink: Arc<dyn MetricsSink>) -> Self {
        self.metrics = Some((job, sink));
        self
    }

    /// Fails only when the due work cannot be fetched; nothing was claimed then, and the
    /// next tick starts over.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<TickReport, Diagnostic> {
        tracing::debug!(request_id = %event.context.request_id, scheduled_at = ?event.payload.time, "tick started");
        let started = std::time::Instant::now();
        let at = chrono::Utc::now();
        let result = self
            .tick
            .run_until(at.timestamp(), deadline_of(&event.context))
            .await;
        if let Some((job, sink)) = &self.metrics {
            let beat = Heartbeat {
                function: self.tick.name().to_owned(),
                job: (*job).to_owned(),
                at,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                ok: result.is_ok(),
                summary: result.as_ref().map(summary_of).unwrap_or_default(),
            };
            let samples = result
                .as_ref()
                .map(|report| report.figures.clone().samples(job, at))
                .unwrap_or_default();
            write_metrics(sink.as_ref(), &samples, Some(&beat)).await;
        }
        result.map_err(|error| Diagnostic {
            error_type: self.error_type.to_owned(),
            error_message: symphony_core::error::chain(&error),
        })
    }
}

/// An SQS-triggered worker (`handle-*`): a batch in, the failed records out.
#[derive(Debug, Clone)]
pub struct SqsWorker {
    processor: BatchProcessor,
    /// The job (its flag name) and where each batch's figures go.
    metrics: Option<(&'static str, Arc<dyn MetricsSink>)>,
}

impl SqsWorker {
    pub fn new(registry: HandlerRegistry, concurrency: usize) -> Self {
        Self {
            processor: BatchProcessor::new(Arc::new(registry), concurrency),
            metrics: None,
        }
    }

    /// Writes each batch's figures, as `job`'s symphony path, to `sink`.
    pub fn with_metrics(mut self, job: &'static str, sink: Arc<dyn MetricsSink>) -> Self {
        self.metrics = Some((job, sink));
        self
    }

    /// For a FIFO queue: records of one message group in order (see `BatchProcessor::fifo`).
    pub fn fifo(mut self) -> Self {
        self.processor = self.processor.fifo();
        self
    }

    /// Starts no record with less than `margin` of the invocation left: the longest a
    /// record's send needs, so none is cut mid-send.
    pub fn with_deadline_margin(mut self, margin: std::time::Duration) -> Self {
        self.processor = self.processor.with_deadline_margin(margin);
        self
    }

    /// Routes failed records: permanent ones (and retryable ones on their last attempt) to
    /// the dead-letter queue at once, the other retryable ones kept away for `policy`'s
    /// backoff.
    pub fn with_failure_routes(
        mut self,
        routes: Arc<dyn FailureRoutes>,
        policy: RetryPolicy,
    ) -> Self {
        self.processor = self.processor.with_failure_routes(routes, policy);
        self
    }

    /// Never fails as a whole: every problem is a failed record in the response.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Infallible> {
        let mut context = HandlerContext::new(Route::Symphony, event.context.request_id.clone());
        if let Some(deadline) = deadline_of(&event.context) {
            context = context.with_deadline(deadline);
        }
        let report = self.processor.process(&event.payload, &context).await;
        if let Some((job, sink)) = &self.metrics {
            let samples = report
                .figures(Route::Symphony)
                .samples(job, chrono::Utc::now());
            write_metrics(sink.as_ref(), &samples, None).await;
        }
        Ok(report.response)
    }
}

/// The tick's counts, for its heartbeat.
fn summary_of(report: &TickReport) -> std::collections::BTreeMap<String, u64> {
    [
        ("due", report.due),
        ("dispatched", report.dispatched),
        ("legacy", report.legacy),
        ("failed", report.failed),
        ("skipped", report.skipped),
        ("held", report.held),
        ("notClaimed", report.not_claimed),
        ("takenOver", report.taken_over),
        ("infrastructureFaults", report.infrastructure_faults),
    ]
    .into_iter()
    .map(|(name, count)| (name.to_owned(), count as u64))
    .collect()
}

/// The longest figures may hold up an answer: the batch response (or the tick report) is
/// what settles the units, and must not wait on a slow metrics write.
pub const METRICS_WRITE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Figures are the operator's, not the units': a failure to write them, or a write slower
/// than [`METRICS_WRITE_LIMIT`], is said at WARN and changes nothing for the work.
async fn write_metrics(sink: &dyn MetricsSink, samples: &[Sample], beat: Option<&Heartbeat>) {
    let writes = async {
        futures::join!(sink.record(samples), async {
            match beat {
                Some(beat) => sink.heartbeat(beat).await,
                None => Ok(()),
            }
        })
    };
    match tokio::time::timeout(METRICS_WRITE_LIMIT, writes).await {
        Ok((recorded, beaten)) => {
            for failure in [recorded.err(), beaten.err()].into_iter().flatten() {
                warn!(error = %symphony_core::error::chain(&failure), "could not write metrics; the work is unaffected");
            }
        }
        Err(_) => warn!(
            limit_ms = METRICS_WRITE_LIMIT.as_millis(),
            "metrics not written in time; the work is unaffected"
        ),
    }
}
