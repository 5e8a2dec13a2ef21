//! The SMTP mailer: lettre's connection, driven one step at a time, so that every failure
//! is known to be before or after the mail was handed over.
//!
//! Up to the data's final dot nothing is handed over: a timeout, a lost connection or a
//! 4xx there is safe to retry. After the final dot the server may have taken the mail,
//! so a timeout or a lost connection there is an *unknown outcome*: held, never retried
//! by itself. To make that rare the reply to the final dot is awaited as long as the
//! invocation allows (RFC 5321 §4.5.3.2.6 suggests ten minutes).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Noop, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::sync::Mutex;

use symphony_core::{FailureKind, HandlerError};
use symphony_jobs::email::model::{Mailbox, SmtpSecurity};
use symphony_jobs::email::ports::{Mailer, OutgoingEmail};
use symphony_jobs::secrets::{Secret, SecretRef, SecretResolver};

type SmtpError = lettre::transport::smtp::Error;

/// RFC 5321's suggested wait for the reply to the data's final dot.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(600);
/// Kept free before the invocation's deadline after the verdict: recording the outcome,
/// and the worker's dead-lettering of the batch's failures.
const RECORD_MARGIN: Duration = Duration::from_secs(10);
/// The steps before the final dot, each bounded by the step timeout: connect, STARTTLS,
/// login, NOOP or MAIL, RCPT, DATA.
const STEPS_BEFORE_THE_DOT: u32 = 6;
/// Idle connections kept per mailbox.
const IDLE_PER_MAILBOX: usize = 4;

/// Connections left open after a send, with the password they logged in with.
type IdleConnections = (Option<Secret>, Vec<AsyncSmtpConnection>);

pub struct SmtpMailer {
    secrets: Arc<dyn SecretResolver>,
    /// Each step before the final dot: connect, greeting, TLS, login, MAIL, RCPT, DATA.
    step_timeout: Duration,
    /// The longest wait for the reply to the final dot, cut to the invocation's deadline.
    reply_timeout: Duration,
    /// PEM certificates trusted besides the public roots (a private relay's CA).
    extra_roots: Vec<Vec<u8>>,
    hello: ClientId,
    /// Where mailbox passwords live (`<stack>/smtp/`): a mailbox may only use secrets under
    /// its owner's folder in it, `<prefix><userId>/…`. None: no check (tests, local runs).
    secrets_prefix: Option<String>,
    /// Connections left open after a send, per mailbox, with the password they logged in with.
    idle: Mutex<HashMap<Mailbox, IdleConnections>>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("step_timeout", &self.step_timeout)
            .field("reply_timeout", &self.reply_timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// `step_timeout` bounds each step before the final dot; the reply to the final dot is
    /// awaited up to [`DEFAULT_REPLY_TIMEOUT`] (see [`Self::with_reply_timeout`]).
    pub fn new(secrets: Arc<dyn SecretResolver>, step_timeout: Duration) -> Self {
        Self {
            secrets,
            step_timeout,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            extra_roots: Vec::new(),
            hello: ClientId::default(),
            secrets_prefix: None,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Trusts `pem` (one or more PEM certificates) besides the public roots.
    pub fn with_extra_roots(mut self, pem: Vec<u8>) -> Self {
        self.extra_roots.push(pem);
        self
    }

    /// Lets a mailbox use only secrets under `<prefix><its userId>/`, checked before any
    /// read: one user's mailbox can never log in with another's password.
    pub fn with_secrets_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.secrets_prefix = Some(prefix.into());
        self
    }

    /// Waits at most `timeout` for the reply to the final dot.
    pub fn with_reply_timeout(mut self, timeout: Duration) -> Self {
        self.reply_timeout = timeout;
        self
    }

    /// The password to log in with: none without a username, empty without a reference.
    /// A secret that cannot be read is the deployment's fault, not the email's.
    async fn password(&self, mailbox: &Mailbox) -> Result<Option<Secret>, HandlerError> {
        if mailbox.smtp_username.is_none() {
            return Ok(None);
        }
        let Some(reference) = &mailbox.smtp_password else {
            return Ok(Some(Secret::new("")));
        };
        if let (Some(prefix), SecretRef::SecretsManager(id)) = (&self.secrets_prefix, reference) {
            let owners = format!("{prefix}{}/", mailbox.user_id);
            // An empty user id, or one with a '/', would name a folder shared with others.
            let own_folder = !mailbox.user_id.is_empty() && !mailbox.user_id.contains('/');
            if !own_folder || !secret_name(id).starts_with(&owners) {
                return Err(HandlerError::new(
                    FailureKind::Intrinsic,
                    format!(
                        "mailbox {} may only use secrets under {owners}, not {reference:?}",
                        mailbox.mailbox_id
                    ),
                    None,
                ));
            }
        }
        self.secrets
            .resolve(reference)
            .await
            .map(Some)
            .map_err(|e| {
                HandlerError::new(
                    FailureKind::Infrastructure,
                    format!(
                        "the SMTP password of mailbox {} cannot be resolved",
                        mailbox.mailbox_id
                    ),
                    Some(Box::new(e)),
                )
            })
    }

    /// Certificate checks always on: the public roots, plus any extra root configured.
    fn tls_parameters(&self, mailbox: &Mailbox) -> Result<TlsParameters, HandlerError> {
        let unusable = |e: SmtpError| {
            HandlerError::new(
                FailureKind::Intrinsic,
                format!("TLS for mailbox {} cannot be set up", mailbox.mailbox_id),
                Some(Box::new(e)),
            )
        };
        let mut builder = TlsParameters::builder(mailbox.smtp_host.clone());
        for pem in &self.extra_roots {
            builder = builder.add_root_certificate(Certificate::from_pem(pem).map_err(unusable)?);
        }
        builder.build_rustls().map_err(unusable)
    }

    /// One step before the final dot, bounded by the step timeout. Nothing is handed over
    /// yet, so a timeout or a lost connection is worth another try.
    async fn step<T>(
        &self,
        name: &str,
        work: impl Future<Output = Result<T, SmtpError>>,
    ) -> Result<T, HandlerError> {
        match tokio::time::timeout(self.step_timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if MAILBOX_STEPS.contains(&name) => Err(mailbox_fault(name, error)),
            Ok(Err(error)) => Err(classify(name, error)),
            Err(_) => Err(HandlerError::new(
                FailureKind::Transient,
                format!(
                    "the SMTP server did not answer {name} within {:?}",
                    self.step_timeout
                ),
                None,
            )),
        }
    }

    /// A new connection: connect, greeting, TLS as the mailbox says, and the login.
    async fn connect(
        &self,
        mailbox: &Mailbox,
        password: &Option<Secret>,
    ) -> Result<AsyncSmtpConnection, HandlerError> {
        let address = (mailbox.smtp_host.as_str(), mailbox.smtp_port);
        let wrapper = match mailbox.smtp_security {
            SmtpSecurity::Tls => Some(self.tls_parameters(mailbox)?),
            SmtpSecurity::StartTls | SmtpSecurity::None => None,
        };
        let mut connection = self
            .step(
                "the connection",
                AsyncSmtpConnection::connect_tokio1(
                    address,
                    Some(self.step_timeout),
                    &self.hello,
                    wrapper,
                    None,
                ),
            )
            .await?;
        if mailbox.smtp_security == SmtpSecurity::StartTls {
            // Required, not opportunistic: a server without STARTTLS gets no password.
            let parameters = self.tls_parameters(mailbox)?;
            self.step("STARTTLS", connection.starttls(parameters, &self.hello))
                .await?;
        }
        if let (Some(username), Some(password)) = (&mailbox.smtp_username, password) {
            let credentials = Credentials::new(username.clone(), password.expose().to_owned());
            self.step(
                "the login",
                connection.auth(DEFAULT_MECHANISMS, &credentials),
            )
            .await?;
        }
        Ok(connection)
    }

    /// A logged-in connection: an idle one when it still answers, else a new one. A login
    /// refused (535) with a cached password reads the password afresh and tries once more:
    /// it may have been rotated since it was cached.
    async fn connection(
        &self,
        mailbox: &Mailbox,
    ) -> Result<(AsyncSmtpConnection, Option<Secret>), HandlerError> {
        let password = self.password(mailbox).await?;
        if let Some(mut idle) = self.take_idle(mailbox, &password).await
            && self.step("NOOP", idle.command(Noop)).await.is_ok()
        {
            return Ok((idle, password));
        }
        match self.connect(mailbox, &password).await {
            Err(refused) if is_login_refused(&refused) => {
                let Some(reference) = &mailbox.smtp_password else {
                    return Err(refused);
                };
                self.secrets.forget(reference).await;
                let fresh = self.password(mailbox).await?;
                if fresh == password {
                    return Err(refused);
                }
                let connection = self.connect(mailbox, &fresh).await?;
                Ok((connection, fresh))
            }
            other => other.map(|connection| (connection, password)),
        }
    }

    async fn take_idle(
        &self,
        mailbox: &Mailbox,
        password: &Option<Secret>,
    ) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().await;
        let (logged_in_with, connections) = idle.get_mut(mailbox)?;
        if logged_in_with != password {
            idle.remove(mailbox);
            return None;
        }
        connections.pop()
    }

    async fn put_idle(
        &self,
        mailbox: &Mailbox,
        password: Option<Secret>,
        connection: AsyncSmtpConnection,
    ) {
        let mut idle = self.idle.lock().await;
        let entry = idle
            .entry(mailbox.clone())
            .or_insert_with(|| (password.clone(), Vec::new()));
        if entry.0 != password {
            *entry = (password, Vec::new());
        }
        if entry.1.len() < IDLE_PER_MAILBOX {
            entry.1.push(connection);
        }
    }

    /// How long the reply to the final dot may be awaited: the configured wait, cut so
    /// that the outcome can still be recorded before the deadline.
    fn reply_wait(&self, deadline: Option<Instant>) -> Duration {
        match deadline {
            Some(deadline) => self.reply_timeout.min(
                deadline
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(RECORD_MARGIN),
            ),
            None => self.reply_timeout,
        }
    }

    /// MAIL, RCPT, DATA, the content and the final dot, and the server's verdict.
    /// `sender_is_mailboxs`: the sender is the mailbox's, so a refusal of it is the
    /// mailbox's to fix, not this email's (decision 0009).
    async fn transaction(
        &self,
        connection: &mut AsyncSmtpConnection,
        (envelope, sender_is_mailboxs): (&Envelope, bool),
        content: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), HandlerError> {
        let mut options = Vec::new();
        let is_ascii = |address: &lettre::Address| AsRef::<str>::as_ref(address).is_ascii();
        let non_ascii = envelope.from().is_some_and(|from| !is_ascii(from))
            || envelope.to().iter().any(|to| !is_ascii(to));
        if non_ascii {
            if !connection
                .server_info()
                .supports_feature(Extension::SmtpUtfEight)
            {
                return Err(HandlerError::new(
                    FailureKind::Intrinsic,
                    "an address is not ASCII and the server does not take SMTPUTF8",
                    None,
                ));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !content.is_ascii() {
            if !connection
                .server_info()
                .supports_feature(Extension::EightBitMime)
            {
                return Err(HandlerError::new(
                    FailureKind::Intrinsic,
                    "the message is not ASCII and the server does not take 8BITMIME",
                    None,
                ));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        self.step(
            "MAIL FROM",
            connection.command(Mail::new(envelope.from().cloned(), options)),
        )
        .await
        .map_err(|mut error| {
            if sender_is_mailboxs && error.kind == FailureKind::Intrinsic {
                error.kind = FailureKind::Infrastructure;
                error.reason = format!(
                    "{}: the sender is the mailbox's fromEmail, so every email of the mailbox would meet it",
                    error.reason
                );
            }
            error
        })?;
        for recipient in envelope.to() {
            self.step(
                "RCPT TO",
                connection.command(Rcpt::new(recipient.clone(), Vec::new())),
            )
            .await?;
        }
        // Checked before the data goes: a verdict that could not be awaited is an unknown
        // outcome, so no send starts without time to hear it.
        // The deadline may have cut the wait; under one step's worth (or the configured
        // wait, if shorter) the verdict would likely be missed.
        let wait = self.reply_wait(deadline);
        let needed = self.reply_timeout.min(self.step_timeout);
        if wait < needed {
            return Err(HandlerError::new(
                FailureKind::Transient,
                format!("not sent: {wait:?} left to await the server's verdict, under {needed:?}"),
                None,
            ));
        }
        self.step("DATA", connection.command(Data)).await?;
        // Sized again now that DATA is answered (it may have taken a step's worth): the
        // time kept to record the outcome stays whole. Nothing is handed over yet.
        let wait = self.reply_wait(deadline);
        if wait < needed {
            return Err(HandlerError::new(
                FailureKind::Transient,
                format!(
                    "not sent: after DATA, {wait:?} left to await the server's verdict, under {needed:?}"
                ),
                None,
            ));
        }

        let handed_over = AtomicBool::new(false);
        let started = Instant::now();
        let body = HandOver {
            content: Some(content),
            handed_over: &handed_over,
        };
        let verdict = tokio::time::timeout(wait, connection.message_iter(body)).await;
        let elapsed = started.elapsed();
        let handed_over = handed_over.load(Ordering::SeqCst);
        match verdict {
            Ok(Ok(_)) => Ok(()),
            // The server answered with a code: a definite verdict, the mail was not taken.
            Ok(Err(error)) if error.status().is_some() => Err(classify("the data", error)),
            Ok(Err(error)) if !handed_over => Err(HandlerError::new(
                FailureKind::Transient,
                "the connection failed while the data was written, before its final dot",
                Some(Box::new(error)),
            )),
            Ok(Err(error)) => Err(HandlerError::new(
                FailureKind::UnknownOutcome,
                format!(
                    "stage: after the data's final dot; elapsed: {} ms; the connection failed before the server's verdict",
                    elapsed.as_millis()
                ),
                Some(Box::new(error)),
            )),
            Err(_) if !handed_over => Err(HandlerError::new(
                FailureKind::Transient,
                format!("the data could not be written within {wait:?}"),
                None,
            )),
            Err(_) => Err(HandlerError::new(
                FailureKind::UnknownOutcome,
                format!(
                    "stage: after the data's final dot; elapsed: {} ms; no verdict from the server within {wait:?}",
                    elapsed.as_millis()
                ),
                None,
            )),
        }
    }
}

/// The name of a secret given by name or by ARN (`arn:…:secret:<name>`, the name ending
/// in the random suffix Secrets Manager adds): the folder check reads the name.
fn secret_name(id: &str) -> &str {
    if id.starts_with("arn:") {
        id.split_once(":secret:").map_or(id, |(_, name)| name)
    } else {
        id
    }
}

/// The least time a send with steps bounded by `step_timeout` needs: every step before
/// the final dot, one step's worth of waiting for the verdict, and the margin to record
/// it. A handler with less left does not start the send.
pub fn least_time(step_timeout: Duration) -> Duration {
    step_timeout * (STEPS_BEFORE_THE_DOT + 1) + RECORD_MARGIN
}

/// The longest a send can take: every step before the final dot, the whole wait for the
/// verdict, and the margin to record it. `handle-email`'s timeout covers it.
pub fn longest_time(step_timeout: Duration, reply_timeout: Duration) -> Duration {
    step_timeout * STEPS_BEFORE_THE_DOT + reply_timeout + RECORD_MARGIN
}

/// The message content as lettre's writer takes it, noting when all of it has been
/// written: lettre asks for the next part only after the previous one is flushed, and
/// writes the final dot right after the last. From then on the server may take the mail.
struct HandOver<'a> {
    content: Option<&'a [u8]>,
    handed_over: &'a AtomicBool,
}

impl<'a> Iterator for HandOver<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let part = self.content.take();
        if part.is_none() {
            self.handed_over.store(true, Ordering::SeqCst);
        }
        part
    }
}

/// Steps about the mailbox and its server, not the email: a refusal there (a 535, no
/// common login mechanism, a TLS failure) would refuse every email of the mailbox alike.
const MAILBOX_STEPS: [&str; 3] = ["the connection", "STARTTLS", "the login"];

/// A refusal at a mailbox step: never the email's fault. The email waits (released or
/// backed off) while the fault is reported; a 4xx or a network error stays transient.
fn mailbox_fault(step: &str, error: SmtpError) -> HandlerError {
    let transient =
        error.is_transient() || !(error.is_permanent() || error.is_client() || error.is_tls());
    let reason = match error.status() {
        Some(code) => format!("the SMTP server replied {code} to {step}"),
        None => format!("the SMTP exchange failed at {step}"),
    };
    if transient {
        HandlerError::new(FailureKind::Transient, reason, Some(Box::new(error)))
    } else {
        HandlerError::new(
            FailureKind::Infrastructure,
            format!("{reason}: the mailbox's settings or credentials need a fix"),
            Some(Box::new(error)),
        )
    }
}

/// A 535: authentication credentials invalid.
fn is_login_refused(error: &HandlerError) -> bool {
    error
        .source
        .as_deref()
        .and_then(|source| source.downcast_ref::<SmtpError>())
        .and_then(SmtpError::status)
        .is_some_and(|code| code.to_string() == "535")
}

/// Builds the MIME message. The Message-ID carries the email id, so a receiving side
/// (and our tests) can tell which record a mail came from.
pub fn build_message(email: &OutgoingEmail) -> Result<Message, HandlerError> {
    let address = |field: &str, value: &str| {
        value.parse::<lettre::Address>().map_err(|e| {
            HandlerError::new(
                FailureKind::Intrinsic,
                format!("{field} is not a valid email address"),
                Some(Box::new(e)),
            )
        })
    };
    let from_name = (!email.from_name.is_empty()).then(|| email.from_name.clone());
    Message::builder()
        .message_id(Some(format!("<{}@symphony>", email.email_id)))
        .from(lettre::message::Mailbox::new(
            from_name,
            address("fromEmail", &email.from_email)?,
        ))
        .to(lettre::message::Mailbox::new(
            None,
            address("toEmail", &email.to_email)?,
        ))
        .subject(email.subject.clone())
        .header(ContentType::TEXT_HTML)
        .body(email.html.clone())
        .map_err(|e| {
            HandlerError::new(
                FailureKind::Intrinsic,
                "the email could not be built",
                Some(Box::new(e)),
            )
        })
}

/// A failure before the final dot: a 5xx reply or a client-side error is permanent; a
/// 4xx, a timeout or a connection failure is worth another try.
fn classify(step: &str, error: SmtpError) -> HandlerError {
    let reason = match error.status() {
        Some(code) => format!("the SMTP server replied {code} to {step}"),
        None => format!("the SMTP exchange failed at {step}"),
    };
    // "Log in first" (530) is the mailbox's, not this email's: every email of the mailbox
    // would meet it, so it waits for the mailbox to be mended instead of failing. Other
    // refusals of the sender stay the email's own: the sender address is the email's
    // `fromEmail`, which may be the one thing wrong with it.
    let sender_refused = error.status().is_some_and(|code| code.to_string() == "530");
    if sender_refused {
        HandlerError::new(
            FailureKind::Infrastructure,
            format!("{reason}: the server wants this mailbox to log in first"),
            Some(Box::new(error)),
        )
    } else if error.is_permanent() || error.is_client() {
        HandlerError::new(FailureKind::Intrinsic, reason, Some(Box::new(error)))
    } else {
        HandlerError::new(FailureKind::Transient, reason, Some(Box::new(error)))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    fn least_time(&self) -> Duration {
        least_time(self.step_timeout)
    }

    async fn send(
        &self,
        mailbox: &Mailbox,
        email: &OutgoingEmail,
        deadline: Option<Instant>,
    ) -> Result<(), HandlerError> {
        let message = build_message(email)?;
        let content = message.formatted();
        let (mut connection, password) = self.connection(mailbox).await?;
        self.transaction(
            &mut connection,
            (message.envelope(), email.sender_is_mailboxs),
            &content,
            deadline,
        )
        .await?;
        // A connection that failed is dropped (closing it); a good one serves the next send.
        self.put_idle(mailbox, password, connection).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_core::FailureKind;
    use symphony_jobs::secrets::SecretError;

    /// Hands out one password for any reference, and says which were asked for.
    #[derive(Default)]
    struct Vault {
        asked: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl SecretResolver for Vault {
        async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
            self.asked
                .lock()
                .expect("not poisoned")
                .push(format!("{reference:?}"));
            Ok(Secret::new("Pa55"))
        }
    }

    fn mailbox(user_id: &str, reference: &str) -> Mailbox {
        Mailbox {
            mailbox_id: "mailbox-1".into(),
            user_id: user_id.into(),
            smtp_host: "127.0.0.1".into(),
            smtp_port: 25,
            smtp_security: SmtpSecurity::None,
            smtp_username: Some("symphony".into()),
            smtp_password: Some(reference.parse().expect("a reference")),
            daily_limit: None,
            from_name: None,
            from_email: None,
        }
    }

    /// What the mailer does with a mailbox's password reference: read it, or refuse it
    /// (the failure's kind) without reading.
    async fn password_of(mailbox: &Mailbox) -> Result<(), FailureKind> {
        let vault = Arc::new(Vault::default());
        let mailer = SmtpMailer::new(vault.clone(), Duration::from_secs(1))
            .with_secrets_prefix("stack/smtp/");
        let result = mailer
            .password(mailbox)
            .await
            .map(|_| ())
            .map_err(|e| e.kind);
        let asked = vault.asked.lock().expect("not poisoned").len();
        assert_eq!(asked, usize::from(result.is_ok()), "{result:?}");
        result
    }

    #[tokio::test]
    async fn a_mailbox_reads_secrets_in_its_owners_folder_by_name_or_by_arn() {
        for reference in [
            "secretsmanager:stack/smtp/user-1/mailbox-1",
            "secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:stack/smtp/user-1/mailbox-1-AbCdEf",
        ] {
            assert_eq!(
                password_of(&mailbox("user-1", reference)).await,
                Ok(()),
                "{reference}"
            );
        }
    }

    #[tokio::test]
    async fn a_mailbox_never_reads_a_secret_outside_its_owners_folder() {
        for (user_id, reference) in [
            ("user-1", "secretsmanager:stack/smtp/user-2/theirs"),
            (
                "user-1",
                "secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:stack/smtp/user-2/theirs-AbCdEf",
            ),
            // an ARN whose name only contains the folder further on
            (
                "user-1",
                "secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:other/stack/smtp/user-1/x",
            ),
            // an empty user id would make the whole folder its own
            ("", "secretsmanager:stack/smtp//anything"),
            // as would a user id that reaches into another folder
            (
                "user-1/../user-2",
                "secretsmanager:stack/smtp/user-1/../user-2/theirs",
            ),
        ] {
            assert_eq!(
                password_of(&mailbox(user_id, reference)).await,
                Err(FailureKind::Intrinsic),
                "{user_id} {reference}"
            );
        }
    }
}
