//! The email functions' configuration, read once at init, and the wiring of adapters
//! to ports that both functions share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use symphony_core::HandlerRegistry;
use symphony_core::config::{ConfigError, EnvSource, parsed_or, required};

use super::dynamo::{DynamoMailboxStore, email_ledger};
use super::outbox::OutboxMailer;
use super::smtp::{DEFAULT_REPLY_TIMEOUT, SmtpMailer};
use crate::secrets_manager::Secrets;
use crate::wiring::{InitError, TickSettings, WorkerQueues, registry_of};
use symphony_jobs::cache::{CachedMailboxes, ROW_CACHE_TTL};
use symphony_jobs::email::EMAIL_FLAG;
use symphony_jobs::email::handler::SendEmailHandler;
use symphony_jobs::email::ports::Mailer;
use symphony_jobs::email::tick::{EmailTick, EmailWork, SOURCE};
use symphony_jobs::secrets::{LOCAL_SECRETS_SETTING, SecretRef, references_from_env};

/// How mail leaves: a real SMTP server per mailbox, or `.eml` files in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailerChoice {
    Smtp {
        /// Each step before the data's final dot (`SMTP_TIMEOUT_SECONDS`).
        timeout: Duration,
        /// The longest wait for the verdict on the data (`SMTP_REPLY_TIMEOUT_SECONDS`),
        /// cut to the invocation's deadline.
        reply_timeout: Duration,
        /// PEM of a private CA to trust besides the public roots (`SMTP_CA_FILE`).
        extra_ca_pem: Option<Vec<u8>>,
        /// Passwords read at init (`SMTP_SECRETS`); others are read on first use.
        preload: Vec<SecretRef>,
        /// Mailbox secrets must live under `<this><userId>/` (`SMTP_SECRETS_PREFIX`).
        secrets_prefix: Option<String>,
        /// `env:` password references allowed ([`LOCAL_SECRETS_SETTING`]=true; local runs only).
        allow_environment_secrets: bool,
    },
    Outbox {
        folder: PathBuf,
    },
}

/// What `handle-email` needs, and what the legacy path of `process-email-queue` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailWorkerConfig {
    pub emails_table: String,
    pub mailboxes_table: String,
    pub mailer: MailerChoice,
    /// Records of one SQS batch handled at once.
    pub batch_concurrency: usize,
    /// The worker's own queues, for routing its failures (`QUEUE_URL`, `DEAD_LETTER_QUEUE_URL`).
    pub queues: Option<WorkerQueues>,
}

impl EmailWorkerConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let mailer = match env.get("MAILER").as_deref() {
            None | Some("smtp") => MailerChoice::Smtp {
                timeout: Duration::from_secs(parsed_or(env, "SMTP_TIMEOUT_SECONDS", 10_u64)?),
                reply_timeout: Duration::from_secs(parsed_or(
                    env,
                    "SMTP_REPLY_TIMEOUT_SECONDS",
                    DEFAULT_REPLY_TIMEOUT.as_secs(),
                )?),
                extra_ca_pem: env
                    .get("SMTP_CA_FILE")
                    .map(|path| read_ca(&path))
                    .transpose()?,
                preload: references_from_env(env, "SMTP_SECRETS")?,
                allow_environment_secrets: parsed_or(env, LOCAL_SECRETS_SETTING, false)?,
                secrets_prefix: env.get("SMTP_SECRETS_PREFIX"),
            },
            Some("outbox") => MailerChoice::Outbox {
                folder: required(env, "OUTBOX_DIR")?.into(),
            },
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "MAILER".to_owned(),
                    value: other.to_owned(),
                    reason: "expected smtp or outbox".to_owned(),
                });
            }
        };
        Ok(Self {
            emails_table: required(env, "EMAILS_TABLE")?,
            mailboxes_table: required(env, "MAILBOXES_TABLE")?,
            mailer,
            batch_concurrency: parsed_or(env, "BATCH_CONCURRENCY", 4_usize)?,
            queues: WorkerQueues::from_env(env)?,
        })
    }

    /// The least time one send needs (every SMTP step, one step's wait for the verdict, the
    /// record): the worker starts no record with less left.
    pub fn send_least_time(&self) -> Duration {
        match &self.mailer {
            MailerChoice::Smtp { timeout, .. } => super::smtp::least_time(*timeout),
            MailerChoice::Outbox { .. } => symphony_core::batch::DEFAULT_DEADLINE_MARGIN,
        }
    }

    /// The handler registry of the email job, with its adapters built from `sdk`, and the
    /// passwords of `SMTP_SECRETS` read.
    pub async fn registry(&self, sdk: &SdkConfig) -> Result<HandlerRegistry, InitError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let mailer: Arc<dyn Mailer> = match &self.mailer {
            MailerChoice::Smtp {
                timeout,
                reply_timeout,
                extra_ca_pem,
                preload,
                allow_environment_secrets,
                secrets_prefix,
            } => {
                let secrets = Secrets::new(aws_sdk_secretsmanager::Client::new(sdk))
                    .allowing_environment(*allow_environment_secrets);
                secrets.preload(preload).await?;
                let mut mailer =
                    SmtpMailer::new(Arc::new(secrets), *timeout).with_reply_timeout(*reply_timeout);
                if let Some(pem) = extra_ca_pem {
                    mailer = mailer.with_extra_roots(pem.clone());
                }
                if let Some(prefix) = secrets_prefix {
                    mailer = mailer.with_secrets_prefix(prefix.clone());
                }
                Arc::new(mailer)
            }
            MailerChoice::Outbox { folder } => Arc::new(OutboxMailer::new(folder)),
        };
        let handler = SendEmailHandler::new(
            Arc::new(email_ledger(dynamo.clone(), &self.emails_table)),
            Arc::new(CachedMailboxes::new(
                Arc::new(DynamoMailboxStore::new(dynamo, &self.mailboxes_table)),
                ROW_CACHE_TTL,
            )),
            mailer,
        );
        registry_of(handler)
    }
}

/// Reads and checks the PEM file of `SMTP_CA_FILE`.
fn read_ca(path: &str) -> Result<Vec<u8>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "SMTP_CA_FILE".to_owned(),
        value: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| invalid(format!("cannot be read: {e}")))?;
    lettre::transport::smtp::client::Certificate::from_pem(&pem)
        .map_err(|e| invalid(format!("is not a PEM certificate: {e}")))?;
    Ok(pem)
}

/// What `process-email-queue` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailTickConfig {
    pub worker: EmailWorkerConfig,
    /// A claim older than this is abandoned and taken over (`CLAIM_LEASE_SECONDS`, 3600).
    pub claim_lease: Duration,
    /// `EMAIL_QUEUE_URL`, `EMAIL_TICK_LIMIT` (default 100), flags.
    pub tick: TickSettings,
}

impl EmailTickConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            worker: EmailWorkerConfig::from_env(env)?,
            claim_lease: Duration::from_secs(parsed_or(env, "CLAIM_LEASE_SECONDS", 3_600_u64)?),
            tick: TickSettings::from_env(
                env,
                "EMAIL_QUEUE_URL",
                "EMAIL_TICK_LIMIT",
                100,
                EMAIL_FLAG,
            )?,
        })
    }

    /// Builds the tick; reads the queue's attributes once, so it needs the queue to exist.
    pub async fn tick(&self, sdk: &SdkConfig) -> Result<EmailTick, InitError> {
        let emails = email_ledger(
            aws_sdk_dynamodb::Client::new(sdk),
            &self.worker.emails_table,
        );
        self.tick
            .tick(
                SOURCE,
                EmailWork::new(Arc::new(emails), EMAIL_FLAG, self.claim_lease),
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

    const COMPLETE: [(&str, &str); 4] = [
        ("EMAILS_TABLE", "emails"),
        ("MAILBOXES_TABLE", "mailboxes"),
        ("FLAGS_TABLE", "flags"),
        ("EMAIL_QUEUE_URL", "http://q"),
    ];

    #[test]
    fn a_complete_environment_parses_with_defaults() {
        let config = EmailTickConfig::from_env(&env(&COMPLETE)).unwrap();
        assert_eq!(config.tick.tick_limit, 100);
        assert_eq!(
            config.worker.mailer,
            MailerChoice::Smtp {
                timeout: Duration::from_secs(10),
                reply_timeout: Duration::from_secs(600),
                extra_ca_pem: None,
                preload: Vec::new(),
                allow_environment_secrets: false,
                secrets_prefix: None,
            }
        );
    }

    #[test]
    fn each_missing_variable_is_named() {
        for missing in COMPLETE.map(|(name, _)| name) {
            let pairs: Vec<(&str, &str)> = COMPLETE
                .into_iter()
                .filter(|(name, _)| *name != missing)
                .collect();
            let error = EmailTickConfig::from_env(&env(&pairs)).unwrap_err();
            assert_eq!(
                error,
                ConfigError::Missing {
                    name: missing.to_owned()
                }
            );
        }
    }

    #[test]
    fn an_outbox_needs_its_folder_and_bad_values_are_named() {
        let mut pairs = COMPLETE.to_vec();
        pairs.push(("MAILER", "outbox"));
        let error = EmailTickConfig::from_env(&env(&pairs)).unwrap_err();
        assert_eq!(
            error,
            ConfigError::Missing {
                name: "OUTBOX_DIR".to_owned()
            }
        );
        let mut pairs = COMPLETE.to_vec();
        pairs.push(("SYMPHONY_EMAIL_QUEUE_ENABLED", "perhaps"));
        assert!(
            EmailTickConfig::from_env(&env(&pairs))
                .unwrap_err()
                .to_string()
                .contains("SYMPHONY_EMAIL_QUEUE_ENABLED")
        );
        let mut pairs = COMPLETE.to_vec();
        pairs.push(("EMAIL_TICK_LIMIT", "0"));
        assert!(
            EmailTickConfig::from_env(&env(&pairs))
                .unwrap_err()
                .to_string()
                .contains("EMAIL_TICK_LIMIT")
        );
    }
}
