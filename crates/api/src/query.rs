//! Query strings and percent-decoding, as Go's `url.Values` writes them.

use crate::error::{ApiError, ApiResult};

/// The decoded `key=value` pairs of a query string, in order; keys may repeat.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(key, true), decode(value, true))
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, absent when empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean the way the daemon reads one: absent, "", 0, no, false and none are false.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| {
            !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            )
        })
    }

    /// An integer parameter; a value that is not one is a 400 naming it.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.non_empty(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }

    /// `filters={"name":{"web":true}}` (or the old `{"name":["web"]}`): the values of `key`.
    pub fn filter(&self, key: &str) -> ApiResult<Vec<String>> {
        let Some(raw) = self.non_empty("filters") else {
            return Ok(Vec::new());
        };
        let parsed: serde_json::Value = serde_json::from_str(raw)
            .map_err(|err| ApiError::bad_request(format!("invalid filters {raw:?}: {err}")))?;
        Ok(match parsed.get(key) {
            Some(serde_json::Value::Object(map)) => map
                .iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(true))
                .map(|(k, _)| k.clone())
                .collect(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        })
    }
}

/// Percent-decoding; `plus_is_space` for query strings.
pub fn decode(raw: &str, plus_is_space: bool) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_go_query_strings() {
        let q = Query::parse(Some(
            "changes=CMD+%5B%22%2Fbin%2Fsh%22%5D&fromSrc=-&message=my+msg&repo=myrepo%3Av1&changes=X",
        ));
        assert_eq!(q.get("repo"), Some("myrepo:v1"));
        assert_eq!(q.get("message"), Some("my msg"));
        assert_eq!(q.all("changes"), vec!["CMD [\"/bin/sh\"]", "X"]);
        assert_eq!(q.get("tag"), None);
    }

    #[test]
    fn reads_booleans_like_the_daemon() {
        let q = Query::parse(Some("a=1&b=0&c=false&d=true&e=&f=no"));
        assert!(q.flag("a") && q.flag("d"));
        assert!(!q.flag("b") && !q.flag("c") && !q.flag("e") && !q.flag("f") && !q.flag("g"));
    }

    #[test]
    fn reads_both_filter_forms() {
        let q = Query::parse(Some(
            "filters=%7B%22reference%22%3A%7B%22busybox%22%3Atrue%7D%2C%22dangling%22%3A%5B%22true%22%5D%7D",
        ));
        assert_eq!(q.filter("reference").unwrap(), vec!["busybox"]);
        assert_eq!(q.filter("dangling").unwrap(), vec!["true"]);
        assert!(q.filter("label").unwrap().is_empty());
        assert!(Query::parse(Some("filters=%7Bbad")).filter("x").is_err());
    }

    #[test]
    fn keeps_stray_percent_signs() {
        assert_eq!(decode("a%2", false), "a%2");
        assert_eq!(decode("a%zz", false), "a%zz");
        assert_eq!(decode("a%2Fb+c", false), "a/b+c");
    }

    mod properties {
        use super::super::*;
        use crate::test_support::proptest_config as config;
        use proptest::prelude::*;

        /// Go's `url.QueryEscape`.
        fn escape(text: &str) -> String {
            let mut out = String::new();
            for b in text.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        out.push(b as char)
                    }
                    b' ' => out.push('+'),
                    _ => out.push_str(&format!("%{b:02X}")),
                }
            }
            out
        }

        proptest! {
            #![proptest_config(config(256))]

            /// What Go's client writes, the server reads back: keys, values, order, repeats.
            #[test]
            fn encoded_pairs_read_back(pairs in proptest::collection::vec(("\\PC{1,8}", "\\PC{0,12}"), 0..6)) {
                let raw: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
                    .collect();
                let query = Query::parse(Some(&raw.join("&")));
                let read: Vec<(String, String)> = query.pairs.clone();
                prop_assert_eq!(read, pairs.clone());
                for (key, value) in &pairs {
                    let first = pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
                    prop_assert_eq!(query.get(key), first);
                    prop_assert!(query.all(key).contains(&value.as_str()));
                }
            }

            /// Any raw query string (stray `%`, `+`, `=`, `&`, bytes that are not UTF-8 once
            /// decoded): parsed without a panic, and every accessor answers.
            #[test]
            fn any_query_string_is_read(raw in "[a-z=&%+0-9A-Fa-f\\PC]{0,40}") {
                let query = Query::parse(Some(&raw));
                for key in ["a", "all", "filters", "t"] {
                    let _ = query.flag(key);
                    let _ = query.int(key);
                    let _ = query.filter(key);
                }
                prop_assert_eq!(decode(&escape(&raw), true), raw);
            }

            /// Both forms Docker's clients send give the same values; any other JSON is a 400
            /// or no values, never a panic.
            #[test]
            fn filters_in_both_forms(values in proptest::collection::btree_set("\\PC{1,10}", 0..4), junk in "\\PC{0,30}") {
                let values: Vec<String> = values.into_iter().collect();
                let map: serde_json::Map<String, serde_json::Value> = values
                    .iter()
                    .map(|v| (v.clone(), serde_json::Value::Bool(true)))
                    .collect();
                let map_form = serde_json::json!({ "label": map }).to_string();
                let list_form = serde_json::json!({ "label": values }).to_string();
                for form in [map_form, list_form] {
                    let query = Query::parse(Some(&format!("filters={}", escape(&form))));
                    let mut got = query.filter("label").unwrap();
                    got.sort();
                    prop_assert_eq!(&got, &values);
                }
                let query = Query::parse(Some(&format!("filters={}", escape(&junk))));
                let _ = query.filter("label");
            }
        }
    }
}
