//! What the functions share: for a scheduled one, the flag table, its queue, its
//! per-tick cap and flag fallbacks; for a worker, its queues and retry policy.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use symphony_aws::{
    AwsError, DynamoFlagStore, KnownQueueLimits, SqsFailureRoutes, SqsHeldLetters, SqsTransport,
    SqsWorker,
};
use symphony_core::config::{ConfigError, EnvSource, parsed_or, required};
use symphony_core::flags::{FlagDefaults, GLOBAL_FLAG};
use symphony_core::handler::DuplicateHandler;
use symphony_core::{
    Dispatcher, FlagReader, HandlerRegistry, Message, RetryPolicy, SyncTransport, Tick,
    TypedHandler, WorkSource,
};

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A secret the configuration names for reading at start is missing or unreadable.
    #[error(transparent)]
    Secret(#[from] symphony_jobs::secrets::SecretError),
    /// Two handlers claim one message type: the registry would route one of them nowhere.
    #[error(transparent)]
    Registration(#[from] DuplicateHandler),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickSettings {
    pub flags_table: String,
    /// The job's queue (the symphony path).
    pub queue_url: String,
    /// At most this many units are taken per tick.
    pub tick_limit: usize,
    pub flag_defaults: FlagDefaults,
    /// The job's dead-letter queue (`LEGACY_DEAD_LETTER_QUEUE_URL`), for the units the legacy path
    /// holds (unknown outcomes); without it, their records alone hold the evidence.
    pub dead_letter_queue_url: Option<String>,
    /// Where held units' dead letters are indexed (`OPERATIONS_TABLE`).
    pub operations_table: Option<String>,
    /// The queues' limits as the deployment states them: no SQS call at start.
    pub known: KnownQueueLimits,
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
            dead_letter_queue_url: env.get("LEGACY_DEAD_LETTER_QUEUE_URL"),
            operations_table: env.get("OPERATIONS_TABLE"),
            known: KnownQueueLimits::from_env(env)?,
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
    ) -> Result<Tick<S>, InitError> {
        let queue = SqsTransport::connect_known(
            aws_sdk_sqs::Client::new(sdk),
            &self.queue_url,
            &self.known,
        )
        .await?;
        let flags = DynamoFlagStore::new(aws_sdk_dynamodb::Client::new(sdk), &self.flags_table);
        let tick = Tick::new(
            name,
            source,
            FlagReader::new(Arc::new(flags), self.flag_defaults.clone()),
            Dispatcher::new(Arc::new(queue)),
            Dispatcher::new(Arc::new(SyncTransport::new(Arc::new(legacy)))),
            self.tick_limit,
        );
        let Some(url) = &self.dead_letter_queue_url else {
            return Ok(tick);
        };
        // Without its DLQ a tick still sends: held units keep their evidence in their
        // records, and the fault is said where the alarms look.
        match SqsHeldLetters::connect_known(aws_sdk_sqs::Client::new(sdk), url, &self.known).await {
            Ok(mut letters) => {
                if let Some(table) = &self.operations_table {
                    letters = letters.with_index(symphony_aws::OperationsTable::new(
                        aws_sdk_dynamodb::Client::new(sdk),
                        table,
                    ));
                }
                Ok(tick.with_held_letters(Arc::new(letters)))
            }
            Err(error) => {
                tracing::error!(error = %symphony_core::error::chain(&error), "INFRASTRUCTURE FAULT: the dead-letter queue for held units cannot be read; going on without it");
                Ok(tick)
            }
        }
    }
}

/// A registry holding one job's handler. A registration that fails stops the start.
/// Where a function's figures go: Embedded Metric Format lines on stdout when `emf` (in
/// Lambda), and the operations table named by `OPERATIONS_TABLE` when it is set. `None`
/// when neither.
pub fn metrics_sink(
    env: &dyn EnvSource,
    sdk: &SdkConfig,
    emf: bool,
) -> Option<Arc<dyn symphony_core::MetricsSink>> {
    let mut sinks: Vec<Arc<dyn symphony_core::MetricsSink>> = Vec::new();
    if emf {
        let namespace = env
            .get("METRICS_NAMESPACE")
            .unwrap_or_else(|| symphony_aws::telemetry::DEFAULT_NAMESPACE.to_owned());
        sinks.push(Arc::new(symphony_aws::telemetry::EmfSink::stdout(
            namespace,
        )));
    }
    if let Some(table) = env.get("OPERATIONS_TABLE") {
        sinks.push(Arc::new(symphony_aws::OperationsTable::new(
            aws_sdk_dynamodb::Client::new(sdk),
            table,
        )));
    }
    match sinks.len() {
        0 => None,
        1 => sinks.pop(),
        _ => Some(Arc::new(symphony_core::metrics::Fanout(sinks))),
    }
}

pub fn registry_of<M: Message, H: TypedHandler<M> + 'static>(
    handler: H,
) -> Result<HandlerRegistry, InitError> {
    Ok(HandlerRegistry::new().register(handler)?)
}

/// A worker's own queue and dead-letter queue, and its retry policy: with them, a
/// permanent failure goes to the DLQ at once and a retryable one backs off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerQueues {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    pub retry: RetryPolicy,
    /// Where dead letters are indexed (`OPERATIONS_TABLE`).
    pub operations_table: Option<String>,
    /// The queues' limits as the deployment states them: no SQS call at start.
    pub known: KnownQueueLimits,
}

impl WorkerQueues {
    /// `QUEUE_URL` and `DEAD_LETTER_QUEUE_URL` (both or neither), `RETRY_BASE_SECONDS`
    /// (default 10) and `RETRY_MAX_SECONDS` (default 900).
    pub fn from_env(env: &dyn EnvSource) -> Result<Option<Self>, ConfigError> {
        let (queue_url, dead_letter_queue_url) =
            match (env.get("QUEUE_URL"), env.get("DEAD_LETTER_QUEUE_URL")) {
                (None, None) => return Ok(None),
                (Some(queue), Some(dead)) => (queue, dead),
                (Some(_), None) => {
                    return Err(ConfigError::Missing {
                        name: "DEAD_LETTER_QUEUE_URL".to_owned(),
                    });
                }
                (None, Some(_)) => {
                    return Err(ConfigError::Missing {
                        name: "QUEUE_URL".to_owned(),
                    });
                }
            };
        let base = parsed_or(env, "RETRY_BASE_SECONDS", 10_u64)?;
        let cap = parsed_or(env, "RETRY_MAX_SECONDS", 900_u64)?;
        // SQS ends a message's invisibility at most 12 hours after it was received.
        let most = symphony_aws::failures::MAX_RETRY_DELAY.as_secs();
        if base == 0 || cap < base || cap > most {
            return Err(ConfigError::Invalid {
                name: "RETRY_MAX_SECONDS".to_owned(),
                value: format!("{cap} (base {base})"),
                reason: format!("need 0 < RETRY_BASE_SECONDS <= RETRY_MAX_SECONDS <= {most}"),
            });
        }
        Ok(Some(Self {
            queue_url,
            dead_letter_queue_url,
            retry: RetryPolicy {
                base: Duration::from_secs(base),
                cap: Duration::from_secs(cap),
                // Set from the queue's redrive policy when the worker starts.
                max_attempts: None,
            },
            operations_table: env.get("OPERATIONS_TABLE"),
            known: KnownQueueLimits::from_env(env)?,
        }))
    }
}

/// An SQS worker over `registry`; with `queues`, its failures are routed (read once: the
/// dead-letter queue's size limit).
pub async fn sqs_worker(
    registry: HandlerRegistry,
    concurrency: usize,
    queues: Option<&WorkerQueues>,
    sdk: &SdkConfig,
) -> Result<SqsWorker, AwsError> {
    let mut worker = SqsWorker::new(registry, concurrency);
    let Some(queues) = queues else {
        return Ok(worker);
    };
    // A FIFO queue's groups must keep their order.
    if symphony_aws::sqs::is_fifo_queue(&queues.queue_url) {
        worker = worker.fifo();
    }
    let mut routes = SqsFailureRoutes::connect_known(
        aws_sdk_sqs::Client::new(sdk),
        &queues.queue_url,
        &queues.dead_letter_queue_url,
        &queues.known,
    )
    .await?;
    if let Some(table) = &queues.operations_table {
        routes = routes.with_index(symphony_aws::OperationsTable::new(
            aws_sdk_dynamodb::Client::new(sdk),
            table,
        ));
    }
    let policy = RetryPolicy {
        max_attempts: symphony_core::FailureRoutes::max_receive_count(&routes).await,
        ..queues.retry
    };
    Ok(worker.with_failure_routes(Arc::new(routes), policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_core::config::from_pairs;

    fn queues_with_cap(cap: &str) -> Result<Option<WorkerQueues>, ConfigError> {
        WorkerQueues::from_env(&from_pairs(&[
            ("QUEUE_URL", "http://q"),
            ("DEAD_LETTER_QUEUE_URL", "http://dlq"),
            ("RETRY_MAX_SECONDS", cap),
        ]))
    }

    #[test]
    fn a_backoff_sqs_would_refuse_is_refused_at_start_naming_the_limit() {
        // 12 hours from receipt is SQS's limit; the record may be 15 minutes old already
        let error = queues_with_cap("43200").unwrap_err();
        assert!(error.to_string().contains("42300"), "{error}");
        let accepted = queues_with_cap("42300").unwrap().unwrap();
        assert_eq!(accepted.retry.cap, Duration::from_secs(42_300));
    }
}
