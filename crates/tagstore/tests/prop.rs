//! Property tests of the tag store's names: Docker's grammar for repositories and tags is
//! accepted, `REPO:TAG` splits back into its parts, and any text is refused or accepted
//! without a panic. (crates/registry/tests/names_prop.rs checks agreement with references.)
//!
//! The seed is fixed so CI always runs the same cases; `PROPTEST_RNG_SEED` and
//! `PROPTEST_CASES` explore more.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use tagstore::{parse_reference, validate_repository, validate_tag};

fn config(cases: u32) -> ProptestConfig {
    let env = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            env.cases
        } else {
            cases
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            env.rng_seed
        } else {
            RngSeed::Fixed(0x646f_636b)
        },
        failure_persistence: None,
        ..env
    }
}

fn repository() -> impl Strategy<Value = String> {
    let component = "[a-z0-9]{1,4}((\\.|_|__|-{1,3})[a-z0-9]{1,4}){0,2}";
    let host = prop_oneof![
        Just("localhost".to_string()),
        "[a-zA-Z0-9]{1,5}(\\.[a-zA-Z0-9]{1,5}){1,2}(:[1-9][0-9]{0,3})?",
        "[a-z0-9]{1,6}:[1-9][0-9]{0,3}",
        "\\[::1\\](:5000)?",
    ];
    (
        proptest::option::of(host),
        proptest::collection::vec(component, 1..4),
    )
        .prop_filter_map("a first component with a dot is a host", |(host, path)| {
            let path = path.join("/");
            match host {
                Some(host) => Some(format!("{host}/{path}")),
                None if path.contains('/') && path.split('/').next()?.contains('.') => None,
                None => Some(path),
            }
        })
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}"
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn names_of_the_grammar_are_accepted_and_split_back(repo in repository(), tag in tag()) {
        prop_assert!(validate_repository(&repo).is_ok(), "{}", repo);
        prop_assert!(validate_tag(&tag).is_ok(), "{}", tag);
        prop_assert_eq!(parse_reference(&format!("{repo}:{tag}")), (repo.clone(), Some(tag)));
        prop_assert_eq!(parse_reference(&repo), (repo, None));
    }

    #[test]
    fn any_text_is_refused_or_accepted_without_panicking(text in "\\PC{0,40}") {
        if validate_repository(&text).is_ok() {
            prop_assert!(!text.is_empty() && text.len() <= 255);
            // The path (after any host) is lowercase.
            let path = match text.split_once('/') {
                Some((first, rest)) if first.contains(['.', ':']) || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) => rest,
                _ => text.as_str(),
            };
            prop_assert!(!path.bytes().any(|b| b.is_ascii_uppercase()), "{}", text);
        }
        if validate_tag(&text).is_ok() {
            prop_assert!(!text.is_empty() && text.len() <= 128);
            prop_assert!(!text.starts_with(['.', '-']));
        }
        let (repo, tag) = parse_reference(&text);
        match tag {
            Some(tag) => prop_assert_eq!(format!("{repo}:{tag}"), text),
            None => prop_assert_eq!(repo, text),
        }
    }
}
