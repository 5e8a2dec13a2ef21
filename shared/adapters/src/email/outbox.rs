//! The outbox mailer: writes each email as `<emailId>.eml` into a folder, for local runs
//! without an SMTP server.

use std::path::PathBuf;
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::smtp::build_message;
use symphony_core::{FailureKind, HandlerError};
use symphony_jobs::email::model::Mailbox;
use symphony_jobs::email::ports::{Mailer, OutgoingEmail};

#[derive(Debug, Clone)]
pub struct OutboxMailer {
    folder: PathBuf,
}

impl OutboxMailer {
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        Self {
            folder: folder.into(),
        }
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(
        &self,
        _: &Mailbox,
        email: &OutgoingEmail,
        _: Option<Instant>,
    ) -> Result<(), HandlerError> {
        let message = build_message(email)?;
        let unavailable = |e: std::io::Error| {
            HandlerError::new(
                FailureKind::Transient,
                "the outbox folder cannot be written",
                Some(Box::new(e)),
            )
        };
        tokio::fs::create_dir_all(&self.folder)
            .await
            .map_err(unavailable)?;
        // The id is ours but came through a queue: keep it to a plain file name.
        let name: String = email
            .email_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.folder.join(format!("{name}.eml"));
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(mut file) => {
                file.write_all(&message.formatted())
                    .await
                    .map_err(unavailable)?;
                file.flush().await.map_err(unavailable)
            }
            // Written by an earlier delivery of the same email: it is already "sent".
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_jobs::email::model::SmtpSecurity;

    #[tokio::test]
    async fn an_email_lands_in_the_outbox_once() {
        let folder = std::env::temp_dir().join(format!("symphony-outbox-{}", uuid::Uuid::new_v4()));
        let mailer = OutboxMailer::new(&folder);
        let mailbox = Mailbox {
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
        };
        let email = OutgoingEmail {
            email_id: "em-1".into(),
            from_name: "Ada".into(),
            from_email: "ada@example.com".into(),
            to_email: "lead@example.com".into(),
            subject: "Hello".into(),
            html: "<p>Hi</p>".into(),
            sender_is_mailboxs: false,
        };
        mailer.send(&mailbox, &email, None).await.unwrap();
        mailer.send(&mailbox, &email, None).await.unwrap();
        let text = std::fs::read_to_string(folder.join("em-1.eml")).unwrap();
        assert!(text.contains("Subject: Hello"));
        assert!(text.contains("Message-ID: <em-1@symphony>"));
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
        std::fs::remove_dir_all(folder).unwrap();
    }
}
