//! `handle-campaign`: the SQS worker of the campaign queue. Each `CampaignProcessingMessage`
//! turns the campaign's due leads into emails on the email queue; failed records are
//! reported back (`ReportBatchItemFailures`).

use aws_config::SdkConfig;
use symphony_aws::{AwsError, SqsWorker};
use symphony_jobs::campaign::CampaignWorkerConfig;

pub type HandleCampaign = SqsWorker;

pub async fn function(
    config: &CampaignWorkerConfig,
    sdk: &SdkConfig,
) -> Result<HandleCampaign, AwsError> {
    Ok(SqsWorker::new(
        config.registry(sdk).await?,
        config.batch_concurrency,
    ))
}
