//! `process-campaigns`: replaces the `/api/cron/process-campaigns` route. At each tick it
//! leases every active campaign and dispatches one `CampaignProcessingMessage` for it to
//! the campaign queue (symphony path), or processes it inline (legacy path).

use aws_config::SdkConfig;
use symphony_adapters::campaign::CampaignTickConfig;
use symphony_adapters::job::{CampaignJob, Job, scheduled_function};
use symphony_adapters::wiring::InitError;
use symphony_aws::ScheduledFunction;

pub type ProcessCampaigns = ScheduledFunction<<CampaignJob as Job>::Work>;

pub async fn function(
    config: &CampaignTickConfig,
    sdk: &SdkConfig,
) -> Result<ProcessCampaigns, InitError> {
    scheduled_function::<CampaignJob>(config, sdk).await
}
