//! `handle-email`: the SQS worker of the email queue. Each record is handled on its own
//! and only the failed ones are reported back (`ReportBatchItemFailures`), so SQS retries
//! them and, after `maxReceiveCount` receives, moves them to the dead-letter queue.

use aws_config::SdkConfig;
use symphony_aws::SqsWorker;
use symphony_jobs::email::EmailWorkerConfig;

pub type HandleEmail = SqsWorker;

pub fn function(config: &EmailWorkerConfig, sdk: &SdkConfig) -> HandleEmail {
    SqsWorker::new(config.registry(sdk), config.batch_concurrency)
}
