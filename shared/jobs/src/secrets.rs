//! References to secrets. A record names where its secret lives (`env:SMTP_PASSWORD`);
//! the secret itself never travels in a message, an error or a log line.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use symphony_core::Retryable;

/// Where a secret lives.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// An environment variable of the function (set from Secrets Manager by the
    /// deployment, or by hand for a local run).
    Env(String),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env:{name}"),
        }
    }
}

impl FromStr for SecretRef {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("env", name)) if !name.is_empty() => Ok(Self::Env(name.to_owned())),
            _ => Err(format!(
                "secret reference {text:?} is not of the form env:NAME"
            )),
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
}

impl Retryable for SecretError {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// Port: resolves a reference to its value.
#[async_trait]
pub trait SecretResolver: Send + Sync {
    async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError>;
}

/// Resolves `env:NAME` from the process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvSecrets;

#[async_trait]
impl SecretResolver for EnvSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        match reference {
            SecretRef::Env(name) => std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .ok_or_else(|| SecretError::NotFound {
                    reference: reference.clone(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_reject_other_forms() {
        assert_eq!(
            "env:SMTP_PASSWORD".parse::<SecretRef>(),
            Ok(SecretRef::Env("SMTP_PASSWORD".into()))
        );
        assert!("hunter2".parse::<SecretRef>().is_err());
        assert!("env:".parse::<SecretRef>().is_err());
    }

    #[test]
    fn a_secret_never_prints_its_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
