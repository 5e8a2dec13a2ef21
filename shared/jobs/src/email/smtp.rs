//! The SMTP mailer (lettre, async): TLS or STARTTLS as the mailbox says, credentials
//! resolved from the mailbox's secret reference, one pooled transport per mailbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use symphony_core::Retryable;
use tokio::sync::Mutex;

use super::model::{Mailbox, SmtpSecurity};
use super::ports::{MailError, Mailer, OutgoingEmail};
use crate::secrets::{Secret, SecretResolver};

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub struct SmtpMailer {
    secrets: Arc<dyn SecretResolver>,
    timeout: Duration,
    /// PEM certificates trusted besides the public roots (a private relay's CA).
    extra_roots: Vec<Vec<u8>>,
    /// One pooled transport per mailbox, with the password it was built with.
    transports: Mutex<HashMap<Mailbox, (Option<Secret>, Transport)>>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    pub fn new(secrets: Arc<dyn SecretResolver>, timeout: Duration) -> Self {
        Self {
            secrets,
            timeout,
            extra_roots: Vec::new(),
            transports: Mutex::new(HashMap::new()),
        }
    }

    /// The mailbox's transport, built once per mailbox record and password: the password
    /// is resolved at every send (the resolver caches it), so a rotated one, once the
    /// cache lets it through, builds a new transport instead of failing logins for good.
    async fn transport(&self, mailbox: &Mailbox) -> Result<Transport, MailError> {
        let password = self.password(mailbox).await?;
        if let Some((built_with, transport)) = self.transports.lock().await.get(mailbox)
            && *built_with == password
        {
            return Ok(transport.clone());
        }
        let host = mailbox.smtp_host.as_str();
        // lettre's "dangerous" builder only means "no TLS unless set": TLS is set here,
        // with certificate checks, for every mailbox that asks for it.
        let builder =
            match mailbox.smtp_security {
                SmtpSecurity::Tls => Transport::builder_dangerous(host)
                    .tls(Tls::Wrapper(self.tls_parameters(mailbox)?)),
                SmtpSecurity::StartTls => Transport::builder_dangerous(host)
                    .tls(Tls::Required(self.tls_parameters(mailbox)?)),
                SmtpSecurity::None => Transport::builder_dangerous(host),
            };
        let mut builder = builder.port(mailbox.smtp_port).timeout(Some(self.timeout));
        if let (Some(username), Some(password)) = (&mailbox.smtp_username, &password) {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                password.expose().to_owned(),
            ));
        }
        let transport = builder.build();
        self.transports
            .lock()
            .await
            .insert(mailbox.clone(), (password, transport.clone()));
        Ok(transport)
    }

    /// The password to log in with: none without a username, empty without a reference.
    async fn password(&self, mailbox: &Mailbox) -> Result<Option<Secret>, MailError> {
        if mailbox.smtp_username.is_none() {
            return Ok(None);
        }
        let Some(reference) = &mailbox.smtp_password else {
            return Ok(Some(Secret::new("")));
        };
        self.secrets
            .resolve(reference)
            .await
            .map(Some)
            .map_err(|e| {
                MailError::permanent(
                    format!(
                        "the SMTP password of mailbox {} cannot be resolved",
                        mailbox.mailbox_id
                    ),
                    Some(Box::new(e)),
                )
            })
    }
}

impl SmtpMailer {
    /// Trusts `pem` (one or more PEM certificates) besides the public roots.
    pub fn with_extra_roots(mut self, pem: Vec<u8>) -> Self {
        self.extra_roots.push(pem);
        self
    }

    /// Certificate checks always on: the public roots, plus any extra root configured.
    fn tls_parameters(&self, mailbox: &Mailbox) -> Result<TlsParameters, MailError> {
        let unusable = |e: lettre::transport::smtp::Error| {
            MailError::permanent(
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
}

/// Builds the MIME message. The Message-ID carries the email id, so a receiving side
/// (and our tests) can tell which record a mail came from.
pub fn build_message(email: &OutgoingEmail) -> Result<Message, MailError> {
    let address = |field: &str, value: &str| {
        value.parse::<lettre::Address>().map_err(|e| {
            MailError::permanent(
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
        .map_err(|e| MailError::permanent("the email could not be built", Some(Box::new(e))))
}

/// 5xx replies and client-side errors are permanent; 4xx, timeouts and connection
/// failures are worth another try.
fn classify(error: lettre::transport::smtp::Error) -> MailError {
    let status = error.status().map(|code| code.to_string());
    let reason = match &status {
        Some(code) => format!("the SMTP server replied {code}"),
        None => "the SMTP exchange failed".to_owned(),
    };
    if error.is_permanent() || error.is_client() {
        MailError::permanent(reason, Some(Box::new(error)))
    } else {
        MailError::retryable(reason, Some(Box::new(error)))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mailbox: &Mailbox, email: &OutgoingEmail) -> Result<(), MailError> {
        let message = build_message(email)?;
        let transport = self.transport(mailbox).await?;
        // The whole exchange is bounded too: a server that stops answering mid-exchange
        // must not hold the invocation until Lambda kills it.
        let exchange = tokio::time::timeout(self.timeout * 3, transport.send(message)).await;
        let Ok(result) = exchange else {
            self.transports.lock().await.remove(mailbox);
            return Err(MailError::retryable(
                format!("the SMTP exchange took longer than {:?}", self.timeout * 3),
                None,
            ));
        };
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = classify(error);
                if error.is_retryable() {
                    // A broken pooled connection should not be reused on the retry.
                    self.transports.lock().await.remove(mailbox);
                }
                Err(error)
            }
        }
    }
}
