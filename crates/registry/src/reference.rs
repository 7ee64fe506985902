//! Image references by Docker's grammar (distribution/reference):
//! `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`.
//!
//! The first component is a host when it contains `.` or `:`, is `localhost`, or has an upper
//! case letter; otherwise the whole name is a path on the default registry, and a one-component
//! path there means `library/NAME`, as on Docker Hub. dock has no built-in default registry: a
//! name without a host needs `default-registry` in the configuration.

use std::fmt;

use crate::error::{Error, Result};

/// The key Docker stores Docker Hub credentials under.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";
const DOCKER_HUB_NAMES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
const NAME_TOTAL_MAX: usize = 255;

/// A fully qualified reference: registry host, repository path, and a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]` as written (`docker.io` for Docker Hub).
    pub registry: String,
    /// Lowercase path components joined by `/` (`library/busybox`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

/// A parsed name before a default registry is applied: `registry` is `None` when the name has
/// no host part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName {
    pub registry: Option<String>,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ParsedName {
    pub fn parse(input: &str) -> Result<ParsedName> {
        let invalid = |reason: &str| Error::InvalidReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(invalid("empty name"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest).map_err(|reason| invalid(&reason))?;
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                validate_tag(tag).map_err(|reason| invalid(&reason))?;
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.len() > NAME_TOTAL_MAX {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                validate_host(first).map_err(|reason| invalid(&reason))?;
                (Some(first.to_string()), path)
            }
            _ => (None, name),
        };
        validate_path(path).map_err(|reason| invalid(&reason))?;
        Ok(ParsedName {
            registry,
            path: path.to_string(),
            tag,
            digest,
        })
    }

    /// Applies `default_registry` to a name without a host. `config` names the configuration
    /// file in the error.
    pub fn qualify(self, default_registry: Option<&str>, config: &str) -> Result<Reference> {
        let unqualified = self.registry.is_none();
        let registry = match (self.registry, default_registry) {
            (Some(r), _) => r,
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                let mut name = self.path.clone();
                if let Some(tag) = &self.tag {
                    name = format!("{name}:{tag}");
                }
                return Err(Error::NoDefaultRegistry {
                    name,
                    config: config.to_string(),
                });
            }
        };
        // An unqualified `busybox` is `library/busybox` on the default registry, as on Docker
        // Hub (where `docker.io/busybox` is too); a name with another host is used as written.
        let repository = if !self.path.contains('/') && (unqualified || is_docker_hub(&registry)) {
            format!("library/{}", self.path)
        } else {
            self.path
        };
        Ok(Reference {
            registry,
            repository,
            tag: self.tag,
            digest: self.digest,
        })
    }
}

impl Reference {
    /// Parses a name that must carry its registry (`localhost:5000/app:1`); an unqualified
    /// name is [`Error::NoDefaultRegistry`]. [`crate::RegistryConfig::reference`] applies the
    /// configured default.
    pub fn parse(input: &str) -> Result<Reference> {
        ParsedName::parse(input)?.qualify(None, "the dock root's config.json")
    }

    /// The tag, or `latest` when neither tag nor digest was given.
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// What `/v2/NAME/manifests/<this>` is fetched by: the digest when there is one, else the
    /// tag (default `latest`).
    pub fn manifest_ref(&self) -> &str {
        match &self.digest {
            Some(d) => d,
            None => self.tag_or_latest().unwrap_or("latest"),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at another tag or digest.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            tag: None,
            ..self.clone()
        }
    }

    /// The host requests go to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The key of this registry in the credentials file.
    pub fn auth_key(&self) -> String {
        auth_key(&self.registry)
    }
}

impl fmt::Display for Reference {
    /// `registry/repository[:tag][@digest]`; `:latest` is written only when given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

pub fn is_docker_hub(registry: &str) -> bool {
    DOCKER_HUB_NAMES.contains(&registry)
}

/// The host requests for `registry` go to.
pub fn api_host(registry: &str) -> &str {
    if is_docker_hub(registry) {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// Docker's credentials key for a registry: `https://index.docker.io/v1/` for Docker Hub,
/// `host[:port]` otherwise (a scheme and path given by the user are dropped).
pub fn auth_key(server: &str) -> String {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    if is_docker_hub(host) {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        host.to_string()
    }
}

/// `sha256:` and 64 lowercase hex digits (the only algorithm dock verifies).
pub fn validate_digest(digest: &str) -> std::result::Result<(), String> {
    let Some((algo, hex)) = digest.split_once(':') else {
        return Err(format!("digest {digest:?} has no algorithm"));
    };
    if algo != "sha256" {
        return Err(format!("unsupported digest algorithm {algo:?}"));
    }
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("invalid sha256 digest {digest:?}"));
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && !tag.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag {tag:?}"))
    }
}

/// Path components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`.
pub fn validate_path(path: &str) -> std::result::Result<(), String> {
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository name must be lowercase".to_string());
    }
    for component in path.split('/') {
        if !valid_component(component) {
            return Err(format!("invalid path component {component:?}"));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or a run of '-', between alphanumerics.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// `domain-component(.domain-component)*[:port]` or `[ipv6][:port]`.
pub fn validate_host(host: &str) -> std::result::Result<(), String> {
    let bad = || Err(format!("invalid registry host {host:?}"));
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return bad();
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad();
        }
        match after {
            "" => return Ok(()),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return bad(),
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err()
        {
            return bad();
        }
    }
    if let Some(name) = name {
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !name.split('.').all(component_ok) {
            return bad();
        }
    }
    Ok(())
}

/// `docker.io/library/busybox:1` -> `busybox:1`, `docker.io/me/x` -> `me/x`, as Docker shows
/// names; others unchanged.
pub fn familiar(name: &str) -> &str {
    for prefix in [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return rest;
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(s: &str) -> ParsedName {
        ParsedName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn host_rules() {
        assert_eq!(parse("busybox").registry, None);
        assert_eq!(parse("user/app").registry, None);
        assert_eq!(
            parse("localhost/app").registry.as_deref(),
            Some("localhost")
        );
        assert_eq!(
            parse("localhost:5000/a/b").registry.as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(
            parse("reg.example/app").registry.as_deref(),
            Some("reg.example")
        );
        assert_eq!(parse("Reg/app").registry.as_deref(), Some("Reg"));
        assert_eq!(
            parse("127.0.0.1:5000/app").registry.as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(
            parse("[::1]:5000/app").registry.as_deref(),
            Some("[::1]:5000")
        );
        let p = parse("localhost:5000/team/app:1.0");
        assert_eq!(
            (p.path.as_str(), p.tag.as_deref()),
            ("team/app", Some("1.0"))
        );
    }

    #[test]
    fn tags_and_digests() {
        let p = parse("busybox:1.36");
        assert_eq!(
            (p.path.as_str(), p.tag.as_deref(), p.digest),
            ("busybox", Some("1.36"), None)
        );
        let p = parse(&format!("localhost:5000/app@{D}"));
        assert_eq!(p.digest.as_deref(), Some(D));
        assert_eq!(p.tag, None);
        let p = parse(&format!("localhost:5000/app:v1@{D}"));
        assert_eq!(
            (p.tag.as_deref(), p.digest.as_deref()),
            (Some("v1"), Some(D))
        );
    }

    #[test]
    fn invalid_names() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "app:",
            "app:-x",
            "app:a/b",
            "app@sha256:abc",
            "app@md5:0123456789abcdef0123456789abcdef",
            "localhost:x/app",
            "local_host.x/app",
            "localhost:5000/App",
        ] {
            let err = ParsedName::parse(bad).err();
            assert!(
                matches!(err, Some(Error::InvalidReference { .. })),
                "{bad:?}: {err:?}"
            );
        }
        let long = "a".repeat(256);
        assert!(ParsedName::parse(&long).is_err());
        assert!(ParsedName::parse(&format!("app:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn separators_in_components() {
        for good in ["a.b", "a_b", "a__b", "a-b", "a---b", "a0.b1_c2__d3-e4"] {
            assert!(valid_component(good), "{good}");
        }
    }

    #[test]
    fn qualify_applies_default_and_library() {
        let r = parse("busybox")
            .qualify(Some("localhost:5000"), "cfg")
            .unwrap();
        assert_eq!(r.to_string(), "localhost:5000/library/busybox");
        assert_eq!(r.manifest_ref(), "latest");
        let r = parse("team/app:2")
            .qualify(Some("localhost:5000"), "cfg")
            .unwrap();
        assert_eq!(r.to_string(), "localhost:5000/team/app:2");
        // A name with a host is used as written: no library/ outside the default and the Hub.
        let r = parse("localhost:5001/busybox")
            .qualify(Some("localhost:5000"), "cfg")
            .unwrap();
        assert_eq!(r.to_string(), "localhost:5001/busybox");
        let r = parse("localhost:5000/busybox")
            .qualify(Some("localhost:5000"), "cfg")
            .unwrap();
        assert_eq!(r.to_string(), "localhost:5000/busybox");
        let r = parse("docker.io/busybox").qualify(None, "cfg").unwrap();
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.auth_key(), DOCKER_HUB_AUTH_KEY);
    }

    #[test]
    fn unqualified_without_default_is_an_error_naming_the_fix() {
        let err = Reference::parse("busybox:1").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::NoDefaultRegistry { .. }), "{err:?}");
        assert!(msg.contains("\"busybox:1\""), "{msg}");
        assert!(msg.contains("default-registry"), "{msg}");
        assert!(msg.contains("localhost:5000/busybox:1"), "{msg}");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "localhost:5000/a/b:1",
            "localhost:5000/a",
            &format!("r.example/x@{D}"),
        ] {
            assert_eq!(Reference::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn auth_keys() {
        assert_eq!(auth_key("localhost:5000"), "localhost:5000");
        assert_eq!(auth_key("https://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(auth_key("index.docker.io"), DOCKER_HUB_AUTH_KEY);
    }
}
