//! `process-campaigns`: replaces the `/api/cron/process-campaigns` route. At each tick it
//! leases every active campaign and dispatches one `CampaignProcessingMessage` for it to
//! the campaign queue (symphony path), or processes it inline (legacy path).

use aws_config::SdkConfig;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use symphony_aws::AwsError;
use symphony_core::TickReport;
use symphony_jobs::campaign::{CampaignTick, CampaignTickConfig};
use tracing::info;

#[derive(Debug)]
pub struct ProcessCampaigns {
    tick: CampaignTick,
}

impl ProcessCampaigns {
    pub async fn new(config: &CampaignTickConfig, sdk: &SdkConfig) -> Result<Self, AwsError> {
        Ok(Self {
            tick: config.tick(sdk).await?,
        })
    }

    /// Fails only when the active campaigns cannot be fetched.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<TickReport, Diagnostic> {
        info!(request_id = %event.context.request_id, scheduled_at = ?event.payload.time, "campaign tick started");
        self.tick
            .run(chrono::Utc::now().timestamp())
            .await
            .map_err(|error| process_email_queue::tick_failed("CampaignTickFailed", &error))
    }
}
