//! `process-sms-drip`: replaces the SMS drip cron. At each tick it claims every
//! enrollment whose next step is due and dispatches one `SmsDripMessage` for it to the SMS
//! queue (symphony path), or sends it inline (legacy path).

use aws_config::SdkConfig;
use symphony_adapters::sms::SmsTickConfig;
use symphony_aws::{AwsError, ScheduledFunction};
use symphony_jobs::sms::SmsWork;

pub type ProcessSmsDrip = ScheduledFunction<SmsWork>;

pub async fn function(config: &SmsTickConfig, sdk: &SdkConfig) -> Result<ProcessSmsDrip, AwsError> {
    Ok(ScheduledFunction::new(
        config.tick(sdk).await?,
        "SmsDripTickFailed",
    ))
}
