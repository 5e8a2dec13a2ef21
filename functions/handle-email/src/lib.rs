//! `handle-email`: the SQS worker of the email queue. Each record is handled on its own;
//! a permanent failure goes to the dead-letter queue at once with its reason, a retryable
//! one is reported back (`ReportBatchItemFailures`) after its backoff is set.

use aws_config::SdkConfig;
use symphony_aws::SqsWorker;
use symphony_jobs::email::EmailWorkerConfig;
use symphony_jobs::wiring::{InitError, sqs_worker};

pub type HandleEmail = SqsWorker;

pub async fn function(
    config: &EmailWorkerConfig,
    sdk: &SdkConfig,
) -> Result<HandleEmail, InitError> {
    Ok(sqs_worker(
        config.registry(sdk).await?,
        config.batch_concurrency,
        config.queues.as_ref(),
        sdk,
    )
    .await?
    .with_deadline_margin(config.send_least_time()))
}
