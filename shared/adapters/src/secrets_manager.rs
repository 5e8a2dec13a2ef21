//! The Secrets Manager adapter of the secret port: resolves `secretsmanager:ID`
//! references (cached) and, for local runs only, `env:NAME` ones.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use symphony_jobs::secrets::{Secret, SecretError, SecretRef, SecretResolver};

/// How long a secret read from Secrets Manager is used before it is read again: a rotated
/// password reaches warm containers within this time.
pub const SECRET_MAX_AGE: Duration = Duration::from_secs(3_600);

/// Resolves `secretsmanager:ID` through Secrets Manager, caching each secret for
/// [`SECRET_MAX_AGE`], and `env:NAME` from the process environment when allowed.
#[derive(Debug)]
pub struct Secrets {
    client: aws_sdk_secretsmanager::Client,
    max_age: Duration,
    cache: tokio::sync::Mutex<HashMap<String, (Secret, Instant)>>,
    /// Whether `env:NAME` references resolve ([`symphony_jobs::secrets::LOCAL_SECRETS_SETTING`]).
    environment_allowed: bool,
}

impl Secrets {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self::with_max_age(client, SECRET_MAX_AGE)
    }

    /// The same, with cached secrets read again after `max_age`.
    pub fn with_max_age(client: aws_sdk_secretsmanager::Client, max_age: Duration) -> Self {
        Self {
            client,
            max_age,
            cache: tokio::sync::Mutex::new(HashMap::new()),
            environment_allowed: false,
        }
    }

    /// Lets `env:NAME` references resolve from the process environment (local runs).
    pub fn allowing_environment(mut self, allowed: bool) -> Self {
        self.environment_allowed = allowed;
        self
    }

    /// Reads `references` now, at init, into the cache: a secret that is missing or
    /// unreadable stops the function from starting, with the reference named, instead of
    /// failing its first send.
    pub async fn preload(&self, references: &[SecretRef]) -> Result<(), SecretError> {
        for reference in references {
            self.resolve(reference).await?;
        }
        Ok(())
    }

    async fn read_secrets_manager(
        &self,
        reference: &SecretRef,
        id: &str,
    ) -> Result<Secret, SecretError> {
        if let Some((secret, read_at)) = self.cache.lock().await.get(id)
            && read_at.elapsed() < self.max_age
        {
            return Ok(secret.clone());
        }
        let output = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| SecretError::Unreadable {
                reference: reference.clone(),
                source: Box::new(symphony_aws::AwsError::from_sdk("GetSecretValue", e)),
            })?;
        let secret = output
            .secret_string()
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| SecretError::NotFound {
                reference: reference.clone(),
            })?;
        self.cache
            .lock()
            .await
            .insert(id.to_owned(), (secret.clone(), Instant::now()));
        Ok(secret)
    }
}

#[async_trait]
impl SecretResolver for Secrets {
    async fn forget(&self, reference: &SecretRef) {
        if let SecretRef::SecretsManager(id) = reference {
            self.cache.lock().await.remove(id);
        }
    }

    async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        match reference {
            SecretRef::SecretsManager(id) => self.read_secrets_manager(reference, id).await,
            SecretRef::Env(_) if !self.environment_allowed => {
                Err(SecretError::EnvironmentRefused {
                    reference: reference.clone(),
                })
            }
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
    use symphony_jobs::secrets::LOCAL_SECRETS_SETTING;

    fn offline_client() -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
                .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
                .build(),
        )
    }

    #[tokio::test]
    async fn environment_references_resolve_only_when_a_local_run_allows_them() {
        // HOME is set wherever the tests run; no test may set a variable (no unsafe code)
        let reference: SecretRef = "env:HOME".parse().unwrap();
        let refused = Secrets::new(offline_client())
            .resolve(&reference)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, SecretError::EnvironmentRefused { .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains(LOCAL_SECRETS_SETTING));
        let allowed = Secrets::new(offline_client())
            .allowing_environment(true)
            .resolve(&reference)
            .await
            .unwrap();
        assert_eq!(allowed.expose(), std::env::var("HOME").unwrap());
    }
}
