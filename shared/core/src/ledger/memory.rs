//! [`MemoryLedger`]: the ledger in memory, for fast tests of ticks and handlers. It passes
//! the same [`contract`](super::contract) as the DynamoDB adapter, and can be told to
//! refuse an operation, as a table that denies access would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Ending, Ledger, LedgerRecord, MAX_REASON_BYTES, Next, StoreError, Transition, UnitState,
    Verdict, truncate,
};
use crate::{Claim, Due, Route};

/// The operations a [`MemoryLedger`] can be told to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    FetchDue,
    FetchAbandoned,
    Get,
    Create,
    Claim,
    Reclaim,
    Release,
    Defer,
    BeginSend,
    AbortSend,
    HoldUnknown,
    Held,
    Resolve,
    Finish,
    Close,
    Fail,
}

#[derive(Debug, Clone)]
struct Entry<R> {
    record: R,
    claim_token: Option<String>,
    claimed_at: Option<i64>,
}

#[derive(Debug)]
struct State<R> {
    entries: BTreeMap<String, Entry<R>>,
    refused: BTreeSet<Operation>,
    /// Applied, then answered with an error, as a write whose answer was lost.
    answers_lost: BTreeSet<Operation>,
}

/// A ledger in memory.
#[derive(Debug)]
pub struct MemoryLedger<R> {
    state: Mutex<State<R>>,
}

impl<R: LedgerRecord> Default for MemoryLedger<R> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                refused: BTreeSet::new(),
                answers_lost: BTreeSet::new(),
            }),
        }
    }
}

impl<R: LedgerRecord> MemoryLedger<R> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A ledger holding `records`, as written (whatever their state).
    pub fn with(records: impl IntoIterator<Item = R>) -> Self {
        let ledger = Self::new();
        {
            let mut state = ledger.lock();
            for record in records {
                state.entries.insert(
                    record.unit_id().to_owned(),
                    Entry {
                        record,
                        claim_token: None,
                        claimed_at: None,
                    },
                );
            }
        }
        ledger
    }

    /// From now on `operation` fails as a table that denies access does.
    pub fn refuse(&self, operation: Operation) {
        self.lock().refused.insert(operation);
    }

    /// From now on `operation` (a move) is applied and then fails, as a write that
    /// DynamoDB committed but whose answer was lost on every attempt.
    pub fn lose_answers(&self, operation: Operation) {
        self.lock().answers_lost.insert(operation);
    }

    /// `operation` works again, answer and all.
    pub fn allow(&self, operation: Operation) {
        let mut state = self.lock();
        state.refused.remove(&operation);
        state.answers_lost.remove(&operation);
    }

    /// The unit as stored, without any refusal.
    pub fn peek(&self, unit_id: &str) -> Option<R> {
        self.lock()
            .entries
            .get(unit_id)
            .map(|entry| entry.record.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<R>> {
        // A panic while the lock was held cannot leave an entry half-moved: every move
        // is one assignment. The state is still good to use.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check(&self, state: &State<R>, operation: Operation) -> Result<(), StoreError> {
        if state.refused.contains(&operation) {
            return Err(StoreError::Unavailable {
                operation: "memory ledger",
                table: R::KIND.to_owned(),
                retryable: false,
                source: format!("{operation:?} refused: access denied").into(),
            });
        }
        Ok(())
    }

    /// Moves the unit when `allowed` says its entry may move, with `apply`.
    fn apply(
        &self,
        operation: Operation,
        unit_id: &str,
        allowed: impl FnOnce(&Entry<R>) -> bool,
        apply: impl FnOnce(&mut Entry<R>),
    ) -> Result<Transition, StoreError> {
        let mut state = self.lock();
        self.check(&state, operation)?;
        let moved = match state.entries.get_mut(unit_id) {
            Some(entry) if allowed(entry) => {
                apply(entry);
                Transition::Done
            }
            _ => Transition::Conflict,
        };
        if state.answers_lost.contains(&operation) {
            return Err(StoreError::Unavailable {
                operation: "memory ledger",
                table: R::KIND.to_owned(),
                retryable: true,
                source: format!("{operation:?}: the answer was lost").into(),
            });
        }
        Ok(moved)
    }

    fn take(
        &self,
        operation: Operation,
        unit_id: &str,
        route: Route,
        now: i64,
        allowed: impl FnOnce(&Entry<R>) -> bool,
    ) -> Result<Option<Claim>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let moved = self.apply(operation, unit_id, allowed, |entry| {
            let mut progress = entry.record.progress();
            progress.state = UnitState::Claimed;
            progress.claimed_by = Some(route);
            entry.record.set_progress(progress);
            entry.claim_token = Some(token.clone());
            entry.claimed_at = Some(now);
        })?;
        Ok((moved == Transition::Done).then(|| Claim {
            unit_id: unit_id.to_owned(),
            token,
            route,
        }))
    }
}

fn in_state<R: LedgerRecord>(entry: &Entry<R>, state: UnitState) -> bool {
    entry.record.progress().state == state
}

fn at<R: LedgerRecord>(entry: &Entry<R>, state: UnitState, step: usize) -> bool {
    let progress = entry.record.progress();
    progress.state == state && (!R::HAS_STEPS || progress.step == step)
}

fn set<R: LedgerRecord>(entry: &mut Entry<R>, change: impl FnOnce(&mut super::Progress)) {
    let mut progress = entry.record.progress();
    change(&mut progress);
    entry.record.set_progress(progress);
}

#[async_trait]
impl<R: LedgerRecord> Ledger<R> for MemoryLedger<R> {
    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<R>, StoreError> {
        let state = self.lock();
        self.check(&state, Operation::FetchDue)?;
        let mut due: Vec<R> = state
            .entries
            .values()
            .filter(|entry| {
                let progress = entry.record.progress();
                progress.state == UnitState::Ready && progress.due_at <= now
            })
            .map(|entry| entry.record.clone())
            .collect();
        due.sort_by_key(|record| record.progress().due_at);
        due.truncate(limit);
        Ok(Due::from(due))
    }

    async fn fetch_abandoned(
        &self,
        claimed_before: i64,
        limit: usize,
        _now: i64,
    ) -> Result<Due<R>, StoreError> {
        let state = self.lock();
        self.check(&state, Operation::FetchAbandoned)?;
        let mut abandoned: Vec<&Entry<R>> = state
            .entries
            .values()
            .filter(|entry| {
                in_state(entry, UnitState::Claimed)
                    && entry.claimed_at.is_some_and(|at| at <= claimed_before)
            })
            .collect();
        abandoned.sort_by_key(|entry| entry.record.progress().due_at);
        Ok(Due::from(
            abandoned
                .into_iter()
                .take(limit)
                .map(|entry| entry.record.clone())
                .collect::<Vec<_>>(),
        ))
    }

    async fn get(&self, unit_id: &str) -> Result<Option<R>, StoreError> {
        let state = self.lock();
        self.check(&state, Operation::Get)?;
        Ok(state.entries.get(unit_id).map(|entry| entry.record.clone()))
    }

    async fn create(&self, record: &R) -> Result<Transition, StoreError> {
        let mut state = self.lock();
        self.check(&state, Operation::Create)?;
        if state.entries.contains_key(record.unit_id()) {
            return Ok(Transition::Conflict);
        }
        state.entries.insert(
            record.unit_id().to_owned(),
            Entry {
                record: record.clone(),
                claim_token: None,
                claimed_at: None,
            },
        );
        Ok(Transition::Done)
    }

    async fn claim(
        &self,
        unit_id: &str,
        step: usize,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, StoreError> {
        self.take(Operation::Claim, unit_id, route, now, |entry| {
            at(entry, UnitState::Ready, step)
        })
    }

    async fn reclaim(
        &self,
        unit_id: &str,
        route: Route,
        now: i64,
        claimed_before: i64,
    ) -> Result<Option<Claim>, StoreError> {
        self.take(Operation::Reclaim, unit_id, route, now, |entry| {
            in_state(entry, UnitState::Claimed)
                && entry.claimed_at.is_some_and(|at| at <= claimed_before)
        })
    }

    async fn release(&self, claim: &Claim) -> Result<Transition, StoreError> {
        self.apply(
            Operation::Release,
            &claim.unit_id,
            |entry| {
                in_state(entry, UnitState::Claimed)
                    && entry.claim_token.as_deref() == Some(claim.token.as_str())
            },
            |entry| {
                set(entry, |progress| {
                    progress.state = UnitState::Ready;
                    progress.claimed_by = None;
                });
                entry.claim_token = None;
                entry.claimed_at = None;
            },
        )
    }

    async fn defer(&self, unit_id: &str, due_at: i64) -> Result<Transition, StoreError> {
        self.apply(
            Operation::Defer,
            unit_id,
            |entry| in_state(entry, UnitState::Claimed),
            |entry| {
                set(entry, |progress| {
                    progress.state = UnitState::Ready;
                    progress.due_at = due_at;
                    progress.claimed_by = None;
                });
                entry.claim_token = None;
                entry.claimed_at = None;
            },
        )
    }

    async fn begin_send(
        &self,
        unit_id: &str,
        step: usize,
        _now: i64,
    ) -> Result<Transition, StoreError> {
        self.apply(
            Operation::BeginSend,
            unit_id,
            |entry| at(entry, UnitState::Claimed, step),
            |entry| set(entry, |progress| progress.state = UnitState::Sending),
        )
    }

    async fn abort_send(&self, unit_id: &str) -> Result<Transition, StoreError> {
        self.apply(
            Operation::AbortSend,
            unit_id,
            |entry| in_state(entry, UnitState::Sending),
            |entry| set(entry, |progress| progress.state = UnitState::Claimed),
        )
    }

    async fn hold_unknown(
        &self,
        unit_id: &str,
        evidence: &str,
        _now: i64,
    ) -> Result<Transition, StoreError> {
        self.apply(
            Operation::HoldUnknown,
            unit_id,
            |entry| in_state(entry, UnitState::Sending),
            |entry| {
                set(entry, |progress| {
                    progress.state = UnitState::Unknown;
                    progress.last_error = Some(truncate(evidence, MAX_REASON_BYTES).to_owned());
                })
            },
        )
    }

    async fn held(&self, limit: usize) -> Result<Vec<R>, StoreError> {
        let state = self.lock();
        self.check(&state, Operation::Held)?;
        let mut held: Vec<R> = state
            .entries
            .values()
            .filter(|entry| in_state(entry, UnitState::Unknown))
            .map(|entry| entry.record.clone())
            .collect();
        held.sort_by_key(|record| record.progress().due_at);
        held.truncate(limit);
        Ok(held)
    }

    async fn resolve(
        &self,
        unit_id: &str,
        step: usize,
        verdict: Verdict,
        now: i64,
    ) -> Result<Transition, StoreError> {
        if matches!(verdict, Verdict::Sent(Next::Step { .. })) && !R::HAS_STEPS {
            return Ok(Transition::Conflict);
        }
        self.apply(
            Operation::Resolve,
            unit_id,
            |entry| at(entry, UnitState::Unknown, step),
            |entry| {
                set(entry, |progress| match verdict {
                    Verdict::Sent(Next::Done) => {
                        progress.state = UnitState::Done;
                        if R::HAS_STEPS {
                            progress.step = step + 1;
                        }
                    }
                    Verdict::Sent(Next::Step { index, due_at }) => {
                        progress.state = UnitState::Ready;
                        progress.step = index;
                        progress.due_at = due_at;
                        progress.claimed_by = None;
                    }
                    Verdict::Resend => {
                        progress.state = UnitState::Ready;
                        progress.due_at = now;
                        progress.claimed_by = None;
                    }
                });
                entry.claim_token = None;
                entry.claimed_at = None;
            },
        )
    }

    async fn finish(
        &self,
        unit_id: &str,
        step: usize,
        next: Next,
        _now: i64,
    ) -> Result<Transition, StoreError> {
        if matches!(next, Next::Step { .. }) && !R::HAS_STEPS {
            return Ok(Transition::Conflict);
        }
        self.apply(
            Operation::Finish,
            unit_id,
            |entry| at(entry, UnitState::Sending, step),
            |entry| {
                match next {
                    Next::Done => {
                        set(entry, |progress| {
                            progress.state = UnitState::Done;
                            if R::HAS_STEPS {
                                progress.step = step + 1;
                            }
                        });
                        entry.claim_token = None;
                        entry.claimed_at = None;
                    }
                    Next::Step { index, due_at } => {
                        set(entry, |progress| {
                            progress.state = UnitState::Ready;
                            progress.step = index;
                            progress.due_at = due_at;
                            progress.claimed_by = None;
                        });
                        entry.claim_token = None;
                        entry.claimed_at = None;
                    }
                };
            },
        )
    }

    async fn close(
        &self,
        unit_id: &str,
        step: usize,
        ending: Ending,
        _now: i64,
    ) -> Result<Transition, StoreError> {
        let Some(state) = super::closing_state::<R>(ending) else {
            return Ok(Transition::Conflict);
        };
        self.apply(
            Operation::Close,
            unit_id,
            |entry| at(entry, UnitState::Claimed, step),
            |entry| {
                set(entry, |progress| progress.state = state);
                entry.claim_token = None;
                entry.claimed_at = None;
            },
        )
    }

    async fn fail(&self, unit_id: &str, reason: &str, _now: i64) -> Result<Transition, StoreError> {
        self.apply(
            Operation::Fail,
            unit_id,
            |entry| in_state(entry, UnitState::Claimed) || in_state(entry, UnitState::Sending),
            |entry| {
                set(entry, |progress| {
                    progress.state = UnitState::Failed;
                    progress.last_error = Some(truncate(reason, MAX_REASON_BYTES).to_owned());
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::super::specimens::{Drip, Letter};
    use super::*;

    #[tokio::test]
    async fn the_memory_ledger_keeps_the_contract_for_units_sent_once() {
        let ledger = MemoryLedger::<Letter>::new();
        contract::check(&ledger, Letter::ready, "letter").await;
    }

    #[tokio::test]
    async fn the_memory_ledger_keeps_the_contract_for_units_with_steps() {
        let ledger = MemoryLedger::<Drip>::new();
        contract::check(&ledger, Drip::ready, "drip").await;
    }

    #[tokio::test]
    async fn a_refused_operation_fails_as_an_unavailable_table_until_allowed() {
        let ledger = MemoryLedger::with([Letter::ready("a", 0, 1)]);
        ledger.refuse(Operation::Claim);
        let refused = ledger.claim("a", 0, Route::Symphony, 2).await.unwrap_err();
        assert!(matches!(refused, StoreError::Unavailable { .. }));
        ledger.allow(Operation::Claim);
        assert!(
            ledger
                .claim("a", 0, Route::Symphony, 2)
                .await
                .unwrap()
                .is_some()
        );
    }
}
