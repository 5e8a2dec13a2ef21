//! Reading configuration once, at init, naming the variable that is missing or wrong.

use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {name} is required but not set")]
    Missing { name: String },
    #[error("environment variable {name} has an invalid value {value:?}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

/// Where configuration values come from: the process environment in Lambda, a map in tests.
pub trait EnvSource {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

impl EnvSource for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// An environment from pairs, for tests and local runs.
pub fn from_pairs(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

pub fn required(env: &dyn EnvSource, name: &str) -> Result<String, ConfigError> {
    env.get(name).ok_or_else(|| ConfigError::Missing {
        name: name.to_owned(),
    })
}

pub fn parsed_or<T>(env: &dyn EnvSource, name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match env.get(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|error: T::Err| ConfigError::Invalid {
            name: name.to_owned(),
            reason: error.to_string(),
            value,
        }),
    }
}

/// Reads a boolean switch: `true/false`, `1/0`, `on/off`, `yes/no`, any case.
pub fn switch(env: &dyn EnvSource, name: &str) -> Result<Option<bool>, ConfigError> {
    let Some(value) = env.get(name) else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(Some(true)),
        "false" | "0" | "off" | "no" => Ok(Some(false)),
        _ => Err(ConfigError::Invalid {
            name: name.to_owned(),
            value,
            reason: "expected true or false".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_is_named() {
        let error = required(&from_pairs(&[]), "EMAIL_QUEUE_URL").unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable EMAIL_QUEUE_URL is required but not set"
        );
    }

    #[test]
    fn an_unparsable_number_is_named_with_its_value() {
        let error = parsed_or(
            &from_pairs(&[("EMAIL_TICK_LIMIT", "lots")]),
            "EMAIL_TICK_LIMIT",
            100_usize,
        )
        .unwrap_err();
        assert!(error.to_string().contains("EMAIL_TICK_LIMIT"));
        assert!(error.to_string().contains("lots"));
    }

    #[test]
    fn switches_accept_common_spellings_and_reject_others() {
        assert_eq!(switch(&from_pairs(&[("F", "ON")]), "F"), Ok(Some(true)));
        assert_eq!(switch(&from_pairs(&[("F", "0")]), "F"), Ok(Some(false)));
        assert_eq!(switch(&from_pairs(&[]), "F"), Ok(None));
        assert!(switch(&from_pairs(&[("F", "maybe")]), "F").is_err());
    }
}
