//! `handle-campaign`: the SQS worker of the campaign queue. Each `CampaignProcessingMessage`
//! turns the campaign's due leads into emails on the email queue; failed records are
//! reported back (`ReportBatchItemFailures`).

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use symphony_aws::AwsError;
use symphony_core::{BatchProcessor, HandlerContext, Route};
use symphony_jobs::campaign::CampaignWorkerConfig;

#[derive(Debug, Clone)]
pub struct HandleCampaign {
    processor: BatchProcessor,
}

impl HandleCampaign {
    pub async fn new(config: &CampaignWorkerConfig, sdk: &SdkConfig) -> Result<Self, AwsError> {
        Ok(Self {
            processor: BatchProcessor::new(
                Arc::new(config.registry(sdk).await?),
                config.batch_concurrency,
            ),
        })
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
