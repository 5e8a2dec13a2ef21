//! `CampaignProcessingMessage`: "process this campaign now", as the seed sent it.

use serde::{Deserialize, Serialize};
use symphony_core::{HandlerError, Message};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignAction {
    Process,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CampaignProcessingMessage {
    pub campaign_id: String,
    pub user_id: String,
    pub action: CampaignAction,
}

impl Message for CampaignProcessingMessage {
    const TYPE: &'static str = "CampaignProcessingMessage";
}

impl CampaignProcessingMessage {
    pub fn validate(&self) -> Result<(), HandlerError> {
        for (field, value) in [("campaignId", &self.campaign_id), ("userId", &self.user_id)] {
            if value.trim().is_empty() {
                return Err(HandlerError::permanent(format!(
                    "invalid CampaignProcessingMessage: {field} is empty"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_core::Envelope;

    #[test]
    fn an_unknown_action_names_the_field_and_value() {
        let message = CampaignProcessingMessage {
            campaign_id: "c1".into(),
            user_id: "u1".into(),
            action: CampaignAction::Process,
        };
        let mut envelope = Envelope::wrap(&message, "test", None).unwrap();
        let mut payload = envelope.payload.to_value();
        assert_eq!(payload["action"], "process");
        payload["action"] = serde_json::json!("archive");
        envelope.payload = symphony_core::Payload::from_value(&payload).unwrap();
        let error = envelope.decode::<CampaignProcessingMessage>().unwrap_err();
        assert!(error.reason().contains("archive"), "{}", error.reason());
    }

    #[test]
    fn an_empty_campaign_id_is_refused() {
        let message = CampaignProcessingMessage {
            campaign_id: " ".into(),
            user_id: "u1".into(),
            action: CampaignAction::Process,
        };
        assert!(
            message
                .validate()
                .unwrap_err()
                .reason()
                .contains("campaignId")
        );
    }
}
