//! `SendEmailHandler`: sends one `EmailMessage`, the same code on both paths. The
//! lifecycle (who may send, what a failed send leaves behind) is the core's send-once step.

use std::sync::Arc;

use async_trait::async_trait;
use symphony_core::ledger::delivery::{SendOnce, Turn, guarded, take_turn};
use symphony_core::{
    Clock, Envelope, FailureKind, HandlerContext, HandlerError, Ledger, Next, SystemClock,
    TypedHandler,
};
use tracing::debug;

use super::message::EmailMessage;
use super::model::EmailRecord;
use super::ports::{MailboxStore, Mailer, OutgoingEmail};

pub struct SendEmailHandler {
    emails: Arc<dyn Ledger<EmailRecord>>,
    mailboxes: Arc<dyn MailboxStore>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SendEmailHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendEmailHandler").finish_non_exhaustive()
    }
}

impl SendEmailHandler {
    pub fn new(
        emails: Arc<dyn Ledger<EmailRecord>>,
        mailboxes: Arc<dyn MailboxStore>,
        mailer: Arc<dyn Mailer>,
    ) -> Self {
        Self {
            emails,
            mailboxes,
            mailer,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same handler reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    async fn send(
        &self,
        message: &EmailMessage,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        message.validate()?;
        let id = message.email_id.as_str();
        let now = self.clock.epoch_seconds();
        if let Turn::AlreadyDone(_) =
            take_turn(self.emails.as_ref(), id, 0, context.route, now).await?
        {
            return Ok(());
        }
        let mailbox = self
            .mailboxes
            .get(&message.mailbox_id)
            .await
            .map_err(|e| e.of_dependency("reading the mailbox"))?
            .ok_or_else(|| {
                HandlerError::permanent(format!("mailbox {} does not exist", message.mailbox_id))
            })?;
        // The sender is the email's when it names an address, else the mailbox's: name
        // and address always come from the same place.
        let given = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
        let (from_name, from_email, sender_is_mailboxs) = match given(&message.from_email) {
            Some(address) => (given(&message.from_name), address, false),
            None => match given(&mailbox.from_email) {
                Some(address) => (given(&mailbox.from_name), address, true),
                None => {
                    // The mailbox row is to be fixed, not the email: it waits, as for a
                    // mailbox that cannot be read, and the next try reads the row again.
                    self.mailboxes.forget(&message.mailbox_id);
                    return Err(HandlerError::new(
                        FailureKind::Infrastructure,
                        format!(
                            "email {id} gives no fromEmail and mailbox {} has none",
                            message.mailbox_id
                        ),
                        None,
                    ));
                }
            },
        };
        let outgoing = OutgoingEmail {
            email_id: message.email_id.clone(),
            from_name: from_name.unwrap_or_default(),
            from_email,
            sender_is_mailboxs,
            to_email: message.to_email.clone(),
            subject: message.subject.clone(),
            html: message.html.clone(),
        };
        let once = SendOnce {
            ledger: self.emails.as_ref(),
            clock: self.clock.as_ref(),
            unit_id: id,
            step: 0,
        };
        let send = async {
            self.mailer
                .send(&mailbox, &outgoing, context.deadline)
                .await
                .map_err(|e| HandlerError::from_source(format!("sending email {id}"), e))
        };
        let sent = once
            .run(context, self.mailer.least_time(), send, |_, _| Next::Done)
            .await;
        if let Err(error) = &sent
            && error.kind != FailureKind::Intrinsic
        {
            // The next try reads the row again: after a failed connection, login or
            // verdict an operator may fix the mailbox, and a retry (here, in this warm
            // function) should not go to the old server. A refusal of the email itself
            // (a bounced recipient) says nothing about the mailbox.
            self.mailboxes.forget(&message.mailbox_id);
        }
        sent?;
        debug!(email_id = %id, mailbox_id = %message.mailbox_id, route = %context.route, "email sent");
        Ok(())
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
        guarded(
            self.emails.as_ref(),
            self.clock.as_ref(),
            &message.email_id,
            self.send(&message, context),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use symphony_core::ledger::memory::Operation;
    use symphony_core::{FailureKind, MemoryLedger, Route};

    use super::*;
    use crate::email::EmailStatus;
    use crate::email::model::{Mailbox, SmtpSecurity};

    use crate::memory::{MemoryMailboxes, ScriptedMailer};

    fn email(status: EmailStatus) -> EmailRecord {
        EmailRecord {
            message: EmailMessage {
                email_id: "em-1".into(),
                user_id: "u".into(),
                mailbox_id: "mb".into(),
                to_email: "lead@example.com".into(),
                subject: "Hello".into(),
                html: "<p>Hi</p>".into(),
                from_name: Some("Ada".into()),
                from_email: Some("ada@example.com".into()),
            },
            status,
            due_at: 1_700_000_000,
            claimed_by: None,
            last_error: None,
        }
    }

    struct Rig {
        emails: Arc<MemoryLedger<EmailRecord>>,
        mailboxes: Arc<MemoryMailboxes>,
        mailer: Arc<ScriptedMailer>,
        handler: SendEmailHandler,
    }

    fn rig_mailbox() -> Mailbox {
        Mailbox {
            mailbox_id: "mb".into(),
            user_id: "u".into(),
            smtp_host: "localhost".into(),
            smtp_port: 25,
            smtp_security: SmtpSecurity::None,
            smtp_username: None,
            smtp_password: None,
            daily_limit: None,
            from_name: None,
            from_email: None,
        }
    }

    fn setup(status: EmailStatus, answer: Option<Result<(), HandlerError>>) -> Rig {
        setup_with(status, rig_mailbox(), answer)
    }

    fn setup_with_mailbox(mailbox: Mailbox, answer: Option<Result<(), HandlerError>>) -> Rig {
        setup_with(EmailStatus::Claimed, mailbox, answer)
    }

    fn setup_with(
        status: EmailStatus,
        mailbox: Mailbox,
        answer: Option<Result<(), HandlerError>>,
    ) -> Rig {
        let emails = Arc::new(MemoryLedger::with([email(status)]));
        let mailboxes = Arc::new(MemoryMailboxes::of([mailbox]));
        let mailer = Arc::new(ScriptedMailer::answering(answer));
        let handler = SendEmailHandler::new(emails.clone(), mailboxes.clone(), mailer.clone());
        Rig {
            emails,
            mailboxes,
            mailer,
            handler,
        }
    }

    impl Rig {
        async fn deliver(&self, message: EmailMessage) -> Result<(), HandlerError> {
            let envelope = Envelope::wrap(&message, "test", None).unwrap();
            let context = HandlerContext::new(Route::Symphony, "req-1");
            self.handler.handle(message, &envelope, &context).await
        }

        fn status(&self) -> EmailStatus {
            self.emails.peek("em-1").unwrap().status
        }
    }

    fn answers() -> [(&'static str, Result<(), HandlerError>); 5] {
        [
            ("accepted", Ok(())),
            (
                "421",
                Err(HandlerError::new(
                    FailureKind::Transient,
                    "421 try later",
                    None,
                )),
            ),
            (
                "550",
                Err(HandlerError::new(
                    FailureKind::Intrinsic,
                    "550 no such user",
                    None,
                )),
            ),
            (
                "530",
                Err(HandlerError::new(
                    FailureKind::Infrastructure,
                    "530 log in first",
                    None,
                )),
            ),
            (
                "no verdict",
                Err(HandlerError::new(
                    FailureKind::UnknownOutcome,
                    "no verdict after the dot",
                    None,
                )),
            ),
        ]
    }

    /// What the handler answers and where the email ends, for each status it finds and
    /// each answer of the server: (sends made, failure kind, status after).
    fn expected(found: EmailStatus, answer: &str) -> (usize, Option<FailureKind>, EmailStatus) {
        use EmailStatus::*;
        match (found, answer) {
            (Queued | Claimed, "accepted") => (1, None, Sent),
            (Queued | Claimed, "421") => (1, Some(FailureKind::Transient), Claimed),
            (Queued | Claimed, "550") => (1, Some(FailureKind::Intrinsic), Failed),
            (Queued | Claimed, "530") => (1, Some(FailureKind::Infrastructure), Claimed),
            (Queued | Claimed, _) => (1, Some(FailureKind::UnknownOutcome), Unknown),
            (Sending, _) => (0, Some(FailureKind::Transient), Sending),
            (Sent, _) => (0, None, Sent),
            (Failed, _) => (0, Some(FailureKind::Intrinsic), Failed),
            (Unknown, _) => (0, Some(FailureKind::UnknownOutcome), Unknown),
        }
    }

    #[tokio::test]
    async fn every_status_and_every_answer_of_the_server_ends_where_it_should() {
        use EmailStatus::*;
        for found in [Queued, Claimed, Sending, Sent, Failed, Unknown] {
            for (name, answer) in answers() {
                let rig = setup(found, Some(answer));
                let result = rig.deliver(email(found).message).await;
                let seen = (
                    rig.mailer.attempts().len(),
                    result.err().map(|error| error.kind),
                    rig.status(),
                );
                assert_eq!(seen, expected(found, name), "{found} answered {name}");
            }
        }
    }

    #[tokio::test]
    async fn a_missing_mailbox_fails_the_email_and_an_unreadable_one_keeps_it() {
        let rig = setup(EmailStatus::Claimed, None);
        let mut message = email(EmailStatus::Claimed).message;
        message.mailbox_id = "gone".into();
        let error = rig.deliver(message).await.unwrap_err();
        assert!(
            error.reason.contains("mailbox gone does not exist"),
            "{error}"
        );
        assert_eq!(rig.status(), EmailStatus::Failed);

        let rig = setup(EmailStatus::Claimed, None);
        rig.mailboxes.refuse();
        let error = rig
            .deliver(email(EmailStatus::Claimed).message)
            .await
            .unwrap_err();
        assert_eq!(error.kind, FailureKind::Infrastructure);
        assert_eq!(rig.status(), EmailStatus::Claimed, "not the email's fault");
        assert!(rig.mailer.attempts().is_empty());
    }

    #[tokio::test]
    async fn a_message_with_a_header_injected_in_its_subject_fails_the_email_naming_the_field() {
        let rig = setup(EmailStatus::Claimed, None);
        let mut message = email(EmailStatus::Claimed).message;
        message.subject = "Hello\r\nBcc: everyone@example.com".into();
        let error = rig.deliver(message).await.unwrap_err();
        assert!(error.reason.contains("subject"), "{error}");
        assert_eq!(rig.status(), EmailStatus::Failed);
        let recorded = rig.emails.peek("em-1").unwrap().last_error.unwrap();
        assert!(recorded.contains("subject"), "{recorded}");
        assert!(rig.mailer.attempts().is_empty());
    }

    #[tokio::test]
    async fn a_sent_email_that_cannot_be_recorded_is_reported_held_and_not_sent_again() {
        let rig = setup(EmailStatus::Claimed, None);
        rig.emails.refuse(Operation::Finish);
        let error = rig
            .deliver(email(EmailStatus::Claimed).message)
            .await
            .unwrap_err();
        assert_eq!(error.kind, FailureKind::UnknownOutcome);
        rig.emails.allow(Operation::Finish);
        let again = rig.deliver(email(EmailStatus::Claimed).message).await;
        assert_eq!(
            again.unwrap_err().kind,
            FailureKind::Transient,
            "it stays sending"
        );
        assert_eq!(rig.mailer.attempts().len(), 1, "sent once");
    }

    /// Counts the reads that reach the table behind the cache.
    struct CountedMailboxes {
        inner: MemoryMailboxes,
        reads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl MailboxStore for CountedMailboxes {
        async fn get(
            &self,
            mailbox_id: &str,
        ) -> Result<Option<Mailbox>, symphony_core::StoreError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.get(mailbox_id).await
        }
    }

    #[tokio::test]
    async fn a_failed_send_makes_the_next_try_read_its_mailbox_again() {
        for (first_answer, reads_expected) in [("421", 2), ("530", 2)] {
            let rig = setup(EmailStatus::Claimed, None);
            let table = Arc::new(CountedMailboxes {
                inner: MemoryMailboxes::of([rig.mailboxes.get("mb").await.unwrap().unwrap()]),
                reads: Default::default(),
            });
            let cached = Arc::new(crate::cache::CachedMailboxes::new(
                table.clone(),
                std::time::Duration::from_secs(60),
            ));
            let (_, answer) = answers()
                .into_iter()
                .find(|(name, _)| *name == first_answer)
                .unwrap();
            let mailer = Arc::new(ScriptedMailer::answering([answer, Ok(())]));
            let handler = SendEmailHandler::new(rig.emails.clone(), cached, mailer.clone());
            let message = email(EmailStatus::Claimed).message;
            let envelope = Envelope::wrap(&message, "test", None).unwrap();
            let context = HandlerContext::new(Route::Symphony, "req-1");
            assert!(
                handler
                    .handle(message.clone(), &envelope, &context)
                    .await
                    .is_err()
            );
            handler.handle(message, &envelope, &context).await.unwrap();
            assert_eq!(rig.status(), EmailStatus::Sent);
            assert_eq!(
                table.reads.load(std::sync::atomic::Ordering::SeqCst),
                reads_expected,
                "after a {first_answer}"
            );
        }
    }

    #[tokio::test]
    async fn an_email_without_a_sender_goes_out_as_its_mailbox_and_waits_when_neither_says() {
        let guide_message = EmailMessage {
            from_name: None,
            from_email: None,
            ..email(EmailStatus::Claimed).message
        };
        let mut mailbox = rig_mailbox();
        mailbox.from_name = Some("Acme".into());
        mailbox.from_email = Some("hello@acme.example".into());
        let rig = setup_with_mailbox(mailbox, Some(Ok(())));
        rig.deliver(guide_message.clone()).await.unwrap();
        let sent = rig.mailer.attempts();
        assert_eq!(
            (sent[0].from_name.as_str(), sent[0].from_email.as_str()),
            ("Acme", "hello@acme.example")
        );
        assert!(sent[0].sender_is_mailboxs);

        // The message's own sender wins over the mailbox's.
        let rig = setup_with_mailbox(
            Mailbox {
                from_email: Some("hello@acme.example".into()),
                ..rig_mailbox()
            },
            Some(Ok(())),
        );
        rig.deliver(email(EmailStatus::Claimed).message)
            .await
            .unwrap();
        let sent = &rig.mailer.attempts()[0];
        assert_eq!(
            (sent.from_name.as_str(), sent.from_email.as_str()),
            ("Ada", "ada@example.com")
        );
        assert!(!sent.sender_is_mailboxs);

        // An address without a name does not borrow the mailbox's name.
        let rig = setup_with_mailbox(
            Mailbox {
                from_name: Some("Acme".into()),
                from_email: Some("hello@acme.example".into()),
                ..rig_mailbox()
            },
            Some(Ok(())),
        );
        let mut unnamed = email(EmailStatus::Claimed).message;
        unnamed.from_name = None;
        rig.deliver(unnamed).await.unwrap();
        assert_eq!(rig.mailer.attempts()[0].from_name, "");

        // Neither gives one: nothing is sent, and the email waits for the mailbox's fix.
        let rig = setup_with_mailbox(rig_mailbox(), Some(Ok(())));
        let error = rig.deliver(guide_message).await.unwrap_err();
        assert_eq!(error.kind, FailureKind::Infrastructure);
        assert!(error.reason.contains("fromEmail"), "{error}");
        assert!(rig.mailer.attempts().is_empty());
        assert_eq!(rig.status(), EmailStatus::Claimed);
    }
}
