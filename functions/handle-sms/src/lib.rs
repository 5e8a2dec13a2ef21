//! `handle-sms`: the SQS worker of the SMS queue. Each `SmsDripMessage` sends one step of a
//! drip through Amazon SNS; a permanent failure (an invalid number) goes to the dead-letter
//! queue at once, a retryable one is reported back after its backoff.

use aws_config::SdkConfig;
use symphony_adapters::job::{Job, SmsJob};
use symphony_adapters::sms::SmsWorkerConfig;
use symphony_adapters::wiring::InitError;
use symphony_aws::SqsWorker;

pub type HandleSms = SqsWorker;

pub async fn function(config: &SmsWorkerConfig, sdk: &SdkConfig) -> Result<HandleSms, InitError> {
    SmsJob::worker(config, sdk).await
}
