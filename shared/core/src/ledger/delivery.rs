//! The worker's side of the lifecycle, written once for every job that sends a unit once:
//! find the unit and take it for this delivery ([`take_turn`]), then send it once
//! ([`SendOnce`]: begin → send → finish, or abort, or hold as unknown), all inside
//! [`guarded`], which marks the unit for a panic and records an intrinsic failure.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tracing::{debug, warn};

use super::{Ledger, LedgerRecord, Next, Transition, UnitState, describe};
use crate::error::chain;
use crate::handler::panic_text;
use crate::{Clock, FailureKind, HandlerContext, HandlerError, Route};

/// What a delivery found in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn<R> {
    /// Claimed, for this delivery's path or by the tick that sent it: go on.
    Go(R),
    /// Sent already, at this step or past it, or stopped: a redelivery, nothing to do.
    AlreadyDone(R),
}

/// Reads the unit and decides whether this delivery of its `step` may go on. A unit
/// still ready (the web app put its message on the queue without a tick) is claimed here
/// for `route`, so a tick cannot send it too.
pub async fn take_turn<R: LedgerRecord>(
    ledger: &dyn Ledger<R>,
    unit_id: &str,
    step: usize,
    route: Route,
    now: i64,
) -> Result<Turn<R>, HandlerError> {
    let kind = R::KIND;
    let record = ledger
        .get(unit_id)
        .await
        .map_err(|e| HandlerError::from_source(format!("reading the {kind} record"), e))?
        .ok_or_else(|| HandlerError::permanent(format!("{kind} {unit_id} does not exist")))?;
    let progress = record.progress();
    if R::HAS_STEPS && progress.step != step {
        debug!(unit_id, kind, step, "step already done; redelivery ignored");
        return Ok(Turn::AlreadyDone(record));
    }
    match progress.state {
        UnitState::Claimed => Ok(Turn::Go(record)),
        UnitState::Ready => {
            let claim = ledger
                .claim(unit_id, step, route, now)
                .await
                .map_err(|e| HandlerError::from_source(format!("claiming the {kind}"), e))?;
            match claim {
                Some(_) => Ok(Turn::Go(record)),
                None => Err(HandlerError::retryable(format!(
                    "{kind} {unit_id} was claimed by someone else meanwhile"
                ))),
            }
        }
        UnitState::Done | UnitState::Stopped => {
            debug!(unit_id, kind, "already done; redelivery ignored");
            Ok(Turn::AlreadyDone(record))
        }
        UnitState::Failed => Err(HandlerError::permanent(format!(
            "{kind} {unit_id} was marked failed: {}",
            progress
                .last_error
                .as_deref()
                .unwrap_or("no reason recorded")
        ))),
        // Held after a send whose outcome is unknown: this copy must not send. It is
        // dead-lettered too, so a dead letter lost with the first delivery (the invocation
        // ended before it was written) is not lost for good.
        UnitState::Unknown => Err(HandlerError::unknown_outcome(format!(
            "{kind} {unit_id} is held with an unknown outcome: {}",
            progress
                .last_error
                .as_deref()
                .unwrap_or("no evidence recorded")
        ))),
        // Another delivery is sending it, or died while sending: its outcome is unknown,
        // so this one must not send. Try again later.
        UnitState::Sending => Err(being_sent::<R>(unit_id)),
    }
}

fn being_sent<R: LedgerRecord>(unit_id: &str) -> HandlerError {
    HandlerError::retryable(format!(
        "{} {unit_id} is being sent by another delivery",
        R::KIND
    ))
}

/// One send of one claimed unit at one step.
pub struct SendOnce<'a, R> {
    pub ledger: &'a dyn Ledger<R>,
    pub clock: &'a dyn Clock,
    pub unit_id: &'a str,
    pub step: usize,
}

impl<R> std::fmt::Debug for SendOnce<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendOnce")
            .field("unit_id", &self.unit_id)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl<R: LedgerRecord> SendOnce<'_, R> {
    /// Takes the unit for sending (claimed → sending: only one delivery gets past here),
    /// runs `send`, and records what came of it:
    /// - sent: [`Ledger::finish`] to `next` of the send's answer;
    /// - nothing handed over, retryable: back to claimed, for a later try;
    /// - an unknown outcome: held, never sent again without a person;
    /// - the unit's own fault: left to [`guarded`], which fails it.
    ///
    /// `send` is not started when less than `least_time` is left before the deadline: a
    /// send cut by the deadline after it handed the unit over would be an unknown outcome.
    pub async fn run<T, S>(
        &self,
        context: &HandlerContext,
        least_time: Duration,
        send: S,
        next: impl FnOnce(&T, i64) -> Next,
    ) -> Result<T, HandlerError>
    where
        S: Future<Output = Result<T, HandlerError>>,
    {
        let (kind, unit_id) = (R::KIND, self.unit_id);
        context.ensure_time_for(least_time, self.clock.now())?;
        let turn = self
            .ledger
            .begin_send(unit_id, self.step, self.clock.epoch_seconds())
            .await
            .map_err(|e| HandlerError::from_source(format!("taking the {kind} for sending"), e))?;
        if turn == Transition::Conflict {
            return Err(being_sent::<R>(unit_id));
        }
        let answer = match send.await {
            Ok(answer) => answer,
            Err(error) => return Err(self.after_failed_send(error).await),
        };
        let now = self.clock.epoch_seconds();
        match self
            .ledger
            .finish(unit_id, self.step, next(&answer, now), now)
            .await
        {
            Ok(Transition::Done) => Ok(answer),
            Ok(Transition::Conflict) => {
                warn!(
                    unit_id,
                    kind, "sent, but its record had already left the sending state"
                );
                Ok(answer)
            }
            // It is out, but the record says `sending`, where nothing takes it again. Held,
            // so it is dead-lettered with what happened: a person records it as sent.
            Err(error) => Err(HandlerError::unknown_outcome(format!(
                "{} was handed over, but could not be recorded as sent ({}); it stays sending",
                describe::<R>(unit_id, self.step),
                chain(&error)
            ))),
        }
    }

    async fn after_failed_send(&self, error: HandlerError) -> HandlerError {
        let (kind, unit_id) = (R::KIND, self.unit_id);
        match error.kind {
            // It may be out: hold it where no tick or delivery sends it again. Should the
            // hold fail, it stays `sending`, which is out of reach too.
            FailureKind::UnknownOutcome => {
                let held = self
                    .ledger
                    .hold_unknown(unit_id, &error.full_reason(), self.clock.epoch_seconds())
                    .await;
                if let Err(hold) = held {
                    warn!(unit_id, kind, error = %chain(&hold), "could not hold the unit as unknown; it stays sending");
                }
                error
            }
            retryable if retryable.is_retryable() => match self.ledger.abort_send(unit_id).await {
                Ok(_) => error,
                // Left `sending`, where nothing takes it again: say so as held, so it is
                // dead-lettered for a person rather than stuck unseen.
                Err(abort) => HandlerError::unknown_outcome(format!(
                    "{} was not handed over ({}), but could not be put back to claimed ({}); it stays sending",
                    describe::<R>(unit_id, self.step),
                    error.full_reason(),
                    chain(&abort)
                )),
            },
            _ => error,
        }
    }
}

/// Runs a delivery of one unit so that whatever happens is on the unit, not only on the
/// message: a panic caught mid-send (the unit is `sending`) may have handed it over, so
/// it is held as unknown; any other panic, and any failure that is the unit's own fault,
/// fails the unit with the reason, so its record tells the same story as the DLQ.
pub async fn guarded<R, F>(
    ledger: &dyn Ledger<R>,
    clock: &dyn Clock,
    unit_id: &str,
    delivery: F,
) -> Result<(), HandlerError>
where
    R: LedgerRecord,
    F: Future<Output = Result<(), HandlerError>>,
{
    let result = match AssertUnwindSafe(delivery).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(after_panic(ledger, clock, unit_id, panic_text(panic.as_ref())).await),
    };
    if let Err(error) = &result
        && error.kind == FailureKind::Intrinsic
        && !unit_id.trim().is_empty()
        && let Err(mark) = ledger
            .fail(unit_id, &error.full_reason(), clock.epoch_seconds())
            .await
    {
        warn!(unit_id, kind = R::KIND, error = %chain(&mark), "could not mark the unit failed");
    }
    result
}

async fn after_panic<R: LedgerRecord>(
    ledger: &dyn Ledger<R>,
    clock: &dyn Clock,
    unit_id: &str,
    text: &str,
) -> HandlerError {
    let reason = format!("the handler panicked: {text}");
    match ledger
        .hold_unknown(unit_id, &reason, clock.epoch_seconds())
        .await
    {
        // Not `sending`: the panic came before the send or after it was recorded.
        Ok(Transition::Conflict) => HandlerError::permanent(reason),
        // Held, or it may be `sending` still: never failed, which could send it again.
        Ok(Transition::Done) | Err(_) => HandlerError::unknown_outcome(reason),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::super::memory::Operation;
    use super::super::specimens::{Drip, Letter};
    use super::super::{MemoryLedger, Progress};
    use super::*;
    use crate::SystemClock;

    fn letter(state: UnitState) -> Letter {
        let mut letter = Letter::ready("l1", 0, 10);
        letter.progress.state = state;
        letter.progress.last_error = Some("the evidence".into());
        letter
    }

    fn context() -> HandlerContext {
        HandlerContext::new(Route::Symphony, "req")
    }

    /// Runs one delivery of `l1` as a handler does: take the turn, send once, guarded.
    async fn deliver(
        ledger: &MemoryLedger<Letter>,
        send: impl Future<Output = Result<(), HandlerError>>,
        sends: &AtomicUsize,
    ) -> Result<(), HandlerError> {
        let clock = SystemClock;
        guarded(ledger, &clock, "l1", async {
            match take_turn(ledger, "l1", 0, Route::Symphony, 100).await? {
                Turn::AlreadyDone(_) => Ok(()),
                Turn::Go(_) => {
                    let once = SendOnce {
                        ledger,
                        clock: &clock,
                        unit_id: "l1",
                        step: 0,
                    };
                    let counted = async {
                        sends.fetch_add(1, Ordering::SeqCst);
                        send.await
                    };
                    once.run(&context(), Duration::ZERO, counted, |_, _| Next::Done)
                        .await
                }
            }
        })
        .await
    }

    fn state(ledger: &MemoryLedger<Letter>) -> UnitState {
        ledger.peek("l1").expect("the unit exists").progress.state
    }

    #[tokio::test]
    async fn each_state_decides_whether_a_delivery_sends() {
        use FailureKind::*;
        let cases: [(UnitState, Result<usize, FailureKind>, UnitState); 7] = [
            (UnitState::Ready, Ok(1), UnitState::Done),
            (UnitState::Claimed, Ok(1), UnitState::Done),
            (UnitState::Sending, Err(Transient), UnitState::Sending),
            (UnitState::Unknown, Err(UnknownOutcome), UnitState::Unknown),
            (UnitState::Done, Ok(0), UnitState::Done),
            (UnitState::Stopped, Ok(0), UnitState::Stopped),
            (UnitState::Failed, Err(Intrinsic), UnitState::Failed),
        ];
        for (found, expected, after) in cases {
            let ledger = MemoryLedger::with([letter(found)]);
            let sends = AtomicUsize::new(0);
            let result = deliver(&ledger, async { Ok(()) }, &sends).await;
            let seen = result
                .map(|()| sends.load(Ordering::SeqCst))
                .map_err(|e| e.kind);
            assert_eq!(seen, expected, "a {found:?} unit");
            assert_eq!(state(&ledger), after, "a {found:?} unit afterwards");
        }
    }

    #[tokio::test]
    async fn a_missing_unit_is_the_message_s_fault() {
        let ledger = MemoryLedger::<Letter>::new();
        let sends = AtomicUsize::new(0);
        let error = deliver(&ledger, async { Ok(()) }, &sends)
            .await
            .unwrap_err();
        assert_eq!(error.kind, FailureKind::Intrinsic);
        assert!(error.reason.contains("letter l1 does not exist"), "{error}");
        assert_eq!(sends.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn each_send_outcome_leaves_the_unit_where_it_belongs() {
        let outcomes = [
            (HandlerError::retryable("421 try later"), UnitState::Claimed),
            (
                HandlerError::new(FailureKind::Infrastructure, "530 log in first", None),
                UnitState::Claimed,
            ),
            (
                HandlerError::permanent("550 no such mailbox"),
                UnitState::Failed,
            ),
            (
                HandlerError::unknown_outcome("no verdict after the dot"),
                UnitState::Unknown,
            ),
        ];
        for (error, after) in outcomes {
            let kind = error.kind;
            let reason = error.reason.clone();
            let ledger = MemoryLedger::with([letter(UnitState::Claimed)]);
            let sends = AtomicUsize::new(0);
            let failed = deliver(&ledger, async { Err(error) }, &sends)
                .await
                .unwrap_err();
            assert_eq!(failed.kind, kind, "{reason}");
            assert_eq!(state(&ledger), after, "{reason}");
            if matches!(after, UnitState::Failed | UnitState::Unknown) {
                let recorded = ledger.peek("l1").and_then(|l| l.progress.last_error);
                assert!(recorded.unwrap_or_default().contains(&reason), "{reason}");
            }
        }
    }

    #[tokio::test]
    async fn a_send_that_cannot_be_put_back_or_recorded_is_held_as_unknown() {
        let ledger = MemoryLedger::with([letter(UnitState::Claimed)]);
        ledger.refuse(Operation::AbortSend);
        let sends = AtomicUsize::new(0);
        let error = deliver(
            &ledger,
            async { Err(HandlerError::retryable("421")) },
            &sends,
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind, FailureKind::UnknownOutcome);
        assert!(
            error.reason.contains("could not be put back to claimed"),
            "{error}"
        );
        assert_eq!(
            state(&ledger),
            UnitState::Sending,
            "out of every path's reach"
        );

        let ledger = MemoryLedger::with([letter(UnitState::Claimed)]);
        ledger.refuse(Operation::Finish);
        let error = deliver(&ledger, async { Ok(()) }, &sends)
            .await
            .unwrap_err();
        assert_eq!(error.kind, FailureKind::UnknownOutcome);
        assert!(
            error
                .reason
                .contains("handed over, but could not be recorded"),
            "{error}"
        );
        assert_eq!(state(&ledger), UnitState::Sending);
    }

    /// A write DynamoDB committed whose answer was lost on every attempt, at each write of
    /// the send path: the unit is never sent twice, and what is left says so.
    #[tokio::test]
    async fn a_lost_answer_at_any_write_never_sends_twice() {
        use FailureKind::*;
        let cases = [
            // (the write, found, answer to the send, first outcome, then, after a redelivery: sends, state)
            (
                Operation::Claim,
                UnitState::Ready,
                Ok(()),
                Infrastructure,
                1,
                UnitState::Done,
            ),
            (
                Operation::BeginSend,
                UnitState::Claimed,
                Ok(()),
                Infrastructure,
                0,
                UnitState::Sending,
            ),
            (
                Operation::Finish,
                UnitState::Claimed,
                Ok(()),
                UnknownOutcome,
                1,
                UnitState::Done,
            ),
            (
                Operation::AbortSend,
                UnitState::Claimed,
                Err(HandlerError::retryable("421")),
                UnknownOutcome,
                2,
                UnitState::Done,
            ),
            (
                Operation::HoldUnknown,
                UnitState::Claimed,
                Err(HandlerError::unknown_outcome("no verdict")),
                UnknownOutcome,
                1,
                UnitState::Unknown,
            ),
        ];
        for (write, found, answer, first, sends_in_all, last) in cases {
            let ledger = MemoryLedger::with([letter(found)]);
            ledger.lose_answers(write);
            let sends = AtomicUsize::new(0);
            let error = deliver(&ledger, async { answer }, &sends)
                .await
                .unwrap_err();
            assert_eq!(error.kind, first, "{write:?}: {error}");
            ledger.allow(write);
            let _redelivered = deliver(&ledger, async { Ok(()) }, &sends).await;
            let seen = (sends.load(Ordering::SeqCst), state(&ledger));
            assert_eq!(seen, (sends_in_all, last), "{write:?}");
        }
    }

    #[tokio::test]
    async fn a_panic_mid_send_holds_the_unit_and_one_before_it_fails_it() {
        let ledger = MemoryLedger::with([letter(UnitState::Claimed)]);
        let sends = AtomicUsize::new(0);
        let mid_send = async { panic!("the provider's client broke") };
        let error = deliver(&ledger, mid_send, &sends).await.unwrap_err();
        assert_eq!(error.kind, FailureKind::UnknownOutcome);
        assert_eq!(state(&ledger), UnitState::Unknown);

        let ledger = MemoryLedger::with([letter(UnitState::Claimed)]);
        let clock = SystemClock;
        let before = guarded(&ledger, &clock, "l1", async { panic!("a bad template") });
        let error = before.await.unwrap_err();
        assert_eq!(error.kind, FailureKind::Intrinsic);
        assert_eq!(state(&ledger), UnitState::Failed);
    }

    #[tokio::test]
    async fn nothing_starts_that_cannot_finish_before_the_deadline() {
        let ledger = MemoryLedger::with([letter(UnitState::Claimed)]);
        let clock = SystemClock;
        let once = SendOnce {
            ledger: &ledger,
            clock: &clock,
            unit_id: "l1",
            step: 0,
        };
        let short = context().with_deadline(Instant::now() + Duration::from_secs(1));
        let sent = once
            .run(&short, Duration::from_secs(5), async { Ok(()) }, |_, _| {
                Next::Done
            })
            .await;
        assert_eq!(sent.unwrap_err().kind, FailureKind::Transient);
        assert_eq!(
            state(&ledger),
            UnitState::Claimed,
            "nothing taken for sending"
        );
    }

    #[tokio::test]
    async fn a_redelivery_of_a_step_already_sent_does_nothing() {
        let mut drip = Drip::ready("d1", 0, 10);
        drip.progress = Progress {
            step: 2,
            ..drip.progress
        };
        let ledger = MemoryLedger::with([drip]);
        let turn = take_turn(&ledger, "d1", 1, Route::Symphony, 100)
            .await
            .unwrap();
        assert!(matches!(turn, Turn::AlreadyDone(_)));
        let turn = take_turn(&ledger, "d1", 2, Route::Legacy, 100)
            .await
            .unwrap();
        assert!(matches!(turn, Turn::Go(_)));
        let claimed = ledger.peek("d1").unwrap().progress;
        assert_eq!(
            (claimed.state, claimed.claimed_by),
            (UnitState::Claimed, Some(Route::Legacy))
        );
    }
}
