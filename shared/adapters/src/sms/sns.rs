//! The SMS sender: Amazon SNS `Publish` to a phone number.
//!
//! The SDK's own retries are off for this client: a `Publish` that timed out may have
//! been delivered, and only our code may decide whether to send again (it does not: see
//! [`classify`]).

use async_trait::async_trait;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::publish::PublishError;
use std::time::Duration;

use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use symphony_aws::AwsError;
use symphony_core::FailureKind;

use symphony_core::HandlerError;
use symphony_jobs::sms::ports::SmsSender;

/// Making the connection: nothing is sent before it is made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One `Publish` attempt, connection included: SNS answers in well under a second.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Kept after an attempt for recording its outcome.
const RECORD_MARGIN: Duration = Duration::from_secs(10);
/// The least (and the longest) time a send needs: one attempt and its record. A handler
/// with less left does not start it; `handle-sms`'s timeout covers it.
pub const SEND_TIME: Duration =
    Duration::from_secs(ATTEMPT_TIMEOUT.as_secs() + RECORD_MARGIN.as_secs());

#[derive(Debug, Clone)]
pub struct SnsSender {
    client: aws_sdk_sns::Client,
}

impl SnsSender {
    /// Uses `client`'s configuration with retries turned off, and each attempt bounded:
    /// a `Publish` with no answer must end, as an unknown outcome, before the invocation.
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        let config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build();
        Self {
            client: aws_sdk_sns::Client::from_conf(config),
        }
    }
}

/// What a failed `Publish` means for the text:
/// - no connection was made (refused, unreachable): nothing left, transient;
/// - a timeout, a connection lost mid-request, an unreadable response, a 5xx: SNS may
///   have taken it, an unknown outcome;
/// - throttling: refused before it was taken, transient;
/// - an invalid parameter (the number, the text): the unit's own fault;
/// - anything else (access denied, an expired token, a disabled account): infrastructure.
pub fn classify(
    error: &SdkError<PublishError, aws_smithy_runtime_api::http::Response>,
) -> FailureKind {
    match error {
        SdkError::DispatchFailure(_) if never_connected(error) => FailureKind::Transient,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureKind::UnknownOutcome
        }
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or_default();
            if context.raw().status().as_u16() >= 500 {
                FailureKind::UnknownOutcome
            } else if code.contains("Throttl") {
                FailureKind::Transient
            } else if matches!(
                code,
                "InvalidParameter" | "InvalidParameterValue" | "ParameterValueInvalid"
            ) {
                FailureKind::Intrinsic
            } else {
                FailureKind::Infrastructure
            }
        }
        // The request could not be built: nothing was sent.
        _ => FailureKind::Infrastructure,
    }
}

/// Whether the connection itself was never made (refused, unreachable, a DNS failure, the
/// connect timeout), so nothing was sent.
fn never_connected(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = error.source();
    while let Some(source) = next {
        if source
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
        {
            return true;
        }
        if let Some(io) = source.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        next = source.source();
    }
    false
}

#[async_trait]
impl SmsSender for SnsSender {
    fn least_time(&self) -> Duration {
        SEND_TIME
    }

    async fn send(&self, phone: &str, body: &str) -> Result<String, HandlerError> {
        let attribute = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value("Promotional")
            .build()
            .map_err(|e| HandlerError {
                reason: "the SMS type attribute could not be built".to_owned(),
                kind: FailureKind::Infrastructure,
                source: Some(Box::new(e)),
            })?;
        let output = self
            .client
            .publish()
            .phone_number(phone)
            .message(body)
            // Drip messages are marketing; SNS routes and prices them accordingly.
            .message_attributes("AWS.SNS.SMS.SMSType", attribute)
            .send()
            .await
            .map_err(|e| {
                let kind = classify(&e);
                let reason = match kind {
                    FailureKind::UnknownOutcome => {
                        "stage: Publish sent to SNS; no answer came back, the text may be out"
                    }
                    _ => "SNS did not accept the SMS",
                };
                HandlerError {
                    reason: reason.to_owned(),
                    kind,
                    source: Some(Box::new(AwsError::from_sdk("Publish", e))),
                }
            })?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }
}
