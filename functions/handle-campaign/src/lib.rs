//! `handle-campaign`: the SQS worker of the campaign queue. Each `CampaignProcessingMessage`
//! turns the campaign's due leads into emails on the email queue; a permanent failure goes
//! to the dead-letter queue at once, a retryable one is reported back after its backoff.

use aws_config::SdkConfig;
use symphony_adapters::campaign::CampaignWorkerConfig;
use symphony_adapters::job::{CampaignJob, Job};
use symphony_adapters::wiring::InitError;
use symphony_aws::SqsWorker;

pub type HandleCampaign = SqsWorker;

pub async fn function(
    config: &CampaignWorkerConfig,
    sdk: &SdkConfig,
) -> Result<HandleCampaign, InitError> {
    CampaignJob::worker(config, sdk).await
}
