//! [`DynamoLedger`]: the lifecycle's ledger in a DynamoDB table, for any job. A job gives
//! its table's layout (key, due index, due and step attributes) and its item mapping;
//! the conditions of every move are written here once. Layout: `docs/data-model.md`.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use symphony_core::Ending;
use symphony_core::ledger::{
    Ledger, LedgerRecord, MAX_REASON_BYTES, Next, StoreError, Transition, UnitState, Verdict,
    closing_state, truncate,
};
use symphony_core::{Claim, Due, Route};

use crate::table::{Item, Table, key, n, s};

/// Where a job's table keeps what the lifecycle reads and writes. Every table also has
/// `status`, `claimToken`, `claimedAt`, `claimedBy`, `sendingSince`, `heldAt`, `failedAt`
/// and `lastError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerLayout {
    /// The key attribute, the unit's id (a string).
    pub key: &'static str,
    /// The index of units by `status` (partition) and due time (sort).
    pub due_index: &'static str,
    /// When the unit (its current step) is due, epoch seconds.
    pub due_attribute: &'static str,
    /// The step a unit with steps is at; `None` for a unit sent once.
    pub step_attribute: Option<&'static str>,
    /// Written with the time the unit is done: `sentAt`, `finishedAt`.
    pub done_at: &'static str,
}

/// A job's ledger in DynamoDB.
pub struct DynamoLedger<R> {
    table: Table,
    layout: LedgerLayout,
    from_item: fn(&Item) -> Result<R, String>,
    to_item: fn(&R) -> Item,
}

impl<R> fmt::Debug for DynamoLedger<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoLedger")
            .field("table", &self.table.name())
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

fn step_value(step: usize) -> AttributeValue {
    n(i64::try_from(step).unwrap_or(i64::MAX))
}

fn status<R: LedgerRecord>(state: UnitState) -> Option<AttributeValue> {
    R::STATUS.name(state).map(s)
}

impl<R: LedgerRecord> DynamoLedger<R> {
    /// The ledger in `table`, read with `from_item` (every problem naming the attribute)
    /// and written with `to_item`.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        layout: LedgerLayout,
        from_item: fn(&Item) -> Result<R, String>,
        to_item: fn(&R) -> Item,
    ) -> Self {
        Self {
            table: Table::new(client, table),
            layout,
            from_item,
            to_item,
        }
    }

    fn key(&self, unit_id: &str) -> Item {
        key(&[(self.layout.key, unit_id)])
    }

    /// `condition`, and for a unit with steps that it is at `step`.
    fn at_step(
        &self,
        condition: &str,
        step: usize,
        values: &mut Vec<(&'static str, AttributeValue)>,
    ) -> String {
        match self.layout.step_attribute {
            Some(attribute) => {
                values.push((":step", step_value(step)));
                format!("{condition} AND {attribute} = :step")
            }
            None => condition.to_owned(),
        }
    }

    async fn update(
        &self,
        unit_id: &str,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Transition, StoreError> {
        self.table
            .update(self.key(unit_id), update, condition, values)
            .await
    }
}

const CLAIMED: &str = "claimed";
const SENDING: &str = "sending";
const UNKNOWN: &str = "unknown";
/// Given back: ready again, owned by no one.
const RELEASED: &str = "REMOVE claimToken, claimedAt, claimedBy";
/// Ended: no claim is left to hold, but `claimedBy` says which path ended it.
const ENDED: &str = "REMOVE claimToken, claimedAt, sendingSince";

#[async_trait]
impl<R: LedgerRecord> Ledger<R> for DynamoLedger<R> {
    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<R>, StoreError> {
        let page = i32::try_from(limit).unwrap_or(i32::MAX);
        let condition = format!("#status = :ready AND {} <= :now", self.layout.due_attribute);
        self.table
            .query_quarantining(
                limit,
                self.from_item,
                |query| {
                    query
                        .index_name(self.layout.due_index)
                        .key_condition_expression(&condition)
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":ready", s(R::STATUS.ready))
                        .expression_attribute_values(":now", n(now))
                        .limit(page)
                },
                &[self.layout.key],
                now,
            )
            .await
    }

    async fn fetch_abandoned(
        &self,
        claimed_before: i64,
        limit: usize,
        now: i64,
    ) -> Result<Due<R>, StoreError> {
        self.table
            .abandoned_claims(
                self.layout.due_index,
                claimed_before,
                limit,
                self.from_item,
                &[self.layout.key],
                now,
            )
            .await
    }

    async fn get(&self, unit_id: &str) -> Result<Option<R>, StoreError> {
        self.table.get(self.key(unit_id), self.from_item).await
    }

    async fn create(&self, record: &R) -> Result<Transition, StoreError> {
        self.table
            .create(self.layout.key, (self.to_item)(record))
            .await
    }

    async fn claim(
        &self,
        unit_id: &str,
        step: usize,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, StoreError> {
        let mut values = vec![(":ready", s(R::STATUS.ready))];
        let condition = self.at_step("#status = :ready", step, &mut values);
        self.table
            .take_claim(self.key(unit_id), unit_id, route, now, &condition, values)
            .await
    }

    async fn reclaim(
        &self,
        unit_id: &str,
        route: Route,
        now: i64,
        claimed_before: i64,
    ) -> Result<Option<Claim>, StoreError> {
        self.table
            .take_abandoned_claim(self.key(unit_id), unit_id, route, now, claimed_before)
            .await
    }

    async fn release(&self, claim: &Claim) -> Result<Transition, StoreError> {
        self.update(
            &claim.unit_id,
            &format!("SET #status = :ready {RELEASED}"),
            "#status = :claimed AND claimToken = :token",
            vec![
                (":claimed", s(CLAIMED)),
                (":ready", s(R::STATUS.ready)),
                (":token", s(&claim.token)),
            ],
        )
        .await
    }

    async fn defer(&self, unit_id: &str, due_at: i64) -> Result<Transition, StoreError> {
        let due = self.layout.due_attribute;
        self.update(
            unit_id,
            &format!("SET #status = :ready, {due} = :at {RELEASED}"),
            "#status = :claimed",
            vec![
                (":ready", s(R::STATUS.ready)),
                (":claimed", s(CLAIMED)),
                (":at", n(due_at)),
            ],
        )
        .await
    }

    async fn begin_send(
        &self,
        unit_id: &str,
        step: usize,
        now: i64,
    ) -> Result<Transition, StoreError> {
        let mut values = vec![
            (":claimed", s(CLAIMED)),
            (":sending", s(SENDING)),
            (":now", n(now)),
        ];
        let condition = self.at_step("#status = :claimed", step, &mut values);
        self.update(
            unit_id,
            "SET #status = :sending, sendingSince = :now",
            &condition,
            values,
        )
        .await
    }

    async fn abort_send(&self, unit_id: &str) -> Result<Transition, StoreError> {
        self.update(
            unit_id,
            "SET #status = :claimed REMOVE sendingSince",
            "#status = :sending",
            vec![(":claimed", s(CLAIMED)), (":sending", s(SENDING))],
        )
        .await
    }

    async fn hold_unknown(
        &self,
        unit_id: &str,
        evidence: &str,
        now: i64,
    ) -> Result<Transition, StoreError> {
        self.update(
            unit_id,
            "SET #status = :unknown, heldAt = :now, lastError = :evidence",
            "#status = :sending",
            vec![
                (":sending", s(SENDING)),
                (":unknown", s("unknown")),
                (":now", n(now)),
                (":evidence", s(truncate(evidence, MAX_REASON_BYTES))),
            ],
        )
        .await
    }

    async fn held(&self, limit: usize) -> Result<Vec<R>, StoreError> {
        let page = i32::try_from(limit).unwrap_or(i32::MAX);
        // A listing for a person: a row that does not parse fails it, naming the row,
        // rather than being quarantined by a read.
        self.table
            .query(limit, self.from_item, |query| {
                query
                    .index_name(self.layout.due_index)
                    .key_condition_expression("#status = :unknown")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":unknown", s(UNKNOWN))
                    .limit(page)
            })
            .await
    }

    async fn resolve(
        &self,
        unit_id: &str,
        step: usize,
        verdict: Verdict,
        now: i64,
    ) -> Result<Transition, StoreError> {
        let mut values = vec![(":unknown", s(UNKNOWN)), (":now", n(now))];
        let condition = self.at_step("#status = :unknown", step, &mut values);
        let step_attribute = self.layout.step_attribute;
        // The evidence stays in `lastError`; `resolvedAt` says a person decided.
        let update = match verdict {
            Verdict::Sent(Next::Done) => {
                values.push((":done", s(R::STATUS.done)));
                let mut update = format!(
                    "SET #status = :done, {} = :now, resolvedAt = :now",
                    self.layout.done_at
                );
                if let Some(attribute) = step_attribute {
                    values.push((":next", step_value(step + 1)));
                    update.push_str(&format!(", {attribute} = :next"));
                }
                update.push_str(&format!(" {ENDED}, heldAt"));
                update
            }
            Verdict::Sent(Next::Step { .. }) if !R::HAS_STEPS => return Ok(Transition::Conflict),
            Verdict::Sent(Next::Step { index, due_at }) => {
                values.extend([(":ready", s(R::STATUS.ready)), (":at", n(due_at))]);
                let mut update = format!(
                    "SET #status = :ready, {} = :at, resolvedAt = :now",
                    self.layout.due_attribute
                );
                if let Some(attribute) = step_attribute {
                    values.push((":next", step_value(index)));
                    update.push_str(&format!(", {attribute} = :next"));
                }
                update.push_str(&format!(" {RELEASED}, sendingSince, heldAt"));
                update
            }
            Verdict::Resend => {
                values.push((":ready", s(R::STATUS.ready)));
                format!(
                    "SET #status = :ready, {} = :now, resolvedAt = :now {RELEASED}, sendingSince, heldAt",
                    self.layout.due_attribute
                )
            }
        };
        self.update(unit_id, &update, &condition, values).await
    }

    async fn finish(
        &self,
        unit_id: &str,
        step: usize,
        next: Next,
        now: i64,
    ) -> Result<Transition, StoreError> {
        let mut values = vec![(":sending", s(SENDING))];
        let condition = self.at_step("#status = :sending", step, &mut values);
        let step_attribute = self.layout.step_attribute;
        let update = match next {
            Next::Done => {
                values.extend([(":done", s(R::STATUS.done)), (":now", n(now))]);
                let mut update = format!("SET #status = :done, {} = :now", self.layout.done_at);
                if let Some(attribute) = step_attribute {
                    values.push((":next", step_value(step + 1)));
                    update.push_str(&format!(", {attribute} = :next"));
                }
                update.push_str(&format!(" {ENDED}"));
                update
            }
            // A unit sent once has no later step: never made ready to send again.
            Next::Step { .. } if !R::HAS_STEPS => return Ok(Transition::Conflict),
            Next::Step { index, due_at } => {
                values.extend([(":ready", s(R::STATUS.ready)), (":at", n(due_at))]);
                let mut update =
                    format!("SET #status = :ready, {} = :at", self.layout.due_attribute);
                if let Some(attribute) = step_attribute {
                    values.push((":next", step_value(index)));
                    update.push_str(&format!(", {attribute} = :next"));
                }
                update.push_str(&format!(" {RELEASED}, sendingSince"));
                update
            }
        };
        self.update(unit_id, &update, &condition, values).await
    }

    async fn close(
        &self,
        unit_id: &str,
        step: usize,
        ending: Ending,
        now: i64,
    ) -> Result<Transition, StoreError> {
        let Some(end) = closing_state::<R>(ending).and_then(status::<R>) else {
            return Ok(Transition::Conflict);
        };
        let mut values = vec![(":claimed", s(CLAIMED)), (":end", end), (":now", n(now))];
        let condition = self.at_step("#status = :claimed", step, &mut values);
        self.update(
            unit_id,
            &format!("SET #status = :end, closedAt = :now {ENDED}"),
            &condition,
            values,
        )
        .await
    }

    async fn fail(&self, unit_id: &str, reason: &str, now: i64) -> Result<Transition, StoreError> {
        self.update(
            unit_id,
            "SET #status = :failed, failedAt = :now, lastError = :reason",
            "#status IN (:claimed, :sending)",
            vec![
                (":claimed", s(CLAIMED)),
                (":sending", s(SENDING)),
                (":failed", s("failed")),
                (":now", n(now)),
                (":reason", s(truncate(reason, MAX_REASON_BYTES))),
            ],
        )
        .await
    }
}
