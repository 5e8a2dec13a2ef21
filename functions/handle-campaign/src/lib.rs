//! `handle-campaign`: the SQS worker of the campaign queue. Each `CampaignProcessingMessage`
//! turns the campaign's due leads into emails on the email queue; a permanent failure goes
//! to the dead-letter queue at once, a retryable one is reported back after its backoff.

use aws_config::SdkConfig;
use symphony_aws::{AwsError, SqsWorker};
use symphony_jobs::campaign::CampaignWorkerConfig;
use symphony_jobs::wiring::sqs_worker;

pub type HandleCampaign = SqsWorker;

pub async fn function(
    config: &CampaignWorkerConfig,
    sdk: &SdkConfig,
) -> Result<HandleCampaign, AwsError> {
    sqs_worker(
        config.registry(sdk).await?,
        config.batch_concurrency,
        config.queues.as_ref(),
        sdk,
    )
    .await
}
