//! The flag table in DynamoDB: partition key `name` (S), attributes `enabled` (BOOL)
//! and `rolloutPercent` (N, 0–100, default 100).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::try_join_all;
use symphony_core::flags::{FlagRecord, FlagStore, FlagStoreError};

use crate::AwsError;

#[derive(Debug, Clone)]
pub struct DynamoFlagStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoFlagStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn read_one(&self, name: &str) -> Result<Option<FlagRecord>, FlagStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("name", AttributeValue::S(name.to_owned()))
            // A flip must take effect at the very next tick.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| FlagStoreError::Unreadable {
                table: self.table.clone(),
                source: Box::new(AwsError::from_sdk("GetItem", e)),
            })?;
        output
            .item()
            .map(|item| {
                parse_flag(item).map_err(|reason| FlagStoreError::Invalid {
                    table: self.table.clone(),
                    name: name.to_owned(),
                    reason,
                })
            })
            .transpose()
    }
}

/// Reads one flag item; a wrong type or an out-of-range percentage is an error, never a
/// guess.
pub fn parse_flag(item: &HashMap<String, AttributeValue>) -> Result<FlagRecord, String> {
    let enabled = match item.get("enabled") {
        Some(AttributeValue::Bool(enabled)) => *enabled,
        Some(other) => return Err(format!("enabled must be a BOOL, found {other:?}")),
        None => return Err("enabled is missing".to_owned()),
    };
    let rollout_percent = match item.get("rolloutPercent") {
        None => 100,
        Some(AttributeValue::N(number)) => number
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                format!("rolloutPercent must be a whole number from 0 to 100, found {number}")
            })?,
        Some(other) => {
            return Err(format!(
                "rolloutPercent must be a number (N), found {other:?}"
            ));
        }
    };
    Ok(FlagRecord {
        enabled,
        rollout_percent,
    })
}

#[async_trait]
impl FlagStore for DynamoFlagStore {
    async fn read(&self, names: &[&str]) -> Result<HashMap<String, FlagRecord>, FlagStoreError> {
        let records = try_join_all(names.iter().map(|name| self.read_one(name))).await?;
        Ok(names
            .iter()
            .zip(records)
            .filter_map(|(name, record)| record.map(|r| ((*name).to_owned(), r)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn a_flag_without_rollout_is_at_one_hundred_percent() {
        let record = parse_flag(&item(&[("enabled", AttributeValue::Bool(true))])).unwrap();
        assert_eq!(
            record,
            FlagRecord {
                enabled: true,
                rollout_percent: 100
            }
        );
    }

    #[test]
    fn wrong_types_and_ranges_are_named() {
        let error = parse_flag(&item(&[("enabled", AttributeValue::S("yes".into()))])).unwrap_err();
        assert!(error.contains("enabled must be a BOOL"), "{error}");
        let error = parse_flag(&item(&[
            ("enabled", AttributeValue::Bool(true)),
            ("rolloutPercent", AttributeValue::N("150".into())),
        ]))
        .unwrap_err();
        assert!(error.contains("rolloutPercent"), "{error}");
    }
}
