//! `SendSmsHandler`: sends one step of a drip, the same code on both paths.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use symphony_core::{Envelope, HandlerContext, HandlerError, Retryable, TypedHandler};
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
            .map_err(|e| HandlerError::from_source("reading the sequence", e))?
            .ok_or_else(|| {
                HandlerError::permanent(format!(
                    "sequence {} does not exist",
                    enrollment.sequence_id
                ))
            })?;
        let Some(step) = sequence.steps.get(message.step) else {
            self.advance(id, message.step, EnrollmentNext::Finished)
                .await?;
            return Ok(SmsOutcome::AlreadyDone);
        };
        let body = render(&step.body, &enrollment.fields, Escape::None).map_err(|e| {
            HandlerError::permanent(format!(
                "step {} of sequence {}: {e}",
                message.step, sequence.sequence_id
            ))
        })?;
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
                if error.is_retryable()
                    && let Err(abort) = self.enrollments.abort_send(id).await
                {
                    warn!(enrollment_id = id, error = %symphony_core::error::chain(&abort), "could not put the enrollment back to claimed");
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
            // The text is out: failing now would send it again on the retry.
            Err(error) => {
                warn!(enrollment_id = id, error = %symphony_core::error::chain(&error), "sms sent, but advancing the enrollment failed");
                Ok(())
            }
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
            Ok(()) => self.send(&message, context, Utc::now()).await.map(drop),
            Err(error) => Err(error),
        };
        if let Err(error) = &result
            && !error.is_retryable()
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
