//! Property tests of image names: Docker's reference grammar (distribution/reference) as
//! `ParsedName` reads it, and the tag store's rules agreeing with it, so a name a pull
//! accepts can always be tagged (and is not refused after the download).
//!
//! The seed is fixed so CI always runs the same cases; `PROPTEST_RNG_SEED` and
//! `PROPTEST_CASES` explore more.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use registry::reference::ParsedName;
use registry::store::local_repository;

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

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn path_component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,4}((\\.|_|__|-{1,3})[a-z0-9]{1,4}){0,2}"
}

fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec(path_component(), 1..4).prop_map(|c| c.join("/"))
}

/// Hosts Docker's grammar takes as a registry: with a `.` or a port, `localhost`, a
/// capitalised name, an IPv6 address in brackets.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("localhost".to_string()),
        "localhost:[1-9][0-9]{0,3}",
        "[a-zA-Z0-9]{1,5}(-[a-zA-Z0-9]{1,3})?(\\.[a-zA-Z0-9]{1,5}){1,2}(:[1-9][0-9]{0,3})?",
        "[a-z0-9]{1,6}:[1-9][0-9]{0,3}",
        "[A-Z][a-zA-Z0-9]{0,5}",
        "\\[(::1|fe80::1|2001:db8::2)\\](:[1-9][0-9]{0,3})?",
    ]
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
}

fn digest() -> impl Strategy<Value = String> {
    "sha256:[0-9a-f]{64}"
}

/// Text near the grammar: its pieces and the characters around them.
fn near_name() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => "[a-zA-Z0-9]{1,4}",
            1 => prop::sample::select(vec![
                "/", ":", "@", ".", "_", "__", "-", "[", "]", "::", "sha256:", "localhost", "//",
                "\u{e9}", " ", "..", "A",
            ]).prop_map(String::from),
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,40}") {
        let _ = ParsedName::parse(&text);
        let _ = tagstore::validate_repository(&text);
        let _ = tagstore::validate_tag(&text);
        let _ = tagstore::parse_reference(&text);
    }

    #[test]
    fn names_of_the_grammar_parse_to_their_parts(
        host in proptest::option::of(host()),
        path in path(),
        tag in proptest::option::of(tag()),
        digest in proptest::option::of(digest()),
    ) {
        let mut name = match &host {
            Some(host) => format!("{host}/{path}"),
            None => path.clone(),
        };
        prop_assume!(name.len() <= 255);
        // Without a host, a first component with a `.` would be one (Docker's rule).
        prop_assume!(host.is_some() || !path.split('/').next().unwrap_or("").contains('.') || !path.contains('/'));
        if let Some(tag) = &tag {
            name = format!("{name}:{tag}");
        }
        if let Some(digest) = &digest {
            name = format!("{name}@{digest}");
        }
        let parsed = ParsedName::parse(&name).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        prop_assert_eq!(parsed.registry.as_deref(), host.as_deref());
        prop_assert_eq!(&parsed.path, &path);
        prop_assert_eq!(&parsed.tag, &tag);
        prop_assert_eq!(&parsed.digest, &digest);
        // Qualified, it prints as it was written (a one-component path on a host is kept).
        if let Some(host) = &host {
            let reference = parsed.qualify(None, "config.json").unwrap();
            prop_assert_eq!(reference.registry.as_str(), host.as_str());
            let again = registry::reference::Reference::parse(&reference.to_string()).unwrap();
            prop_assert_eq!(again, reference);
        }
    }

    /// What a pull accepts, the tag store records: the repository it is tagged under and its
    /// tag pass the tag store's checks, and the tag store splits the name the same way.
    #[test]
    fn the_tag_store_takes_every_name_a_pull_takes(
        text in prop_oneof![
            near_name(),
            (proptest::option::of(host()), path(), proptest::option::of(tag())).prop_map(
                |(host, path, tag)| {
                    let name = match host { Some(h) => format!("{h}/{path}"), None => path };
                    match tag { Some(t) => format!("{name}:{t}"), None => name }
                }
            ),
        ]
    ) {
        prop_assume!(!text.contains('@'));
        let Ok(parsed) = ParsedName::parse(&text) else { return Ok(()) };
        let repository = local_repository(&text).unwrap();
        prop_assert!(
            tagstore::validate_repository(&repository).is_ok(),
            "{:?} parses as a reference but the tag store refuses {:?}: {}",
            text, repository, tagstore::validate_repository(&repository).unwrap_err()
        );
        if let Some(tag) = &parsed.tag {
            prop_assert!(tagstore::validate_tag(tag).is_ok(), "tag {:?} of {:?}", tag, text);
        }
        prop_assert_eq!(tagstore::parse_reference(&text), (repository, parsed.tag.clone()));
    }
}

/// Regression: a registry host with capitals (Docker's grammar allows them) or an IPv6
/// address parsed as a reference, but the tag store refused the name after the download.
#[test]
fn capitalised_and_ipv6_hosts_can_be_tagged() {
    for name in [
        "MyRegistry:5000/app",
        "Reg/app",
        "Registry.Example.com/team/app",
        "[::1]:5000/app",
        "[fe80::1]/app",
    ] {
        assert!(ParsedName::parse(name).is_ok(), "{name}");
        let repository = local_repository(name).unwrap();
        tagstore::validate_repository(&repository).unwrap();
    }
    // Still refused: what the grammar refuses.
    for name in ["reg/App", "[::1/app", "-reg.io/app", "reg.io:/app", "UPPER"] {
        assert!(tagstore::validate_repository(name).is_err(), "{name}");
    }
}
