//! `SendSmsHandler`: sends one step of a drip, the same code on both paths.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use symphony_core::handler::panic_text;
use symphony_core::{Envelope, FailureKind, HandlerContext, HandlerError, TypedHandler};
use tracing::{info, warn};

use super::message::SmsDripMessage;
use super::model::EnrollmentStatus;
use super::ports::{EnrollmentNext, EnrollmentStore, OptOuts, SequenceStore, SmsSender};
use crate::store::Transition;
use crate::template::{Escape, render};
use crate::window::HourWindow;

pub struct SendSmsHandler {
    enrollments: Arc<dyn EnrollmentStore>,
    sequences: Arc<dyn SequenceStore>,
    opt_outs: Arc<dyn OptOuts>,
    sender: Arc<dyn SmsSender>,
    /// When texts may go out, in the recipient's time zone (the complement of quiet hours).
    allowed_hours: HourWindow,
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
    /// The step was sent already (a redelivery).
    AlreadyDone,
    OptedOut,
    /// Quiet hours: rescheduled for when they end.
    Deferred,
}

impl SendSmsHandler {
    pub fn new(
        enrollments: Arc<dyn EnrollmentStore>,
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
        }
    }

    pub async fn send(
        &self,
        message: &SmsDripMessage,
        context: &HandlerContext,
        now: DateTime<Utc>,
    ) -> Result<SmsOutcome, HandlerError> {
        let id = message.enrollment_id.as_str();
        let enrollment = self
            .enrollments
            .get(id)
            .await
            .map_err(|e| HandlerError::from_source("reading the enrollment", e))?
            .ok_or_else(|| HandlerError::permanent(format!("enrollment {id} does not exist")))?;
        if enrollment.current_step != message.step {
            info!(
                enrollment_id = id,
                step = message.step,
                "step already done; redelivery ignored"
            );
            return Ok(SmsOutcome::AlreadyDone);
        }
        match enrollment.status {
            EnrollmentStatus::Claimed => {}
            // Dispatched by the web app without a tick: claim it here first.
            EnrollmentStatus::Active => {
                let claim = self
                    .enrollments
                    .claim(id, message.step, context.route, now.timestamp())
                    .await
                    .map_err(|e| HandlerError::from_source("claiming the enrollment", e))?;
                if claim.is_none() {
                    return Err(HandlerError::retryable(format!(
                        "enrollment {id} was claimed by someone else meanwhile"
                    )));
                }
            }
            EnrollmentStatus::Finished | EnrollmentStatus::OptedOut => {
                return Ok(SmsOutcome::AlreadyDone);
            }
            // Another delivery is sending this step, or died while sending: its outcome is
            // unknown, so this one must not send. Try again later.
            EnrollmentStatus::Sending => {
                return Err(HandlerError::retryable(format!(
                    "enrollment {id} is being sent by another delivery"
                )));
            }
            EnrollmentStatus::Failed => {
                return Err(HandlerError::permanent(format!(
                    "enrollment {id} was marked failed"
                )));
            }
            // Held after a send whose outcome is unknown: this copy must not send. It is
            // dead-lettered too, so a dead letter lost with the first delivery is not lost
            // for good.
            EnrollmentStatus::Unknown => {
                return Err(HandlerError::unknown_outcome(format!(
                    "enrollment {id} is held with an unknown outcome"
                )));
            }
        }

        let opted_out = self
            .opt_outs
            .is_opted_out(&message.to_phone)
            .await
            .map_err(|e| HandlerError::from_source("reading opt-outs", e))?;
        if opted_out {
            self.enrollments
                .opt_out(id)
                .await
                .map_err(|e| HandlerError::from_source("recording the opt-out", e))?;
            info!(enrollment_id = id, "number opted out; enrollment stopped");
            return Ok(SmsOutcome::OptedOut);
        }
        if !self.allowed_hours.is_open(now, enrollment.time_zone) {
            let send_at = self.allowed_hours.next_open(now, enrollment.time_zone);
            self.enrollments
                .reschedule(id, send_at.timestamp())
                .await
                .map_err(|e| HandlerError::from_source("deferring past quiet hours", e))?;
            info!(enrollment_id = id, send_at = %send_at, "quiet hours for the recipient; deferred");
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
            self.enrollments
                .finish_past_end(id, message.step)
                .await
                .map_err(|e| HandlerError::from_source("finishing the enrollment", e))?;
            info!(
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
        // Nothing starts that cannot finish: a Publish cut by the deadline would be an
        // unknown outcome, held for a person.
        context.ensure_time_for(self.sender.least_time())?;
        // Only one delivery gets past here: two copies of a message in one batch cannot
        // both send.
        let turn = self
            .enrollments
            .begin_send(id, message.step)
            .await
            .map_err(|e| HandlerError::from_source("taking the step for sending", e))?;
        if turn == Transition::Conflict {
            return Err(HandlerError::retryable(format!(
                "enrollment {id} is being sent by another delivery"
            )));
        }
        let provider_id = match self.sender.send(&message.to_phone, &body).await {
            Ok(provider_id) => provider_id,
            Err(error) => {
                let error = HandlerError::from_source(
                    format!("sending step {} of enrollment {id}", message.step),
                    error,
                );
                match error.kind {
                    // The text may be out: hold it where nothing sends it again. Should the
                    // hold fail, it stays `sending`, which is out of reach too.
                    FailureKind::UnknownOutcome => {
                        if let Err(hold) = self
                            .enrollments
                            .hold_unknown(id, &error.full_reason())
                            .await
                        {
                            warn!(enrollment_id = id, error = %symphony_core::error::chain(&hold), "could not mark the enrollment unknown; it stays sending");
                        }
                    }
                    kind if kind.is_retryable() => {
                        if let Err(abort) = self.enrollments.abort_send(id).await {
                            // Left `sending`, where nothing takes it again: held, so it is
                            // dead-lettered for a person rather than stuck unseen.
                            return Err(HandlerError::unknown_outcome(format!(
                                "step {} of enrollment {id} was not sent ({}), but could not be put back to claimed ({}); it stays sending",
                                message.step,
                                error.full_reason(),
                                symphony_core::error::chain(&abort)
                            )));
                        }
                    }
                    _ => {}
                }
                return Err(error);
            }
        };
        let next = match sequence.steps.get(message.step + 1) {
            Some(following) => EnrollmentNext::Step {
                index: message.step + 1,
                send_at: now.timestamp() + following.delay_hours * 3_600,
            },
            None => EnrollmentNext::Finished,
        };
        self.advance(id, message.step, next).await?;
        info!(enrollment_id = id, step = message.step, provider_id = %provider_id, route = %context.route, "sms sent");
        Ok(SmsOutcome::Sent)
    }

    async fn advance(
        &self,
        id: &str,
        from: usize,
        next: EnrollmentNext,
    ) -> Result<(), HandlerError> {
        match self.enrollments.advance(id, from, next).await {
            Ok(Transition::Done) => Ok(()),
            Ok(Transition::Conflict) => {
                warn!(enrollment_id = id, "enrollment moved on meanwhile");
                Ok(())
            }
            // The text is out, but the enrollment says `sending`, where nothing takes it
            // again (nor its later steps). Held, so it is dead-lettered with what happened:
            // a person moves it on.
            Err(error) => Err(HandlerError::unknown_outcome(format!(
                "step {from} of enrollment {id} was sent, but the enrollment could not be moved on ({}); it stays sending",
                symphony_core::error::chain(&error)
            ))),
        }
    }
}

impl SendSmsHandler {
    /// A panic marks its unit, not only its message: one caught mid-send (`sending`) may
    /// have handed the text over, so it is held as unknown; any other fails the enrollment
    /// (by the caller, as a permanent failure).
    async fn after_panic(&self, enrollment_id: &str, text: &str) -> HandlerError {
        let reason = format!("the handler panicked: {text}");
        match self.enrollments.hold_unknown(enrollment_id, &reason).await {
            // Not `sending`: the panic came before the send or after it was recorded.
            Ok(Transition::Conflict) => HandlerError::permanent(reason),
            // Held, or it may be `sending` still: never failed, which could send it again.
            Ok(Transition::Done) | Err(_) => HandlerError::unknown_outcome(reason),
        }
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
        let result = match message.validate() {
            Ok(()) => match AssertUnwindSafe(self.send(&message, context, Utc::now()))
                .catch_unwind()
                .await
            {
                Ok(result) => result.map(drop),
                Err(panic) => Err(self
                    .after_panic(&message.enrollment_id, panic_text(panic.as_ref()))
                    .await),
            },
            Err(error) => Err(error),
        };
        if let Err(error) = &result
            && error.kind == FailureKind::Intrinsic
            && !message.enrollment_id.trim().is_empty()
        {
            // Record why, so the enrollment tells the same story as the DLQ.
            if let Err(mark) = self
                .enrollments
                .fail(&message.enrollment_id, &error.full_reason())
                .await
            {
                warn!(enrollment_id = %message.enrollment_id, error = %symphony_core::error::chain(&mark), "could not mark the enrollment failed");
            }
        }
        result
    }
}
