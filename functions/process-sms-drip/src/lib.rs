//! `process-sms-drip`: replaces the SMS drip cron. At each tick it claims every
//! enrollment whose next step is due and dispatches one `SmsDripMessage` for it to the SMS
//! queue (symphony path), or sends it inline (legacy path).

use aws_config::SdkConfig;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use symphony_aws::AwsError;
use symphony_core::TickReport;
use symphony_jobs::sms::{SmsTick, SmsTickConfig};
use tracing::info;

#[derive(Debug)]
pub struct ProcessSmsDrip {
    tick: SmsTick,
}

impl ProcessSmsDrip {
    pub async fn new(config: &SmsTickConfig, sdk: &SdkConfig) -> Result<Self, AwsError> {
        Ok(Self {
            tick: config.tick(sdk).await?,
        })
    }

    /// Fails only when the due enrollments cannot be fetched.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<TickReport, Diagnostic> {
        info!(request_id = %event.context.request_id, scheduled_at = ?event.payload.time, "sms drip tick started");
        self.tick
            .run(chrono::Utc::now().timestamp())
            .await
            .map_err(|error| process_email_queue::tick_failed("SmsDripTickFailed", &error))
    }
}
