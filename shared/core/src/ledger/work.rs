//! [`LedgerWork`]: the tick's work source over any ledger: due units, claimed one by one,
//! and claims abandoned past their lease, taken over.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Ledger, LedgerRecord, Transition, UnitState};
use crate::tick::lease_cutoff;
use crate::{Claim, Due, Envelope, EnvelopeError, HandlerError, Route, WorkSource};

pub struct LedgerWork<R> {
    ledger: Arc<dyn Ledger<R>>,
    flag: &'static str,
    /// A claim older than this is taken to be abandoned (its owner died) and is taken over.
    lease: Duration,
    records: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for LedgerWork<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerWork")
            .field("flag", &self.flag)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl<R: LedgerRecord> LedgerWork<R> {
    /// The work of the job whose flag is `flag`, kept in `ledger`.
    pub fn new(ledger: Arc<dyn Ledger<R>>, flag: &'static str, lease: Duration) -> Self {
        Self {
            ledger,
            flag,
            lease,
            records: PhantomData,
        }
    }
}

#[async_trait]
impl<R: LedgerRecord> WorkSource for LedgerWork<R> {
    type Unit = R;

    fn flag(&self) -> &'static str {
        self.flag
    }

    fn unit_id(&self, unit: &R) -> String {
        unit.unit_id().to_owned()
    }

    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<R>, HandlerError> {
        self.ledger
            .fetch_due(now, limit)
            .await
            .map_err(|e| HandlerError::from_source(format!("fetching due {}s", R::KIND), e))
    }

    /// Claims older than the lease.
    async fn fetch_abandoned(&self, now: i64, limit: usize) -> Result<Due<R>, HandlerError> {
        self.ledger
            .fetch_abandoned(lease_cutoff(now, self.lease), limit, now)
            .await
            .map_err(|e| HandlerError::from_source("fetching abandoned claims", e))
    }

    fn due_at(&self, unit: &R) -> Option<i64> {
        Some(unit.progress().due_at)
    }

    async fn claim(&self, unit: &R, route: Route, now: i64) -> Result<Option<Claim>, HandlerError> {
        let progress = unit.progress();
        let claim = match progress.state {
            // Taken over only while still abandoned: a live owner's claim is never stolen,
            // and `sending` is never taken over (one delivery alone sends).
            UnitState::Claimed => {
                self.ledger
                    .reclaim(unit.unit_id(), route, now, lease_cutoff(now, self.lease))
                    .await
            }
            _ => {
                self.ledger
                    .claim(unit.unit_id(), progress.step, route, now)
                    .await
            }
        };
        claim.map_err(|e| HandlerError::from_source(format!("claiming the {}", R::KIND), e))
    }

    async fn release(&self, claim: &Claim) -> Result<bool, HandlerError> {
        self.ledger
            .release(claim)
            .await
            .map(|done| done == Transition::Done)
            .map_err(|e| HandlerError::from_source(format!("releasing the {}", R::KIND), e))
    }

    async fn mark_failed(&self, claim: &Claim, reason: &str, now: i64) -> Result<(), HandlerError> {
        self.ledger
            .fail(&claim.unit_id, reason, now)
            .await
            .map(drop)
            .map_err(|e| HandlerError::from_source(format!("marking the {} failed", R::KIND), e))
    }

    fn envelope(&self, unit: &R, source: &str) -> Result<Envelope, EnvelopeError> {
        unit.envelope(source)
    }
}
