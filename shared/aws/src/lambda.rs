//! The Lambda side of every function: a scheduled tick and an SQS worker, so each
//! function's crate only wires its job in.

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use symphony_core::{
    BatchProcessor, FailureRoutes, HandlerContext, HandlerRegistry, RetryPolicy, Route, Tick,
    TickReport, WorkSource,
};
use tracing::info;

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
}

impl<S: WorkSource> ScheduledFunction<S> {
    pub fn new(tick: Tick<S>, error_type: &'static str) -> Self {
        Self { tick, error_type }
    }

    /// Fails only when the due work cannot be fetched; nothing was claimed then, and the
    /// next tick starts over.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<TickReport, Diagnostic> {
        info!(request_id = %event.context.request_id, scheduled_at = ?event.payload.time, "tick started");
        self.tick
            .run_until(chrono::Utc::now().timestamp(), deadline_of(&event.context))
            .await
            .map_err(|error| Diagnostic {
                error_type: self.error_type.to_owned(),
                error_message: symphony_core::error::chain(&error),
            })
    }
}

/// An SQS-triggered worker (`handle-*`): a batch in, the failed records out.
#[derive(Debug, Clone)]
pub struct SqsWorker {
    processor: BatchProcessor,
}

impl SqsWorker {
    pub fn new(registry: HandlerRegistry, concurrency: usize) -> Self {
        Self {
            processor: BatchProcessor::new(Arc::new(registry), concurrency),
        }
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
        Ok(self
            .processor
            .process(&event.payload, &context)
            .await
            .response)
    }
}
