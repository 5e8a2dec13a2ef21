//! `process-email-queue`: replaces the `/api/cron/process-email-queue` route. At each
//! EventBridge tick it takes the due emails, claims each one, and sends it to the email
//! queue (symphony path) or straight through the handler (legacy path), as the flags say.

use aws_config::SdkConfig;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use symphony_aws::AwsError;
use symphony_core::{TickError, TickReport};

/// The Lambda error of a failed tick: a readable type, the whole cause chain.
pub fn tick_failed(error_type: &str, error: &TickError) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: symphony_core::error::chain(error),
    }
}
use symphony_jobs::email::{EmailTick, EmailTickConfig};
use tracing::info;

#[derive(Debug)]
pub struct ProcessEmailQueue {
    tick: EmailTick,
}

impl ProcessEmailQueue {
    pub async fn new(config: &EmailTickConfig, sdk: &SdkConfig) -> Result<Self, AwsError> {
        Ok(Self {
            tick: config.tick(sdk).await?,
        })
    }

    /// Fails only when the due emails cannot be fetched; nothing was claimed then, and the
    /// next tick starts over.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<TickReport, Diagnostic> {
        info!(request_id = %event.context.request_id, scheduled_at = ?event.payload.time, "email tick started");
        self.tick
            .run(chrono::Utc::now().timestamp())
            .await
            .map_err(|error| tick_failed("EmailTickFailed", &error))
    }
}
