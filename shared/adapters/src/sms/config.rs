//! The SMS functions' configuration, read once at init, and their wiring.

use std::sync::Arc;

use aws_config::SdkConfig;
use symphony_core::HandlerRegistry;
use symphony_core::config::{ConfigError, EnvSource, parsed_or, required};

use super::dynamo::{DynamoOptOuts, DynamoSequenceStore, enrollment_ledger};
use super::sns::SnsSender;
use crate::wiring::{InitError, TickSettings, WorkerQueues, registry_of};
use symphony_jobs::sms::SMS_FLAG;
use symphony_jobs::sms::handler::SendSmsHandler;
use symphony_jobs::sms::work::{SOURCE, SmsTick, SmsWork};
use symphony_jobs::window::HourWindow;

/// What `handle-sms` needs, and what the legacy path of `process-sms-drip` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsWorkerConfig {
    pub enrollments_table: String,
    pub sequences_table: String,
    pub opt_outs_table: String,
    /// Texts go out only within these local hours (quiet hours are the rest).
    pub allowed_hours: HourWindow,
    pub batch_concurrency: usize,
    /// The worker's own queues, for routing its failures (`QUEUE_URL`, `DEAD_LETTER_QUEUE_URL`).
    pub queues: Option<WorkerQueues>,
}

impl SmsWorkerConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let quiet_start = parsed_or(env, "SMS_QUIET_START_HOUR", 21_u32)?;
        let quiet_end = parsed_or(env, "SMS_QUIET_END_HOUR", 8_u32)?;
        let allowed_hours =
            HourWindow::new(quiet_end, quiet_start).map_err(|reason| ConfigError::Invalid {
                name: "SMS_QUIET_START_HOUR".to_owned(),
                value: format!("{quiet_start} (end {quiet_end})"),
                reason,
            })?;
        Ok(Self {
            enrollments_table: required(env, "SMS_ENROLLMENTS_TABLE")?,
            sequences_table: required(env, "SMS_SEQUENCES_TABLE")?,
            opt_outs_table: required(env, "SMS_OPT_OUTS_TABLE")?,
            allowed_hours,
            batch_concurrency: parsed_or(env, "BATCH_CONCURRENCY", 4_usize)?,
            queues: WorkerQueues::from_env(env)?,
        })
    }

    pub async fn registry(&self, sdk: &SdkConfig) -> Result<HandlerRegistry, InitError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let handler = SendSmsHandler::new(
            Arc::new(enrollment_ledger(dynamo.clone(), &self.enrollments_table)),
            // Read fresh for every text: a cached sequence that was since lengthened
            // would end its enrollments at the old last step.
            Arc::new(DynamoSequenceStore::new(
                dynamo.clone(),
                &self.sequences_table,
            )),
            Arc::new(DynamoOptOuts::new(dynamo, &self.opt_outs_table)),
            Arc::new(SnsSender::new(aws_sdk_sns::Client::new(sdk))),
            self.allowed_hours,
        );
        registry_of(handler)
    }
}

/// What `process-sms-drip` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsTickConfig {
    pub worker: SmsWorkerConfig,
    /// A claim older than this is abandoned and taken over (`CLAIM_LEASE_SECONDS`, 3600).
    pub claim_lease: std::time::Duration,
    /// `SMS_QUEUE_URL`, `SMS_TICK_LIMIT` (default 100), flags.
    pub tick: TickSettings,
}

impl SmsTickConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            worker: SmsWorkerConfig::from_env(env)?,
            claim_lease: std::time::Duration::from_secs(parsed_or(
                env,
                "CLAIM_LEASE_SECONDS",
                3_600_u64,
            )?),
            tick: TickSettings::from_env(env, "SMS_QUEUE_URL", "SMS_TICK_LIMIT", 100, SMS_FLAG)?,
        })
    }

    pub async fn tick(&self, sdk: &SdkConfig) -> Result<SmsTick, InitError> {
        let enrollments = enrollment_ledger(
            aws_sdk_dynamodb::Client::new(sdk),
            &self.worker.enrollments_table,
        );
        self.tick
            .tick(
                SOURCE,
                SmsWork::new(Arc::new(enrollments), SMS_FLAG, self.claim_lease),
                self.worker.registry(sdk).await?,
                sdk,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_core::config::from_pairs as env;

    #[test]
    fn quiet_hours_default_to_nine_pm_until_eight_am() {
        let config = SmsWorkerConfig::from_env(&env(&[
            ("SMS_ENROLLMENTS_TABLE", "e"),
            ("SMS_SEQUENCES_TABLE", "s"),
            ("SMS_OPT_OUTS_TABLE", "o"),
        ]))
        .unwrap();
        assert_eq!(config.allowed_hours, HourWindow::new(8, 21).unwrap());
        let error = SmsWorkerConfig::from_env(&env(&[("SMS_ENROLLMENTS_TABLE", "e")])).unwrap_err();
        assert_eq!(
            error,
            ConfigError::Missing {
                name: "SMS_SEQUENCES_TABLE".into()
            }
        );
    }
}
