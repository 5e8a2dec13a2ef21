//! The one lifecycle of a unit that is claimed and sent once (an email, a drip step):
//!
//! ```text
//! ready ──claim──▶ claimed ──begin_send──▶ sending ──finish──▶ done (or ready at a later step)
//!   ▲                │  ▲                     │ │
//!   └──release/defer─┘  └─────abort_send──────┘ └──hold_unknown──▶ unknown (a person decides)
//! claimed or sending ──fail──▶ failed         claimed ──close──▶ done or stopped (nothing sent)
//! ```
//!
//! Only the move from `claimed` to `sending` lets a delivery talk to the provider, and it
//! is conditional: of two deliveries (a tick's legacy path and a worker, two copies of one
//! message) one sends. A send whose outcome is unknown is held, never sent again.
//!
//! [`Ledger`] is the port; `symphony-aws` has the DynamoDB adapter, [`MemoryLedger`] is
//! the in-memory one for fast tests, and [`contract`] is the suite both pass.
//! [`LedgerWork`] is the tick's work source over any ledger; [`delivery`] is the worker's
//! send-once step.

pub mod contract;
pub mod delivery;
pub mod memory;
mod work;

pub use memory::MemoryLedger;
pub use work::LedgerWork;

use async_trait::async_trait;

use crate::{BoxError, Claim, Due, Envelope, EnvelopeError, FailureKind, HandlerError, Retryable};
use crate::{Route, tick::Quarantined};

/// Where a unit is in its life, whatever its table calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitState {
    /// Waiting until it is due (`queued` emails, `active` enrollments).
    Ready,
    /// Owned by one path (symphony or legacy) until it is sent, released or given up.
    Claimed,
    /// One delivery is talking to the provider right now.
    Sending,
    /// Handed over with no verdict: it may be out. Out of every tick's and worker's reach.
    Unknown,
    /// Sent (its last step, for a unit with steps).
    Done,
    /// Ended before it was done, by its recipient's choice (an opt-out).
    Stopped,
    /// Given up on, with the reason.
    Failed,
}

/// How a job's table names the states. `claimed`, `sending`, `unknown` and `failed` are
/// the same in every table; the rest are the job's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusNames {
    pub ready: &'static str,
    pub done: &'static str,
    /// `None` when the job's units cannot be stopped.
    pub stopped: Option<&'static str>,
}

impl StatusNames {
    pub fn name(&self, state: UnitState) -> Option<&'static str> {
        match state {
            UnitState::Ready => Some(self.ready),
            UnitState::Claimed => Some("claimed"),
            UnitState::Sending => Some("sending"),
            UnitState::Unknown => Some("unknown"),
            UnitState::Done => Some(self.done),
            UnitState::Stopped => self.stopped,
            UnitState::Failed => Some("failed"),
        }
    }
}

/// What the lifecycle changes on a record; the rest of it is the job's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub state: UnitState,
    /// The step it is at; always 0 for a unit sent once (an email).
    pub step: usize,
    /// Epoch seconds at which it is (or was) due.
    pub due_at: i64,
    /// The path of its last claim.
    pub claimed_by: Option<Route>,
    /// Why it failed, or the evidence it is held on.
    pub last_error: Option<String>,
}

/// A record a ledger keeps: one unit of a job.
pub trait LedgerRecord: Clone + Send + Sync + 'static {
    /// What the unit is called in messages: "email", "enrollment".
    const KIND: &'static str;
    /// The job's names of the states.
    const STATUS: StatusNames;
    /// Whether the unit moves through steps (`finish` may make it ready at a later step).
    const HAS_STEPS: bool;

    fn unit_id(&self) -> &str;
    fn progress(&self) -> Progress;
    /// The record after a move (the memory ledger's way to keep it).
    fn set_progress(&mut self, progress: Progress);
    /// The message that carries the unit to a worker.
    fn envelope(&self, source: &str) -> Result<Envelope, EnvelopeError>;
}

/// A store's failure: the table could not be read or written, or a record does not parse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{operation} on table {table} failed")]
    Unavailable {
        operation: &'static str,
        table: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    #[error("record {key} in table {table} is invalid: {reason}")]
    Corrupt {
        table: String,
        key: String,
        reason: String,
    },
}

impl StoreError {
    /// The error of reading a record the unit depends on but does not own (its mailbox,
    /// its sequence): even a record that does not parse is not the unit's fault, so it
    /// waits for the record to be fixed instead of failing.
    pub fn of_dependency(self, reason: &str) -> HandlerError {
        HandlerError::new(FailureKind::Infrastructure, reason, Some(Box::new(self)))
    }
}

impl Retryable for StoreError {
    /// A table that cannot be read or written (access denied, missing, throttled) is
    /// never the unit's fault: the unit comes back. Only a record that does not parse is.
    fn is_retryable(&self) -> bool {
        self.failure_kind().is_retryable()
    }

    fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Unavailable { .. } => FailureKind::Infrastructure,
            Self::Corrupt { .. } => FailureKind::Intrinsic,
        }
    }
}

/// What a conditional state change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Done,
    /// The record was not in the state the change required: another owner moved it.
    Conflict,
}

/// Where a sent unit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// It is done (its last step was sent).
    Done,
    /// Ready again at a later step, due at `due_at`.
    Step { index: usize, due_at: i64 },
}

/// A person's verdict on a unit held as an unknown outcome (`symphony unknown resolve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It went out (the provider's log or the recipient says so): it moves on as a send
    /// would have moved it.
    Sent(Next),
    /// It did not go out: ready again at the same step, due at once.
    Resend,
}

/// How a claimed unit ends without a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Nothing is left to send (a drip whose sequence was shortened).
    Done,
    /// Its recipient asked to stop.
    Stopped,
}

/// Port: the table of a job's units. Every move is conditional on the state it leaves,
/// and answers [`Transition::Conflict`] when the unit was not in it. Times are epoch seconds.
#[async_trait]
pub trait Ledger<R: LedgerRecord>: Send + Sync {
    /// Ready units due at `now`, oldest first, at most `limit`; rows that do not parse
    /// are quarantined (failed with the reason) and returned apart.
    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<R>, StoreError>;
    /// Units left `claimed` since before `claimed_before` (their owner died), at most
    /// `limit`, quarantining as [`Self::fetch_due`] does.
    async fn fetch_abandoned(
        &self,
        claimed_before: i64,
        limit: usize,
        now: i64,
    ) -> Result<Due<R>, StoreError>;
    /// A consistent read of one unit.
    async fn get(&self, unit_id: &str) -> Result<Option<R>, StoreError>;
    /// Writes a new unit; [`Transition::Conflict`] when one with its id exists.
    async fn create(&self, record: &R) -> Result<Transition, StoreError>;
    /// Ready at `step` → claimed for `route`. `None` when it was not (someone has it).
    async fn claim(
        &self,
        unit_id: &str,
        step: usize,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, StoreError>;
    /// Takes over a claim only while it is still `claimed` since before `claimed_before`.
    async fn reclaim(
        &self,
        unit_id: &str,
        route: Route,
        now: i64,
        claimed_before: i64,
    ) -> Result<Option<Claim>, StoreError>;
    /// Claimed under `claim` (its token) → ready, as due as it was: a tick gives it back.
    async fn release(&self, claim: &Claim) -> Result<Transition, StoreError>;
    /// Claimed → ready, due at `due_at` (a deferral, past quiet hours say).
    async fn defer(&self, unit_id: &str, due_at: i64) -> Result<Transition, StoreError>;
    /// Claimed at `step` → sending: the one delivery that may talk to the provider.
    async fn begin_send(
        &self,
        unit_id: &str,
        step: usize,
        now: i64,
    ) -> Result<Transition, StoreError>;
    /// Sending → claimed, after a send that handed nothing over and may be tried again.
    async fn abort_send(&self, unit_id: &str) -> Result<Transition, StoreError>;
    /// Sending → unknown, with the evidence: no one sends it again without a person.
    async fn hold_unknown(
        &self,
        unit_id: &str,
        evidence: &str,
        now: i64,
    ) -> Result<Transition, StoreError>;
    /// Units held as unknown outcomes, oldest due first, at most `limit`.
    async fn held(&self, limit: usize) -> Result<Vec<R>, StoreError>;
    /// Unknown at `step` → what a person decided. [`Transition::Conflict`] when it is not
    /// (or no longer) held at that step: nothing is changed then.
    async fn resolve(
        &self,
        unit_id: &str,
        step: usize,
        verdict: Verdict,
        now: i64,
    ) -> Result<Transition, StoreError>;
    /// Sending at `step` → done, or ready at a later step (a unit sent once has none:
    /// [`Transition::Conflict`]).
    async fn finish(
        &self,
        unit_id: &str,
        step: usize,
        next: Next,
        now: i64,
    ) -> Result<Transition, StoreError>;
    /// Claimed at `step` → done or stopped, with nothing sent. A unit that cannot end
    /// that way ([`closing_state`]) answers [`Transition::Conflict`].
    async fn close(
        &self,
        unit_id: &str,
        step: usize,
        ending: Ending,
        now: i64,
    ) -> Result<Transition, StoreError>;
    /// Claimed or sending → failed, with the reason (bounded in size by the adapter).
    async fn fail(&self, unit_id: &str, reason: &str, now: i64) -> Result<Transition, StoreError>;
}

/// The state `ending` closes a unit of `R` in; `None` when `R`'s units cannot end that way:
/// one sent once is done only by its send, and one that cannot be stopped has no stop.
pub fn closing_state<R: LedgerRecord>(ending: Ending) -> Option<UnitState> {
    match ending {
        Ending::Done if R::HAS_STEPS => Some(UnitState::Done),
        Ending::Stopped if R::STATUS.stopped.is_some() => Some(UnitState::Stopped),
        _ => None,
    }
}

/// How reasons name a unit: "email em-1", "enrollment en-1 at step 2".
pub fn describe<R: LedgerRecord>(unit_id: &str, step: usize) -> String {
    if R::HAS_STEPS {
        format!("{} {unit_id} at step {step}", R::KIND)
    } else {
        format!("{} {unit_id}", R::KIND)
    }
}

/// A quarantine reason for a row that does not parse, redacted as a last guard: a
/// parser's message may quote what it could not read.
pub fn quarantine_reason(unit_id: &str, table: &str, problem: &str) -> Quarantined {
    Quarantined {
        unit_id: unit_id.to_owned(),
        reason: format!(
            "record {unit_id} in table {table} is invalid: {}",
            crate::redact::personal_data(problem)
        ),
    }
}

/// Reasons stored in a record are cut to this many bytes, so a long error chain never
/// bloats it.
pub const MAX_REASON_BYTES: usize = 1_024;

/// Cuts a text to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn each_job_names_its_own_states_and_shares_the_rest() {
        let drip = StatusNames {
            ready: "active",
            done: "finished",
            stopped: Some("opted_out"),
        };
        let email = StatusNames {
            ready: "queued",
            done: "sent",
            stopped: None,
        };
        assert_eq!(drip.name(UnitState::Stopped), Some("opted_out"));
        assert_eq!(email.name(UnitState::Stopped), None);
        assert_eq!(email.name(UnitState::Done), Some("sent"));
        assert_eq!(
            drip.name(UnitState::Sending),
            email.name(UnitState::Sending)
        );
    }
}

/// Records of two made-up jobs for the core's own tests: a unit sent once, and one that
/// moves through steps and can be stopped.
#[cfg(test)]
pub(crate) mod specimens {
    use serde::{Deserialize, Serialize};

    use super::{LedgerRecord, Progress, StatusNames, UnitState};
    use crate::{Envelope, EnvelopeError, Message};

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Ping {
        pub id: String,
        pub step: usize,
    }

    impl Message for Ping {
        const TYPE: &'static str = "test.ping";
    }

    macro_rules! specimen {
        ($name:ident, $kind:literal, $steps:literal, $names:expr) => {
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub struct $name {
                pub id: String,
                pub progress: Progress,
            }

            impl $name {
                pub fn ready(id: &str, step: usize, due_at: i64) -> Self {
                    Self {
                        id: id.to_owned(),
                        progress: Progress {
                            state: UnitState::Ready,
                            step,
                            due_at,
                            claimed_by: None,
                            last_error: None,
                        },
                    }
                }
            }

            impl LedgerRecord for $name {
                const KIND: &'static str = $kind;
                const STATUS: StatusNames = $names;
                const HAS_STEPS: bool = $steps;

                fn unit_id(&self) -> &str {
                    &self.id
                }
                fn progress(&self) -> Progress {
                    self.progress.clone()
                }
                fn set_progress(&mut self, progress: Progress) {
                    self.progress = progress;
                }
                fn envelope(&self, source: &str) -> Result<Envelope, EnvelopeError> {
                    let ping = Ping {
                        id: self.id.clone(),
                        step: self.progress.step,
                    };
                    Envelope::wrap(&ping, source, Some(self.id.clone()))
                }
            }
        };
    }

    specimen!(
        Letter,
        "letter",
        false,
        StatusNames {
            ready: "queued",
            done: "sent",
            stopped: None,
        }
    );
    specimen!(
        Drip,
        "drip",
        true,
        StatusNames {
            ready: "active",
            done: "finished",
            stopped: Some("opted_out"),
        }
    );
}
