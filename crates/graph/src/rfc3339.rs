//! Timestamps in JSON as Go writes them (RFC 3339), read as chrono's own `Deserialize` reads
//! them but without its general format parser, which takes five times as long as its RFC 3339
//! one: a listing reads tens of thousands of them (each image's `created`, each container's
//! three times).

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use serde::de::{self, Deserializer};

/// `#[serde(deserialize_with = "graph::rfc3339::deserialize")]` for a `DateTime<Utc>`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
            parse(text).map_err(E::custom)
        }
    }
    d.deserialize_str(Visitor)
}

/// `text` as a time: RFC 3339, else whatever else chrono's `FromStr` takes (and its error).
pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| text.parse::<DateTime<FixedOffset>>())
        .map(|time| time.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_chronos_own_deserialize_reads_and_fails_where_it_fails() {
        #[derive(serde::Deserialize)]
        struct Ours(#[serde(deserialize_with = "deserialize")] DateTime<Utc>);
        for text in [
            "2026-11-01T00:00:00.000000000Z",
            "2026-12-02T15:20:05.397652633Z",
            "0001-01-01T00:00:00Z",
            "2026-12-02T17:20:05.3+02:00",
            "2026-12-02 15:20:05Z",
            "2026-12-02t15:20:05z",
            "2026-12-02T15:20:05",
            "2026-13-02T15:20:05Z",
            "yesterday",
            "",
        ] {
            let json = serde_json::to_string(text).unwrap();
            let theirs = serde_json::from_str::<DateTime<Utc>>(&json);
            let ours = serde_json::from_str::<Ours>(&json);
            match (theirs, ours) {
                (Ok(theirs), Ok(Ours(ours))) => assert_eq!(theirs, ours, "{text}"),
                (Err(theirs), Err(ours)) => {
                    assert_eq!(theirs.to_string(), ours.to_string(), "{text}")
                }
                (theirs, ours) => panic!("{text}: {theirs:?} against {:?}", ours.map(|o| o.0)),
            }
        }
        // Not a string at all.
        assert!(serde_json::from_str::<Ours>("5").is_err());
    }
}
