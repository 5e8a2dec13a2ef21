//! A job, named once: its flag, its functions' names, and how each of its two functions
//! is built from its environment. The six functions' entry points are the same two
//! generic ones ([`run_scheduled`], [`run_worker`]) over the three jobs.

use async_trait::async_trait;
use aws_config::SdkConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use symphony_aws::{ScheduledFunction, SqsWorker};
use symphony_core::config::{ConfigError, EnvSource, ProcessEnv};
use symphony_core::{Tick, WorkSource};

use crate::campaign::{CampaignTickConfig, CampaignWorkerConfig};
use crate::email::{EmailTickConfig, EmailWorkerConfig};
use crate::sms::{SmsTickConfig, SmsWorkerConfig};
use crate::wiring::{InitError, metrics_sink, sqs_worker};

/// One job: a scheduled function that finds due work (`process-<job>`) and a worker that
/// handles its messages (`handle-<job>`).
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// The job's flag in the flag table.
    const FLAG: &'static str;
    /// As in queue names and metrics: `email`, `campaign`, `sms`.
    const NAME: &'static str;
    /// The error type a failed tick raises, in its logs and the metric filters.
    const TICK_FAILED: &'static str;

    /// Where the tick finds due units.
    type Work: WorkSource + 'static;
    type WorkerConfig: Send + Sync;
    type TickConfig: Send + Sync;

    fn worker_config(env: &dyn EnvSource) -> Result<Self::WorkerConfig, ConfigError>;
    fn tick_config(env: &dyn EnvSource) -> Result<Self::TickConfig, ConfigError>;

    /// The worker, its registry holding the job's handler.
    async fn worker(config: &Self::WorkerConfig, sdk: &SdkConfig) -> Result<SqsWorker, InitError>;
    /// The tick, whose legacy path runs the same handler inline.
    async fn tick(
        config: &Self::TickConfig,
        sdk: &SdkConfig,
    ) -> Result<Tick<Self::Work>, InitError>;
}

/// The scheduled function of `J`.
pub async fn scheduled_function<J: Job>(
    config: &J::TickConfig,
    sdk: &SdkConfig,
) -> Result<ScheduledFunction<J::Work>, InitError> {
    Ok(ScheduledFunction::new(
        J::tick(config, sdk).await?,
        J::TICK_FAILED,
    ))
}

/// `main` of `J`'s scheduled function: logs, configuration from the environment (a
/// missing or bad variable stops the start, named), the function, the runtime loop.
pub async fn run_scheduled<J: Job>() -> Result<(), lambda_runtime::Error> {
    symphony_aws::telemetry::init();
    let config = J::tick_config(&ProcessEnv)?;
    let sdk = symphony_aws::load_sdk_config().await;
    let mut function = scheduled_function::<J>(&config, &sdk).await?;
    if let Some(sink) = metrics_sink(&ProcessEnv, &sdk, true) {
        function = function.with_metrics(J::NAME, sink);
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| function.handle(event))).await
}

/// `main` of `J`'s worker, as [`run_scheduled`].
pub async fn run_worker<J: Job>() -> Result<(), lambda_runtime::Error> {
    symphony_aws::telemetry::init();
    let config = J::worker_config(&ProcessEnv)?;
    let sdk = symphony_aws::load_sdk_config().await;
    let mut function = J::worker(&config, &sdk).await?;
    if let Some(sink) = metrics_sink(&ProcessEnv, &sdk, true) {
        function = function.with_metrics(J::NAME, sink);
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| function.handle(event))).await
}

/// The email queue: `process-email-queue` and `handle-email`.
#[derive(Debug, Clone, Copy)]
pub struct EmailJob;

#[async_trait]
impl Job for EmailJob {
    const FLAG: &'static str = symphony_jobs::email::EMAIL_FLAG;
    const NAME: &'static str = "email";
    const TICK_FAILED: &'static str = "EmailTickFailed";
    type Work = symphony_jobs::email::EmailWork;
    type WorkerConfig = EmailWorkerConfig;
    type TickConfig = EmailTickConfig;

    fn worker_config(env: &dyn EnvSource) -> Result<EmailWorkerConfig, ConfigError> {
        EmailWorkerConfig::from_env(env)
    }

    fn tick_config(env: &dyn EnvSource) -> Result<EmailTickConfig, ConfigError> {
        EmailTickConfig::from_env(env)
    }

    async fn worker(config: &EmailWorkerConfig, sdk: &SdkConfig) -> Result<SqsWorker, InitError> {
        let registry = config.registry(sdk).await?;
        let worker = sqs_worker(
            registry,
            config.batch_concurrency,
            config.queues.as_ref(),
            sdk,
        );
        // No record starts without the time one send, its verdict and its record need.
        Ok(worker.await?.with_deadline_margin(config.send_least_time()))
    }

    async fn tick(
        config: &EmailTickConfig,
        sdk: &SdkConfig,
    ) -> Result<Tick<Self::Work>, InitError> {
        config.tick(sdk).await
    }
}

/// The SMS drip: `process-sms-drip` and `handle-sms`.
#[derive(Debug, Clone, Copy)]
pub struct SmsJob;

#[async_trait]
impl Job for SmsJob {
    const FLAG: &'static str = symphony_jobs::sms::SMS_FLAG;
    const NAME: &'static str = "sms";
    const TICK_FAILED: &'static str = "SmsDripTickFailed";
    type Work = symphony_jobs::sms::SmsWork;
    type WorkerConfig = SmsWorkerConfig;
    type TickConfig = SmsTickConfig;

    fn worker_config(env: &dyn EnvSource) -> Result<SmsWorkerConfig, ConfigError> {
        SmsWorkerConfig::from_env(env)
    }

    fn tick_config(env: &dyn EnvSource) -> Result<SmsTickConfig, ConfigError> {
        SmsTickConfig::from_env(env)
    }

    async fn worker(config: &SmsWorkerConfig, sdk: &SdkConfig) -> Result<SqsWorker, InitError> {
        let registry = config.registry(sdk).await?;
        let worker = sqs_worker(
            registry,
            config.batch_concurrency,
            config.queues.as_ref(),
            sdk,
        );
        // No record starts without the time one SNS attempt and its record need.
        Ok(worker
            .await?
            .with_deadline_margin(crate::sms::sns::SEND_TIME))
    }

    async fn tick(config: &SmsTickConfig, sdk: &SdkConfig) -> Result<Tick<Self::Work>, InitError> {
        config.tick(sdk).await
    }
}

/// Campaign processing: `process-campaigns` and `handle-campaign`.
#[derive(Debug, Clone, Copy)]
pub struct CampaignJob;

#[async_trait]
impl Job for CampaignJob {
    const FLAG: &'static str = symphony_jobs::campaign::CAMPAIGN_FLAG;
    const NAME: &'static str = "campaign";
    const TICK_FAILED: &'static str = "CampaignTickFailed";
    type Work = symphony_jobs::campaign::CampaignWork;
    type WorkerConfig = CampaignWorkerConfig;
    type TickConfig = CampaignTickConfig;

    fn worker_config(env: &dyn EnvSource) -> Result<CampaignWorkerConfig, ConfigError> {
        CampaignWorkerConfig::from_env(env)
    }

    fn tick_config(env: &dyn EnvSource) -> Result<CampaignTickConfig, ConfigError> {
        CampaignTickConfig::from_env(env)
    }

    async fn worker(
        config: &CampaignWorkerConfig,
        sdk: &SdkConfig,
    ) -> Result<SqsWorker, InitError> {
        // A campaign message only writes to DynamoDB, and its run stops starting leads
        // 10 s before the deadline by itself: the batch processor's default margin.
        let registry = config.registry(sdk).await?;
        Ok(sqs_worker(
            registry,
            config.batch_concurrency,
            config.queues.as_ref(),
            sdk,
        )
        .await?)
    }

    async fn tick(
        config: &CampaignTickConfig,
        sdk: &SdkConfig,
    ) -> Result<Tick<Self::Work>, InitError> {
        config.tick(sdk).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error type a failed tick raises is part of the contract operators alarm on.
    #[test]
    fn each_job_s_tick_failure_is_the_one_the_contract_names() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/contracts.md");
        let contract = std::fs::read_to_string(path).unwrap();
        for name in [
            EmailJob::TICK_FAILED,
            SmsJob::TICK_FAILED,
            CampaignJob::TICK_FAILED,
        ] {
            assert!(
                contract.contains(&format!("`{name}`")),
                "{name} is not in the contract"
            );
        }
        let flags = [EmailJob::FLAG, SmsJob::FLAG, CampaignJob::FLAG];
        assert!(
            flags.iter().all(|flag| contract.contains(flag)),
            "{flags:?}"
        );
    }
}
