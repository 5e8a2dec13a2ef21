//! DynamoDB adapters of the SMS drip: enrollments, sequences and opt-outs.
//! Layout: `docs/data-model.md`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use symphony_core::{Claim, Due, Route};

use super::model::{Enrollment, EnrollmentStatus, Sequence, SmsStep};
use super::ports::{EnrollmentNext, EnrollmentStore, OptOuts, SequenceStore};
use crate::store::{
    Item, MAX_ERROR_BYTES, StoreError, Table, Transition, key, n, read_list_of_maps, read_n,
    read_s, read_string_map, s, truncate,
};
use crate::window::parse_zone;

/// Index of enrollments by status and next send time.
pub const DUE_INDEX: &str = "byStatusNextSendAt";

fn index(step: usize) -> AttributeValue {
    n(i64::try_from(step).unwrap_or(i64::MAX))
}

pub fn enrollment_from_item(item: &Item) -> Result<Enrollment, String> {
    let step = read_n(item, "currentStep")?;
    Ok(Enrollment {
        enrollment_id: read_s(item, "enrollmentId")?,
        sequence_id: read_s(item, "sequenceId")?,
        user_id: read_s(item, "userId")?,
        phone: read_s(item, "phone")?,
        time_zone: parse_zone(&read_s(item, "timeZone")?)?,
        fields: read_string_map(item, "fields")?,
        current_step: usize::try_from(step)
            .map_err(|_| format!("currentStep {step} is negative"))?,
        next_send_at: read_n(item, "nextSendAt")?,
        status: read_s(item, "status")?.parse()?,
    })
}

pub fn enrollment_to_item(enrollment: &Enrollment) -> Item {
    let fields = enrollment
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), s(v)))
        .collect();
    Item::from([
        ("enrollmentId".to_owned(), s(&enrollment.enrollment_id)),
        ("sequenceId".to_owned(), s(&enrollment.sequence_id)),
        ("userId".to_owned(), s(&enrollment.user_id)),
        ("phone".to_owned(), s(&enrollment.phone)),
        ("timeZone".to_owned(), s(enrollment.time_zone.name())),
        ("fields".to_owned(), AttributeValue::M(fields)),
        ("currentStep".to_owned(), index(enrollment.current_step)),
        ("nextSendAt".to_owned(), n(enrollment.next_send_at)),
        ("status".to_owned(), s(enrollment.status.as_str())),
    ])
}

pub fn sequence_from_item(item: &Item) -> Result<Sequence, String> {
    let steps = read_list_of_maps(item, "steps")?
        .into_iter()
        .enumerate()
        .map(|(position, step)| {
            Ok(SmsStep {
                body: read_s(step, "body").map_err(|e| format!("steps[{position}].{e}"))?,
                delay_hours: read_n(step, "delayHours")
                    .map_err(|e| format!("steps[{position}].{e}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Sequence {
        sequence_id: read_s(item, "sequenceId")?,
        user_id: read_s(item, "userId")?,
        steps,
    })
}

pub fn sequence_to_item(sequence: &Sequence) -> Item {
    let steps = sequence
        .steps
        .iter()
        .map(|step| {
            AttributeValue::M(Item::from([
                ("body".to_owned(), s(&step.body)),
                ("delayHours".to_owned(), n(step.delay_hours)),
            ]))
        })
        .collect();
    Item::from([
        ("sequenceId".to_owned(), s(&sequence.sequence_id)),
        ("userId".to_owned(), s(&sequence.user_id)),
        ("steps".to_owned(), AttributeValue::L(steps)),
    ])
}

#[derive(Debug, Clone)]
pub struct DynamoEnrollmentStore {
    table: Table,
}

impl DynamoEnrollmentStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }

    async fn update(
        &self,
        id: &str,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Transition, StoreError> {
        self.table
            .update(key(&[("enrollmentId", id)]), update, condition, values)
            .await
    }

    /// Claims the record for `route` when `condition` holds.
    async fn take(
        &self,
        enrollment_id: &str,
        route: Route,
        now: i64,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<Claim>, StoreError> {
        let key = key(&[("enrollmentId", enrollment_id)]);
        self.table
            .take_claim(key, enrollment_id, route, now, condition, values)
            .await
    }
}

const CLAIMED: &str = "claimed";
const SENDING: &str = "sending";
const ACTIVE: &str = "active";

#[async_trait]
impl EnrollmentStore for DynamoEnrollmentStore {
    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<Enrollment>, StoreError> {
        self.table
            .query_quarantining(
                limit,
                enrollment_from_item,
                |query| {
                    query
                        .index_name(DUE_INDEX)
                        .key_condition_expression("#status = :active AND nextSendAt <= :now")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":active", s(ACTIVE))
                        .expression_attribute_values(":now", n(now))
                },
                &["enrollmentId"],
                now,
            )
            .await
    }

    async fn get(&self, enrollment_id: &str) -> Result<Option<Enrollment>, StoreError> {
        self.table
            .get(
                key(&[("enrollmentId", enrollment_id)]),
                enrollment_from_item,
            )
            .await
    }

    async fn claim(
        &self,
        enrollment_id: &str,
        step: usize,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, StoreError> {
        let condition = "#status = :active AND currentStep = :step";
        let values = vec![(":active", s(ACTIVE)), (":step", index(step))];
        self.take(enrollment_id, route, now, condition, values)
            .await
    }

    async fn fetch_abandoned(
        &self,
        claimed_before: i64,
        limit: usize,
        now: i64,
    ) -> Result<Due<Enrollment>, StoreError> {
        self.table
            .abandoned_claims(
                DUE_INDEX,
                claimed_before,
                limit,
                enrollment_from_item,
                &["enrollmentId"],
                now,
            )
            .await
    }

    async fn reclaim(
        &self,
        enrollment_id: &str,
        route: Route,
        now: i64,
        claimed_before: i64,
    ) -> Result<Option<Claim>, StoreError> {
        let key = key(&[("enrollmentId", enrollment_id)]);
        self.table
            .take_abandoned_claim(key, enrollment_id, route, now, claimed_before)
            .await
    }

    async fn release(&self, claim: &Claim, send_at: i64) -> Result<Transition, StoreError> {
        self.update(
            &claim.unit_id,
            "SET #status = :active, nextSendAt = :at REMOVE claimToken, claimedAt, claimedBy",
            "#status = :claimed AND claimToken = :token",
            vec![
                (":active", s(ACTIVE)),
                (":claimed", s(CLAIMED)),
                (":at", n(send_at)),
                (":token", s(&claim.token)),
            ],
        )
        .await
    }

    async fn reschedule(
        &self,
        enrollment_id: &str,
        send_at: i64,
    ) -> Result<Transition, StoreError> {
        self.update(
            enrollment_id,
            "SET #status = :active, nextSendAt = :at REMOVE claimToken, claimedAt, claimedBy",
            "#status = :claimed",
            vec![
                (":active", s(ACTIVE)),
                (":claimed", s(CLAIMED)),
                (":at", n(send_at)),
            ],
        )
        .await
    }

    async fn begin_send(&self, enrollment_id: &str, step: usize) -> Result<Transition, StoreError> {
        self.update(
            enrollment_id,
            "SET #status = :sending",
            "#status = :claimed AND currentStep = :step",
            vec![
                (":sending", s(SENDING)),
                (":claimed", s(CLAIMED)),
                (":step", index(step)),
            ],
        )
        .await
    }

    async fn abort_send(&self, enrollment_id: &str) -> Result<Transition, StoreError> {
        self.update(
            enrollment_id,
            "SET #status = :claimed",
            "#status = :sending",
            vec![(":sending", s(SENDING)), (":claimed", s(CLAIMED))],
        )
        .await
    }

    async fn hold_unknown(
        &self,
        enrollment_id: &str,
        evidence: &str,
    ) -> Result<Transition, StoreError> {
        self.update(
            enrollment_id,
            "SET #status = :unknown, lastError = :evidence",
            "#status = :sending",
            vec![
                (":sending", s(SENDING)),
                (":unknown", s(EnrollmentStatus::Unknown.as_str())),
                (":evidence", s(truncate(evidence, MAX_ERROR_BYTES))),
            ],
        )
        .await
    }

    async fn finish_past_end(
        &self,
        enrollment_id: &str,
        at: usize,
    ) -> Result<Transition, StoreError> {
        self.update(
            enrollment_id,
            "SET #status = :finished REMOVE claimToken, claimedAt, claimedBy",
            "#status = :claimed AND currentStep = :at",
            vec![
                (":claimed", s(CLAIMED)),
                (":finished", s(EnrollmentStatus::Finished.as_str())),
                (":at", index(at)),
            ],
        )
        .await
    }

    async fn advance(
        &self,
        enrollment_id: &str,
        from: usize,
        next: EnrollmentNext,
    ) -> Result<Transition, StoreError> {
        let condition = "#status = :sending AND currentStep = :from";
        match next {
            EnrollmentNext::Step { index: next_step, send_at } => {
                self.update(
                    enrollment_id,
                    "SET #status = :active, currentStep = :next, nextSendAt = :at REMOVE claimToken, claimedAt, claimedBy",
                    condition,
                    vec![
                        (":active", s(ACTIVE)),
                        (":sending", s(SENDING)),
                        (":from", index(from)),
                        (":next", index(next_step)),
                        (":at", n(send_at)),
                    ],
                )
                .await
            }
            EnrollmentNext::Finished => {
                self.update(
                    enrollment_id,
                    "SET #status = :finished, currentStep = :next REMOVE claimToken, claimedAt, claimedBy",
                    condition,
                    vec![
                        (":finished", s(EnrollmentStatus::Finished.as_str())),
                        (":sending", s(SENDING)),
                        (":from", index(from)),
                        (":next", index(from + 1)),
                    ],
                )
                .await
            }
        }
    }

    async fn opt_out(&self, enrollment_id: &str) -> Result<Transition, StoreError> {
        self.update(
            enrollment_id,
            "SET #status = :opted REMOVE claimToken, claimedAt, claimedBy",
            "#status = :claimed",
            vec![
                (":opted", s(EnrollmentStatus::OptedOut.as_str())),
                (":claimed", s(CLAIMED)),
            ],
        )
        .await
    }

    async fn fail(&self, enrollment_id: &str, reason: &str) -> Result<Transition, StoreError> {
        self.update(
            enrollment_id,
            "SET #status = :failed, lastError = :reason",
            "#status IN (:claimed, :active, :sending)",
            vec![
                (":failed", s(EnrollmentStatus::Failed.as_str())),
                (":claimed", s(CLAIMED)),
                (":sending", s(SENDING)),
                (":active", s(ACTIVE)),
                (":reason", s(truncate(reason, MAX_ERROR_BYTES))),
            ],
        )
        .await
    }
}

#[derive(Debug, Clone)]
pub struct DynamoSequenceStore {
    table: Table,
}

impl DynamoSequenceStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }
}

#[async_trait]
impl SequenceStore for DynamoSequenceStore {
    async fn get(&self, sequence_id: &str) -> Result<Option<Sequence>, StoreError> {
        self.table
            .get(key(&[("sequenceId", sequence_id)]), sequence_from_item)
            .await
    }
}

/// The opt-out table: one item per number (`phone`, S) that asked to stop.
#[derive(Debug, Clone)]
pub struct DynamoOptOuts {
    table: Table,
}

impl DynamoOptOuts {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }
}

#[async_trait]
impl OptOuts for DynamoOptOuts {
    async fn is_opted_out(&self, phone: &str) -> Result<bool, StoreError> {
        let found = self.table.get(key(&[("phone", phone)]), |_| Ok(())).await?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn enrollments_and_sequences_round_trip() {
        let enrollment = Enrollment {
            enrollment_id: "e1".into(),
            sequence_id: "s1".into(),
            user_id: "u1".into(),
            phone: "+15550100".into(),
            time_zone: parse_zone("Asia/Tokyo").unwrap(),
            fields: BTreeMap::from([("firstName".to_owned(), "Kei".to_owned())]),
            current_step: 2,
            next_send_at: 10,
            status: EnrollmentStatus::Active,
        };
        assert_eq!(
            enrollment_from_item(&enrollment_to_item(&enrollment)).unwrap(),
            enrollment
        );
        let sequence = Sequence {
            sequence_id: "s1".into(),
            user_id: "u1".into(),
            steps: vec![SmsStep {
                body: "Hi {{firstName}}".into(),
                delay_hours: 0,
            }],
        };
        assert_eq!(
            sequence_from_item(&sequence_to_item(&sequence)).unwrap(),
            sequence
        );
        let mut item = enrollment_to_item(&enrollment);
        item.insert("status".into(), s("paused"));
        assert!(enrollment_from_item(&item).unwrap_err().contains("paused"));
    }
}
