//! One tick of a scheduled function: what an old cron route did, with a choice of path
//! per unit of work and a claim on each unit before it goes anywhere.
//!
//! Each job supplies a [`WorkSource`] (where due units come from and how they are claimed);
//! the tick reads the flags, fetches due units, routes and claims each one, sends the
//! symphony ones to the queue and runs the legacy ones inline, and accounts for every unit.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{StreamExt, stream};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::flags::FlagEvaluation;
use crate::{
    Dispatcher, Envelope, FailureKind, FlagReader, HandlerError, Retryable, Route, TransportError,
};
use crate::{ErrorDetails, FailureRouteError};

/// Claims made at once against the store.
const CLAIM_CONCURRENCY: usize = 16;

/// The claim time before which a claim held for `lease` is abandoned.
pub fn lease_cutoff(now: i64, lease: Duration) -> i64 {
    now.saturating_sub(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX))
}

/// The places of a tick of `limit` kept for abandoned claims: a tenth, at least one when
/// the tick takes more than one unit.
pub fn abandoned_share(limit: usize) -> usize {
    if limit > 1 { (limit / 10).max(1) } else { 0 }
}

/// A claim on one unit of work: only its holder may release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub unit_id: String,
    pub token: String,
    pub route: Route,
}

/// A row of due work that does not parse. The work source has quarantined it (marked it
/// failed with the reason, by a conditional write on the row as read), so it fails alone
/// and the tick goes on with the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quarantined {
    pub unit_id: String,
    /// Names the attribute at fault.
    pub reason: String,
}

/// Due units, and the rows among them that had to be quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due<U> {
    pub units: Vec<U>,
    pub quarantined: Vec<Quarantined>,
}

impl<U> From<Vec<U>> for Due<U> {
    fn from(units: Vec<U>) -> Self {
        Self {
            units,
            quarantined: Vec::new(),
        }
    }
}

/// Port: where a tick puts the dead letter of a unit it held (an unknown outcome on the
/// legacy path), so an operator finds it where a worker's would be: the job's DLQ.
#[async_trait]
pub trait HeldLetters: Send + Sync {
    async fn put(
        &self,
        envelope: &Envelope,
        details: &ErrorDetails,
    ) -> Result<(), FailureRouteError>;
}

/// Port: a job's due work and its claims.
#[async_trait]
pub trait WorkSource: Send + Sync {
    type Unit: Send + Sync;

    /// The job's flag in the flag table.
    fn flag(&self) -> &'static str;
    /// The id the rollout bucket and the claim use.
    fn unit_id(&self, unit: &Self::Unit) -> String;
    /// When the unit was due (epoch seconds), if the source knows: latency counts from it.
    fn due_at(&self, _unit: &Self::Unit) -> Option<i64> {
        None
    }
    /// Due units at `now` (epoch seconds), at most `limit`; rows that do not parse are
    /// quarantined and returned apart.
    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<Self::Unit>, HandlerError>;
    /// Units whose claim was abandoned (its owner died), at most `limit`; taken after the
    /// due ones, when the tick has room. None by default.
    async fn fetch_abandoned(
        &self,
        _now: i64,
        _limit: usize,
    ) -> Result<Due<Self::Unit>, HandlerError> {
        Ok(Due::from(Vec::new()))
    }
    /// Takes the unit for one route; `None` when someone else holds it.
    async fn claim(
        &self,
        unit: &Self::Unit,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, HandlerError>;
    /// Gives the unit back for a later tick, only while `claim` still holds it (its
    /// token). `false` when it did not: the unit had moved on (`sending`, taken over...).
    async fn release(&self, claim: &Claim) -> Result<bool, HandlerError>;
    /// Gives up on the unit, recording why. A unit already moved on is left as it is.
    async fn mark_failed(&self, claim: &Claim, reason: &str, now: i64) -> Result<(), HandlerError>;
    /// The message that carries the unit.
    fn envelope(&self, unit: &Self::Unit, source: &str) -> Result<Envelope, crate::EnvelopeError>;
}

/// What a tick did; the scheduled function's response.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickReport {
    /// Due units found (at most the per-tick cap).
    pub due: usize,
    /// Put on the queue (the symphony path).
    pub dispatched: usize,
    /// Processed inline (the legacy path).
    pub legacy: usize,
    /// Not done this tick: released for the next tick, or marked failed.
    pub failed: usize,
    /// Claimed by someone else first.
    pub skipped: usize,
    /// Handed over with no answer (an unknown outcome): held for a person, never re-sent.
    pub held: usize,
    /// Left due, unclaimed, for the next tick: too little of the invocation was left.
    pub not_claimed: usize,
    /// Claims abandoned by their owner (held past the lease) that this tick took over.
    pub taken_over: usize,
    /// Failures that were not the units' fault (access denied, a missing queue...): the
    /// units were released, and the next tick tries again.
    pub infrastructure_faults: usize,
    pub flags: FlagEvaluation,
    /// Per failed unit: id and reason. Never addresses or bodies.
    pub failures: Vec<UnitFailure>,
    /// The figures per path, for the metrics (not part of the response).
    #[serde(skip)]
    pub figures: crate::metrics::Recorder,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitFailure {
    pub unit_id: String,
    pub route: Route,
    pub kind: FailureKind,
    pub reason: String,
    /// True when the unit was given back for the next tick.
    pub released: bool,
}

impl UnitFailure {
    fn of(claim: &Claim, kind: FailureKind, reason: String, released: bool) -> Self {
        Self {
            unit_id: claim.unit_id.clone(),
            route: claim.route,
            kind,
            reason,
            released,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error("fetching due work failed")]
    Fetch(#[source] HandlerError),
}

impl Retryable for TickError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Fetch(error) => error.is_retryable(),
        }
    }
}

/// A unit, the route it was given, and what claiming it for that route gave.
type ClaimAttempt<U> = (U, Route, Result<Option<Claim>, HandlerError>);

/// A scheduled function's tick over one work source.
pub struct Tick<S> {
    source: S,
    flags: FlagReader,
    queue: Dispatcher,
    legacy: Dispatcher,
    limit: usize,
    /// The function's name, recorded as each envelope's source.
    name: &'static str,
    /// Where held units' dead letters go; without it, their records alone hold the evidence.
    held_letters: Option<Arc<dyn HeldLetters>>,
}

impl<S> fmt::Debug for Tick<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tick")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<S: WorkSource> Tick<S> {
    pub fn new(
        name: &'static str,
        source: S,
        flags: FlagReader,
        queue: Dispatcher,
        legacy: Dispatcher,
        limit: usize,
    ) -> Self {
        Self {
            source,
            flags,
            queue,
            legacy,
            limit,
            name,
            held_letters: None,
        }
    }

    /// Puts the dead letter of every unit the legacy path holds (an unknown outcome) here.
    pub fn with_held_letters(mut self, held_letters: Arc<dyn HeldLetters>) -> Self {
        self.held_letters = Some(held_letters);
        self
    }

    /// The scheduled function's name, e.g. `process-email-queue`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub async fn run(&self, now: i64) -> Result<TickReport, TickError> {
        self.run_until(now, None).await
    }

    /// One tick within an invocation that ends at `deadline`: the legacy path starts no
    /// send it cannot finish; what it does not start is released for the next tick.
    pub async fn run_until(
        &self,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<TickReport, TickError> {
        let flags = self.flags.evaluate(self.source.flag()).await;
        // A share of every tick goes to abandoned claims first, so a sustained backlog of
        // due work cannot leave them waiting for ever; what they leave of it goes to due work.
        let first = self
            .source
            .fetch_abandoned(now, abandoned_share(self.limit))
            .await
            .map_err(TickError::Fetch)?;
        let taken = first.units.len() + first.quarantined.len();
        let mut abandoned_ids: std::collections::HashSet<String> = first
            .units
            .iter()
            .map(|unit| self.source.unit_id(unit))
            .collect();
        let Due {
            units: mut due,
            mut quarantined,
        } = self
            .source
            .fetch_due(now, self.limit - taken)
            .await
            .map_err(TickError::Fetch)?;
        let room = self.limit - taken - due.len() - quarantined.len();
        // Due work left room, and the share was full: more abandoned claims may wait. The
        // query starts over, so those of the share come back and are skipped.
        if room > 0 && taken == abandoned_share(self.limit) {
            let again = self
                .source
                .fetch_abandoned(now, taken + room)
                .await
                .map_err(TickError::Fetch)?;
            let known: std::collections::HashSet<String> = first
                .units
                .iter()
                .map(|unit| self.source.unit_id(unit))
                .collect();
            let known_rows: std::collections::HashSet<String> = first
                .quarantined
                .iter()
                .map(|row| row.unit_id.clone())
                .collect();
            let more: Vec<S::Unit> = again
                .units
                .into_iter()
                .filter(|unit| !known.contains(&self.source.unit_id(unit)))
                .collect();
            abandoned_ids.extend(more.iter().map(|unit| self.source.unit_id(unit)));
            due.extend(more);
            quarantined.extend(
                again
                    .quarantined
                    .into_iter()
                    .filter(|row| !known_rows.contains(&row.unit_id)),
            );
        }
        due.extend(first.units);
        quarantined.extend(first.quarantined);
        let mut report = TickReport {
            due: due.len() + quarantined.len(),
            dispatched: 0,
            legacy: 0,
            failed: 0,
            skipped: 0,
            held: 0,
            not_claimed: 0,
            taken_over: 0,
            infrastructure_faults: 0,
            flags: flags.clone(),
            failures: Vec::new(),
            figures: crate::metrics::Recorder::default(),
        };
        for row in quarantined {
            error!(unit_id = %row.unit_id, reason = %row.reason, "POISON ROW quarantined: marked failed, the tick goes on");
            report.failed += 1;
            report
                .figures
                .path(flags.route(&row.unit_id))
                .counts
                .fail(FailureKind::Intrinsic);
            report.failures.push(UnitFailure {
                route: flags.route(&row.unit_id),
                unit_id: row.unit_id,
                kind: FailureKind::Intrinsic,
                reason: row.reason,
                released: false,
            });
        }

        // Too little time left to deliver anything: claim nothing, so no unit waits out a
        // lease; the next tick takes them all.
        if deadline.is_some_and(|deadline| {
            deadline.saturating_duration_since(Instant::now())
                < crate::transport::LEGACY_START_MARGIN
        }) {
            warn!(
                function = self.name,
                due = due.len(),
                "too little of the invocation left to claim; the next tick takes the due units"
            );
            report.not_claimed = due.len();
            return Ok(report);
        }

        let claims: Vec<ClaimAttempt<S::Unit>> = stream::iter(due)
            .map(|unit| async {
                let route = flags.route(&self.source.unit_id(&unit));
                let claim = self.source.claim(&unit, route, now).await;
                (unit, route, claim)
            })
            .buffered(CLAIM_CONCURRENCY)
            .collect()
            .await;

        let mut symphony = Vec::new();
        let mut legacy = Vec::new();
        for (unit, route, claim) in claims {
            if matches!(&claim, Ok(Some(claim)) if abandoned_ids.contains(&claim.unit_id)) {
                report.taken_over += 1;
            }
            match claim {
                Ok(Some(claim)) if claim.route == Route::Symphony => symphony.push((unit, claim)),
                Ok(Some(claim)) => legacy.push((unit, claim)),
                Ok(None) => report.skipped += 1,
                Err(failure) => {
                    let unit_id = self.source.unit_id(&unit);
                    let reason = crate::error::chain(&failure);
                    warn!(unit_id = %unit_id, error = %reason, "claim failed; the unit stays due");
                    report.failed += 1;
                    let counts = &mut report.figures.path(route).counts;
                    counts.fail(failure.kind);
                    counts.retried += 1;
                    if failure.kind == FailureKind::Infrastructure {
                        report.infrastructure_faults += 1;
                    }
                    report.failures.push(UnitFailure {
                        unit_id,
                        route,
                        kind: failure.kind,
                        reason,
                        released: true,
                    });
                }
            }
        }

        report.dispatched = self
            .deliver(&self.queue, symphony, now, None, false, &mut report)
            .await;
        report.legacy = self
            .deliver(&self.legacy, legacy, now, deadline, true, &mut report)
            .await;
        if report.infrastructure_faults > 0 {
            error!(
                function = self.name,
                infrastructure_faults = report.infrastructure_faults,
                "INFRASTRUCTURE FAULT: units released for the next tick"
            );
        }
        info!(
            function = self.name,
            due = report.due,
            dispatched = report.dispatched,
            legacy = report.legacy,
            failed = report.failed,
            skipped = report.skipped,
            held = report.held,
            infrastructure_faults = report.infrastructure_faults,
            flags_readable = report.flags.table_error.is_none(),
            "tick done"
        );
        Ok(report)
    }

    /// Sends claimed units through one path; returns how many went. A failure releases
    /// the claim when a later tick may succeed, and marks the unit failed when not.
    async fn deliver(
        &self,
        dispatcher: &Dispatcher,
        claimed: Vec<(S::Unit, Claim)>,
        now: i64,
        deadline: Option<Instant>,
        inline: bool,
        report: &mut TickReport,
    ) -> usize {
        if claimed.is_empty() {
            return 0;
        }
        let mut envelopes = Vec::with_capacity(claimed.len());
        let mut owners = Vec::with_capacity(claimed.len());
        for (unit, claim) in claimed {
            match self.source.envelope(&unit, self.name) {
                Ok(mut envelope) => {
                    envelope.meta.due_at = self
                        .source
                        .due_at(&unit)
                        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0));
                    envelopes.push(envelope);
                    owners.push(claim);
                }
                Err(failure) => {
                    self.give_up_unsent(&claim, crate::error::chain(&failure), now, report)
                        .await
                }
            }
        }
        let mut delivered = 0;
        if inline {
            // One at a time, each settled before the next starts: a held unit's dead
            // letter is written at once, not lost with an invocation cut later.
            for (envelope, claim) in envelopes.into_iter().zip(owners) {
                let started = Instant::now();
                // The dispatcher answers exactly once per envelope (`Missing` if the
                // transport did not).
                for delivery in dispatcher
                    .dispatch_until(vec![envelope.clone()], deadline)
                    .await
                {
                    let done = self
                        .settle(delivery.result, &claim, Some(&envelope), now, report)
                        .await;
                    if done {
                        let handle_ms = u64::try_from(started.elapsed().as_millis()).ok();
                        report
                            .figures
                            .path(claim.route)
                            .time(latency_ms(&envelope), handle_ms);
                    }
                    delivered += usize::from(done);
                }
            }
        } else {
            let deliveries = dispatcher.dispatch_until(envelopes, deadline).await;
            for (delivery, claim) in deliveries.into_iter().zip(owners) {
                delivered += usize::from(
                    self.settle(delivery.result, &claim, None, now, report)
                        .await,
                );
            }
        }
        delivered
    }

    /// Settles one unit after its delivery: done, released, failed or held. `envelope`
    /// is what a held unit's dead letter carries. True when it was delivered.
    async fn settle(
        &self,
        result: Result<(), TransportError>,
        claim: &Claim,
        envelope: Option<&Envelope>,
        now: i64,
        report: &mut TickReport,
    ) -> bool {
        let failure = match result {
            Ok(()) => {
                let counts = &mut report.figures.path(claim.route).counts;
                match claim.route {
                    Route::Symphony => counts.dispatched += 1,
                    Route::Legacy => {
                        counts.processed += 1;
                        counts.succeeded += 1;
                    }
                }
                return true;
            }
            Err(failure) => failure,
        };
        let kind = failure.failure_kind();
        let reason = transport_reason(&failure);
        let counts = &mut report.figures.path(claim.route).counts;
        counts.fail(kind);
        // A legacy unit was handled (and ended); a symphony one only failed to be queued.
        if claim.route == Route::Legacy && envelope.is_some() {
            counts.processed += 1;
        }
        if kind.is_retryable() {
            counts.retried += 1;
        }
        match kind {
            // The handler held the unit (it may have gone out): neither released nor
            // failed, so no tick sends it again.
            FailureKind::UnknownOutcome => {
                warn!(unit_id = %claim.unit_id, route = %claim.route, reason = %reason, "outcome unknown; the unit is held for a person");
                if self.dead_letter_held(envelope, claim, &reason).await {
                    report.figures.path(claim.route).counts.dead_lettered += 1;
                }
                report.held += 1;
                report
                    .failures
                    .push(UnitFailure::of(claim, kind, reason, false));
            }
            FailureKind::Transient | FailureKind::Infrastructure => {
                if kind == FailureKind::Infrastructure {
                    report.infrastructure_faults += 1;
                }
                match self.source.release(claim).await {
                    Ok(true) => count_failure(claim, kind, reason, true, report),
                    Ok(false) => {
                        warn!(unit_id = %claim.unit_id, "not released: the unit is no longer as this claim left it");
                        count_failure(claim, kind, reason, false, report);
                    }
                    Err(release) => {
                        error!(unit_id = %claim.unit_id, error = %crate::error::chain(&release), "could not release the claim; the unit stays claimed");
                        count_failure(claim, kind, reason, false, report);
                    }
                }
            }
            FailureKind::Intrinsic => self.give_up(claim, reason, now, report).await,
        }
        false
    }

    /// True when the held unit's dead letter was written.
    async fn dead_letter_held(
        &self,
        envelope: Option<&Envelope>,
        claim: &Claim,
        reason: &str,
    ) -> bool {
        let (Some(letters), Some(envelope)) = (&self.held_letters, envelope) else {
            return false;
        };
        let now = chrono::Utc::now();
        let details = ErrorDetails {
            kind: crate::DeadLetterKind::UnknownOutcome,
            reason: reason.to_owned(),
            attempts: 1,
            first_failure_at: now,
            last_failure_at: now,
            source_queue: None,
        };
        match letters.put(envelope, &details).await {
            Ok(()) => true,
            Err(failure) => {
                // The record may hold no evidence (its write is what failed): the reason is
                // said here, where the alarm looks, so it is not lost with the dead letter.
                error!(unit_id = %claim.unit_id, held_because = %reason, error = %crate::error::chain(&failure), "INFRASTRUCTURE FAULT: could not dead-letter a held unit");
                false
            }
        }
    }

    /// Gives up on a unit whose message could not be built (settle counts its own).
    async fn give_up_unsent(
        &self,
        claim: &Claim,
        reason: String,
        now: i64,
        report: &mut TickReport,
    ) {
        report
            .figures
            .path(claim.route)
            .counts
            .fail(FailureKind::Intrinsic);
        self.give_up(claim, reason, now, report).await;
    }

    async fn give_up(&self, claim: &Claim, reason: String, now: i64, report: &mut TickReport) {
        if let Err(failure) = self.source.mark_failed(claim, &reason, now).await {
            error!(unit_id = %claim.unit_id, error = %crate::error::chain(&failure), "could not mark the unit failed; it stays claimed");
        }
        count_failure(claim, FailureKind::Intrinsic, reason, false, report);
    }
}

/// From when the unit was due (or, lacking it, dispatched) to now.
fn latency_ms(envelope: &Envelope) -> Option<u64> {
    let from = envelope.meta.due_at.unwrap_or(envelope.meta.created_at);
    crate::metrics::elapsed_ms(from, chrono::Utc::now())
}

fn transport_reason(failure: &TransportError) -> String {
    match failure {
        TransportError::Handler(handler) => handler.full_reason(),
        other => crate::error::chain(other),
    }
}

fn count_failure(
    claim: &Claim,
    kind: FailureKind,
    reason: String,
    released: bool,
    report: &mut TickReport,
) {
    warn!(unit_id = %claim.unit_id, route = %claim.route, %kind, released, reason = %reason, "unit not done this tick");
    report.failed += 1;
    report
        .failures
        .push(UnitFailure::of(claim, kind, reason, released));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{FlagDefaults, FlagRecord, FlagStore, FlagStoreError, GLOBAL_FLAG};
    use crate::{Delivery, Message, Transport};
    use serde::{Deserialize, Serialize};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    const FLAG: &str = "SYMPHONY_TEST_ENABLED";

    #[derive(Debug, Serialize, Deserialize)]
    struct Unit(String);
    impl Message for Unit {
        const TYPE: &'static str = "Unit";
    }

    /// Units "a".."d"; "b" is already held by someone else.
    #[derive(Default)]
    struct MemoryWork {
        released: Mutex<Vec<String>>,
        failed: Mutex<Vec<(String, String)>>,
    }

    #[async_trait]
    impl WorkSource for Arc<MemoryWork> {
        type Unit = String;
        fn flag(&self) -> &'static str {
            FLAG
        }
        fn unit_id(&self, unit: &String) -> String {
            unit.clone()
        }
        async fn fetch_due(&self, _: i64, limit: usize) -> Result<Due<String>, HandlerError> {
            Ok(["a", "b", "c", "d"]
                .iter()
                .take(limit)
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
                .into())
        }
        async fn claim(
            &self,
            unit: &String,
            route: Route,
            _: i64,
        ) -> Result<Option<Claim>, HandlerError> {
            Ok((unit != "b").then(|| Claim {
                unit_id: unit.clone(),
                token: "t".into(),
                route,
            }))
        }
        async fn release(&self, claim: &Claim) -> Result<bool, HandlerError> {
            self.released.lock().unwrap().push(claim.unit_id.clone());
            Ok(true)
        }
        async fn mark_failed(
            &self,
            claim: &Claim,
            reason: &str,
            _: i64,
        ) -> Result<(), HandlerError> {
            self.failed
                .lock()
                .unwrap()
                .push((claim.unit_id.clone(), reason.to_owned()));
            Ok(())
        }
        fn envelope(&self, unit: &String, source: &str) -> Result<Envelope, crate::EnvelopeError> {
            Envelope::wrap(&Unit(unit.clone()), source, Some(unit.clone()))
        }
    }

    /// Accepts "a", loses "c" (retryable), finds "d" too large (permanent).
    struct PickyQueue(Mutex<Vec<String>>);
    #[async_trait]
    impl Transport for PickyQueue {
        async fn send(&self, envelopes: Vec<Envelope>) -> Vec<Delivery> {
            envelopes
                .into_iter()
                .map(|e| {
                    let unit = e.meta.correlation_id.clone();
                    self.0.lock().unwrap().push(unit.clone());
                    let result = match unit.as_str() {
                        "c" => Err(TransportError::Missing {
                            envelope_id: e.id.clone(),
                        }),
                        "d" => Err(TransportError::TooLarge {
                            envelope_id: e.id.clone(),
                            size: 2,
                            limit: 1,
                        }),
                        _ => Ok(()),
                    };
                    Delivery {
                        envelope_id: e.id,
                        result,
                    }
                })
                .collect()
        }
    }

    struct Flags(Option<bool>);
    #[async_trait]
    impl FlagStore for Flags {
        async fn read(&self, _: &[&str]) -> Result<HashMap<String, FlagRecord>, FlagStoreError> {
            match self.0 {
                Some(enabled) => Ok(HashMap::from([
                    (
                        GLOBAL_FLAG.to_owned(),
                        FlagRecord {
                            enabled: true,
                            rollout_percent: 100,
                        },
                    ),
                    (
                        FLAG.to_owned(),
                        FlagRecord {
                            enabled,
                            rollout_percent: 100,
                        },
                    ),
                ])),
                None => Err(FlagStoreError::Unreadable {
                    table: "flags".into(),
                    source: "down".into(),
                }),
            }
        }
    }

    fn tick(
        flags: Option<bool>,
    ) -> (
        Tick<Arc<MemoryWork>>,
        Arc<MemoryWork>,
        Arc<PickyQueue>,
        Arc<PickyQueue>,
    ) {
        let work = Arc::new(MemoryWork::default());
        let queue = Arc::new(PickyQueue(Mutex::default()));
        let legacy = Arc::new(PickyQueue(Mutex::default()));
        let tick = Tick::new(
            "process-test",
            work.clone(),
            FlagReader::new(Arc::new(Flags(flags)), FlagDefaults::default()),
            Dispatcher::new(queue.clone()),
            Dispatcher::new(legacy.clone()),
            10,
        );
        (tick, work, queue, legacy)
    }

    /// `due` due units and `abandoned` abandoned claims.
    struct Backlog {
        due: usize,
        abandoned: usize,
    }
    #[async_trait]
    impl WorkSource for Backlog {
        type Unit = String;
        fn flag(&self) -> &'static str {
            FLAG
        }
        fn unit_id(&self, unit: &String) -> String {
            unit.clone()
        }
        async fn fetch_due(&self, _: i64, limit: usize) -> Result<Due<String>, HandlerError> {
            Ok((0..self.due.min(limit))
                .map(|n| format!("due-{n}"))
                .collect::<Vec<_>>()
                .into())
        }
        async fn fetch_abandoned(&self, _: i64, limit: usize) -> Result<Due<String>, HandlerError> {
            Ok((0..self.abandoned.min(limit))
                .map(|n| format!("abandoned-{n}"))
                .collect::<Vec<_>>()
                .into())
        }
        async fn claim(
            &self,
            unit: &String,
            route: Route,
            _: i64,
        ) -> Result<Option<Claim>, HandlerError> {
            Ok(Some(Claim {
                unit_id: unit.clone(),
                token: "t".into(),
                route,
            }))
        }
        async fn release(&self, _: &Claim) -> Result<bool, HandlerError> {
            Ok(true)
        }
        async fn mark_failed(&self, _: &Claim, _: &str, _: i64) -> Result<(), HandlerError> {
            Ok(())
        }
        fn envelope(&self, unit: &String, source: &str) -> Result<Envelope, crate::EnvelopeError> {
            Envelope::wrap(&Unit(unit.clone()), source, Some(unit.clone()))
        }
    }

    /// (due units, abandoned claims) a tick of `limit` over `backlog` sends.
    async fn taken(backlog: Backlog, limit: usize) -> (usize, usize) {
        let queue = Arc::new(PickyQueue(Mutex::default()));
        let tick = Tick::new(
            "process-test",
            backlog,
            FlagReader::new(Arc::new(Flags(Some(true))), FlagDefaults::default()),
            Dispatcher::new(queue.clone()),
            Dispatcher::new(Arc::new(PickyQueue(Mutex::default()))),
            limit,
        );
        let report = tick.run(0).await.unwrap();
        let sent = queue.0.lock().unwrap();
        assert_eq!(report.dispatched, sent.len());
        let abandoned = sent
            .iter()
            .filter(|unit| unit.starts_with("abandoned"))
            .count();
        // The report says how many it took over: those, and no due unit
        assert_eq!(report.taken_over, abandoned, "{report:?}");
        (sent.len() - abandoned, abandoned)
    }

    #[tokio::test]
    async fn a_backlog_of_due_work_leaves_a_share_of_every_tick_to_abandoned_claims() {
        // A backlog of due work: a tenth of the tick still goes to abandoned claims
        assert_eq!(
            taken(
                Backlog {
                    due: 50,
                    abandoned: 3
                },
                10
            )
            .await,
            (9, 1)
        );
        // No abandoned claims: the whole tick goes to due work
        assert_eq!(
            taken(
                Backlog {
                    due: 50,
                    abandoned: 0
                },
                10
            )
            .await,
            (10, 0)
        );
        // Little due work: abandoned claims take the rest, each once
        assert_eq!(
            taken(
                Backlog {
                    due: 2,
                    abandoned: 5
                },
                10
            )
            .await,
            (2, 5)
        );
        // A tick of one has no share to keep: due work first, else an abandoned claim
        assert_eq!(abandoned_share(1), 0);
        assert_eq!(
            taken(
                Backlog {
                    due: 0,
                    abandoned: 5
                },
                1
            )
            .await,
            (0, 1)
        );
    }

    #[tokio::test]
    async fn a_tick_out_of_time_claims_nothing_and_leaves_every_unit_due() {
        // Given a tick whose invocation ends now
        let (tick, work, queue, legacy) = tick(Some(true));

        // When it runs
        let report = tick.run_until(0, Some(Instant::now())).await.unwrap();

        // Then it claimed nothing and sent nothing: every due unit waits for the next tick
        assert_eq!(
            (report.due, report.not_claimed, report.dispatched),
            (4, 4, 0)
        );
        assert!(queue.0.lock().unwrap().is_empty());
        assert!(legacy.0.lock().unwrap().is_empty());
        assert!(work.released.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn every_unit_is_dispatched_skipped_released_or_failed() {
        let (tick, work, queue, legacy) = tick(Some(true));
        let report = tick.run(0).await.unwrap();
        assert_eq!(
            (report.due, report.dispatched, report.skipped, report.failed),
            (4, 1, 1, 2)
        );
        assert_eq!(*queue.0.lock().unwrap(), ["a", "c", "d"]);
        assert!(legacy.0.lock().unwrap().is_empty());
        assert_eq!(*work.released.lock().unwrap(), ["c"]);
        let failed = work.failed.lock().unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "d");
        assert!(
            failed[0].1.contains("over the queue's limit"),
            "{}",
            failed[0].1
        );
        let released: Vec<bool> = report.failures.iter().map(|f| f.released).collect();
        assert_eq!(released, [true, false]);
    }

    #[tokio::test]
    async fn flag_off_or_unreadable_sends_units_down_the_legacy_path() {
        for flags in [Some(false), None] {
            let (tick, _, queue, legacy) = tick(flags);
            let report = tick.run(0).await.unwrap();
            assert_eq!((report.dispatched, report.legacy), (0, 1), "{flags:?}");
            assert!(queue.0.lock().unwrap().is_empty());
            assert_eq!(*legacy.0.lock().unwrap(), ["a", "c", "d"]);
            assert_eq!(report.flags.table_error.is_some(), flags.is_none());
        }
    }
}
