//! `process-campaigns`: replaces the `/api/cron/process-campaigns` route. At each tick it
//! leases every active campaign and dispatches one `CampaignProcessingMessage` for it to
//! the campaign queue (symphony path), or processes it inline (legacy path).

use aws_config::SdkConfig;
use symphony_adapters::campaign::CampaignTickConfig;
use symphony_aws::{AwsError, ScheduledFunction};
use symphony_jobs::campaign::CampaignWork;

pub type ProcessCampaigns = ScheduledFunction<CampaignWork>;

pub async fn function(
    config: &CampaignTickConfig,
    sdk: &SdkConfig,
) -> Result<ProcessCampaigns, AwsError> {
    Ok(ScheduledFunction::new(
        config.tick(sdk).await?,
        "CampaignTickFailed",
    ))
}
