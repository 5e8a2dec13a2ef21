//! References to secrets. A record names where its secret lives
//! (`secretsmanager:smtp/mailbox-1`, or `env:SMTP_PASSWORD`); the secret itself never
//! travels in a message, an error or a log line.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use symphony_core::config::{ConfigError, EnvSource};
use symphony_core::{BoxError, FailureKind, Retryable};

/// Where a secret lives.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// A secret in AWS Secrets Manager (its name or ARN), read once and cached.
    SecretsManager(String),
    /// An environment variable of the function (a local run, a test).
    Env(String),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretsManager(id) => write!(f, "secretsmanager:{id}"),
            Self::Env(name) => write!(f, "env:{name}"),
        }
    }
}

impl FromStr for SecretRef {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("secretsmanager", id)) if !id.is_empty() => {
                Ok(Self::SecretsManager(id.to_owned()))
            }
            Some(("env", name)) if !name.is_empty() => Ok(Self::Env(name.to_owned())),
            // The reference, not a value: a password pasted here by mistake must not be echoed.
            _ => Err("a secret reference must be secretsmanager:ID or env:NAME".to_owned()),
        }
    }
}

/// A secret's value. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {reference:?} is not set")]
    NotFound { reference: SecretRef },
    #[error(
        "secret {reference:?} is read from the environment, which only a local run allows ({LOCAL_SECRETS_SETTING}=true); store it in Secrets Manager"
    )]
    EnvironmentRefused { reference: SecretRef },
    #[error("secret {reference:?} cannot be read")]
    Unreadable {
        reference: SecretRef,
        #[source]
        source: BoxError,
    },
}

impl Retryable for SecretError {
    /// A secret that is missing or cannot be read is the deployment's fault, never a
    /// unit's: units wait for it to be fixed (and the fault is reported loudly).
    fn is_retryable(&self) -> bool {
        true
    }

    fn failure_kind(&self) -> FailureKind {
        FailureKind::Infrastructure
    }
}

/// Port: resolves a reference to its value.
#[async_trait]
pub trait SecretResolver: Send + Sync {
    async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError>;
    /// Drops a cached value, so the next [`Self::resolve`] reads it afresh (a login was
    /// refused with it: it may have been rotated).
    async fn forget(&self, _reference: &SecretRef) {}
}

/// Parses a comma-separated list of references (`SMTP_SECRETS`); a bad entry is named by
/// its position, never echoed, as it may be a value pasted by mistake.
pub fn references_from_env(env: &dyn EnvSource, name: &str) -> Result<Vec<SecretRef>, ConfigError> {
    let Some(list) = env.get(name) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .map(|(index, entry)| {
            entry.parse().map_err(|reason| ConfigError::Invalid {
                name: name.to_owned(),
                value: format!("entry {}", index + 1),
                reason,
            })
        })
        .collect()
}

/// The setting that lets `env:NAME` references resolve: for local runs only, and never
/// set by `template.yaml` (a test checks it). In Lambda a password lives in Secrets
/// Manager, where access is granted and audited, not in a function's configuration.
pub const LOCAL_SECRETS_SETTING: &str = "SYMPHONY_LOCAL_SECRETS";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_reject_other_forms() {
        assert_eq!(
            "env:SMTP_PASSWORD".parse::<SecretRef>(),
            Ok(SecretRef::Env("SMTP_PASSWORD".into()))
        );
        assert_eq!(
            "secretsmanager:smtp/mailbox-1".parse::<SecretRef>(),
            Ok(SecretRef::SecretsManager("smtp/mailbox-1".into()))
        );
        let error = "hunter2".parse::<SecretRef>().unwrap_err();
        assert!(
            !error.contains("hunter2"),
            "a mistaken value is never echoed: {error}"
        );
        assert!("env:".parse::<SecretRef>().is_err());
    }

    #[test]
    fn a_list_of_references_parses_and_names_a_bad_entry_by_position() {
        use symphony_core::config::from_pairs;
        let env = from_pairs(&[(
            "SMTP_SECRETS",
            " secretsmanager:app/smtp/a , env:SMTP_PASSWORD,,",
        )]);
        assert_eq!(
            references_from_env(&env, "SMTP_SECRETS"),
            Ok(vec![
                SecretRef::SecretsManager("app/smtp/a".into()),
                SecretRef::Env("SMTP_PASSWORD".into())
            ])
        );
        assert_eq!(
            references_from_env(&from_pairs(&[]), "SMTP_SECRETS"),
            Ok(Vec::new())
        );
        let error = references_from_env(
            &from_pairs(&[("SMTP_SECRETS", "env:A,hunter2")]),
            "SMTP_SECRETS",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("SMTP_SECRETS") && error.contains("entry 2"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_secret_never_prints_its_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
