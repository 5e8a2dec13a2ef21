//! DynamoDB adapters of the SMS drip: enrollments (the lifecycle's ledger, with this job's
//! layout and item mapping), sequences and opt-outs.
//! Layout: `docs/data-model.md`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use symphony_aws::{DynamoLedger, LedgerLayout};

use symphony_aws::table::{
    Item, Table, key, n, read_list_of_maps, read_n, read_optional_s, read_route, read_s,
    read_string_map, s,
};
use symphony_core::StoreError;
use symphony_jobs::sms::model::{Enrollment, Sequence, SmsStep};
use symphony_jobs::sms::ports::{OptOuts, SequenceStore};
use symphony_jobs::window::parse_zone;

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
        claimed_by: read_route(item)?,
        last_error: read_optional_s(item, "lastError")?,
    })
}

pub fn enrollment_to_item(enrollment: &Enrollment) -> Item {
    let fields = enrollment
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), s(v)))
        .collect();
    let mut item = Item::from([
        ("enrollmentId".to_owned(), s(&enrollment.enrollment_id)),
        ("sequenceId".to_owned(), s(&enrollment.sequence_id)),
        ("userId".to_owned(), s(&enrollment.user_id)),
        ("phone".to_owned(), s(&enrollment.phone)),
        ("timeZone".to_owned(), s(enrollment.time_zone.name())),
        ("fields".to_owned(), AttributeValue::M(fields)),
        ("currentStep".to_owned(), index(enrollment.current_step)),
        ("nextSendAt".to_owned(), n(enrollment.next_send_at)),
        ("status".to_owned(), s(enrollment.status.as_str())),
    ]);
    if let Some(route) = enrollment.claimed_by {
        item.insert("claimedBy".to_owned(), s(&route.to_string()));
    }
    if let Some(error) = &enrollment.last_error {
        item.insert("lastError".to_owned(), s(error));
    }
    item
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

/// Where the enrollments table keeps the lifecycle.
pub const LAYOUT: LedgerLayout = LedgerLayout {
    key: "enrollmentId",
    due_index: DUE_INDEX,
    due_attribute: "nextSendAt",
    step_attribute: Some("currentStep"),
    done_at: "finishedAt",
};

/// The enrollments table, as the lifecycle's ledger.
pub fn enrollment_ledger(client: Client, table: impl Into<String>) -> DynamoLedger<Enrollment> {
    DynamoLedger::new(
        client,
        table,
        LAYOUT,
        enrollment_from_item,
        enrollment_to_item,
    )
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
    use symphony_jobs::sms::EnrollmentStatus;

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
            claimed_by: Some(symphony_core::Route::Legacy),
            last_error: Some("a reason".into()),
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
