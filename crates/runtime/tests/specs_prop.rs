//! Property tests of what `run` parses from the command line and the API: `-p` port specs
//! (netmgr's `PortSpec`, the exposed-port keys derived from them, `--expose`) and `-m`
//! memory sizes (Docker's `RAMInBytes`).
//!
//! The seed is fixed so CI always runs the same cases; `PROPTEST_RNG_SEED` and
//! `PROPTEST_CASES` explore more.

use netmgr::{PortSpec, Proto};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use runtime::imageconfig::{normalize_port, parse_expose, spec_ports};
use runtime::parse_memory;

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

fn port_spec() -> impl Strategy<Value = PortSpec> {
    (
        proptest::option::of(any::<[u8; 4]>()),
        proptest::option::of(1u16..),
        1u16..,
        prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)],
    )
        .prop_map(|(ip, host_port, container_port, proto)| PortSpec {
            host_ip: ip.map(std::net::Ipv4Addr::from),
            host_port,
            container_port,
            proto,
        })
}

/// Text near the `-p` grammar.
fn near_spec() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => "[0-9]{1,6}",
            1 => prop::sample::select(vec![
                ":", "/", "/tcp", "/udp", "/sctp", "/TCP", ".", "-", "+", " ", "::",
                "127.0.0.1", "0.0.0.0", "[::1]", "\u{661}",
            ]).prop_map(String::from),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

fn unit() -> impl Strategy<Value = (&'static str, i64)> {
    prop::sample::select(vec![
        ("", 1),
        ("b", 1),
        ("B", 1),
        ("k", 1 << 10),
        ("K", 1 << 10),
        ("kb", 1 << 10),
        ("KiB", 1 << 10),
        ("m", 1 << 20),
        ("mb", 1 << 20),
        ("MiB", 1 << 20),
        ("g", 1 << 30),
        ("G", 1 << 30),
        ("gib", 1 << 30),
        ("t", 1 << 40),
        ("p", 1 << 50),
    ])
}

proptest! {
    #![proptest_config(config(256))]

    /// A spec prints as the user would write it and reads back as itself.
    #[test]
    fn port_specs_round_trip(spec in port_spec()) {
        let text = spec.to_string();
        prop_assert_eq!(text.parse::<PortSpec>().ok(), Some(spec), "{}", text);
    }

    /// Any text: refused or read, never a panic; what is read prints back to what it read,
    /// and its exposed-port key is the canonical one `--expose` gives.
    #[test]
    fn any_port_text_is_read_consistently(text in prop_oneof![near_spec(), "\\PC{0,24}"]) {
        if let Ok(spec) = text.parse::<PortSpec>() {
            prop_assert!(spec.container_port != 0);
            prop_assert!(spec.host_port != Some(0));
            prop_assert_eq!(spec.to_string().parse::<PortSpec>().ok(), Some(spec));
            let key = spec_ports(std::slice::from_ref(&text));
            prop_assert_eq!(&key, &vec![format!("{}/{}", spec.container_port, spec.proto)]);
            prop_assert_eq!(normalize_port(&key[0]).ok(), Some(key[0].clone()));
        }
    }

    /// `--expose` keys are canonical (`80/tcp`, never `080/tcp` or `+80/tcp`): each is its own
    /// normal form and names the port it was given.
    #[test]
    fn exposed_ports_are_canonical(text in prop_oneof![near_spec(), "\\PC{0,12}"]) {
        if let Ok(key) = normalize_port(&text) {
            prop_assert_eq!(normalize_port(&key).ok(), Some(key.clone()));
            let (number, proto) = key.split_once('/').unwrap();
            let n: u16 = number.parse().unwrap();
            prop_assert_eq!(n.to_string(), number);
            prop_assert!(matches!(proto, "tcp" | "udp" | "sctp"));
        }
        if let Ok(keys) = parse_expose(&text) {
            prop_assert!(!keys.is_empty());
            for key in &keys {
                prop_assert_eq!(normalize_port(key).ok(), Some(key.clone()));
            }
        }
    }

    #[test]
    fn memory_sizes_read_as_docker_reads_them(
        n in 0i64..1 << 20,
        (unit, mult) in unit(),
        space in any::<bool>(),
    ) {
        let text = format!("{n}{}{unit}", if space && !unit.is_empty() { " " } else { "" });
        prop_assert_eq!(parse_memory(&text), n.checked_mul(mult), "{}", text);
    }

    #[test]
    fn fractional_memory_sizes_are_cut_to_bytes(
        whole in 0i64..4096,
        fraction in 0u32..1000,
        (unit, mult) in unit(),
    ) {
        let text = format!("{whole}.{fraction:03}{unit}");
        let expected = ((whole as f64 + fraction as f64 / 1000.0) * mult as f64) as i64;
        prop_assert_eq!(parse_memory(&text), Some(expected), "{}", text);
    }

    #[test]
    fn any_memory_text_is_refused_or_a_size(text in prop_oneof![
        "\\PC{0,16}",
        "[0-9. ]{0,24}[kKmMgGtTpPiIbB ]{0,3}",
    ]) {
        if let Some(bytes) = parse_memory(&text) {
            prop_assert!(bytes >= 0, "{} -> {}", text, bytes);
        }
    }
}

/// Regressions the properties found: `--expose 080` was key `080/tcp` (so `-P` published it
/// beside `-p 80`), `--expose +80` was accepted; Docker's `1.5g`, `1 GiB`, `2t` were refused.
#[test]
fn spec_regressions() {
    assert_eq!(normalize_port("080").unwrap(), "80/tcp");
    assert!(normalize_port("+80").is_err());
    assert!(parse_expose("+1-3").is_err());
    assert_eq!(parse_expose("08-09/udp").unwrap(), ["8/udp", "9/udp"]);
    assert_eq!(parse_memory("1.5g"), Some(3 << 29));
    assert_eq!(parse_memory("1 GiB"), Some(1 << 30));
    assert_eq!(parse_memory("2t"), Some(2 << 40));
    assert_eq!(parse_memory("6m"), Some(6 << 20));
    for bad in [
        "",
        "m",
        "-1",
        "1..5g",
        ".5g",
        "5.g",
        "1x",
        "1  m",
        "99999999999999999999",
    ] {
        assert_eq!(parse_memory(bad), None, "{bad}");
    }
    assert_eq!(parse_memory("9999999999p"), None, "overflow");
}
