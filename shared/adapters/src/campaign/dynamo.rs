//! DynamoDB adapters of campaign processing: campaigns, leads and daily send quotas.
//! Layout: `docs/data-model.md`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use symphony_core::{Claim, Due, Route};

use symphony_aws::table::{
    Item, Table, key, n, read_list_of_maps, read_n, read_optional_n, read_optional_s, read_s,
    read_string_map, s,
};
use symphony_core::ledger::{MAX_REASON_BYTES, StoreError, Transition, truncate};
use symphony_jobs::campaign::model::{Campaign, CampaignStatus, CampaignStep, Lead, LeadStatus};
use symphony_jobs::campaign::ports::{CampaignStore, LeadNext, LeadStore, Quota, SendQuota};
use symphony_jobs::window::{HourWindow, parse_zone};

/// Index of campaigns by status.
pub const CAMPAIGN_STATUS_INDEX: &str = "byStatus";
/// How many leasable campaigns a tick reads to choose the ones whose last run is oldest.
pub const ROTATION_CANDIDATES: usize = 2_000;
/// Index of a campaign's leads by due time.
pub const LEAD_DUE_INDEX: &str = "byCampaignDueAt";

pub fn campaign_from_item(item: &Item) -> Result<Campaign, String> {
    let hour = |name: &str| {
        read_n(item, name)
            .and_then(|h| u32::try_from(h).map_err(|_| format!("{name} {h} is not an hour")))
    };
    let steps = read_list_of_maps(item, "steps")?
        .into_iter()
        .enumerate()
        .map(|(index, step)| {
            Ok(CampaignStep {
                subject: read_s(step, "subject").map_err(|e| format!("steps[{index}].{e}"))?,
                html: read_s(step, "html").map_err(|e| format!("steps[{index}].{e}"))?,
                delay_hours: read_n(step, "delayHours")
                    .map_err(|e| format!("steps[{index}].{e}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Campaign {
        campaign_id: read_s(item, "campaignId")?,
        user_id: read_s(item, "userId")?,
        status: read_s(item, "status")?.parse()?,
        mailbox_id: read_s(item, "mailboxId")?,
        from_name: read_optional_s(item, "fromName")?.unwrap_or_default(),
        from_email: read_s(item, "fromEmail")?,
        time_zone: parse_zone(&read_s(item, "timeZone")?)?,
        window: HourWindow::new(hour("windowStartHour")?, hour("windowEndHour")?)?,
        steps,
    })
}

pub fn campaign_to_item(campaign: &Campaign) -> Item {
    let steps = campaign
        .steps
        .iter()
        .map(|step| {
            AttributeValue::M(Item::from([
                ("subject".to_owned(), s(&step.subject)),
                ("html".to_owned(), s(&step.html)),
                ("delayHours".to_owned(), n(step.delay_hours)),
            ]))
        })
        .collect();
    Item::from([
        ("campaignId".to_owned(), s(&campaign.campaign_id)),
        ("userId".to_owned(), s(&campaign.user_id)),
        ("status".to_owned(), s(campaign.status.as_str())),
        ("mailboxId".to_owned(), s(&campaign.mailbox_id)),
        ("fromName".to_owned(), s(&campaign.from_name)),
        ("fromEmail".to_owned(), s(&campaign.from_email)),
        ("timeZone".to_owned(), s(campaign.time_zone.name())),
        (
            "windowStartHour".to_owned(),
            n(i64::from(campaign.window.start_hour)),
        ),
        (
            "windowEndHour".to_owned(),
            n(i64::from(campaign.window.end_hour)),
        ),
        ("steps".to_owned(), AttributeValue::L(steps)),
    ])
}

pub fn lead_from_item(item: &Item) -> Result<Lead, String> {
    let step = read_n(item, "currentStep")?;
    Ok(Lead {
        campaign_id: read_s(item, "campaignId")?,
        lead_id: read_s(item, "leadId")?,
        email: read_s(item, "email")?,
        first_name: read_optional_s(item, "firstName")?.unwrap_or_default(),
        last_name: read_optional_s(item, "lastName")?.unwrap_or_default(),
        fields: read_string_map(item, "fields")?,
        current_step: usize::try_from(step)
            .map_err(|_| format!("currentStep {step} is negative"))?,
        next_due_at: read_n(item, "nextDueAt")?,
        status: read_s(item, "status")?.parse()?,
    })
}

pub fn lead_to_item(lead: &Lead) -> Item {
    let fields = lead.fields.iter().map(|(k, v)| (k.clone(), s(v))).collect();
    Item::from([
        ("campaignId".to_owned(), s(&lead.campaign_id)),
        ("leadId".to_owned(), s(&lead.lead_id)),
        ("email".to_owned(), s(&lead.email)),
        ("firstName".to_owned(), s(&lead.first_name)),
        ("lastName".to_owned(), s(&lead.last_name)),
        ("fields".to_owned(), AttributeValue::M(fields)),
        (
            "currentStep".to_owned(),
            n(i64::try_from(lead.current_step).unwrap_or(i64::MAX)),
        ),
        ("nextDueAt".to_owned(), n(lead.next_due_at)),
        ("status".to_owned(), s(lead.status.as_str())),
    ])
}

#[derive(Debug, Clone)]
pub struct DynamoCampaignStore {
    table: Table,
}

impl DynamoCampaignStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }

    async fn update(
        &self,
        campaign_id: &str,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Transition, StoreError> {
        self.table
            .update(
                key(&[("campaignId", campaign_id)]),
                update,
                condition,
                values,
            )
            .await
    }
}

#[async_trait]
impl CampaignStore for DynamoCampaignStore {
    async fn fetch_active(&self, limit: usize, now: i64) -> Result<Due<Campaign>, StoreError> {
        // Every campaign not leased now is a candidate (up to a bound); the tick takes those
        // whose last run is oldest, never-run ones first. Index order alone would hand the
        // first places to the same campaigns each time their leases end, and starve the
        // rest once there are more than a lease's worth of ticks can take.
        let candidates = self
            .table
            .query_quarantining(
                limit.max(ROTATION_CANDIDATES),
                |item| {
                    Ok((
                        campaign_from_item(item)?,
                        read_optional_n(item, "leaseUntil")?,
                    ))
                },
                |query| {
                    query
                        .index_name(CAMPAIGN_STATUS_INDEX)
                        .key_condition_expression("#status = :active")
                        .filter_expression("attribute_not_exists(leaseUntil) OR leaseUntil <= :now")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":active", s(CampaignStatus::Active.as_str()))
                        .expression_attribute_values(":now", n(now))
                },
                &["campaignId"],
                now,
            )
            .await?;
        if candidates.units.len() >= ROTATION_CANDIDATES {
            tracing::warn!(
                candidates = candidates.units.len(),
                "more active campaigns than the rotation reads; the rest wait for a later tick"
            );
        }
        let mut units = candidates.units;
        units.sort_by(|(a, a_lease), (b, b_lease)| {
            (a_lease.unwrap_or(i64::MIN), &a.campaign_id)
                .cmp(&(b_lease.unwrap_or(i64::MIN), &b.campaign_id))
        });
        units.truncate(limit);
        Ok(Due {
            units: units.into_iter().map(|(campaign, _)| campaign).collect(),
            quarantined: candidates.quarantined,
        })
    }

    async fn get(&self, campaign_id: &str) -> Result<Option<Campaign>, StoreError> {
        self.table
            .get(key(&[("campaignId", campaign_id)]), campaign_from_item)
            .await
    }

    async fn lease(
        &self,
        campaign_id: &str,
        route: Route,
        now: i64,
        until: i64,
    ) -> Result<Option<Claim>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let outcome = self
            .update(
                campaign_id,
                "SET leaseUntil = :until, leaseToken = :token, leaseRoute = :route",
                "#status = :active AND (attribute_not_exists(leaseUntil) OR leaseUntil <= :now)",
                vec![
                    (":active", s(CampaignStatus::Active.as_str())),
                    (":until", n(until)),
                    (":now", n(now)),
                    (":token", s(&token)),
                    (":route", s(&route.to_string())),
                ],
            )
            .await?;
        Ok((outcome == Transition::Done).then(|| Claim {
            unit_id: campaign_id.to_owned(),
            token,
            route,
        }))
    }

    async fn release(&self, claim: &Claim) -> Result<Transition, StoreError> {
        // The lease ends now rather than vanishing: the campaign was just tried, so in the
        // rotation it goes behind those waiting longer, not in front as if never run.
        self.update(
            &claim.unit_id,
            "SET leaseUntil = :now REMOVE leaseToken, leaseRoute",
            "leaseToken = :token",
            vec![
                (":token", s(&claim.token)),
                (":now", n(chrono::Utc::now().timestamp())),
            ],
        )
        .await
    }

    async fn complete(&self, campaign_id: &str) -> Result<Transition, StoreError> {
        self.update(
            campaign_id,
            "SET #status = :completed",
            "#status = :active",
            vec![
                (":active", s(CampaignStatus::Active.as_str())),
                (":completed", s(CampaignStatus::Completed.as_str())),
            ],
        )
        .await
    }

    async fn record_error(&self, campaign_id: &str, reason: &str) -> Result<(), StoreError> {
        self.update(
            campaign_id,
            "SET lastError = :reason",
            "attribute_exists(campaignId)",
            vec![(":reason", s(truncate(reason, MAX_REASON_BYTES)))],
        )
        .await
        .map(drop)
    }
}

#[derive(Debug, Clone)]
pub struct DynamoLeadStore {
    table: Table,
}

impl DynamoLeadStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }

    async fn update(
        &self,
        lead: &Lead,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Transition, StoreError> {
        let key = key(&[("campaignId", &lead.campaign_id), ("leadId", &lead.lead_id)]);
        self.table.update(key, update, condition, values).await
    }
}

#[async_trait]
impl LeadStore for DynamoLeadStore {
    async fn due(
        &self,
        campaign_id: &str,
        now: i64,
        limit: usize,
    ) -> Result<Due<Lead>, StoreError> {
        self.table
            .query_quarantining(
                limit,
                lead_from_item,
                |query| {
                    query
                        .index_name(LEAD_DUE_INDEX)
                        .key_condition_expression("campaignId = :campaign AND nextDueAt <= :now")
                        .filter_expression("#status = :active")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":campaign", s(campaign_id))
                        .expression_attribute_values(":now", n(now))
                        .expression_attribute_values(":active", s(LeadStatus::Active.as_str()))
                },
                &["leadId", "campaignId"],
                now,
            )
            .await
    }

    async fn all_settled(&self, campaign_id: &str) -> Result<bool, StoreError> {
        let active = self
            .table
            .query(
                1,
                |_| Ok(()),
                |query| {
                    query
                        .key_condition_expression("campaignId = :campaign")
                        .filter_expression("#status = :active")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":campaign", s(campaign_id))
                        .expression_attribute_values(":active", s(LeadStatus::Active.as_str()))
                        .projection_expression("leadId")
                        .consistent_read(true)
                },
            )
            .await?;
        Ok(active.is_empty())
    }

    async fn advance(
        &self,
        lead: &Lead,
        from: usize,
        next: LeadNext,
    ) -> Result<Transition, StoreError> {
        let from_step = n(i64::try_from(from).unwrap_or(i64::MAX));
        let base = vec![
            (":active", s(LeadStatus::Active.as_str())),
            (":from", from_step),
        ];
        let condition = "#status = :active AND currentStep = :from";
        match next {
            LeadNext::Step { index, due_at } => {
                let mut values = base;
                values.push((":next", n(i64::try_from(index).unwrap_or(i64::MAX))));
                values.push((":due", n(due_at)));
                self.update(
                    lead,
                    "SET currentStep = :next, nextDueAt = :due",
                    condition,
                    values,
                )
                .await
            }
            LeadNext::Finished => {
                let mut values = base;
                values.push((":finished", s(LeadStatus::Finished.as_str())));
                values.push((":next", n(i64::try_from(from + 1).unwrap_or(i64::MAX))));
                self.update(
                    lead,
                    "SET #status = :finished, currentStep = :next",
                    condition,
                    values,
                )
                .await
            }
        }
    }

    async fn fail(&self, lead: &Lead, reason: &str) -> Result<Transition, StoreError> {
        self.update(
            lead,
            "SET #status = :failed, lastError = :reason",
            "#status = :active",
            vec![
                (":active", s(LeadStatus::Active.as_str())),
                (":failed", s(LeadStatus::Failed.as_str())),
                (":reason", s(truncate(reason, MAX_REASON_BYTES))),
            ],
        )
        .await
    }
}

/// Daily send counters: one item per mailbox and UTC day, holding the set of email ids
/// that used the day's quota, expired by TTL two days later.
#[derive(Debug, Clone)]
pub struct DynamoSendQuota {
    table: Table,
}

impl DynamoSendQuota {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }
}

#[async_trait]
impl SendQuota for DynamoSendQuota {
    async fn reserve(
        &self,
        mailbox_id: &str,
        day: &str,
        email_id: &str,
        limit: u32,
    ) -> Result<Quota, StoreError> {
        if limit == 0 {
            return Ok(Quota::Full);
        }
        let counter = format!("{mailbox_id}#{day}");
        let expires = chrono::Utc::now().timestamp() + 2 * 86_400;
        // One atomic write: add the id unless the set is full (or holds it already).
        let outcome = self.table.update(key(&[("counterId", &counter)]),
            "ADD emailIds :id SET expiresAt = :expires",
            "attribute_not_exists(emailIds) OR (size(emailIds) < :limit AND NOT contains(emailIds, :email))",
            vec![
                (":id", AttributeValue::Ss(vec![email_id.to_owned()])),
                (":email", s(email_id)),
                (":limit", n(i64::from(limit))),
                (":expires", n(expires)),
            ],
        )
        .await?;
        if outcome == Transition::Done {
            return Ok(Quota::Reserved);
        }
        // Refused: either this email holds a send already (a redelivery), or the day is full.
        let holds = self.table.get(key(&[("counterId", &counter)]), |item| {
            Ok(matches!(item.get("emailIds"), Some(AttributeValue::Ss(ids)) if ids.iter().any(|id| id == email_id)))
        })
        .await?
        .unwrap_or(false);
        Ok(if holds { Quota::Reserved } else { Quota::Full })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn campaigns_and_leads_round_trip_and_name_bad_attributes() {
        let campaign = Campaign {
            campaign_id: "c1".into(),
            user_id: "u1".into(),
            status: CampaignStatus::Active,
            mailbox_id: "mb".into(),
            from_name: "Ada".into(),
            from_email: "ada@example.com".into(),
            time_zone: parse_zone("Europe/Paris").unwrap(),
            window: HourWindow::new(9, 17).unwrap(),
            steps: vec![CampaignStep {
                subject: "Hi".into(),
                html: "<p/>".into(),
                delay_hours: 0,
            }],
        };
        assert_eq!(
            campaign_from_item(&campaign_to_item(&campaign)).unwrap(),
            campaign
        );
        let mut item = campaign_to_item(&campaign);
        item.insert("timeZone".into(), s("Nowhere/Land"));
        assert!(
            campaign_from_item(&item)
                .unwrap_err()
                .contains("Nowhere/Land")
        );
        let mut item = campaign_to_item(&campaign);
        item.insert(
            "steps".into(),
            AttributeValue::L(vec![AttributeValue::M(Item::new())]),
        );
        assert!(campaign_from_item(&item).unwrap_err().contains("steps[0]"));

        let lead = Lead {
            campaign_id: "c1".into(),
            lead_id: "l1".into(),
            email: "a@example.com".into(),
            first_name: "A".into(),
            last_name: String::new(),
            fields: BTreeMap::from([("plan".to_owned(), "pro".to_owned())]),
            current_step: 1,
            next_due_at: 5,
            status: LeadStatus::Active,
        };
        assert_eq!(lead_from_item(&lead_to_item(&lead)).unwrap(), lead);
    }
}
