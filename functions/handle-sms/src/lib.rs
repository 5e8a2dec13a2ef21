//! `handle-sms`: the SQS worker of the SMS queue. Each `SmsDripMessage` sends one step of a
//! drip through Amazon SNS; failed records are reported back (`ReportBatchItemFailures`).

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use symphony_core::{BatchProcessor, HandlerContext, Route};
use symphony_jobs::sms::SmsWorkerConfig;

#[derive(Debug, Clone)]
pub struct HandleSms {
    processor: BatchProcessor,
}

impl HandleSms {
    pub fn new(config: &SmsWorkerConfig, sdk: &SdkConfig) -> Self {
        Self {
            processor: BatchProcessor::new(
                Arc::new(config.registry(sdk)),
                config.batch_concurrency,
            ),
        }
    }

    /// Never fails as a whole: every problem is a failed record in the response.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, std::convert::Infallible> {
        let context = HandlerContext::new(Route::Symphony, event.context.request_id);
        Ok(self
            .processor
            .process(&event.payload, &context)
            .await
            .response)
    }
}
