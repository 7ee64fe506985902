//! `dock login` and `dock logout` against a real `docker-registry`: Basic auth behind TLS with a
//! test CA, and a Bearer token flow through a small token server in front of a registry.
//! Credentials land in the Docker client's `config.json` format; pushes with and without them.

mod common;
#[path = "../crates/registry/tests/common/mod.rs"]
mod registry_common;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use common::DockRoot;
use registry_common::*;

/// A dock root with its own Docker client config dir and certs.d.
struct Env {
    root: DockRoot,
    home: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            root: DockRoot::with_busybox(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn docker_config(&self) -> PathBuf {
        self.home.path().join("docker")
    }

    fn certs_dir(&self) -> PathBuf {
        self.home.path().join("certs.d")
    }

    fn trust(&self, host: &str, tls: &Tls) {
        std::fs::create_dir_all(self.certs_dir().join(host)).unwrap();
        std::fs::copy(&tls.ca, self.certs_dir().join(host).join("ca.crt")).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.root.cmd();
        cmd.args(args)
            .env("DOCKER_CONFIG", self.docker_config())
            .env("DOCK_CERTS_DIR", self.certs_dir());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// `dock pull NAME` into a fresh root with this environment's credentials and certs.
    fn pull_elsewhere(&self, name: &str) -> Output {
        let other = DockRoot::new();
        other
            .cmd()
            .args(["pull", name])
            .env("DOCKER_CONFIG", self.docker_config())
            .env("DOCK_CERTS_DIR", self.certs_dir())
            .output()
            .unwrap()
    }

    fn auths(&self) -> serde_json::Value {
        let path = self.docker_config().join("config.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).unwrap()["auths"].clone(),
            Err(_) => serde_json::Value::Null,
        }
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", out(&o), err(&o));
    out(&o)
}

fn htpasswd(dir: &Path) -> PathBuf {
    let path = dir.join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbc", path.to_str().unwrap(), "alice", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils, scripts/setup.sh installs it)");
    assert!(o.status.success(), "{}", err(&o));
    path
}

#[test]
fn login_and_logout_with_basic_auth_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = Tls::generate(tmp.path());
    let reg = TestRegistry::start_with(RegistryOptions {
        tls: Some(&tls),
        htpasswd: Some(htpasswd(tmp.path())),
    });
    let env = Env::new();
    let host = reg.host();

    // Without the CA the registry is not trusted; nothing is stored.
    let o = env.run_stdin(
        &["login", &host, "-u", "alice", "--password-stdin"],
        "s3cret\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).to_lowercase().contains("certificate"),
        "{}",
        err(&o)
    );
    env.trust(&host, &tls);

    // A wrong password is refused and not stored.
    let o = env.run_stdin(
        &["login", &host, "-u", "alice", "--password-stdin"],
        "wrong\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).starts_with("Error: "), "{}", err(&o));
    assert!(
        err(&o).contains("incorrect username or password"),
        "{}",
        err(&o)
    );
    assert!(env.auths().is_null());

    // --password-stdin wants a username; a non-terminal cannot be prompted.
    let o = env.run_stdin(&["login", &host, "--password-stdin"], "s3cret\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("--username"), "{}", err(&o));
    let o = env.run(&["login", &host]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("non TTY"), "{}", err(&o));

    // The right one is stored as the Docker client stores it: auths.HOST.auth, mode 0600.
    let o = ok(env.run_stdin(
        &["login", &host, "-u", "alice", "--password-stdin"],
        "s3cret\n",
    ));
    assert_eq!(o, "Login Succeeded\n");
    assert_eq!(env.auths()[&host]["auth"], "YWxpY2U6czNjcmV0");
    let mode = std::fs::metadata(env.docker_config().join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Pushes use the stored login.
    let name = format!("{host}/mine:1");
    ok(env.run(&["tag", "busybox", &name]));
    let o = ok(env.run(&["push", &name]));
    assert!(o.contains(": Pushed"), "{o}");
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        "--raw",
        &format!("docker://{name}"),
    ])
    .stdout;
    assert!(o.contains(&format!("1: digest: {}", sha256(&raw))), "{o}");
    // And pulls.
    let o = env.pull_elsewhere(&name);
    assert!(o.status.success(), "{}", err(&o));

    // With nothing given, the stored login is tried first.
    let o = ok(env.run(&["login", &host]));
    assert_eq!(
        o,
        "Authenticating with existing credentials...\nLogin Succeeded\n"
    );

    // logout removes it; a second logout says so.
    assert_eq!(
        ok(env.run(&["logout", &host])),
        format!("Removing login credentials for {host}\n")
    );
    assert!(env.auths().get(&host).is_none());
    assert_eq!(
        ok(env.run(&["logout", &host])),
        format!("Not logged in to {host}\n")
    );
    // Logged out: a push is refused, and the error says how to log in.
    let o = env.run(&["push", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(&format!("dock login {host}")),
        "{}",
        err(&o)
    );
    let o = env.pull_elsewhere(&name);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(&format!("dock login {host}")),
        "{}",
        err(&o)
    );

    // No server and no default registry: an error naming the setting.
    let o = env.run(&["login", "-u", "alice", "-p", "s3cret"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("default-registry"), "{}", err(&o));
    // With a default registry, login and logout use it; -p warns.
    std::fs::write(
        env.root.path().join("config.json"),
        format!(r#"{{"default-registry": "{host}"}}"#),
    )
    .unwrap();
    let o = env.run(&["login", "-u", "alice", "-p", "s3cret"]);
    assert_eq!(ok(o.clone()), "Login Succeeded\n");
    assert!(err(&o).contains("--password-stdin"), "{}", err(&o));
    assert!(env.auths()[&host]["auth"].is_string());
    assert_eq!(
        ok(env.run(&["logout"])),
        format!("Removing login credentials for {host}\n")
    );
}

/// Tokens issued: token -> may push.
type Tokens = Arc<Mutex<HashMap<String, bool>>>;

/// A Bearer-protected front on a real registry: `GET /token` gives anonymous clients a pull
/// token and `alice:s3cret` a push token; `/v2/…` wants a token and relays to the registry.
fn token_front(upstream: u16, tokens: Tokens) -> FakeServer {
    FakeServer::start(move |req| {
        let host = req.header("host").unwrap_or("").to_string();
        if req.path.starts_with("/token") {
            let may_push = match req.header("authorization") {
                None => false,
                Some("Basic YWxpY2U6czNjcmV0") if req.path.contains("account=alice") => true,
                Some(_) => {
                    return Answer::new(401, &[], r#"{"details":"incorrect username or password"}"#)
                }
            };
            let mut t = tokens.lock().unwrap();
            let token = format!("tok{}", t.len());
            t.insert(token.clone(), may_push);
            return Answer::new(
                200,
                &[("content-type", "application/json")],
                format!(r#"{{"token": "{token}", "expires_in": 300}}"#),
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
                let challenge = format!(r#"Bearer realm="http://{host}/token",service="fake""#);
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
fn login_and_logout_with_a_bearer_token_server() {
    let reg = TestRegistry::start();
    let tokens: Tokens = Arc::default();
    let front = token_front(reg.port, tokens);
    let env = Env::new();
    let host = front.host();

    // Anonymous: a pull-only token, and the push is refused with the way out.
    let name = format!("{host}/team/mine:1");
    ok(env.run(&["tag", "busybox", &name]));
    let o = env.run(&["push", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(&format!("dock login {host}")),
        "{}",
        err(&o)
    );

    let o = env.run_stdin(
        &["login", &host, "-u", "alice", "--password-stdin"],
        "nope\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(&format!("dock login {host}")),
        "{}",
        err(&o)
    );
    assert!(env.auths().is_null());

    let o = ok(env.run_stdin(
        &["login", &host, "-u", "alice", "--password-stdin"],
        "s3cret\n",
    ));
    assert_eq!(o, "Login Succeeded\n");
    assert_eq!(env.auths()[&host]["auth"], "YWxpY2U6czNjcmV0");
    let token_reqs: Vec<_> = front
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert!(token_reqs
        .iter()
        .any(|r| r.header("authorization") == Some("Basic YWxpY2U6czNjcmV0")));

    // Logged in: the push gets a pull,push token asked for with the account.
    let before = front.requests().len();
    let o = ok(env.run(&["push", &name]));
    assert!(o.contains(": Pushed"), "{o}");
    let reqs = front.requests()[before..].to_vec();
    assert!(reqs.iter().any(|r| r.path.starts_with("/token")
        && r.path.contains("account=alice")
        && r.path
            .contains("scope=repository%3Ateam%2Fmine%3Apull%2Cpush")));
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/team/mine:1", reg.host()),
    ])
    .stdout;
    assert!(o.contains(&format!("1: digest: {}", sha256(&raw))), "{o}");

    assert_eq!(
        ok(env.run(&["logout", &host])),
        format!("Removing login credentials for {host}\n")
    );
    assert!(env.auths().get(&host).is_none());
    let o = env.run(&["push", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(&format!("dock login {host}")),
        "{}",
        err(&o)
    );
}
