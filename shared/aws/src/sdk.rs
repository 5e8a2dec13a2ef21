//! SDK errors, classified once here so no caller has to guess.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use symphony_core::{BoxError, Retryable};

/// Loads the SDK configuration from the environment. `AWS_ENDPOINT_URL` (a moto server
/// locally) is honoured by every client built from it.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// An AWS call that failed, with its operation, its classification and its source.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct AwsError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub retryable: bool,
    #[source]
    pub source: BoxError,
}

impl Retryable for AwsError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl AwsError {
    /// Classifies an SDK error: no response, a timeout, a 5xx or throttling is worth a
    /// retry; any other service error (validation, access denied, not found) is not.
    pub fn from_sdk<E, R>(
        operation: &'static str,
        error: aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: HttpStatus + std::fmt::Debug + Send + Sync + 'static,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        let (code, retryable) = match &error {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => (None, true),
            SdkError::ServiceError(context) => {
                let code = context.err().code().map(str::to_owned);
                let retryable =
                    context.raw().status() >= 500 || code.as_deref().is_some_and(is_throttling);
                (code, retryable)
            }
            _ => (None, false),
        };
        Self {
            operation,
            code,
            retryable,
            source: Box::new(error),
        }
    }

    /// The service's error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

/// The HTTP status of a raw response, for classification.
pub trait HttpStatus {
    fn status(&self) -> u16;
}

impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "RequestThrottled"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
            | "TransactionConflictException"
            | "ServiceUnavailable"
            | "InternalError"
            | "InternalServerError"
            | "KMS.ThrottlingException"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_retryable() {
        assert!(is_throttling("ProvisionedThroughputExceededException"));
        assert!(!is_throttling("ConditionalCheckFailedException"));
        assert!(!is_throttling("AccessDeniedException"));
    }
}
