//! `os/architecture[/variant]` and the choice of a manifest from an index.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The machine dock runs on, in Go's GOOS/GOARCH names (Docker's default).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Whether an index entry for `os`/`architecture`/`variant` serves this platform. A wanted
    /// variant must match when the entry names one; arm64 without variant is arm64/v8.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != architecture {
            return false;
        }
        let norm = |v: Option<&str>| match (architecture, v) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        match (&self.variant, variant) {
            (None, _) => true,
            (Some(_), None) if architecture != "arm64" => true,
            (Some(want), got) => norm(Some(want)) == norm(got),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    /// `os/arch[/variant]`, as `--platform` takes it.
    fn from_str(s: &str) -> Result<Platform, Error> {
        let invalid = |reason: &str| Error::InvalidPlatform {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(invalid("expected os/architecture[/variant]"));
        }
        Ok(Platform {
            os: parts[0].to_lowercase(),
            architecture: parts[1].to_lowercase(),
            variant: parts.get(2).map(|v| v.to_lowercase()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!("linux/amd64".parse::<Platform>().unwrap().variant, None);
        for bad in ["linux", "linux/", "a/b/c/d", "linux/amd 64"] {
            assert!(
                matches!(bad.parse::<Platform>(), Err(Error::InvalidPlatform { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn matching() {
        let amd64: Platform = "linux/amd64".parse().unwrap();
        assert!(amd64.matches("linux", "amd64", None));
        assert!(amd64.matches("linux", "amd64", Some("v3")));
        assert!(!amd64.matches("linux", "arm64", None));
        assert!(!amd64.matches("windows", "amd64", None));
        let arm64: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(arm64.matches("linux", "arm64", None));
        assert!(arm64.matches("linux", "arm64", Some("v8")));
        let v7: Platform = "linux/arm/v7".parse().unwrap();
        assert!(v7.matches("linux", "arm", Some("v7")));
        assert!(!v7.matches("linux", "arm", Some("v6")));
        assert_eq!(Platform::host().os, "linux");
    }
}
