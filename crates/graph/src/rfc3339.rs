//! Timestamps in JSON as Go writes them (RFC 3339), read without an allocation and, where
//! chrono's own `Deserialize` would take them through its general format parser (five times
//! as long as its RFC 3339 one), with the RFC 3339 parser first: a listing reads tens of
//! thousands of them (each image's `created`, each container's three times).

use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use serde::de::{self, Deserializer};

/// `#[serde(deserialize_with = "graph::rfc3339::deserialize")]` for a `DateTime<Utc>`: what
/// chrono's `Deserialize` takes, with its errors.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(Visitor {
        expecting: "an RFC 3339 formatted date and time string",
        parse,
    })
}

/// RFC 3339 alone (an image's json, as it always was read); anything else that is no string
/// is "expected a string".
pub(crate) fn deserialize_strict<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(Visitor {
        expecting: "a string",
        parse: |text| DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc)),
    })
}

struct Visitor {
    expecting: &'static str,
    parse: fn(&str) -> Result<DateTime<Utc>, chrono::ParseError>,
}

impl de::Visitor<'_> for Visitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
        (self.parse)(text).map_err(E::custom)
    }
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
        // Not a string at all: chrono's words.
        assert_eq!(
            serde_json::from_str::<DateTime<Utc>>("5")
                .unwrap_err()
                .to_string(),
            serde_json::from_str::<Ours>("5").err().unwrap().to_string()
        );
    }

    #[test]
    fn the_strict_form_takes_rfc_3339_alone_as_images_were_read() {
        #[derive(serde::Deserialize, Debug)]
        struct Strict(#[serde(deserialize_with = "deserialize_strict")] DateTime<Utc>);
        let time = |json: &str| serde_json::from_str::<Strict>(json).map(|s| s.0);
        assert_eq!(
            time(r#""2026-12-02T15:20:05.3Z""#).unwrap(),
            parse("2026-12-02T15:20:05.3Z").unwrap()
        );
        let refused = time(r#""2026-12-02T15:20:05""#).unwrap_err().to_string();
        let rfc3339 = DateTime::parse_from_rfc3339("2026-12-02T15:20:05").unwrap_err();
        assert!(refused.starts_with(&rfc3339.to_string()), "{refused}");
        assert!(
            time(r#""2026-12-02 15:20:05Z""#).is_ok(),
            "chrono's RFC 3339 takes a space"
        );
        assert!(time(r#""yesterday""#).is_err());
        assert!(time("5")
            .unwrap_err()
            .to_string()
            .contains("expected a string"));
    }
}
