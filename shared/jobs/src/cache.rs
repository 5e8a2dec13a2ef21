//! A short cache in front of rows every unit of a job reads alike: the mailbox an email
//! goes out through. Every email of a batch (and of every batch a warm function takes)
//! names one of a few mailboxes, and reading the same row once per email was a third of
//! the DynamoDB reads per email.
//!
//! A mailbox row holds where to connect and a reference to a secret, never the secret,
//! so keeping it in memory for a minute keeps nothing that must not be kept. A change to
//! a row is seen within the time to live (or at the next try after a failed send, which
//! drops this function's copy). A missing row is not cached: the app may write it a
//! moment after its first email. Rows whose staleness could lose or over-send work are
//! not cached: a sequence (a lengthened one would end enrollments early) and a
//! campaign's mailbox (its `dailyLimit`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use symphony_core::{Clock, StoreError, SystemClock};

use crate::email::Mailbox;
use crate::email::ports::MailboxStore;

/// How long a row read serves later units by default.
pub const ROW_CACHE_TTL: Duration = Duration::from_secs(60);

/// A store `S` of rows `V`, answering from a recent read of the same row.
pub struct CachedRows<S: ?Sized, V> {
    inner: Arc<S>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

/// The mailboxes table behind a cache.
pub type CachedMailboxes = CachedRows<dyn MailboxStore, Mailbox>;

impl<S: ?Sized, V> std::fmt::Debug for CachedRows<S, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedRows")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<S: ?Sized, V: Clone> CachedRows<S, V> {
    pub fn new(inner: Arc<S>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            clock: Arc::new(SystemClock),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The same cache reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, V)>> {
        // Each change is one insert or remove: a panic elsewhere cannot leave it half-made.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The row `id` from the cache if read within the time to live, else from `read`.
    async fn get_or_read<F>(&self, id: &str, read: F) -> Result<Option<V>, StoreError>
    where
        F: Future<Output = Result<Option<V>, StoreError>>,
    {
        let now = self.clock.now();
        if let Some((read_at, row)) = self.entries().get(id)
            && now.saturating_duration_since(*read_at) < self.ttl
        {
            return Ok(Some(row.clone()));
        }
        // Concurrent misses of one row may each read it: the reads are the same row, and
        // holding a lock across the read would serialise every row's first unit.
        let row = read.await?;
        let mut entries = self.entries();
        match &row {
            Some(row) => {
                entries.insert(id.to_owned(), (now, row.clone()));
            }
            None => {
                entries.remove(id);
            }
        }
        Ok(row)
    }

    fn drop_row(&self, id: &str) {
        self.entries().remove(id);
    }
}

#[async_trait]
impl MailboxStore for CachedMailboxes {
    async fn get(&self, mailbox_id: &str) -> Result<Option<Mailbox>, StoreError> {
        self.get_or_read(mailbox_id, self.inner.get(mailbox_id))
            .await
    }

    fn forget(&self, mailbox_id: &str) {
        self.drop_row(mailbox_id);
        self.inner.forget(mailbox_id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::email::SmtpSecurity;
    use symphony_core::Retryable;

    fn mailbox(host: &str) -> Mailbox {
        Mailbox {
            mailbox_id: "mb".into(),
            user_id: "u".into(),
            smtp_host: host.into(),
            smtp_port: 25,
            smtp_security: SmtpSecurity::None,
            smtp_username: None,
            smtp_password: None,
            daily_limit: None,
            from_name: None,
            from_email: None,
        }
    }

    /// A table whose row the test can change, counting its reads.
    #[derive(Default)]
    struct CountingTable {
        row: Mutex<Option<Mailbox>>,
        reads: AtomicUsize,
        failing: Mutex<bool>,
    }

    #[async_trait]
    impl MailboxStore for CountingTable {
        async fn get(&self, _: &str) -> Result<Option<Mailbox>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if *self.failing.lock().unwrap() {
                return Err(StoreError::Unavailable {
                    operation: "GetItem",
                    table: "mailboxes".into(),
                    retryable: true,
                    source: "throttled".into(),
                });
            }
            Ok(self.row.lock().unwrap().clone())
        }
    }

    /// A monotonic clock the test moves.
    struct SteppedClock {
        start: Instant,
        offset: Mutex<Duration>,
    }

    impl Clock for SteppedClock {
        fn now(&self) -> Instant {
            self.start + *self.offset.lock().unwrap()
        }
    }

    struct Rig {
        table: Arc<CountingTable>,
        clock: Arc<SteppedClock>,
        cache: CachedMailboxes,
    }

    fn rig(row: Option<Mailbox>) -> Rig {
        let table = Arc::new(CountingTable {
            row: Mutex::new(row),
            ..CountingTable::default()
        });
        let clock = Arc::new(SteppedClock {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        });
        let cache =
            CachedMailboxes::new(table.clone(), Duration::from_secs(60)).with_clock(clock.clone());
        Rig {
            table,
            clock,
            cache,
        }
    }

    impl Rig {
        fn advance(&self, by: Duration) {
            *self.clock.offset.lock().unwrap() += by;
        }

        fn reads(&self) -> usize {
            self.table.reads.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn a_mailbox_is_read_once_within_its_time_to_live_then_again() {
        let rig = rig(Some(mailbox("smtp.one")));
        for _ in 0..5 {
            let got = rig.cache.get("mb").await.unwrap().unwrap();
            assert_eq!(got.smtp_host, "smtp.one");
        }
        assert_eq!(rig.reads(), 1);

        *rig.table.row.lock().unwrap() = Some(mailbox("smtp.two"));
        rig.advance(Duration::from_secs(59));
        assert_eq!(
            rig.cache.get("mb").await.unwrap().unwrap().smtp_host,
            "smtp.one"
        );
        rig.advance(Duration::from_secs(1));
        assert_eq!(
            rig.cache.get("mb").await.unwrap().unwrap().smtp_host,
            "smtp.two"
        );
        assert_eq!(rig.reads(), 2);
    }

    #[tokio::test]
    async fn a_missing_mailbox_is_read_again_until_it_exists() {
        let rig = rig(None);
        assert!(rig.cache.get("mb").await.unwrap().is_none());
        assert!(rig.cache.get("mb").await.unwrap().is_none());
        assert_eq!(rig.reads(), 2);
        *rig.table.row.lock().unwrap() = Some(mailbox("smtp.one"));
        assert!(rig.cache.get("mb").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_failed_read_is_an_error_and_nothing_is_kept() {
        let rig = rig(Some(mailbox("smtp.one")));
        *rig.table.failing.lock().unwrap() = true;
        let error = rig.cache.get("mb").await.unwrap_err();
        assert!(error.is_retryable(), "{error}");
        *rig.table.failing.lock().unwrap() = false;
        assert!(rig.cache.get("mb").await.unwrap().is_some());
        assert_eq!(rig.reads(), 2);
    }

    #[tokio::test]
    async fn a_forgotten_mailbox_is_read_again() {
        let rig = rig(Some(mailbox("smtp.one")));
        rig.cache.get("mb").await.unwrap();
        *rig.table.row.lock().unwrap() = Some(mailbox("smtp.two"));
        rig.cache.forget("mb");
        assert_eq!(
            rig.cache.get("mb").await.unwrap().unwrap().smtp_host,
            "smtp.two"
        );
        assert_eq!(rig.reads(), 2);
    }
}
