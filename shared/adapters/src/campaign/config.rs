//! The campaign functions' configuration, read once at init, and their wiring.

use std::sync::Arc;

use aws_config::SdkConfig;
use symphony_aws::{DynamoFlagStore, SqsTransport};
use symphony_core::config::{ConfigError, EnvSource, parsed_or, required};
use symphony_core::flags::{FlagDefaults, GLOBAL_FLAG};
use symphony_core::{Dispatcher, FlagReader, HandlerRegistry};

use super::dynamo::{DynamoCampaignStore, DynamoLeadStore, DynamoSendQuota};
use crate::email::dynamo::{DynamoMailboxStore, email_ledger};
use crate::wiring::{InitError, TickSettings, WorkerQueues, registry_of};
use symphony_jobs::campaign::CAMPAIGN_FLAG;
use symphony_jobs::campaign::handler::ProcessCampaignHandler;
use symphony_jobs::campaign::work::{CampaignTick, CampaignWork, SOURCE};
use symphony_jobs::email::EMAIL_FLAG;

/// What `handle-campaign` needs, and what the legacy path of `process-campaigns` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignWorkerConfig {
    pub campaigns_table: String,
    pub leads_table: String,
    pub quotas_table: String,
    pub emails_table: String,
    pub mailboxes_table: String,
    /// New emails go onto this queue when the email job's flag routes them to symphony.
    pub email_queue_url: String,
    /// The flag table, read for the email job's flag (`FLAGS_TABLE`).
    pub flags_table: String,
    /// The environment fallbacks of the global flag and the email job's flag.
    pub email_flag_defaults: FlagDefaults,
    /// At most this many leads are handled per campaign run.
    pub leads_per_run: usize,
    pub batch_concurrency: usize,
    /// The worker's own queues, for routing its failures (`QUEUE_URL`, `DEAD_LETTER_QUEUE_URL`).
    pub queues: Option<WorkerQueues>,
    /// The queues' limits as the deployment states them: no SQS call at start.
    pub known: symphony_aws::KnownQueueLimits,
}

impl CampaignWorkerConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            campaigns_table: required(env, "CAMPAIGNS_TABLE")?,
            leads_table: required(env, "CAMPAIGN_LEADS_TABLE")?,
            quotas_table: required(env, "MAILBOX_QUOTAS_TABLE")?,
            emails_table: required(env, "EMAILS_TABLE")?,
            mailboxes_table: required(env, "MAILBOXES_TABLE")?,
            email_queue_url: required(env, "EMAIL_QUEUE_URL")?,
            flags_table: required(env, "FLAGS_TABLE")?,
            email_flag_defaults: FlagDefaults::from_env(env, &[GLOBAL_FLAG, EMAIL_FLAG])?,
            leads_per_run: parsed_or(env, "CAMPAIGN_LEADS_PER_RUN", 200_usize)?.max(1),
            batch_concurrency: parsed_or(env, "BATCH_CONCURRENCY", 2_usize)?,
            queues: WorkerQueues::from_env(env)?,
            known: symphony_aws::KnownQueueLimits::from_env(env)?,
        })
    }

    /// The registry of campaign processing; reads the email queue's limits once.
    pub async fn registry(&self, sdk: &SdkConfig) -> Result<HandlerRegistry, InitError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let dynamo_for_flags = dynamo.clone();
        let email_queue = SqsTransport::connect_known(
            aws_sdk_sqs::Client::new(sdk),
            &self.email_queue_url,
            &self.known,
        )
        .await?;
        let handler = ProcessCampaignHandler::new(
            Arc::new(DynamoCampaignStore::new(
                dynamo.clone(),
                &self.campaigns_table,
            )),
            Arc::new(DynamoLeadStore::new(dynamo.clone(), &self.leads_table)),
            Arc::new(email_ledger(dynamo.clone(), &self.emails_table)),
            // Read fresh: the run takes its mailbox's dailyLimit from it, once per run, and
            // a cached limit could let a run pass a limit just lowered.
            Arc::new(DynamoMailboxStore::new(
                dynamo.clone(),
                &self.mailboxes_table,
            )),
            Arc::new(DynamoSendQuota::new(dynamo, &self.quotas_table)),
            Dispatcher::new(Arc::new(email_queue)),
            FlagReader::new(
                Arc::new(DynamoFlagStore::new(dynamo_for_flags, &self.flags_table)),
                self.email_flag_defaults.clone(),
            ),
            self.leads_per_run,
        );
        registry_of(handler)
    }
}

/// What `process-campaigns` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignTickConfig {
    pub worker: CampaignWorkerConfig,
    /// `CAMPAIGN_QUEUE_URL`, `CAMPAIGN_TICK_LIMIT` (default 50), flags.
    pub tick: TickSettings,
}

impl CampaignTickConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            worker: CampaignWorkerConfig::from_env(env)?,
            tick: TickSettings::from_env(
                env,
                "CAMPAIGN_QUEUE_URL",
                "CAMPAIGN_TICK_LIMIT",
                50,
                CAMPAIGN_FLAG,
            )?,
        })
    }

    pub async fn tick(&self, sdk: &SdkConfig) -> Result<CampaignTick, InitError> {
        let campaigns = DynamoCampaignStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &self.worker.campaigns_table,
        );
        self.tick
            .tick(
                SOURCE,
                CampaignWork::new(Arc::new(campaigns)),
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
    fn each_missing_variable_is_named() {
        let complete = [
            ("CAMPAIGNS_TABLE", "c"),
            ("CAMPAIGN_LEADS_TABLE", "l"),
            ("MAILBOX_QUOTAS_TABLE", "q"),
            ("EMAILS_TABLE", "e"),
            ("MAILBOXES_TABLE", "m"),
            ("EMAIL_QUEUE_URL", "http://e"),
            ("FLAGS_TABLE", "f"),
            ("CAMPAIGN_QUEUE_URL", "http://c"),
        ];
        assert_eq!(
            CampaignTickConfig::from_env(&env(&complete))
                .unwrap()
                .tick
                .tick_limit,
            50
        );
        for (missing, _) in complete {
            let pairs: Vec<(&str, &str)> = complete
                .into_iter()
                .filter(|(name, _)| *name != missing)
                .collect();
            assert_eq!(
                CampaignTickConfig::from_env(&env(&pairs)).unwrap_err(),
                ConfigError::Missing {
                    name: missing.to_owned()
                }
            );
        }
    }
}
