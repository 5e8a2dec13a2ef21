//! Campaigns and their leads, as stored in DynamoDB (see `docs/data-model.md`).

use std::collections::BTreeMap;

use chrono_tz::Tz;

use crate::window::HourWindow;

stored_names! {
    pub enum CampaignStatus ("campaign status") {
        Active => "active",
        Paused => "paused",
        Completed => "completed",
        /// Quarantined: the record does not parse; `lastError` names the attribute.
        Failed => "failed",
    }
}

/// One step of a campaign: an email, sent `delay_hours` after the previous step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignStep {
    pub subject: String,
    pub html: String,
    pub delay_hours: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub campaign_id: String,
    pub user_id: String,
    pub status: CampaignStatus,
    pub mailbox_id: String,
    pub from_name: String,
    pub from_email: String,
    pub time_zone: Tz,
    /// When emails may go out, in the campaign's time zone.
    pub window: HourWindow,
    pub steps: Vec<CampaignStep>,
}

stored_names! {
    pub enum LeadStatus ("lead status") {
        Active => "active",
        Replied => "replied",
        Unsubscribed => "unsubscribed",
        Bounced => "bounced",
        Finished => "finished",
        /// A step could not be rendered for this lead; `lastError` says why.
        Failed => "failed",
    }
}

/// A lead enrolled in a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lead {
    pub campaign_id: String,
    pub lead_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Custom fields, usable in templates by name.
    pub fields: BTreeMap<String, String>,
    /// Index of the next step to send.
    pub current_step: usize,
    /// Epoch seconds when the next step is due.
    pub next_due_at: i64,
    pub status: LeadStatus,
}

impl Lead {
    /// The values a template can use: custom fields, then `email`, `firstName`, `lastName`
    /// (an empty built-in is absent, so a template that needs it fails loudly).
    pub fn template_values(&self) -> BTreeMap<String, String> {
        let mut values = self.fields.clone();
        for (name, value) in [
            ("email", &self.email),
            ("firstName", &self.first_name),
            ("lastName", &self.last_name),
        ] {
            if !value.is_empty() {
                values.insert(name.to_owned(), value.clone());
            }
        }
        values
    }

    /// The id of the email this lead gets for a step: the same on every redelivery, so the
    /// email's conditional create is the claim that keeps it to one.
    pub fn email_id(&self, step: usize) -> String {
        format!("{}.{}.{step}", self.campaign_id, self.lead_id)
    }
}
