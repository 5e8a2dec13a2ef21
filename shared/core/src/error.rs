//! Errors that say whether trying again can help.

/// The boxed source every error in Symphony keeps.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error followed by the chain of its sources, joined by ": ". A source whose text
/// the chain already ends with (many errors repeat their source) is not said twice.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
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

/// Implemented by every error that crosses a port: the worker and the scheduled functions
/// decide between "retry later" and "give up" from this alone.
pub trait Retryable {
    fn is_retryable(&self) -> bool;
}

/// What a [`crate::MessageHandler`] fails with.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Trying again later may succeed (a timeout, a 4xx from SMTP, throttling).
    #[error("retryable: {reason}")]
    Retryable {
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Trying again cannot succeed (a bad payload, a missing mailbox, a rejected recipient).
    #[error("permanent: {reason}")]
    Permanent {
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl HandlerError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self::Retryable {
            reason: reason.into(),
            source: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
            source: None,
        }
    }

    /// Wraps an error, keeping it as the source and its retryability.
    pub fn from_source<E>(reason: impl Into<String>, source: E) -> Self
    where
        E: std::error::Error + Retryable + Send + Sync + 'static,
    {
        let reason = reason.into();
        if source.is_retryable() {
            Self::Retryable {
                reason,
                source: Some(Box::new(source)),
            }
        } else {
            Self::Permanent {
                reason,
                source: Some(Box::new(source)),
            }
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Retryable { reason, .. } | Self::Permanent { reason, .. } => reason,
        }
    }

    /// The reason followed by the chain of sources, for logs and error details.
    pub fn full_reason(&self) -> String {
        match std::error::Error::source(self) {
            Some(source) => format!("{}: {}", self.reason(), chain(source)),
            None => self.reason().to_owned(),
        }
    }
}

impl Retryable for HandlerError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
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
}
