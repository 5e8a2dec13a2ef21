//! Feature flags: where each unit of work goes, symphony (the queue) or legacy (inline).
//!
//! A unit goes the symphony way iff the global flag and the job's flag are on and
//! `bucket(job_flag, unit_id) < rolloutPercent`. See `docs/contracts.md#flags` and
//! `docs/decisions/0002-rollout-bucket-hash.md`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::error;

use crate::config::{ConfigError, EnvSource, switch};
use crate::{BoxError, Retryable};

pub const GLOBAL_FLAG: &str = "SYMPHONY_ENABLED";

/// Which path a unit of work takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Symphony,
    Legacy,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Symphony => "symphony",
            Self::Legacy => "legacy",
        })
    }
}

/// One flag item as stored in the flag table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagRecord {
    pub enabled: bool,
    /// 0–100; 100 when the item has none.
    pub rollout_percent: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum FlagStoreError {
    #[error("flag table {table} could not be read")]
    Unreadable {
        table: String,
        #[source]
        source: BoxError,
    },
    #[error("flag {name} in table {table} is invalid: {reason}")]
    Invalid {
        table: String,
        name: String,
        reason: String,
    },
}

impl Retryable for FlagStoreError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unreadable { .. })
    }
}

/// Port: reads flag items by name, with a consistent read. Missing items are absent
/// from the map.
#[async_trait]
pub trait FlagStore: Send + Sync {
    async fn read(&self, names: &[&str]) -> Result<HashMap<String, FlagRecord>, FlagStoreError>;
}

/// Where a flag's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagSource {
    Table,
    Environment,
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagState {
    pub name: String,
    pub enabled: bool,
    pub rollout_percent: u8,
    pub source: FlagSource,
}

/// The flags one tick decides with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagEvaluation {
    pub global: FlagState,
    pub job: FlagState,
    /// Set when the table could not be read: every unit then goes legacy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_error: Option<String>,
}

impl FlagEvaluation {
    pub fn route(&self, unit_id: &str) -> Route {
        if self.table_error.is_some() || !self.global.enabled || !self.job.enabled {
            return Route::Legacy;
        }
        if bucket(&self.job.name, unit_id) < self.job.rollout_percent {
            Route::Symphony
        } else {
            Route::Legacy
        }
    }
}

/// The stable rollout bucket of a unit, 0–99: the first four bytes of
/// SHA-256(`"{flag}:{unit_id}"`) read as a big-endian integer, modulo 100.
/// Any language can compute it, so the web app can predict where a unit goes.
pub fn bucket(flag: &str, unit_id: &str) -> u8 {
    let digest = Sha256::new()
        .chain_update(flag.as_bytes())
        .chain_update(b":")
        .chain_update(unit_id.as_bytes())
        .finalize();
    let head = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    // The remainder is below 100, so it always fits.
    u8::try_from(head % 100).unwrap_or(u8::MAX)
}

/// Environment fallbacks for flags missing from the table, parsed once at init.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagDefaults {
    values: HashMap<String, bool>,
}

impl FlagDefaults {
    pub fn from_env(env: &dyn EnvSource, names: &[&str]) -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        for name in names {
            if let Some(value) = switch(env, name)? {
                values.insert((*name).to_owned(), value);
            }
        }
        Ok(Self { values })
    }

    fn state(&self, name: &str) -> FlagState {
        match self.values.get(name) {
            Some(enabled) => FlagState {
                name: name.to_owned(),
                enabled: *enabled,
                rollout_percent: 100,
                source: FlagSource::Environment,
            },
            None => FlagState {
                name: name.to_owned(),
                enabled: false,
                rollout_percent: 100,
                source: FlagSource::Default,
            },
        }
    }
}

/// Reads the flags of one job at each tick.
#[derive(Clone)]
pub struct FlagReader {
    store: Arc<dyn FlagStore>,
    defaults: FlagDefaults,
}

impl fmt::Debug for FlagReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlagReader")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl FlagReader {
    pub fn new(store: Arc<dyn FlagStore>, defaults: FlagDefaults) -> Self {
        Self { store, defaults }
    }

    /// Never fails: a table that cannot be read sends the whole tick down the legacy
    /// path, and says so loudly.
    pub async fn evaluate(&self, job_flag: &str) -> FlagEvaluation {
        match self.store.read(&[GLOBAL_FLAG, job_flag]).await {
            Ok(records) => {
                let state = |name: &str| match records.get(name) {
                    Some(record) => FlagState {
                        name: name.to_owned(),
                        enabled: record.enabled,
                        rollout_percent: record.rollout_percent,
                        source: FlagSource::Table,
                    },
                    None => self.defaults.state(name),
                };
                FlagEvaluation {
                    global: state(GLOBAL_FLAG),
                    job: state(job_flag),
                    table_error: None,
                }
            }
            Err(failure) => {
                let reason = crate::error::chain(&failure);
                error!(
                    flag = job_flag,
                    error = %reason,
                    "FLAG TABLE UNREADABLE: every unit of this tick takes the legacy path"
                );
                FlagEvaluation {
                    global: self.defaults.state(GLOBAL_FLAG),
                    job: self.defaults.state(job_flag),
                    table_error: Some(reason),
                }
            }
        }
    }
}

/// The flag table in memory, for fast tests of what reads flags; or, told to, a table
/// that cannot be read.
#[derive(Debug, Default)]
pub struct MemoryFlagStore {
    flags: std::sync::Mutex<HashMap<String, FlagRecord>>,
    unreadable: std::sync::atomic::AtomicBool,
}

impl MemoryFlagStore {
    /// From now on every read fails, as a table that is missing or denies access.
    pub fn refuse(&self) {
        self.unreadable
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets a flag, as an operator writing its item would.
    pub fn set(&self, name: &str, enabled: bool, rollout_percent: u8) {
        self.flags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                name.to_owned(),
                FlagRecord {
                    enabled,
                    rollout_percent,
                },
            );
    }
}

#[async_trait]
impl FlagStore for MemoryFlagStore {
    async fn read(&self, names: &[&str]) -> Result<HashMap<String, FlagRecord>, FlagStoreError> {
        if self.unreadable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(FlagStoreError::Unreadable {
                table: "memory flags".to_owned(),
                source: "AccessDenied".into(),
            });
        }
        let flags = self
            .flags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(names
            .iter()
            .filter_map(|name| flags.get(*name).map(|flag| ((*name).to_owned(), *flag)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct MemoryFlags(Mutex<Result<HashMap<String, FlagRecord>, String>>);

    #[async_trait]
    impl FlagStore for MemoryFlags {
        async fn read(
            &self,
            names: &[&str],
        ) -> Result<HashMap<String, FlagRecord>, FlagStoreError> {
            match &*self.0.lock().unwrap() {
                Ok(map) => Ok(map
                    .iter()
                    .filter(|(k, _)| names.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect()),
                Err(reason) => Err(FlagStoreError::Unreadable {
                    table: "flags".into(),
                    source: reason.clone().into(),
                }),
            }
        }
    }

    const JOB: &str = "SYMPHONY_EMAIL_QUEUE_ENABLED";

    fn reader(items: &[(&str, bool, u8)], env: &[(&str, &str)]) -> FlagReader {
        let map = items
            .iter()
            .map(|(n, e, p)| {
                (
                    (*n).to_owned(),
                    FlagRecord {
                        enabled: *e,
                        rollout_percent: *p,
                    },
                )
            })
            .collect();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        FlagReader::new(
            Arc::new(MemoryFlags(Mutex::new(Ok(map)))),
            FlagDefaults::from_env(&env, &[GLOBAL_FLAG, JOB]).unwrap(),
        )
    }

    #[test]
    fn the_bucket_matches_the_documented_test_vectors() {
        // Computed independently: python3 -c "import hashlib;
        //   print(int(hashlib.sha256(b'SYMPHONY_EMAIL_QUEUE_ENABLED:email-1').hexdigest()[:8],16)%100)"
        assert_eq!(bucket(JOB, "email-1"), 66);
        assert_eq!(bucket(JOB, "email-2"), 45);
    }

    #[test]
    fn buckets_spread_evenly_over_the_hundred() {
        let mut counts = [0_u32; 100];
        for i in 0..20_000 {
            counts[usize::from(bucket(JOB, &format!("unit-{i}")))] += 1;
        }
        assert!(
            counts.iter().all(|&c| (120..=280).contains(&c)),
            "{counts:?}"
        );
    }

    #[tokio::test]
    async fn both_flags_on_at_full_rollout_send_everything_the_symphony_way() {
        let flags = reader(&[(GLOBAL_FLAG, true, 100), (JOB, true, 100)], &[])
            .evaluate(JOB)
            .await;
        assert!((0..200).all(|i| flags.route(&format!("e{i}")) == Route::Symphony));
    }

    #[tokio::test]
    async fn the_global_switch_off_sends_everything_legacy() {
        let flags = reader(&[(GLOBAL_FLAG, false, 100), (JOB, true, 100)], &[])
            .evaluate(JOB)
            .await;
        assert!((0..200).all(|i| flags.route(&format!("e{i}")) == Route::Legacy));
    }

    #[tokio::test]
    async fn a_partial_rollout_is_stable_and_proportional() {
        let flags = reader(&[(GLOBAL_FLAG, true, 100), (JOB, true, 30)], &[])
            .evaluate(JOB)
            .await;
        let symphony = (0..10_000)
            .filter(|i| flags.route(&format!("e{i}")) == Route::Symphony)
            .count();
        assert!((2_700..=3_300).contains(&symphony), "{symphony}");
        // Stable: another tick, reading the flags afresh, routes every unit the same way
        let next_tick = reader(&[(GLOBAL_FLAG, true, 100), (JOB, true, 30)], &[])
            .evaluate(JOB)
            .await;
        for i in 0..100 {
            let unit = format!("e{i}");
            assert_eq!(flags.route(&unit), next_tick.route(&unit), "{unit}");
            assert_eq!(
                flags.route(&unit) == Route::Symphony,
                bucket(JOB, &unit) < 30
            );
        }
    }

    #[tokio::test]
    async fn missing_items_fall_back_to_the_environment_then_off() {
        let flags = reader(&[], &[(GLOBAL_FLAG, "true"), (JOB, "true")])
            .evaluate(JOB)
            .await;
        assert_eq!(flags.job.source, FlagSource::Environment);
        assert_eq!(flags.route("e1"), Route::Symphony);
        let flags = reader(&[], &[(GLOBAL_FLAG, "true")]).evaluate(JOB).await;
        assert_eq!(flags.job.source, FlagSource::Default);
        assert_eq!(flags.route("e1"), Route::Legacy);
    }

    #[tokio::test]
    async fn an_unreadable_table_sends_everything_legacy_even_if_the_environment_says_on() {
        let reader = FlagReader::new(
            Arc::new(MemoryFlags(Mutex::new(Err("connection refused".into())))),
            FlagDefaults::from_env(
                &HashMap::from([
                    (GLOBAL_FLAG.to_owned(), "true".to_owned()),
                    (JOB.to_owned(), "true".to_owned()),
                ]),
                &[GLOBAL_FLAG, JOB],
            )
            .unwrap(),
        );
        let flags = reader.evaluate(JOB).await;
        assert!(
            flags
                .table_error
                .as_deref()
                .unwrap()
                .contains("connection refused")
        );
        assert_eq!(flags.route("e1"), Route::Legacy);
    }
}
