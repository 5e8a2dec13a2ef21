//! `process-sms-drip`: replaces the SMS drip cron. At each tick it claims every
//! enrollment whose next step is due and dispatches one `SmsDripMessage` for it to the SMS
//! queue (symphony path), or sends it inline (legacy path).

use aws_config::SdkConfig;
use symphony_adapters::job::{Job, SmsJob, scheduled_function};
use symphony_adapters::sms::SmsTickConfig;
use symphony_adapters::wiring::InitError;
use symphony_aws::ScheduledFunction;

pub type ProcessSmsDrip = ScheduledFunction<<SmsJob as Job>::Work>;

pub async fn function(
    config: &SmsTickConfig,
    sdk: &SdkConfig,
) -> Result<ProcessSmsDrip, InitError> {
    scheduled_function::<SmsJob>(config, sdk).await
}
