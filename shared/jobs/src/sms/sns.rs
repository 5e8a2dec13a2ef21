//! The SMS sender: Amazon SNS `Publish` to a phone number.

use async_trait::async_trait;
use symphony_aws::AwsError;
use symphony_core::Retryable;

use super::ports::{SmsError, SmsSender};

#[derive(Debug, Clone)]
pub struct SnsSender {
    client: aws_sdk_sns::Client,
}

impl SnsSender {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SmsSender for SnsSender {
    async fn send(&self, phone: &str, body: &str) -> Result<String, SmsError> {
        let output = self
            .client
            .publish()
            .phone_number(phone)
            .message(body)
            // Drip messages are marketing; SNS routes and prices them accordingly.
            .message_attributes(
                "AWS.SNS.SMS.SMSType",
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("Promotional")
                    .build()
                    .map_err(|e| SmsError {
                        reason: "the SMS type attribute could not be built".to_owned(),
                        retryable: false,
                        source: Some(Box::new(e)),
                    })?,
            )
            .send()
            .await
            .map_err(|e| {
                let error = AwsError::from_sdk("Publish", e);
                SmsError {
                    reason: "SNS did not accept the SMS".to_owned(),
                    retryable: error.is_retryable(),
                    source: Some(Box::new(error)),
                }
            })?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }
}
