//! Basic auth (a real registry with htpasswd behind TLS with a test CA) and the Bearer token
//! flow (a fake front with a token endpoint, in front of a real registry).

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use registry::{Credentials, Error, Login, Platform, Reference};

fn login(user: &str, pass: &str) -> Login {
    Login {
        username: user.to_string(),
        password: pass.to_string(),
    }
}

fn htpasswd(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-Bbc", path.to_str().unwrap(), "alice", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils, scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn basic_auth_over_tls_with_a_test_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = Tls::generate(tmp.path());
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: Some(&tls),
        htpasswd: Some(htpasswd(tmp.path())),
    });
    push_fixture(&reg, "app", "1", &["--dest-creds", "alice:s3cret"]);
    let certs = tmp.path().join("certs.d");
    fs::create_dir_all(certs.join(reg.host())).unwrap();
    fs::copy(&tls.ca, certs.join(reg.host()).join("ca.crt")).unwrap();
    let r = Reference::parse(&format!("{}/app:1", reg.host())).unwrap();

    // Without the CA in certs.d the certificate is not trusted, and plain HTTP is no way out.
    let err = client(None, None)
        .resolve(&r, &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // Trusted but anonymous: unauthorized, and the message says how to log in.
    let err = client(Some(&certs), None)
        .resolve(&r, &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("dock login {}", reg.host())),
        "{err}"
    );

    // login checks the password; the caller stores what was accepted.
    let creds_file = tmp.path().join("docker/config.json");
    let c = client(Some(&certs), None);
    let err = c.login(&reg.host(), login("alice", "wrong")).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string().contains("incorrect username or password"),
        "{err}"
    );
    // The refused login is forgotten; the same client takes the right one.
    assert!(c.resolve(&r, &Platform::host()).is_err());
    c.login(&reg.host(), login("alice", "s3cret")).unwrap();
    c.resolve(&r, &Platform::host()).unwrap();
    Credentials::at(&creds_file)
        .store(&reg.host(), &login("alice", "s3cret"))
        .unwrap();

    // With the stored login: pull and push.
    let c = client(Some(&certs), Some(&creds_file));
    let got = c.resolve(&r, &Platform::host()).unwrap();
    let l = &got.layers[0];
    c.fetch_blob(&r, l.digest().as_ref(), Some(l.size()), &mut Vec::new())
        .unwrap();
    let pushed = Reference::parse(&format!("{}/mine:1", reg.host())).unwrap();
    let img = docker_image();
    let (_, digest) = push(&c, &pushed, &img, None).unwrap();
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        "--raw",
        &format!("docker://{pushed}"),
    ])
    .stdout;
    assert_eq!(raw, img.manifest);
    assert_eq!(digest, sha256(&img.manifest));

    // logout: the next client is anonymous again.
    assert!(Credentials::at(&creds_file).erase(&reg.host()).unwrap());
    let err = client(Some(&certs), Some(&creds_file))
        .resolve(&r, &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}

/// Tokens the fake token server issued: token -> may push.
type Tokens = Arc<Mutex<HashMap<String, bool>>>;

fn query(path: &str) -> Vec<(String, String)> {
    let q = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decoded = v
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2C", ",");
            (k.to_string(), decoded)
        })
        .collect()
}

/// A Bearer-protected front on a real registry: `/token` issues tokens (anonymous ones pull
/// only; `alice:s3cret` may push), `/v2/…` wants one, and relays to the registry.
fn bearer_front(upstream: u16, tokens: Tokens) -> FakeServer {
    FakeServer::start(move |req| {
        let host = req.header("host").unwrap_or("").to_string();
        if req.path.starts_with("/token") {
            let q = query(&req.path);
            let user = match req.header("authorization") {
                None => None,
                Some("Basic YWxpY2U6czNjcmV0") => Some("alice"),
                Some(_) => {
                    return Answer::new(401, &[], r#"{"details":"incorrect username or password"}"#)
                }
            };
            if user.is_some() && !q.contains(&("account".to_string(), "alice".to_string())) {
                return Answer::new(400, &[], "account missing");
            }
            let mut t = tokens.lock().unwrap();
            let token = format!("tok{}", t.len());
            t.insert(token.clone(), user.is_some());
            // Alternate the two field names registries use.
            let field = if t.len().is_multiple_of(2) {
                "token"
            } else {
                "access_token"
            };
            return Answer::new(
                200,
                &[("content-type", "application/json")],
                format!(r#"{{"{field}": "{token}", "expires_in": 300}}"#),
            );
        }
        let write = !matches!(req.method.as_str(), "GET" | "HEAD");
        let granted = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| tokens.lock().unwrap().get(t).copied());
        match granted {
            Some(may_push) if may_push || !write => Answer::Proxy(upstream),
            _ => {
                let repo = req
                    .path
                    .strip_prefix("/v2/")
                    .and_then(|p| {
                        p.split_once("/manifests/")
                            .or_else(|| p.split_once("/blobs/"))
                            .or_else(|| p.split_once("/tags/"))
                    })
                    .map(|(r, _)| r.to_string());
                let mut challenge = format!(r#"Bearer realm="http://{host}/token",service="fake""#);
                if let Some(repo) = repo {
                    let actions = if write { "pull,push" } else { "pull" };
                    challenge += &format!(r#",scope="repository:{repo}:{actions}""#);
                }
                Answer::new(
                    401,
                    &[("www-authenticate", &challenge)],
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                )
            }
        }
    })
}

#[test]
fn bearer_token_flow() {
    let reg = TestRegistry::start();
    let img = push_fixture(&reg, "team/app", "1", &[]).1;
    let tokens: Tokens = Arc::default();
    let front = bearer_front(reg.port, tokens.clone());
    let r = Reference::parse(&format!("{}/team/app:1", front.host())).unwrap();
    let token_requests = || {
        front
            .requests()
            .iter()
            .filter(|q| q.path.starts_with("/token"))
            .count()
    };

    // Anonymous pull: one token for the repository's pull scope, reused for every request.
    let anon = client(None, None);
    let got = anon.resolve(&r, &Platform::host()).unwrap();
    assert_eq!(got.config_bytes, img.config);
    for l in &got.layers {
        anon.fetch_blob(&r, l.digest().as_ref(), Some(l.size()), &mut Vec::new())
            .unwrap();
    }
    assert_eq!(token_requests(), 1);
    let token_req = front
        .requests()
        .into_iter()
        .find(|q| q.path.starts_with("/token"))
        .unwrap();
    let q = query(&token_req.path);
    assert!(q.contains(&("service".into(), "fake".into())), "{q:?}");
    assert!(
        q.contains(&("scope".into(), "repository:team/app:pull".into())),
        "{q:?}"
    );
    assert!(token_req.header("authorization").is_none());

    // Anonymous push: the token server gives a pull-only token; the registry refuses.
    let mine = Reference::parse(&format!("{}/team/mine:1", front.host())).unwrap();
    let err = push(&anon, &mine, &docker_image(), None).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("dock login {}", front.host())),
        "{err}"
    );

    // login: a wrong password is refused by the token server.
    let err = client(None, None)
        .login(&front.host(), login("alice", "nope"))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("config.json");
    client(None, None)
        .login(&front.host(), login("alice", "s3cret"))
        .unwrap();
    Credentials::at(&creds)
        .store(&front.host(), &login("alice", "s3cret"))
        .unwrap();

    // With the login: push, through a token asked for with the account and Basic credentials.
    let c = client(None, Some(&creds));
    let before = front.requests().len();
    let pushed = docker_image();
    let (_, digest) = push(&c, &mine, &pushed, None).unwrap();
    let reqs = front.requests()[before..].to_vec();
    let token_reqs: Vec<_> = reqs
        .iter()
        .filter(|q| q.path.starts_with("/token"))
        .collect();
    assert_eq!(token_reqs.len(), 1, "one token for the pull,push scope");
    assert!(query(&token_reqs[0].path)
        .contains(&("scope".into(), "repository:team/mine:pull,push".into())));
    // Uploads carry Content-Length, not chunked bodies.
    let puts: Vec<_> = reqs.iter().filter(|q| q.method == "PUT").collect();
    assert_eq!(puts.len(), 4, "three blobs and the manifest");
    for p in puts {
        assert!(p.header("content-length").is_some() && p.header("transfer-encoding").is_none());
    }
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/team/mine:1", reg.host()),
    ])
    .stdout;
    assert_eq!(raw, pushed.manifest);
    assert_eq!(digest, sha256(&pushed.manifest));
}

#[test]
fn blob_redirect_does_not_forward_the_token() {
    let blob = b"redirected blob".to_vec();
    let digest = sha256(&blob);
    let cdn_blob = blob.clone();
    let cdn = FakeServer::start(move |_| Answer::new(200, &[], cdn_blob.clone()));
    let cdn_url = format!("{}/storage/blob", cdn.url());
    let front = FakeServer::start(move |req| {
        let host = req.header("host").unwrap_or("").to_string();
        if req.path.starts_with("/token") {
            return Answer::new(200, &[], r#"{"token": "t1"}"#);
        }
        if req.header("authorization") != Some("Bearer t1") {
            let c = format!(r#"Bearer realm="http://{host}/token",service="fake""#);
            return Answer::new(401, &[("www-authenticate", &c)], "");
        }
        if req.path.contains("/blobs/") {
            return Answer::new(307, &[("location", &cdn_url)], "");
        }
        Answer::new(200, &[], "{}")
    });
    let r = Reference::parse(&format!("{}/app:1", front.host())).unwrap();
    let c = client(None, None);
    let mut out = Vec::new();
    c.fetch_blob(&r, &digest, Some(blob.len() as u64), &mut out)
        .unwrap();
    assert_eq!(out, blob);
    let cdn_reqs = cdn.requests();
    assert_eq!(cdn_reqs.len(), 1);
    assert_eq!(cdn_reqs[0].header("authorization"), None);
    assert!(front
        .requests()
        .iter()
        .any(|q| q.path.contains("/blobs/") && q.header("authorization") == Some("Bearer t1")));
}
