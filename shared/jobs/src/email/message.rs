//! `EmailMessage`: the payload of the email queue, field for field as the seed sent it.

use serde::{Deserialize, Serialize};
use symphony_core::{HandlerError, Message};

/// Largest HTML body accepted; SQS's 1 MiB message limit is the hard ceiling anyway.
pub const MAX_HTML_BYTES: usize = 900 * 1024;
/// RFC 5322 caps a header line at 998 characters.
pub const MAX_SUBJECT_CHARS: usize = 998;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailMessage {
    pub email_id: String,
    pub user_id: String,
    pub mailbox_id: String,
    pub to_email: String,
    pub subject: String,
    pub html: String,
    /// The sender's display name; the mailbox's `fromName` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    /// The sender's address; the mailbox's `fromEmail` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_email: Option<String>,
}

impl Message for EmailMessage {
    const TYPE: &'static str = "EmailMessage";
}

impl EmailMessage {
    /// Checks what the type system cannot; each error names the field and is permanent.
    pub fn validate(&self) -> Result<(), HandlerError> {
        let invalid = |field: &str, why: String| {
            Err(HandlerError::permanent(format!(
                "invalid EmailMessage: {field} {why}"
            )))
        };
        for (field, value) in [
            ("emailId", &self.email_id),
            ("userId", &self.user_id),
            ("mailboxId", &self.mailbox_id),
        ] {
            if value.trim().is_empty() {
                return invalid(field, "is empty".to_owned());
            }
        }
        if self.to_email.parse::<lettre::Address>().is_err() {
            return invalid("toEmail", "is not a valid email address".to_owned());
        }
        if let Some(from_email) = &self.from_email
            && from_email.parse::<lettre::Address>().is_err()
        {
            return invalid("fromEmail", "is not a valid email address".to_owned());
        }
        if self.subject.chars().count() > MAX_SUBJECT_CHARS {
            return invalid(
                "subject",
                format!("is longer than {MAX_SUBJECT_CHARS} characters"),
            );
        }
        if self.subject.contains(['\r', '\n'])
            || self
                .from_name
                .as_deref()
                .is_some_and(|name| name.contains(['\r', '\n']))
        {
            return invalid("subject or fromName", "contains a line break".to_owned());
        }
        if self.html.len() > MAX_HTML_BYTES {
            return invalid(
                "html",
                format!("is {} bytes, over {MAX_HTML_BYTES}", self.html.len()),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_core::Retryable;

    pub(crate) fn sample() -> EmailMessage {
        EmailMessage {
            email_id: "em-1".into(),
            user_id: "user-1".into(),
            mailbox_id: "mb-1".into(),
            to_email: "lead@example.com".into(),
            subject: "Hello".into(),
            html: "<p>Hi</p>".into(),
            from_name: Some("Ada".into()),
            from_email: Some("ada@example.com".into()),
        }
    }

    #[test]
    fn a_valid_message_passes() {
        assert!(sample().validate().is_ok());
    }

    #[test]
    fn each_invalid_field_is_named_and_permanent() {
        type Breakage = fn(&mut EmailMessage);
        let cases: [(&str, Breakage); 6] = [
            ("toEmail", |m| m.to_email = "not-an-address".into()),
            ("fromEmail", |m| m.from_email = Some("@".into())),
            ("emailId", |m| m.email_id = " ".into()),
            ("subject", |m| m.subject = "x".repeat(MAX_SUBJECT_CHARS + 1)),
            ("html", |m| m.html = "x".repeat(MAX_HTML_BYTES + 1)),
            ("subject or fromName", |m| {
                m.subject = "a\r\nBcc: evil@example.com".into()
            }),
        ];
        for (field, break_it) in cases {
            let mut message = sample();
            break_it(&mut message);
            let error = message.validate().unwrap_err();
            assert!(!error.is_retryable());
            assert!(
                error.reason().contains(field),
                "{field}: {}",
                error.reason()
            );
        }
    }

    #[test]
    fn the_wire_names_are_the_seeds() {
        let json = serde_json::to_value(sample()).unwrap();
        for field in [
            "emailId",
            "userId",
            "mailboxId",
            "toEmail",
            "subject",
            "html",
            "fromName",
            "fromEmail",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
    }
}
