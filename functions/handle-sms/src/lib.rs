//! `handle-sms`: the SQS worker of the SMS queue. Each `SmsDripMessage` sends one step of a
//! drip through Amazon SNS; a permanent failure (an invalid number) goes to the dead-letter
//! queue at once, a retryable one is reported back after its backoff.

use aws_config::SdkConfig;
use symphony_adapters::sms::SmsWorkerConfig;
use symphony_adapters::wiring::sqs_worker;
use symphony_aws::{AwsError, SqsWorker};

pub type HandleSms = SqsWorker;

pub async fn function(config: &SmsWorkerConfig, sdk: &SdkConfig) -> Result<HandleSms, AwsError> {
    // No record starts without the time one SNS attempt and its record need.
    sqs_worker(
        config.registry(sdk),
        config.batch_concurrency,
        config.queues.as_ref(),
        sdk,
    )
    .await
    .map(|worker| worker.with_deadline_margin(symphony_adapters::sms::sns::SEND_TIME))
}
