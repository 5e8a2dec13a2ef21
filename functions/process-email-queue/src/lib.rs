//! `process-email-queue`: replaces the `/api/cron/process-email-queue` route. At each
//! EventBridge tick it takes the due emails, claims each one, and sends it to the email
//! queue (symphony path) or straight through the handler (legacy path), as the flags say.

use aws_config::SdkConfig;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use symphony_aws::AwsError;
use symphony_core::{TickError, TickReport};
use symphony_jobs::email::{EmailTick, EmailTickConfig};
use tracing::info;

#[derive(Debug)]
pub struct ProcessEmailQueue {
    tick: EmailTick,
}

/// A failed tick; the next tick starts over, and nothing was claimed by this one.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ProcessError(#[from] TickError);

impl From<ProcessError> for Diagnostic {
    fn from(error: ProcessError) -> Self {
        Diagnostic {
            error_type: "EmailTickFailed".to_owned(),
            error_message: symphony_core::error::chain(&error),
        }
    }
}

impl ProcessEmailQueue {
    pub async fn new(config: &EmailTickConfig, sdk: &SdkConfig) -> Result<Self, AwsError> {
        Ok(Self {
            tick: config.tick(sdk).await?,
        })
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<TickReport, ProcessError> {
        info!(request_id = %event.context.request_id, scheduled_at = ?event.payload.time, "email tick started");
        Ok(self.tick.run(chrono::Utc::now().timestamp()).await?)
    }
}
