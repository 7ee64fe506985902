//! `--filter KEY=VALUE` and the API's `filters` parameter: one parser, one key check, shared by
//! `dock ps`/`dock images` and `GET /containers/json`/`GET /images/json`.
//!
//! The API's form is Docker's JSON: `{"status":["exited"]}`, or the older
//! `{"status":{"exited":true}}`. Keys the listing does not know are refused, as Docker does.

use std::collections::BTreeMap;

/// The keys `ps` and `GET /containers/json` filter on.
pub const CONTAINER_KEYS: &[&str] = &[
    "id", "name", "label", "status", "ancestor", "exited", "before", "since",
];
/// The keys `images` and `GET /images/json` filter on.
pub const IMAGE_KEYS: &[&str] = &["dangling", "reference", "label", "before", "since"];
/// Container states the `status` filter knows (Docker's list).
pub const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("invalid filter '{0}'")]
    UnknownKey(String),
    #[error("bad format of filter (expected name=value): {0:?}")]
    Format(String),
    #[error("invalid filter '{key}={value}'")]
    Value { key: String, value: String },
    #[error("invalid filters {raw:?}: {source}")]
    Json {
        raw: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid filters {0:?}: expected an object of lists or of value:true objects")]
    Shape(String),
}

/// The filters given: each key with its values (a key given twice matches either value).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters {
    map: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// From the CLI's `--filter KEY=VALUE` arguments.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Filters, FilterError> {
        let mut filters = Filters::default();
        for arg in args {
            let arg = arg.as_ref();
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| FilterError::Format(arg.to_string()))?;
            filters.add(key.trim().to_lowercase(), value.to_string());
        }
        Ok(filters)
    }

    /// From the API's `filters` parameter (absent or empty: no filters).
    pub fn from_json(raw: Option<&str>) -> Result<Filters, FilterError> {
        let mut filters = Filters::default();
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(filters);
        };
        let parsed: serde_json::Value =
            serde_json::from_str(raw).map_err(|source| FilterError::Json {
                raw: raw.to_string(),
                source,
            })?;
        let serde_json::Value::Object(map) = parsed else {
            return Err(FilterError::Shape(raw.to_string()));
        };
        for (key, values) in map {
            match values {
                serde_json::Value::Array(items) => {
                    for item in items {
                        let serde_json::Value::String(value) = item else {
                            return Err(FilterError::Shape(raw.to_string()));
                        };
                        filters.add(key.clone(), value);
                    }
                }
                serde_json::Value::Object(items) => {
                    for (value, on) in items {
                        if on.as_bool().unwrap_or(false) {
                            filters.add(key.clone(), value);
                        }
                    }
                }
                _ => return Err(FilterError::Shape(raw.to_string())),
            }
        }
        Ok(filters)
    }

    fn add(&mut self, key: String, value: String) {
        self.map.entry(key).or_default().push(value);
    }

    /// Refuse keys outside `known`.
    pub fn check_keys(&self, known: &[&str]) -> Result<(), FilterError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(FilterError::UnknownKey(key.clone())),
            None => Ok(()),
        }
    }

    /// The values given for `key` (empty when not given).
    pub fn get(&self, key: &str) -> &[String] {
        self.map.get(key).map_or(&[], Vec::as_slice)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `true`/`false` (or 1/0) for a boolean key such as `dangling`; other values are errors.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, FilterError> {
        let Some(value) = self.get(key).last() else {
            return Ok(None);
        };
        match value.to_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(FilterError::Value {
                key: key.to_string(),
                value: value.clone(),
            }),
        }
    }

    /// Whether `labels` carry every `label` filter (`KEY` or `KEY=VALUE`).
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.get("label").iter().all(|l| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(l.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cli_arguments() {
        let f = Filters::from_args(&["status=exited", "label=a=b", "status=created"]).unwrap();
        assert_eq!(f.get("status"), ["exited", "created"]);
        assert_eq!(f.get("label"), ["a=b"]);
        assert!(f.check_keys(CONTAINER_KEYS).is_ok());
        assert!(matches!(
            Filters::from_args(&["novalue"]),
            Err(FilterError::Format(_))
        ));
    }

    #[test]
    fn reads_both_json_forms() {
        let new = Filters::from_json(Some(r#"{"status":["exited"]}"#)).unwrap();
        let old =
            Filters::from_json(Some(r#"{"status":{"exited":true,"running":false}}"#)).unwrap();
        assert_eq!(new, old);
        assert!(Filters::from_json(None).unwrap().is_empty());
        assert!(matches!(
            Filters::from_json(Some("{bad")),
            Err(FilterError::Json { .. })
        ));
        assert!(matches!(
            Filters::from_json(Some(r#"{"status":"exited"}"#)),
            Err(FilterError::Shape(_))
        ));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let f = Filters::from_args(&["x=1"]).unwrap();
        let err = f.check_keys(IMAGE_KEYS).unwrap_err();
        assert_eq!(err.to_string(), "invalid filter 'x'");
    }

    #[test]
    fn booleans_and_labels() {
        let f = Filters::from_args(&["dangling=true", "label=a", "label=b=2"]).unwrap();
        assert_eq!(f.bool("dangling").unwrap(), Some(true));
        let labels: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        assert!(f.labels_match(&labels));
        let labels: BTreeMap<String, String> = [("a".into(), "1".into())].into();
        assert!(!f.labels_match(&labels));
        let bad = Filters::from_args(&["dangling=maybe"]).unwrap();
        assert!(bad.bool("dangling").is_err());
    }
}
