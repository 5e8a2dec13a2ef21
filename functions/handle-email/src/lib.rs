//! `handle-email`: the SQS worker of the email queue. Each record is handled on its own;
//! a permanent failure goes to the dead-letter queue at once with its reason, a retryable
//! one is reported back (`ReportBatchItemFailures`) after its backoff is set.

use aws_config::SdkConfig;
use symphony_adapters::email::EmailWorkerConfig;
use symphony_adapters::job::{EmailJob, Job};
use symphony_adapters::wiring::InitError;
use symphony_aws::SqsWorker;

pub type HandleEmail = SqsWorker;

pub async fn function(
    config: &EmailWorkerConfig,
    sdk: &SdkConfig,
) -> Result<HandleEmail, InitError> {
    EmailJob::worker(config, sdk).await
}
