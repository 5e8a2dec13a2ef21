//! Campaigns and their leads, as stored in DynamoDB (see `docs/data-model.md`).

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono_tz::Tz;

use crate::window::HourWindow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStatus {
    Active,
    Paused,
    Completed,
    /// Quarantined: the record does not parse; `lastError` names the attribute.
    Failed,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for CampaignStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Self::Active),
            "paused" => Ok(Self::Paused),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown campaign status {other:?}")),
        }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadStatus {
    Active,
    Replied,
    Unsubscribed,
    Bounced,
    Finished,
    /// A step could not be rendered for this lead; `lastError` says why.
    Failed,
}

impl LeadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Replied => "replied",
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for LeadStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Self::Active),
            "replied" => Ok(Self::Replied),
            "unsubscribed" => Ok(Self::Unsubscribed),
            "bounced" => Ok(Self::Bounced),
            "finished" => Ok(Self::Finished),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown lead status {other:?}")),
        }
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
