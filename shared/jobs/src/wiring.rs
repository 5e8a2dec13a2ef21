//! What every scheduled function's configuration shares: the flag table, its queue, its
//! per-tick cap and its flag fallbacks, and how a tick is put together from them.

use std::sync::Arc;

use aws_config::SdkConfig;
use symphony_aws::{AwsError, DynamoFlagStore, SqsTransport};
use symphony_core::config::{ConfigError, EnvSource, parsed_or, required};
use symphony_core::flags::{FlagDefaults, GLOBAL_FLAG};
use symphony_core::{
    Dispatcher, FlagReader, HandlerRegistry, Message, SyncTransport, Tick, TypedHandler, WorkSource,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickSettings {
    pub flags_table: String,
    /// The job's queue (the symphony path).
    pub queue_url: String,
    /// At most this many units are taken per tick.
    pub tick_limit: usize,
    pub flag_defaults: FlagDefaults,
}

impl TickSettings {
    /// Reads `FLAGS_TABLE`, the job's queue variable, its tick-limit variable (at least 1)
    /// and the environment fallbacks of the global flag and the job's flag.
    pub fn from_env(
        env: &dyn EnvSource,
        queue_variable: &str,
        limit_variable: &str,
        default_limit: usize,
        job_flag: &str,
    ) -> Result<Self, ConfigError> {
        let tick_limit = parsed_or(env, limit_variable, default_limit)?;
        if tick_limit == 0 {
            return Err(ConfigError::Invalid {
                name: limit_variable.to_owned(),
                value: "0".to_owned(),
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(Self {
            flags_table: required(env, "FLAGS_TABLE")?,
            queue_url: required(env, queue_variable)?,
            tick_limit,
            flag_defaults: FlagDefaults::from_env(env, &[GLOBAL_FLAG, job_flag])?,
        })
    }

    /// A tick over `source`: the queue for the symphony path (its limits read once), and
    /// `legacy` run inline for the legacy path.
    pub async fn tick<S: WorkSource>(
        &self,
        name: &'static str,
        source: S,
        legacy: HandlerRegistry,
        sdk: &SdkConfig,
    ) -> Result<Tick<S>, AwsError> {
        let queue = SqsTransport::connect(aws_sdk_sqs::Client::new(sdk), &self.queue_url).await?;
        let flags = DynamoFlagStore::new(aws_sdk_dynamodb::Client::new(sdk), &self.flags_table);
        Ok(Tick::new(
            name,
            source,
            FlagReader::new(Arc::new(flags), self.flag_defaults.clone()),
            Dispatcher::new(Arc::new(queue)),
            Dispatcher::new(Arc::new(SyncTransport::new(Arc::new(legacy)))),
            self.tick_limit,
        ))
    }
}

/// A registry holding one job's handler.
pub fn registry_of<M: Message, H: TypedHandler<M> + 'static>(handler: H) -> HandlerRegistry {
    // A fresh registry cannot already hold M's type.
    HandlerRegistry::new()
        .register(handler)
        .unwrap_or_else(|_| HandlerRegistry::new())
}
