//! What every DynamoDB adapter shares: one table's conditional updates (each with its own
//! write token), claims, quarantining queries, and attribute reading that names the
//! attribute on every problem.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use symphony_core::ledger::{
    MAX_REASON_BYTES, StoreError, Transition, quarantine_reason, truncate,
};
use symphony_core::{Claim, Due, Quarantined, Route};

use crate::AwsError;

pub type Item = HashMap<String, AttributeValue>;

/// One DynamoDB table: the client and its name, with the few operations every adapter
/// uses. Errors name the table and keep the SDK error as their source.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    name: String,
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn unavailable(&self, error: AwsError) -> StoreError {
        StoreError::Unavailable {
            operation: error.operation,
            table: self.name.clone(),
            retryable: error.retryable,
            source: Box::new(error),
        }
    }

    /// One conditional `UpdateItem`; a failed condition is a [`Transition::Conflict`].
    /// `#status` always names the `status` attribute.
    pub async fn update(
        &self,
        key: Item,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Transition, StoreError> {
        self.update_named(key, update, condition, values, &[]).await
    }

    /// [`Self::update`] with more attribute names (`#name`, attribute) than `#status`.
    pub async fn update_named(
        &self,
        key: Item,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        names: &[(&str, &str)],
    ) -> Result<Transition, StoreError> {
        // The SDK retries a write whose answer was lost (a timeout, a reset connection, a
        // 500 after the commit); the retry then meets its own earlier write and fails the
        // condition. Each write carries a token of its own, and a failed condition whose
        // item holds that token is the write itself, done.
        let write_token = uuid::Uuid::new_v4().to_string();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .update_expression(with_write_token(update))
            .condition_expression(condition)
            .expression_attribute_values(":write_token", s(&write_token))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if update.contains("#status") || condition.contains("#status") {
            request = request.expression_attribute_names("#status", "status");
        }
        for (placeholder, attribute) in names {
            request = request.expression_attribute_names(*placeholder, *attribute);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(Transition::Done),
            Err(SdkError::ServiceError(context)) => match context.err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    let as_found = failed
                        .item()
                        .and_then(|item| item.get(WRITE_TOKEN))
                        .and_then(|token| token.as_s().ok());
                    if as_found == Some(&write_token) {
                        tracing::debug!(table = %self.name, "a retried write met itself: done");
                        Ok(Transition::Done)
                    } else {
                        Ok(Transition::Conflict)
                    }
                }
                _ => Err(self.unavailable(AwsError::from_sdk(
                    "UpdateItem",
                    SdkError::ServiceError(context),
                ))),
            },
            Err(error) => Err(self.unavailable(AwsError::from_sdk("UpdateItem", error))),
        }
    }

    /// Moves the record under `key` to `status = claimed` for `route`, with a new token,
    /// when `condition` holds; `None` when it does not (someone else has it).
    pub async fn take_claim(
        &self,
        key: Item,
        unit_id: &str,
        route: Route,
        now: i64,
        condition: &str,
        mut values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<Claim>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        values.extend([
            (":claimed", s("claimed")),
            (":token", s(&token)),
            (":now", n(now)),
            (":route", s(&route.to_string())),
        ]);
        let update =
            "SET #status = :claimed, claimToken = :token, claimedAt = :now, claimedBy = :route";
        let transition = self.update(key, update, condition, values).await?;
        Ok((transition == Transition::Done).then(|| Claim {
            unit_id: unit_id.to_owned(),
            token,
            route,
        }))
    }

    /// Records left `claimed` since before `claimed_before`, through `index` (partition key
    /// `status`), at most `limit`; those that do not parse are quarantined (see
    /// [`Self::query_quarantining`]).
    pub async fn abandoned_claims<T>(
        &self,
        index: &str,
        claimed_before: i64,
        limit: usize,
        parse: impl Fn(&Item) -> Result<T, String>,
        key_names: &[&str],
        now: i64,
    ) -> Result<Due<T>, StoreError> {
        self.query_quarantining(
            limit,
            parse,
            |query| {
                query
                    .index_name(index)
                    .key_condition_expression("#status = :claimed")
                    .filter_expression("claimedAt <= :cutoff")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":claimed", s("claimed"))
                    .expression_attribute_values(":cutoff", n(claimed_before))
            },
            key_names,
            now,
        )
        .await
    }

    /// Takes over a claim, only while it is still `claimed` since before `claimed_before`.
    pub async fn take_abandoned_claim(
        &self,
        key: Item,
        unit_id: &str,
        route: Route,
        now: i64,
        claimed_before: i64,
    ) -> Result<Option<Claim>, StoreError> {
        let condition = "#status = :claimed AND claimedAt <= :cutoff";
        let values = vec![(":cutoff", n(claimed_before))];
        self.take_claim(key, unit_id, route, now, condition, values)
            .await
    }

    /// A conditional `PutItem` that only creates: an existing item is a [`Transition::Conflict`].
    pub async fn create(&self, key_name: &str, item: Item) -> Result<Transition, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", key_name)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Transition::Done),
            Err(SdkError::ServiceError(context))
                if context.err().is_conditional_check_failed_exception() =>
            {
                Ok(Transition::Conflict)
            }
            Err(error) => Err(self.unavailable(AwsError::from_sdk("PutItem", error))),
        }
    }

    /// A consistent `GetItem`, parsed with `parse`.
    pub async fn get<T>(
        &self,
        key: Item,
        parse: impl Fn(&Item) -> Result<T, String>,
    ) -> Result<Option<T>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.unavailable(AwsError::from_sdk("GetItem", e)))?;
        output
            .item()
            .map(|item| {
                parse(item).map_err(|reason| StoreError::Corrupt {
                    table: self.name.clone(),
                    key: describe_key(&key),
                    reason,
                })
            })
            .transpose()
    }

    /// A paginated `Query` (`page` adds the conditions to a request on this table), each
    /// item parsed, stopping at `limit` items.
    pub async fn query<T>(
        &self,
        limit: usize,
        parse: impl Fn(&Item) -> Result<T, String>,
        page: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
    ) -> Result<Vec<T>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let request = self
                .client
                .query()
                .table_name(&self.name)
                .set_exclusive_start_key(start.take());
            let output = page(request)
                .send()
                .await
                .map_err(|e| self.unavailable(AwsError::from_sdk("Query", e)))?;
            for item in output.items() {
                let parsed = parse(item).map_err(|reason| StoreError::Corrupt {
                    table: self.name.clone(),
                    key: describe_key(item),
                    reason,
                })?;
                found.push(parsed);
                if found.len() >= limit {
                    return Ok(found);
                }
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(found),
            }
        }
    }
}

impl Table {
    /// A paginated `Query` like [`Self::query`], but a row that does not parse fails alone:
    /// it is read again, consistently, and if it still does not parse it is quarantined
    /// (status `failed`, `lastError` naming the attribute) by a write conditional on the
    /// status it was read with, and returned apart. A row fixed meanwhile, or one that
    /// cannot be quarantined now, is left for the next tick. `key_names` are the table's
    /// key attributes, the first of them the unit's id.
    pub async fn query_quarantining<T>(
        &self,
        limit: usize,
        parse: impl Fn(&Item) -> Result<T, String>,
        page: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
        key_names: &[&str],
        now: i64,
    ) -> Result<Due<T>, StoreError> {
        let rows = self
            .query(limit, |item| Ok::<_, String>(item.clone()), page)
            .await?;
        let mut due = Due::from(Vec::with_capacity(rows.len()));
        for item in rows {
            match parse(&item) {
                Ok(unit) => due.units.push(unit),
                Err(_) => {
                    if let Some(quarantined) = self.quarantine(&item, key_names, &parse, now).await
                    {
                        due.quarantined.push(quarantined);
                    }
                }
            }
        }
        Ok(due)
    }

    /// Reads a row that did not parse again, consistently (an index can lag), and if it
    /// still does not parse marks it failed, only while it is as it was read.
    async fn quarantine<T>(
        &self,
        item: &Item,
        key_names: &[&str],
        parse: &impl Fn(&Item) -> Result<T, String>,
        now: i64,
    ) -> Option<Quarantined> {
        let key: Item = key_names
            .iter()
            .filter_map(|name| {
                item.get(*name)
                    .map(|value| ((*name).to_owned(), value.clone()))
            })
            .collect();
        let unit_id = key_names
            .first()
            .and_then(|name| read_s(item, name).ok())
            .unwrap_or_else(|| describe_key(item));
        let fresh = match self
            .get(key.clone(), |row| Ok::<_, String>(row.clone()))
            .await
        {
            Ok(Some(fresh)) => fresh,
            Ok(None) => return None,
            Err(error) => {
                tracing::error!(table = %self.name, unit_id = %unit_id, error = %symphony_core::error::chain(&error), "could not read a row that does not parse again");
                return None;
            }
        };
        let quarantined = match parse(&fresh) {
            Ok(_) => return None,
            Err(problem) => quarantine_reason(&unit_id, &self.name, &problem),
        };
        // Moved on since the query read it (another tick quarantined it, say): not ours.
        if fresh.get("status") != item.get("status") {
            return None;
        }
        let first_key = key_names.first().copied().unwrap_or_default();
        let (condition, mut values) = match item.get("status") {
            Some(status) => (
                "attribute_exists(#key) AND #status = :as_read",
                vec![(":as_read", status.clone())],
            ),
            None => (
                "attribute_exists(#key) AND attribute_not_exists(#status)",
                Vec::new(),
            ),
        };
        values.extend([
            (":failed", s("failed")),
            (
                ":reason",
                s(truncate(&quarantined.reason, MAX_REASON_BYTES)),
            ),
            (":now", n(now)),
        ]);
        let update = "SET #status = :failed, lastError = :reason, failedAt = :now";
        match self
            .update_named(key, update, condition, values, &[("#key", first_key)])
            .await
        {
            Ok(Transition::Done) => Some(quarantined),
            Ok(Transition::Conflict) => None,
            Err(error) => {
                tracing::error!(table = %self.name, unit_id = %unit_id, error = %symphony_core::error::chain(&error), "could not quarantine a row that does not parse");
                None
            }
        }
    }
}

/// The attribute each conditional update writes its own token to (see [`Table::update`]).
pub const WRITE_TOKEN: &str = "writeToken";

/// `update` with `writeToken = :write_token` added to its SET clause (or a SET clause
/// added): DynamoDB allows each clause once.
fn with_write_token(update: &str) -> String {
    let action = format!("{WRITE_TOKEN} = :write_token");
    let Some(set) = update.find("SET ") else {
        return format!("SET {action} {update}");
    };
    let after_set = set + "SET ".len();
    let end = [" REMOVE ", " ADD ", " DELETE "]
        .iter()
        .filter_map(|clause| update[after_set..].find(clause).map(|at| after_set + at))
        .min()
        .unwrap_or(update.len());
    format!("{}, {action}{}", &update[..end], &update[end..])
}

pub fn describe_key(key: &Item) -> String {
    let mut parts: Vec<String> = key
        .iter()
        .map(|(name, value)| match value {
            AttributeValue::S(text) => format!("{name}={text}"),
            AttributeValue::N(number) => format!("{name}={number}"),
            other => format!("{name}={other:?}"),
        })
        .collect();
    parts.sort();
    parts.join(",")
}

pub fn key(pairs: &[(&str, &str)]) -> Item {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), s(value)))
        .collect()
}

pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The type of an attribute as DynamoDB names it. A reason names the type, never the
/// value, which may be personal data (an address, a phone number, a body).
fn type_of(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "a string (S)",
        AttributeValue::N(_) => "a number (N)",
        AttributeValue::B(_) => "binary (B)",
        AttributeValue::Bool(_) => "a boolean (BOOL)",
        AttributeValue::Null(_) => "null (NULL)",
        AttributeValue::M(_) => "a map (M)",
        AttributeValue::L(_) => "a list (L)",
        AttributeValue::Ss(_) => "a string set (SS)",
        AttributeValue::Ns(_) => "a number set (NS)",
        AttributeValue::Bs(_) => "a binary set (BS)",
        _ => "another type",
    }
}

pub fn read_s(item: &Item, name: &str) -> Result<String, String> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        Some(other) => Err(format!(
            "{name} must be a string (S), found {}",
            type_of(other)
        )),
        None => Err(format!("{name} is missing")),
    }
}

pub fn read_optional_s(item: &Item, name: &str) -> Result<Option<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => read_s(item, name).map(Some),
    }
}

/// `claimedBy`: the path of the record's last claim, if any.
pub fn read_route(item: &Item) -> Result<Option<Route>, String> {
    match read_optional_s(item, "claimedBy")?.as_deref() {
        Some("symphony") => Ok(Some(Route::Symphony)),
        Some("legacy") => Ok(Some(Route::Legacy)),
        Some(other) => Err(format!(
            "claimedBy must be symphony or legacy, found {other:?}"
        )),
        None => Ok(None),
    }
}

pub fn read_n(item: &Item, name: &str) -> Result<i64, String> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| format!("{name} must be a whole number")),
        Some(other) => Err(format!(
            "{name} must be a number (N), found {}",
            type_of(other)
        )),
        None => Err(format!("{name} is missing")),
    }
}

pub fn read_optional_n(item: &Item, name: &str) -> Result<Option<i64>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => read_n(item, name).map(Some),
    }
}

/// A map of strings (M of S), e.g. a lead's custom fields; absent is empty.
pub fn read_string_map(
    item: &Item,
    name: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(Default::default()),
        Some(AttributeValue::M(map)) => map
            .iter()
            .map(|(key, value)| match value {
                AttributeValue::S(text) => Ok((key.clone(), text.clone())),
                AttributeValue::N(number) => Ok((key.clone(), number.clone())),
                other => Err(format!(
                    "{name}.{key} must be a string, found {}",
                    type_of(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "{name} must be a map (M), found {}",
            type_of(other)
        )),
    }
}

/// A list of maps (L of M), e.g. a campaign's steps.
pub fn read_list_of_maps<'a>(item: &'a Item, name: &str) -> Result<Vec<&'a Item>, String> {
    match item.get(name) {
        Some(AttributeValue::L(list)) => list
            .iter()
            .enumerate()
            .map(|(index, value)| match value {
                AttributeValue::M(map) => Ok(map),
                other => Err(format!(
                    "{name}[{index}] must be a map (M), found {}",
                    type_of(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "{name} must be a list (L), found {}",
            type_of(other)
        )),
        None => Err(format!("{name} is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_update_writes_its_token_in_its_one_set_clause() {
        let token = "writeToken = :write_token";
        assert_eq!(
            with_write_token("SET #status = :sending, sendingSince = :now"),
            format!("SET #status = :sending, sendingSince = :now, {token}")
        );
        assert_eq!(
            with_write_token("SET #status = :claimed REMOVE sendingSince"),
            format!("SET #status = :claimed, {token} REMOVE sendingSince")
        );
        assert_eq!(
            with_write_token("REMOVE leaseUntil, leaseToken, leaseRoute"),
            format!("SET {token} REMOVE leaseUntil, leaseToken, leaseRoute")
        );
        assert_eq!(
            with_write_token("REMOVE a SET b = :b"),
            format!("REMOVE a SET b = :b, {token}")
        );
    }

    #[test]
    fn a_reason_names_the_type_found_never_the_value() {
        let item = Item::from([
            (
                "toEmail".to_owned(),
                AttributeValue::Ss(vec!["bob@example.com".into()]),
            ),
            ("dueAt".to_owned(), AttributeValue::N("15550100.5".into())),
        ]);
        let to = read_s(&item, "toEmail").unwrap_err();
        assert_eq!(to, "toEmail must be a string (S), found a string set (SS)");
        let due = read_n(&item, "dueAt").unwrap_err();
        assert_eq!(due, "dueAt must be a whole number");
    }

    #[test]
    fn maps_and_lists_name_the_bad_element() {
        let item = Item::from([
            (
                "fields".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "plan".to_owned(),
                    AttributeValue::Bool(true),
                )])),
            ),
            (
                "steps".to_owned(),
                AttributeValue::L(vec![AttributeValue::S("x".into())]),
            ),
        ]);
        assert!(
            read_string_map(&item, "fields")
                .unwrap_err()
                .contains("fields.plan")
        );
        assert!(
            read_list_of_maps(&item, "steps")
                .unwrap_err()
                .contains("steps[0]")
        );
    }
}
