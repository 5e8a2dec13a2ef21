//! `handle-sms`: the SQS worker of the SMS queue. Each `SmsDripMessage` sends one step of a
//! drip through Amazon SNS; failed records are reported back (`ReportBatchItemFailures`).

use aws_config::SdkConfig;
use symphony_aws::SqsWorker;
use symphony_jobs::sms::SmsWorkerConfig;

pub type HandleSms = SqsWorker;

pub fn function(config: &SmsWorkerConfig, sdk: &SdkConfig) -> HandleSms {
    SqsWorker::new(config.registry(sdk), config.batch_concurrency)
}
