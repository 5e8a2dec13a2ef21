//! `process-email-queue`: replaces the `/api/cron/process-email-queue` route. At each
//! EventBridge tick it takes the due emails, claims each one, and sends it to the email
//! queue (symphony path) or straight through the handler (legacy path), as the flags say.

use aws_config::SdkConfig;
use symphony_adapters::email::EmailTickConfig;
use symphony_adapters::job::{EmailJob, Job, scheduled_function};
use symphony_adapters::wiring::InitError;
use symphony_aws::ScheduledFunction;

pub type ProcessEmailQueue = ScheduledFunction<<EmailJob as Job>::Work>;

pub async fn function(
    config: &EmailTickConfig,
    sdk: &SdkConfig,
) -> Result<ProcessEmailQueue, InitError> {
    scheduled_function::<EmailJob>(config, sdk).await
}
