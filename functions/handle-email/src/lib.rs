//! `handle-email`: the SQS worker of the email queue. Each record is handled on its own
//! and only the failed ones are reported back (`ReportBatchItemFailures`), so SQS retries
//! them and, after `maxReceiveCount` receives, moves them to the dead-letter queue.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use symphony_core::{BatchProcessor, HandlerContext, Route};
use symphony_jobs::email::EmailWorkerConfig;

#[derive(Debug, Clone)]
pub struct HandleEmail {
    processor: BatchProcessor,
}

impl HandleEmail {
    pub fn new(config: &EmailWorkerConfig, sdk: &SdkConfig) -> Self {
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
