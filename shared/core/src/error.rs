//! Errors that say whether trying again can help.

/// The boxed source every error in Symphony keeps.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error followed by the chain of its sources, joined by ": ". A source whose text
/// the chain already ends with (many errors repeat their source) is not said twice.
/// Email addresses and phone numbers (a server's reply can quote them) are redacted:
/// the text goes to logs, records and dead letters.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    crate::redact::personal_data(&unredacted_chain(error))
}

fn unredacted_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let said = source.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        next = source.source();
    }
    text
}

/// The three kinds of failure of DESIGN.md, plus the transient one: what happens to the
/// unit follows from the kind alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Trying the same unit again later may succeed (an SMTP 4xx, a deferral).
    Transient,
    /// The unit's own fault (a bad address, a row that does not parse, a 5xx rejection):
    /// it fails, with a reason naming the field, and is never retried.
    Intrinsic,
    /// Not the unit's fault (access denied, a missing queue or table, throttling, a secret
    /// that cannot be read): the unit is released untouched and tried again; the fault is
    /// reported loudly.
    Infrastructure,
    /// The unit was handed over (the mail's final dot, an SNS request) and no answer came:
    /// it may or may not have gone out. It is held for a person, never re-sent by itself.
    UnknownOutcome,
}

impl FailureKind {
    /// Whether the unit comes back by itself (a later delivery or tick).
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Infrastructure)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "retryable",
            Self::Intrinsic => "permanent",
            Self::Infrastructure => "infrastructure",
            Self::UnknownOutcome => "unknown-outcome",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every error that crosses a port: the worker and the scheduled functions
/// decide between "retry later", "give up" and "hold" from this alone.
pub trait Retryable {
    fn is_retryable(&self) -> bool;

    /// The kind of failure; by default transient or intrinsic, from [`Self::is_retryable`].
    /// Errors of infrastructure or of a send whose outcome is unknown say so here.
    fn failure_kind(&self) -> FailureKind {
        if self.is_retryable() {
            FailureKind::Transient
        } else {
            FailureKind::Intrinsic
        }
    }
}

/// Symphony's one classified failure: what a handler, a work source, a mailer or an SMS
/// sender fails with. A kind (what happens to the unit next), a reason, and the source
/// kept. It displays its reason only: a chain of them reads as one sentence, and the kind
/// is reported on its own (dead letters, logs).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct HandlerError {
    pub kind: FailureKind,
    pub reason: String,
    #[source]
    pub source: Option<BoxError>,
}

impl HandlerError {
    pub fn new(kind: FailureKind, reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            source,
        }
    }

    /// Trying again later may succeed.
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self::new(FailureKind::Transient, reason, None)
    }

    /// Trying again cannot succeed: the unit's own fault.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::new(FailureKind::Intrinsic, reason, None)
    }

    /// Not the unit's fault: released and tried again, reported loudly.
    pub fn infrastructure(reason: impl Into<String>) -> Self {
        Self::new(FailureKind::Infrastructure, reason, None)
    }

    /// Handed over with no answer: held, never re-sent automatically.
    pub fn unknown_outcome(reason: impl Into<String>) -> Self {
        Self::new(FailureKind::UnknownOutcome, reason, None)
    }

    /// Wraps an error, keeping it as the source and its kind.
    pub fn from_source<E>(reason: impl Into<String>, source: E) -> Self
    where
        E: std::error::Error + Retryable + Send + Sync + 'static,
    {
        Self::new(source.failure_kind(), reason, Some(Box::new(source)))
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The reason followed by the chain of sources, for logs and error details, with
    /// email addresses and phone numbers redacted.
    pub fn full_reason(&self) -> String {
        // A reason often already ends with its source's text: not said twice.
        let text = match std::error::Error::source(self) {
            Some(source) => {
                let said = unredacted_chain(source);
                if self.reason().ends_with(&said) {
                    self.reason().to_owned()
                } else {
                    format!("{}: {said}", self.reason())
                }
            }
            None => self.reason().to_owned(),
        };
        crate::redact::personal_data(&text)
    }
}

impl Retryable for HandlerError {
    fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    fn failure_kind(&self) -> FailureKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection reset")]
    struct Flaky;
    impl Retryable for Flaky {
        fn is_retryable(&self) -> bool {
            true
        }
    }

    #[test]
    fn from_source_keeps_retryability_and_the_source_chain() {
        let error = HandlerError::from_source("sending mail", Flaky);
        assert!(error.is_retryable());
        assert_eq!(error.full_reason(), "sending mail: connection reset");
        assert!(std::error::Error::source(&error).is_some());
    }

    #[derive(Debug, thiserror::Error)]
    #[error("550: mailbox unavailable")]
    struct Echo(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("mailbox unavailable")]
    struct Inner;

    #[test]
    fn a_source_repeated_by_its_error_is_said_once() {
        assert_eq!(chain(&Echo(Inner)), "550: mailbox unavailable");
    }

    #[test]
    fn permanent_is_not_retryable() {
        assert!(!HandlerError::permanent("no mailbox").is_retryable());
    }

    #[derive(Debug, thiserror::Error)]
    #[error("AccessDenied")]
    struct Denied;
    impl Retryable for Denied {
        fn is_retryable(&self) -> bool {
            true
        }
        fn failure_kind(&self) -> FailureKind {
            FailureKind::Infrastructure
        }
    }

    #[test]
    fn from_source_keeps_an_infrastructure_kind_and_it_is_retried() {
        let error = HandlerError::from_source("reading the mailbox", Denied);
        assert_eq!(error.kind, FailureKind::Infrastructure);
        assert!(error.is_retryable());
        assert_eq!(error.to_string(), "reading the mailbox");
    }

    #[test]
    fn an_unknown_outcome_is_never_retried() {
        let error = HandlerError::unknown_outcome("no reply to the final dot");
        assert!(!error.is_retryable());
        assert_eq!(error.failure_kind(), FailureKind::UnknownOutcome);
        assert_eq!(FailureKind::UnknownOutcome.as_str(), "unknown-outcome");
    }
}
