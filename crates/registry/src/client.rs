//! The HTTP side: one `ureq` agent per registry host (its TLS roots are the system's plus
//! `certs.d/HOST/ca.crt`), the scheme of each host found by a `GET /v2/` ping, and auth.
//!
//! Scheme: HTTPS, verified. A registry allowed plain HTTP (listed insecure, or on loopback) is
//! tried over HTTPS first and over plain HTTP when that fails. dock never speaks TLS without
//! verification: a registry with a self-signed certificate needs its CA in `certs.d`.
//!
//! Auth: a 401 names the scheme. Basic: the stored login for the host is sent from then on.
//! Bearer: a token is fetched from the challenge's realm for the scopes the request needs (with
//! the login as Basic credentials and `account=USER` when there is one, anonymously otherwise),
//! cached per host and scope for the client's life (or its `expires_in`, at least 60 s), and
//! fetched up front for later requests to the same host.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ureq::http::{self, Method, Response};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Body};

use crate::config::RegistryConfig;
use crate::credentials::{Credentials, Login};
use crate::error::{Error, Result};
use crate::reference::{api_host, Reference};

/// Where the system's CA bundle is on Debian and most distributions (`SSL_CERT_FILE` first).
const SYSTEM_CA_FILES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];
const STALL_TIMEOUT: Duration = Duration::from_secs(300);
const MIN_TOKEN_LIFE: Duration = Duration::from_secs(60);
/// Bodies read whole (errors, tokens, tag lists) are cut here.
const SMALL_BODY_MAX: u64 = 4 << 20;

/// A registry client for one command's life: it caches schemes, agents and tokens.
pub struct Client {
    pub(crate) config: RegistryConfig,
    credentials: Option<Credentials>,
    user_agent: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    agents: HashMap<String, Agent>,
    bases: HashMap<String, String>,
    auth: HashMap<String, HostAuth>,
    tokens: HashMap<(String, String), (String, Instant)>,
    logins: HashMap<String, Login>,
    /// registry -> the mirror base URL that served its last manifest by tag
    routes: HashMap<String, String>,
}

#[derive(Clone)]
enum HostAuth {
    Basic(String),
    Bearer(Challenge),
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// The body of a request.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
}

impl Client {
    /// A client over `config`; `credentials` is the Docker client's file (none: anonymous).
    pub fn new(config: RegistryConfig, credentials: Option<Credentials>) -> Client {
        Client {
            config,
            credentials,
            user_agent: format!("dock/{}", env!("CARGO_PKG_VERSION")),
            state: Mutex::new(State::default()),
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Checks `login` against `server` (`GET /v2/` with it, through a token when the registry
    /// asks for one) and keeps it for this client's later requests. The caller stores it in
    /// the credentials file (what `dock login` does).
    pub fn login(&self, server: &str, login: Login) -> Result<()> {
        let name = server
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let name = name.split('/').next().unwrap_or(name);
        let host = api_host(name).to_string();
        self.state().logins.insert(host.clone(), login);
        let result = self.check_login(&host);
        if result.is_err() {
            // A refused login is not used for anything else.
            let mut state = self.state();
            state.logins.remove(&host);
            state.auth.remove(&host);
            state.tokens.retain(|(h, _), _| *h != host);
        }
        result
    }

    /// Uses `login` for `server` from now on without checking it first (the API server's
    /// `X-Registry-Auth`: the client checked it when it logged in).
    pub fn use_login(&self, server: &str, login: Login) {
        let name = server
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let name = name.split('/').next().unwrap_or(name);
        self.state()
            .logins
            .insert(api_host(name).to_string(), login);
    }

    fn check_login(&self, host: &str) -> Result<()> {
        let base = self.base(host)?;
        let url = format!("{base}/v2/");
        let resp = self.request(host, Method::GET, &url, &[], &[], Payload::Empty)?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            401 | 403 => Err(Error::Unauthorized {
                host: login_name(host),
                detail: " (incorrect username or password)".to_string(),
            }),
            status => Err(Error::Registry {
                method: "GET".into(),
                url,
                status,
                detail: String::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `scheme://host` of a registry, found once per client.
    pub(crate) fn base(&self, host: &str) -> Result<String> {
        if let Some(b) = self.state().bases.get(host) {
            return Ok(b.clone());
        }
        let agent = self.agent(host)?;
        let ping = |scheme: &str| {
            let url = format!("{scheme}://{host}/v2/");
            tracing::debug!(%url, "registry ping");
            agent.get(&url).call().map(|r| r.status().as_u16())
        };
        let unreachable = |e: ureq::Error| Error::Unreachable {
            host: host.to_string(),
            source: Box::new(e),
        };
        let base = match ping("https") {
            Ok(_) => format!("https://{host}"),
            Err(tls_err) if self.config.is_insecure(host) => match ping("http") {
                // A registry answers /v2/ with 200 or 401; anything else (a TLS server's 400
                // to plain HTTP) means HTTPS was right and its error is the one to report.
                Ok(200 | 401) => format!("http://{host}"),
                Ok(_) => return Err(unreachable(tls_err)),
                Err(e) => {
                    tracing::debug!(host, https = %tls_err, http = %e, "registry not reachable");
                    return Err(unreachable(e));
                }
            },
            Err(e) => return Err(unreachable(e)),
        };
        self.state().bases.insert(host.to_string(), base.clone());
        Ok(base)
    }

    /// The agent for `host`: system roots plus `certs.d/HOST/ca.crt`.
    pub(crate) fn agent(&self, host: &str) -> Result<Agent> {
        if let Some(a) = self.state().agents.get(host) {
            return Ok(a.clone());
        }
        let mut roots = system_roots();
        if let Some(ca) = self.config.ca_file(host) {
            let pem =
                std::fs::read(&ca).map_err(|e| Error::io(format!("read {}", ca.display()), e))?;
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(PemItem::Certificate(c)) => roots.push(c),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Error::InvalidConfig {
                            path: ca,
                            reason: e.to_string(),
                        })
                    }
                }
            }
        }
        let roots = if roots.is_empty() {
            RootCerts::WebPki
        } else {
            RootCerts::Specific(Arc::new(roots))
        };
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .timeout_connect(Some(Duration::from_secs(30)))
            // A stalled connection fails instead of hanging; large blobs are not limited.
            .timeout_per_read(Some(STALL_TIMEOUT))
            .timeout_per_write(Some(STALL_TIMEOUT))
            .user_agent(self.user_agent.as_str())
            // Blobs are taken as stored: no transparent decompression.
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .build()
            .into();
        self.state().agents.insert(host.to_string(), agent.clone());
        Ok(agent)
    }

    pub(crate) fn route(&self, registry: &str) -> Option<String> {
        self.state().routes.get(registry).cloned()
    }

    pub(crate) fn set_route(&self, registry: &str, mirror: Option<&str>) {
        let mut state = self.state();
        match mirror {
            Some(m) => state.routes.insert(registry.to_string(), m.to_string()),
            None => state.routes.remove(registry),
        };
    }

    fn login_for(&self, host: &str) -> Result<Option<Login>> {
        if let Some(l) = self.state().logins.get(host) {
            return Ok(Some(l.clone()));
        }
        match &self.credentials {
            Some(c) => c.get(host),
            None => Ok(None),
        }
    }

    /// The `Authorization` value to send to `host` for `scopes` without waiting for a 401.
    pub(crate) fn auth_header(&self, host: &str, scopes: &[String]) -> Result<Option<String>> {
        let auth = self.state().auth.get(host).cloned();
        match auth {
            None => Ok(None),
            Some(HostAuth::Basic(h)) => Ok(Some(h)),
            Some(HostAuth::Bearer(challenge)) => {
                let key = (host.to_string(), scopes.join(" "));
                if let Some((token, expires)) = self.state().tokens.get(&key) {
                    if Instant::now() < *expires {
                        return Ok(Some(format!("Bearer {token}")));
                    }
                }
                let token = self.fetch_token(host, &challenge, scopes)?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Takes up a 401's challenge for the next attempt.
    fn authenticate(&self, host: &str, challenge: Challenge, scopes: &[String]) -> Result<()> {
        match challenge.scheme.as_str() {
            "basic" => {
                let Some(login) = self.login_for(host)? else {
                    return Err(Error::Unauthorized {
                        host: login_name(host),
                        detail: String::new(),
                    });
                };
                let header = basic_header(&login);
                self.state()
                    .auth
                    .insert(host.to_string(), HostAuth::Basic(header));
                Ok(())
            }
            "bearer" => {
                self.fetch_token(host, &challenge, scopes)?;
                self.state()
                    .auth
                    .insert(host.to_string(), HostAuth::Bearer(challenge));
                Ok(())
            }
            other => Err(Error::Unauthorized {
                host: login_name(host),
                detail: format!(" (unsupported auth scheme {other:?})"),
            }),
        }
    }

    /// `GET REALM?service=S&scope=A&scope=B[&account=USER]`; caches the token.
    fn fetch_token(&self, host: &str, challenge: &Challenge, scopes: &[String]) -> Result<String> {
        let Some(realm) = challenge.params.get("realm") else {
            return Err(Error::Token {
                realm: String::new(),
                reason: format!("the Bearer challenge of {host} names no realm"),
            });
        };
        let mut all: Vec<String> = scopes.to_vec();
        if let Some(s) = challenge.params.get("scope") {
            for s in s.split(' ') {
                if !s.is_empty() && !all.iter().any(|x| x == s) {
                    all.push(s.to_string());
                }
            }
        }
        let mut query = Vec::new();
        if let Some(service) = challenge.params.get("service") {
            query.push(format!("service={}", encode(service)));
        }
        for s in &all {
            query.push(format!("scope={}", encode(s)));
        }
        let login = self.login_for(host)?;
        if let Some(l) = &login {
            query.push(format!("account={}", encode(&l.username)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            realm.clone()
        } else {
            format!("{realm}{sep}{}", query.join("&"))
        };
        let realm_host = url_host(realm).unwrap_or(host).to_string();
        let agent = self.agent(&realm_host)?;
        let mut req = agent.get(&url);
        if let Some(l) = &login {
            req = req.header("authorization", basic_header(l));
        }
        tracing::debug!(%realm, scopes = ?all, "registry token");
        let resp = req.call().map_err(|e| Error::Unreachable {
            host: realm_host.clone(),
            source: Box::new(e),
        })?;
        let status = resp.status().as_u16();
        let body =
            read_small(resp.into_body()).map_err(|e| Error::io(format!("read {realm}"), e))?;
        match status {
            200..=299 => {}
            401 | 403 => {
                return Err(Error::Unauthorized {
                    host: login_name(host),
                    detail: format!(" (token server {realm} refused: {})", error_detail(&body)),
                })
            }
            _ => {
                return Err(Error::Token {
                    realm: realm.clone(),
                    reason: format!("status {status}{}", error_detail_suffix(&body)),
                })
            }
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| Error::Json {
            context: format!("token from {realm}"),
            source: e,
        })?;
        let Some(token) = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
        else {
            return Err(Error::Token {
                realm: realm.clone(),
                reason: "answer has neither token nor access_token".to_string(),
            });
        };
        let life = Duration::from_secs(answer.expires_in.unwrap_or(60)).max(MIN_TOKEN_LIFE);
        self.state().tokens.insert(
            (host.to_string(), scopes.join(" ")),
            (token.clone(), Instant::now() + life),
        );
        Ok(token)
    }

    /// One request with auth: up-front credentials when known, else answer a 401 once.
    /// A second 401 is returned to the caller (and becomes [`Error::Unauthorized`]).
    pub(crate) fn request(
        &self,
        host: &str,
        method: Method,
        url: &str,
        scopes: &[String],
        headers: &[(&str, &str)],
        payload: Payload<'_>,
    ) -> Result<Response<Body>> {
        let agent = self.agent(host)?;
        for attempt in 0..2 {
            let auth = self.auth_header(host, scopes)?;
            let mut b = http::Request::builder().method(method.clone()).uri(url);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            if let Some(a) = &auth {
                b = b.header("authorization", a.as_str());
            }
            tracing::debug!(%method, url, "registry request");
            let result = match &payload {
                Payload::Empty => b.body(()).map(|r| agent.run(r)),
                Payload::Bytes(bytes) => b.body(*bytes).map(|r| agent.run(r)),
            };
            let resp = result
                .map_err(|e| http_err(url, ureq::Error::Http(e)))?
                .map_err(|e| http_err(url, e))?;
            if resp.status() == 401 && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                let Some(challenge) = challenge else {
                    return Ok(resp);
                };
                // Credentials already sent were refused: a new token may help, Basic not.
                if challenge.scheme == "basic" && auth.is_some() {
                    return Ok(resp);
                }
                self.authenticate(host, challenge, scopes)?;
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second attempt")
    }
}

pub(crate) fn http_err(url: &str, e: ureq::Error) -> Error {
    Error::Http {
        url: url.to_string(),
        source: Box::new(e),
    }
}

/// What to name to `dock login` for an API host: `docker.io` for Docker Hub's.
fn login_name(host: &str) -> String {
    if crate::reference::is_docker_hub(host) {
        "docker.io".to_string()
    } else {
        host.to_string()
    }
}

fn basic_header(login: &Login) -> String {
    let raw = format!("{}:{}", login.username, login.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn system_roots() -> Vec<Certificate<'static>> {
    let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let files = env
        .into_iter()
        .chain(SYSTEM_CA_FILES.iter().map(std::path::PathBuf::from));
    for f in files {
        if let Ok(pem) = std::fs::read(&f) {
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if !certs.is_empty() {
                return certs;
            }
        }
    }
    Vec::new()
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `host[:port]` of an absolute URL.
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// Reads a body of at most [`SMALL_BODY_MAX`] bytes.
pub(crate) fn read_small(body: Body) -> io::Result<Vec<u8>> {
    read_capped(body, SMALL_BODY_MAX)
}

pub(crate) fn read_capped(body: Body, max: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    body.into_reader().take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("body larger than {max} bytes"),
        ));
    }
    Ok(out)
}

/// `CODE: message` of a registry error body (`{"errors": [{"code", "message"}]}`).
pub(crate) fn error_codes(body: &[u8]) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors.into_iter().map(|i| (i.code, i.message)).collect())
        .unwrap_or_default()
}

fn error_detail(body: &[u8]) -> String {
    let codes = error_codes(body);
    if codes.is_empty() {
        String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(200)
            .collect()
    } else {
        codes
            .iter()
            .map(|(c, m)| format!("{}: {}", c.to_lowercase().replace('_', " "), m))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

pub(crate) fn error_detail_suffix(body: &[u8]) -> String {
    let d = error_detail(body);
    if d.is_empty() {
        d
    } else {
        format!(": {d}")
    }
}

/// `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(' ') {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        params.insert(key, value);
    }
    Some(Challenge {
        scheme: scheme.to_lowercase(),
        params,
    })
}

/// Scopes for pulling from and pushing to a repository.
pub(crate) fn pull_scope(r: &Reference) -> Vec<String> {
    vec![format!("repository:{}:pull", r.repository)]
}

pub(crate) fn push_scope(r: &Reference) -> Vec<String> {
    vec![format!("repository:{}:pull,push", r.repository)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        let c = parse_challenge("Bearer realm=http://x/t, service=s").unwrap();
        assert_eq!(c.params["realm"], "http://x/t");
        assert_eq!(c.params["service"], "s");
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn helpers() {
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(url_host("http://127.0.0.1:5/token?x"), Some("127.0.0.1:5"));
        assert_eq!(url_host("/relative"), None);
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(
            error_codes(body),
            [(
                "MANIFEST_UNKNOWN".to_string(),
                "manifest unknown".to_string()
            )]
        );
        assert_eq!(error_detail(body), "manifest unknown: manifest unknown");
    }
}
