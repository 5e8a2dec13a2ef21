//! `handle-campaign`: the SQS worker of the campaign queue. Each `CampaignProcessingMessage`
//! turns the campaign's due leads into emails on the email queue; a permanent failure goes
//! to the dead-letter queue at once, a retryable one is reported back after its backoff.

use aws_config::SdkConfig;
use symphony_adapters::campaign::CampaignWorkerConfig;
use symphony_adapters::wiring::sqs_worker;
use symphony_aws::{AwsError, SqsWorker};

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
