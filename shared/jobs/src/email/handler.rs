//! `SendEmailHandler`: sends one `EmailMessage`, the same code on both paths.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use futures::FutureExt;
use symphony_core::handler::panic_text;
use symphony_core::{Envelope, FailureKind, HandlerContext, HandlerError, TypedHandler};
use tracing::{info, warn};

use super::message::EmailMessage;
use super::model::EmailStatus;
use super::ports::{EmailStore, MailboxStore, Mailer, OutgoingEmail, Transition};

pub struct SendEmailHandler {
    emails: Arc<dyn EmailStore>,
    mailboxes: Arc<dyn MailboxStore>,
    mailer: Arc<dyn Mailer>,
}

impl std::fmt::Debug for SendEmailHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendEmailHandler").finish_non_exhaustive()
    }
}

impl SendEmailHandler {
    pub fn new(
        emails: Arc<dyn EmailStore>,
        mailboxes: Arc<dyn MailboxStore>,
        mailer: Arc<dyn Mailer>,
    ) -> Self {
        Self {
            emails,
            mailboxes,
            mailer,
        }
    }

    async fn send(
        &self,
        message: &EmailMessage,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        message.validate()?;
        let now = Utc::now().timestamp();
        let record = self
            .emails
            .get(&message.email_id)
            .await
            .map_err(|e| HandlerError::from_source("reading the email record", e))?
            .ok_or_else(|| {
                HandlerError::permanent(format!("email {} does not exist", message.email_id))
            })?;
        match record.status {
            // A redelivery of an email already sent: nothing to do.
            EmailStatus::Sent => {
                info!(email_id = %message.email_id, "email already sent; redelivery ignored");
                return Ok(());
            }
            EmailStatus::Failed => {
                return Err(HandlerError::permanent(format!(
                    "email {} was marked failed: {}",
                    message.email_id,
                    record.last_error.as_deref().unwrap_or("no reason recorded")
                )));
            }
            // Dispatched straight onto the queue by the web app, without a tick: claim it
            // here so a tick cannot send it too.
            EmailStatus::Queued => {
                let claim = self
                    .emails
                    .claim(&message.email_id, context.route, now)
                    .await
                    .map_err(|e| HandlerError::from_source("claiming the email", e))?;
                if claim.is_none() {
                    return Err(HandlerError::retryable(format!(
                        "email {} was claimed by someone else meanwhile",
                        message.email_id
                    )));
                }
            }
            EmailStatus::Claimed => {}
            // Held after a send whose outcome is unknown: this copy must not send. It is
            // dead-lettered too, so a dead letter lost with the first delivery (the
            // invocation ended before it was written) is not lost for good.
            EmailStatus::Unknown => {
                return Err(HandlerError::unknown_outcome(format!(
                    "email {} is held with an unknown outcome: {}",
                    message.email_id,
                    record
                        .last_error
                        .as_deref()
                        .unwrap_or("no evidence recorded")
                )));
            }
            // Another delivery of the same email is sending it, or died while sending: its
            // outcome is unknown, so this one must not send. Try again later.
            EmailStatus::Sending => {
                return Err(HandlerError::retryable(format!(
                    "email {} is being sent by another delivery",
                    message.email_id
                )));
            }
        }

        let mailbox = self
            .mailboxes
            .get(&message.mailbox_id)
            .await
            .map_err(|e| e.of_dependency("reading the mailbox"))?
            .ok_or_else(|| {
                HandlerError::permanent(format!("mailbox {} does not exist", message.mailbox_id))
            })?;
        let outgoing = OutgoingEmail {
            email_id: message.email_id.clone(),
            from_name: message.from_name.clone(),
            from_email: message.from_email.clone(),
            to_email: message.to_email.clone(),
            subject: message.subject.clone(),
            html: message.html.clone(),
        };
        // Nothing starts that cannot finish: a send cut by the deadline after its data
        // went out would be an unknown outcome, held for a person.
        context.ensure_time_for(self.mailer.least_time())?;
        // Only one delivery gets past here: two copies of a message in one batch, or a
        // tick's legacy path and a worker, cannot both send.
        let turn = self
            .emails
            .begin_send(&message.email_id, now)
            .await
            .map_err(|e| HandlerError::from_source("taking the email for sending", e))?;
        if turn == Transition::Conflict {
            return Err(HandlerError::retryable(format!(
                "email {} is being sent by another delivery",
                message.email_id
            )));
        }
        if let Err(error) = self
            .mailer
            .send(&mailbox, &outgoing, context.deadline)
            .await
        {
            let error =
                HandlerError::from_source(format!("sending email {}", message.email_id), error);
            match error.kind {
                // The mail may be out: hold it where no tick or delivery can send it again.
                // Should the hold fail, it stays `sending`, which is out of reach too.
                FailureKind::UnknownOutcome => {
                    let held = self
                        .emails
                        .hold_unknown(
                            &message.email_id,
                            &error.full_reason(),
                            Utc::now().timestamp(),
                        )
                        .await;
                    if let Err(hold) = held {
                        warn!(email_id = %message.email_id, error = %symphony_core::error::chain(&hold), "could not mark the email unknown; it stays sending");
                    }
                }
                kind if kind.is_retryable() => {
                    if let Err(abort) = self.emails.abort_send(&message.email_id).await {
                        // Left `sending`, where nothing takes it again: say so as held,
                        // so it is dead-lettered for a person rather than stuck unseen.
                        return Err(HandlerError::unknown_outcome(format!(
                            "email {} was not handed over ({}), but could not be put back to claimed ({}); it stays sending",
                            message.email_id,
                            error.full_reason(),
                            symphony_core::error::chain(&abort)
                        )));
                    }
                }
                _ => {}
            }
            return Err(error);
        }

        match self
            .emails
            .mark_sent(&message.email_id, Utc::now().timestamp())
            .await
        {
            Ok(Transition::Done) => {
                info!(email_id = %message.email_id, mailbox_id = %message.mailbox_id, route = %context.route, "email sent")
            }
            Ok(Transition::Conflict) => {
                warn!(email_id = %message.email_id, "email sent, but its record had already left the sending state")
            }
            // The mail is out, but the record says `sending`, where nothing takes it again.
            // Held, so it is dead-lettered with what happened: a person marks it sent.
            Err(error) => {
                return Err(HandlerError::unknown_outcome(format!(
                    "email {} was accepted by the server, but could not be marked sent ({}); it stays sending",
                    message.email_id,
                    symphony_core::error::chain(&error)
                )));
            }
        }
        Ok(())
    }
}

impl SendEmailHandler {
    /// A panic marks its unit, not only its message: one caught mid-send (the email is
    /// `sending`) may have handed the mail over, so it is held as unknown; any other
    /// fails the email (by the caller, as a permanent failure).
    async fn after_panic(&self, email_id: &str, text: &str) -> HandlerError {
        let reason = format!("the handler panicked: {text}");
        match self
            .emails
            .hold_unknown(email_id, &reason, Utc::now().timestamp())
            .await
        {
            // Not `sending`: the panic came before the send or after it was recorded.
            Ok(Transition::Conflict) => HandlerError::permanent(reason),
            // Held, or it may be `sending` still: never failed, which could send it again.
            Ok(Transition::Done) | Err(_) => HandlerError::unknown_outcome(reason),
        }
    }
}

#[async_trait]
impl TypedHandler<EmailMessage> for SendEmailHandler {
    async fn handle(
        &self,
        message: EmailMessage,
        _: &Envelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        let result = match AssertUnwindSafe(self.send(&message, context))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => Err(self
                .after_panic(&message.email_id, panic_text(panic.as_ref()))
                .await),
        };
        if let Err(error) = &result
            && error.kind == FailureKind::Intrinsic
            && !message.email_id.is_empty()
        {
            // Record why, so the emails table tells the same story as the DLQ.
            if let Err(mark) = self
                .emails
                .mark_failed(
                    &message.email_id,
                    &error.full_reason(),
                    Utc::now().timestamp(),
                )
                .await
            {
                warn!(email_id = %message.email_id, error = %symphony_core::error::chain(&mark), "could not mark the email failed");
            }
        }
        result
    }
}
