//! `SmsDripMessage`: send step `step` of an enrollment's sequence.

use serde::{Deserialize, Serialize};
use symphony_core::{HandlerError, Message};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmsDripMessage {
    pub enrollment_id: String,
    pub sequence_id: String,
    pub user_id: String,
    pub to_phone: String,
    /// Index of the step to send.
    pub step: usize,
}

impl Message for SmsDripMessage {
    const TYPE: &'static str = "SmsDripMessage";
}

/// E.164: a plus, a non-zero digit, then at most fourteen more digits.
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

impl SmsDripMessage {
    pub fn validate(&self) -> Result<(), HandlerError> {
        for (field, value) in [
            ("enrollmentId", &self.enrollment_id),
            ("sequenceId", &self.sequence_id),
            ("userId", &self.user_id),
        ] {
            if value.trim().is_empty() {
                return Err(HandlerError::permanent(format!(
                    "invalid SmsDripMessage: {field} is empty"
                )));
            }
        }
        if !is_e164(&self.to_phone) {
            return Err(HandlerError::permanent(
                "invalid SmsDripMessage: toPhone is not an E.164 number (+ and 2 to 15 digits)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_are_told_apart() {
        for good in ["+15550100", "+447700900123", "+12"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "15550100",
            "+0155501",
            "+1 555 0100",
            "+1555010012345678",
            "+",
            "+1a",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn an_invalid_number_is_permanent_and_names_the_field() {
        let message = SmsDripMessage {
            enrollment_id: "e1".into(),
            sequence_id: "s1".into(),
            user_id: "u1".into(),
            to_phone: "555-0100".into(),
            step: 0,
        };
        let error = message.validate().unwrap_err();
        assert!(!symphony_core::Retryable::is_retryable(&error));
        assert!(error.reason().contains("toPhone"));
        // the number itself stays out of the error (it is personal data)
        assert!(!error.reason().contains("555-0100"));
    }
}
