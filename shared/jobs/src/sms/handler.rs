//! `SendSmsHandler`: sends one step of a drip, the same code on both paths. The lifecycle
//! (who may send, what a failed send leaves behind) is the core's send-once step.

use std::sync::Arc;

use async_trait::async_trait;
use symphony_core::ledger::delivery::{SendOnce, Turn, guarded, take_turn};
use symphony_core::{
    Clock, Ending, Envelope, HandlerContext, HandlerError, Ledger, Next, SystemClock, TypedHandler,
};
use tracing::debug;

use super::message::SmsDripMessage;
use super::model::Enrollment;
use super::ports::{OptOuts, SequenceStore, SmsSender};
use crate::template::{Escape, render};
use crate::window::HourWindow;

pub struct SendSmsHandler {
    enrollments: Arc<dyn Ledger<Enrollment>>,
    sequences: Arc<dyn SequenceStore>,
    opt_outs: Arc<dyn OptOuts>,
    sender: Arc<dyn SmsSender>,
    /// When texts may go out, in the recipient's time zone (the complement of quiet hours).
    allowed_hours: HourWindow,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SendSmsHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendSmsHandler")
            .field("allowed_hours", &self.allowed_hours)
            .finish_non_exhaustive()
    }
}

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsOutcome {
    Sent,
    /// The step was sent already (a redelivery), or the sequence has no such step.
    AlreadyDone,
    OptedOut,
    /// Quiet hours: rescheduled for when they end.
    Deferred,
}

impl SendSmsHandler {
    pub fn new(
        enrollments: Arc<dyn Ledger<Enrollment>>,
        sequences: Arc<dyn SequenceStore>,
        opt_outs: Arc<dyn OptOuts>,
        sender: Arc<dyn SmsSender>,
        allowed_hours: HourWindow,
    ) -> Self {
        Self {
            enrollments,
            sequences,
            opt_outs,
            sender,
            allowed_hours,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same handler reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub async fn send(
        &self,
        message: &SmsDripMessage,
        context: &HandlerContext,
    ) -> Result<SmsOutcome, HandlerError> {
        let id = message.enrollment_id.as_str();
        let now = self.clock.utc();
        let ledger = self.enrollments.as_ref();
        let enrollment =
            match take_turn(ledger, id, message.step, context.route, now.timestamp()).await? {
                Turn::AlreadyDone(_) => return Ok(SmsOutcome::AlreadyDone),
                Turn::Go(enrollment) => enrollment,
            };

        let opted_out = self
            .opt_outs
            .is_opted_out(&message.to_phone)
            .await
            .map_err(|e| HandlerError::from_source("reading opt-outs", e))?;
        if opted_out {
            ledger
                .close(id, message.step, Ending::Stopped, now.timestamp())
                .await
                .map_err(|e| HandlerError::from_source("recording the opt-out", e))?;
            debug!(enrollment_id = id, "number opted out; enrollment stopped");
            return Ok(SmsOutcome::OptedOut);
        }
        if !self.allowed_hours.is_open(now, enrollment.time_zone) {
            let send_at = self.allowed_hours.next_open(now, enrollment.time_zone);
            ledger
                .defer(id, send_at.timestamp())
                .await
                .map_err(|e| HandlerError::from_source("deferring past quiet hours", e))?;
            debug!(enrollment_id = id, send_at = %send_at, "quiet hours for the recipient; deferred");
            return Ok(SmsOutcome::Deferred);
        }

        let sequence = self
            .sequences
            .get(&enrollment.sequence_id)
            .await
            .map_err(|e| e.of_dependency("reading the sequence"))?
            .ok_or_else(|| {
                HandlerError::permanent(format!(
                    "sequence {} does not exist",
                    enrollment.sequence_id
                ))
            })?;
        let Some(step) = sequence.steps.get(message.step) else {
            // The sequence was shortened under this enrollment: nothing is left to send.
            ledger
                .close(id, message.step, Ending::Done, now.timestamp())
                .await
                .map_err(|e| HandlerError::from_source("finishing the enrollment", e))?;
            debug!(
                enrollment_id = id,
                step = message.step,
                "step past the end of its sequence; enrollment finished"
            );
            return Ok(SmsOutcome::AlreadyDone);
        };
        let body = render(&step.body, &enrollment.fields, Escape::None).map_err(|e| {
            HandlerError::permanent(format!(
                "step {} of sequence {}: {e}",
                message.step, sequence.sequence_id
            ))
        })?;
        let once = SendOnce {
            ledger,
            clock: self.clock.as_ref(),
            unit_id: id,
            step: message.step,
        };
        let send = async {
            self.sender
                .send(&message.to_phone, &body)
                .await
                .map_err(|e| {
                    HandlerError::from_source(
                        format!("sending step {} of enrollment {id}", message.step),
                        e,
                    )
                })
        };
        let following = sequence.steps.get(message.step + 1);
        let next = |_: &String, sent_at: i64| match following {
            Some(following) => Next::Step {
                index: message.step + 1,
                due_at: sent_at + following.delay_hours * 3_600,
            },
            None => Next::Done,
        };
        let provider_id = once
            .run(context, self.sender.least_time(), send, next)
            .await?;
        debug!(enrollment_id = id, step = message.step, provider_id = %provider_id, route = %context.route, "sms sent");
        Ok(SmsOutcome::Sent)
    }
}

#[async_trait]
impl TypedHandler<SmsDripMessage> for SendSmsHandler {
    async fn handle(
        &self,
        message: SmsDripMessage,
        _: &Envelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        guarded(
            self.enrollments.as_ref(),
            self.clock.as_ref(),
            &message.enrollment_id,
            async {
                message.validate()?;
                self.send(&message, context).await.map(drop)
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use symphony_core::{FailureKind, FixedClock, MemoryLedger, Route};

    use super::*;
    use crate::memory::{MemoryOptOuts, MemorySequences, ScriptedSmsSender};

    use crate::sms::{EnrollmentStatus, Sequence, SmsStep};

    const NOON: i64 = 1_780_315_200; // 2026-06-01 12:00 UTC
    const PHONE: &str = "+15550100";

    fn enrollment(status: EnrollmentStatus, step: usize) -> Enrollment {
        Enrollment {
            enrollment_id: "en-1".into(),
            sequence_id: "seq".into(),
            user_id: "u".into(),
            phone: PHONE.into(),
            time_zone: chrono_tz::Tz::UTC,
            fields: [("firstName".to_owned(), "Kim".to_owned())].into(),
            current_step: step,
            next_send_at: NOON - 60,
            status,
            claimed_by: None,
            last_error: None,
        }
    }

    fn message(step: usize) -> SmsDripMessage {
        SmsDripMessage {
            enrollment_id: "en-1".into(),
            sequence_id: "seq".into(),
            user_id: "u".into(),
            to_phone: PHONE.into(),
            step,
        }
    }

    fn error(kind: FailureKind) -> HandlerError {
        HandlerError {
            reason: format!("{kind:?}"),
            kind,
            source: None,
        }
    }

    struct Rig {
        enrollments: Arc<MemoryLedger<Enrollment>>,
        sender: Arc<ScriptedSmsSender>,
        handler: SendSmsHandler,
    }

    /// A two-step sequence (the second a day after the first), opt-outs, quiet hours from
    /// 21:00 to 08:00, and the time `at`.
    fn setup(found: Enrollment, answer: Option<Result<(), HandlerError>>, at: i64) -> Rig {
        let enrollments = Arc::new(MemoryLedger::with([found]));
        let sequences = MemorySequences::of([Sequence {
            sequence_id: "seq".into(),
            user_id: "u".into(),
            steps: vec![
                SmsStep {
                    body: "Hi {{firstName}}".into(),
                    delay_hours: 0,
                },
                SmsStep {
                    body: "Still there?".into(),
                    delay_hours: 24,
                },
            ],
        }]);
        let sender = Arc::new(ScriptedSmsSender::answering(answer));
        let handler = SendSmsHandler::new(
            enrollments.clone(),
            Arc::new(sequences),
            Arc::new(MemoryOptOuts::of(["+15550199"])),
            sender.clone(),
            HourWindow::new(8, 21).unwrap(),
        )
        .with_clock(Arc::new(FixedClock {
            utc: Utc.timestamp_opt(at, 0).unwrap(),
        }));
        Rig {
            enrollments,
            sender,
            handler,
        }
    }

    impl Rig {
        async fn deliver(&self, message: SmsDripMessage) -> Result<(), HandlerError> {
            let envelope = Envelope::wrap(&message, "test", None).unwrap();
            let context = HandlerContext::new(Route::Symphony, "req-1");
            self.handler.handle(message, &envelope, &context).await
        }

        fn now(&self) -> Enrollment {
            self.enrollments.peek("en-1").unwrap()
        }
    }

    #[tokio::test]
    async fn every_status_and_every_answer_of_sns_ends_where_it_should() {
        use EnrollmentStatus::*;
        let answers = [
            ("accepted", None),
            ("throttled", Some(FailureKind::Transient)),
            ("invalid number", Some(FailureKind::Intrinsic)),
            ("no answer", Some(FailureKind::UnknownOutcome)),
        ];
        for found in [
            Active, Claimed, Sending, Finished, OptedOut, Failed, Unknown,
        ] {
            for (name, failure) in answers {
                let answer = failure.map(error).map(Err).unwrap_or(Ok(()));
                let rig = setup(enrollment(found, 0), Some(answer), NOON);
                let result = rig.deliver(message(0)).await;
                let after = rig.now();
                let expected = match (found, failure) {
                    (Active | Claimed, None) => (1, None, Active, 1),
                    (Active | Claimed, Some(FailureKind::Transient)) => (1, failure, Claimed, 0),
                    (Active | Claimed, Some(FailureKind::Intrinsic)) => (1, failure, Failed, 0),
                    (Active | Claimed, _) => (1, failure, Unknown, 0),
                    (Sending, _) => (0, Some(FailureKind::Transient), Sending, 0),
                    (Finished | OptedOut, _) => (0, None, found, 0),
                    (Failed, _) => (0, Some(FailureKind::Intrinsic), Failed, 0),
                    (Unknown, _) => (0, Some(FailureKind::UnknownOutcome), Unknown, 0),
                };
                let seen = (
                    rig.sender.attempts().len(),
                    result.err().map(|e| e.kind),
                    after.status,
                    after.current_step,
                );
                assert_eq!(seen, expected, "{found:?} answered {name}");
            }
        }
    }

    #[tokio::test]
    async fn a_sent_step_schedules_the_next_from_the_clock_and_the_last_finishes() {
        let rig = setup(enrollment(EnrollmentStatus::Active, 0), None, NOON);
        rig.deliver(message(0)).await.unwrap();
        assert_eq!(
            rig.sender.attempts(),
            [(PHONE.to_owned(), "Hi Kim".to_owned())]
        );
        assert_eq!(rig.now().next_send_at, NOON + 24 * 3_600);

        let last = setup(enrollment(EnrollmentStatus::Active, 1), None, NOON);
        last.deliver(message(1)).await.unwrap();
        let after = last.now();
        assert_eq!(
            (after.status, after.current_step),
            (EnrollmentStatus::Finished, 2)
        );
    }

    #[tokio::test]
    async fn quiet_hours_defer_to_their_end_and_send_nothing() {
        let eleven_pm = NOON + 11 * 3_600;
        let rig = setup(enrollment(EnrollmentStatus::Active, 0), None, eleven_pm);
        rig.deliver(message(0)).await.unwrap();
        let after = rig.now();
        assert_eq!(after.status, EnrollmentStatus::Active);
        assert_eq!(
            after.next_send_at,
            NOON + 20 * 3_600,
            "08:00 the next morning"
        );
        assert!(rig.sender.attempts().is_empty());
    }

    #[tokio::test]
    async fn an_opted_out_number_stops_its_enrollment_without_a_text() {
        let mut found = enrollment(EnrollmentStatus::Active, 0);
        found.phone = "+15550199".into();
        let rig = setup(found, None, NOON);
        let mut opted_out = message(0);
        opted_out.to_phone = "+15550199".into();
        rig.deliver(opted_out).await.unwrap();
        assert_eq!(rig.now().status, EnrollmentStatus::OptedOut);
        assert!(rig.sender.attempts().is_empty());
    }

    #[tokio::test]
    async fn a_step_past_the_end_or_already_sent_sends_nothing() {
        let past_end = setup(enrollment(EnrollmentStatus::Claimed, 2), None, NOON);
        past_end.deliver(message(2)).await.unwrap();
        assert_eq!(past_end.now().status, EnrollmentStatus::Finished);

        let redelivered = setup(enrollment(EnrollmentStatus::Active, 1), None, NOON);
        redelivered.deliver(message(0)).await.unwrap();
        let after = redelivered.now();
        assert_eq!(
            (after.status, after.current_step),
            (EnrollmentStatus::Active, 1)
        );
        assert!(past_end.sender.attempts().is_empty());
        assert!(redelivered.sender.attempts().is_empty());
    }
}
