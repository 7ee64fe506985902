//! `dock daemon` on TCP with dockerd's TLS flags, driven by the real `docker` CLI and curl
//! (included by api.rs): refused beyond loopback without client verification, mutual TLS with
//! certificates made here by `openssl`, and clients without a valid certificate turned away.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{dock_bin, free_port, stderr, stdout, Daemon, DockRoot, DOCK_VERSION};

/// A throwaway PKI: a CA, a server certificate for 127.0.0.1/localhost and a client
/// certificate signed by it, and a client certificate signed by another CA.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::Builder::new()
                .prefix("dock-pki-")
                .tempdir()
                .unwrap(),
        };
        pki.ca("ca");
        pki.signed(
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        pki.signed("client", "ca", "extendedKeyUsage=clientAuth\n");
        pki.ca("stranger-ca");
        pki.signed("stranger", "stranger-ca", "extendedKeyUsage=clientAuth\n");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("openssl (scripts/setup.sh installs it)");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    }

    /// `NAME.pem` (self-signed CA certificate) and `NAME-key.pem`.
    fn ca(&self, name: &str) {
        let (cert, key) = (format!("{name}.pem"), format!("{name}-key.pem"));
        let subject = format!("/CN=dock test {name}");
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &subject,
            "-keyout",
            &key,
            "-out",
            &cert,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// `NAME-cert.pem` and `NAME-key.pem`, signed by CA `ca`, with `extensions`.
    fn signed(&self, name: &str, ca: &str, extensions: &str) {
        let (csr, key, cert) = (
            format!("{name}.csr"),
            format!("{name}-key.pem"),
            format!("{name}-cert.pem"),
        );
        let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}-key.pem"));
        let ext = format!("{name}.ext");
        std::fs::write(self.path(&ext), extensions).unwrap();
        let subject = format!("/CN=dock test {name}");
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
    }

    /// The daemon's flags for mutual TLS.
    fn verify_flags(&self) -> Vec<String> {
        [
            "--tlsverify".to_string(),
            "--tlscacert".into(),
            self.arg("ca.pem"),
            "--tlscert".into(),
            self.arg("server-cert.pem"),
            "--tlskey".into(),
            self.arg("server-key.pem"),
        ]
        .into()
    }

    /// The docker CLI's flags for a client with certificate `client`.
    fn client_flags(&self, client: &str) -> Vec<String> {
        [
            "--tlsverify".to_string(),
            "--tlscacert".into(),
            self.arg("ca.pem"),
            "--tlscert".into(),
            self.arg(&format!("{client}-cert.pem")),
            "--tlskey".into(),
            self.arg(&format!("{client}-key.pem")),
        ]
        .into()
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `dock daemon -H listen args...` that must exit by itself (under a time limit).
fn daemon_that_exits(root: &DockRoot, listen: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["30", dock_bin(), "--root"])
        .arg(root.path())
        .args(["daemon", "-H", listen])
        .args(args)
        .env_remove("DOCKER_CERT_PATH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The daemon refuses to start with `args` (exit 1) and says `expected`.
fn refused_saying(root: &DockRoot, listen: &str, args: &[&str], expected: &str) {
    let out = daemon_that_exits(root, listen, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(expected), "{expected:?} not in {err}");
}

fn nothing_listens_on(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn a_network_address_without_client_verification_is_refused_with_the_reason() {
    let pki = Pki::new();
    let root = DockRoot::new();
    let port = free_port();
    let cert = pki.arg("server-cert.pem");
    let key = pki.arg("server-key.pem");
    for (listen, args, what) in [
        (format!("tcp://0.0.0.0:{port}"), vec![], "without TLS"),
        (format!("tcp://[::]:{port}"), vec![], "without TLS"),
        (
            format!("tcp://0.0.0.0:{port}"),
            vec!["--tls", "--tlscert", &cert, "--tlskey", &key],
            "with --tls but without --tlsverify",
        ),
        (
            format!("tcp://0.0.0.0:{port}"),
            vec!["--tlsverify=false", "--tlscert", &cert, "--tlskey", &key],
            "with --tls but without --tlsverify",
        ),
    ] {
        let out = daemon_that_exits(&root, &listen, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{listen} {args:?}: {err}");
        assert!(
            err.starts_with(&format!(
                "Error: refusing to serve the API on {listen} {what}:"
            )),
            "{err}"
        );
        assert!(err.contains("gets root on this machine"), "{err}");
        assert!(
            err.contains("pass --tlsverify --tlscacert CA.pem --tlscert CERT.pem --tlskey KEY.pem"),
            "{err}"
        );
        assert!(nothing_listens_on(port));
    }
}

#[test]
fn tls_files_that_cannot_be_used_are_named() {
    let pki = Pki::new();
    let root = DockRoot::new();
    let listen = format!("tcp://127.0.0.1:{}", free_port());
    let missing = pki.arg("no-such-ca.pem");
    let server_cert = pki.arg("server-cert.pem");
    let client_key = pki.arg("client-key.pem");
    let ca = pki.arg("ca.pem");

    let verify = |ca: &str| {
        [
            "--tlsverify",
            "--tlscacert",
            ca,
            "--tlscert",
            &server_cert,
            "--tlskey",
            &client_key,
        ]
        .map(str::to_string)
    };
    refused_saying(
        &root,
        &listen,
        &strs(&verify(&missing)),
        &format!("read TLS CA certificate {missing}"),
    );

    // A key that is not the certificate's.
    refused_saying(
        &root,
        &listen,
        &strs(&verify(&ca)),
        &format!("TLS certificate {server_cert} with key {client_key}"),
    );

    // A key file given as the certificate.
    refused_saying(
        &root,
        &listen,
        &["--tls", "--tlscert", &client_key, "--tlskey", &client_key],
        &format!("no PEM certificate in {client_key}"),
    );
}

#[test]
fn mutual_tls_serves_the_docker_cli_and_turns_away_clients_without_a_certificate() {
    let pki = Pki::new();
    let port = free_port();
    // Bound on every address, as a remote daemon is; the tests only ever connect to loopback.
    let daemon = Daemon::start_with(
        DockRoot::new(),
        &format!("tcp://0.0.0.0:{port}"),
        &strs(&pki.verify_flags()),
        format!("tcp://127.0.0.1:{port}"),
        &strs(&pki.client_flags("client")),
    );
    assert!(
        !daemon.log().contains("does not verify clients"),
        "{}",
        daemon.log()
    );
    assert_eq!(
        daemon.ok(&["version", "-f", "{{.Server.Version}}"]).trim(),
        DOCK_VERSION
    );
    daemon.import_busybox("bb");
    // The attach hijack and the multiplexed stream over TLS.
    assert_eq!(
        daemon.ok(&["run", "--rm", "bb", "echo", "over tls"]),
        "over tls\n"
    );
    let id = daemon.ok(&["run", "-d", "bb", "sleep", "100"]);
    assert!(daemon.ok(&["ps", "-q", "--no-trunc"]).contains(id.trim()));

    let refused = |what: &str, out: Output, why: &str| {
        assert!(
            !out.status.success(),
            "{what} was served: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            !stdout(&out).contains(DOCK_VERSION),
            "{what}: {}",
            stdout(&out)
        );
        assert!(stderr(&out).contains(why), "{what}: {}", stderr(&out));
    };
    // The docker CLI verifying the server but holding no certificate of its own.
    let ca = pki.arg("ca.pem");
    let out = daemon
        .bare_docker_cmd()
        .args([
            "--tlsverify",
            "--tlscacert",
            &ca,
            "version",
            "-f",
            "{{.Server.Version}}",
        ])
        .output()
        .unwrap();
    refused(
        "a client without a certificate",
        out,
        "certificate required",
    );
    // A certificate another CA signed (which the CLI does not even offer to this server).
    let out = daemon
        .bare_docker_cmd()
        .args(strs(&pki.client_flags("stranger")))
        .args(["version", "-f", "{{.Server.Version}}"])
        .output()
        .unwrap();
    refused("a client with a certificate of another CA", out, "tls:");
    // Plain HTTP on the TLS port.
    let out = daemon
        .bare_docker_cmd()
        .args(["version", "-f", "{{.Server.Version}}"])
        .output()
        .unwrap();
    refused("a plain HTTP client", out, "malformed HTTP response");
    let url = format!("https://127.0.0.1:{port}/_ping");
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "--cacert", &ca])
            .args(extra)
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .expect("curl (scripts/setup.sh installs it)")
    };
    refused(
        "curl without a certificate",
        curl(&[]),
        "certificate required",
    );
    // curl sends a certificate even when the server's list of CAs does not name its issuer.
    let stranger_cert = pki.arg("stranger-cert.pem");
    let stranger_key = pki.arg("stranger-key.pem");
    refused(
        "curl with a certificate of another CA",
        curl(&["--cert", &stranger_cert, "--key", &stranger_key]),
        "alert",
    );
    let log = daemon.log();
    for why in ["peer sent no certificates", "invalid peer certificate"] {
        assert!(
            log.contains(&format!("TLS handshake refused: {why}")),
            "{log}"
        );
    }

    // Still serving, to clients with a certificate.
    let cert = pki.arg("client-cert.pem");
    let key = pki.arg("client-key.pem");
    let out = curl(&["--cert", &cert, "--key", &key]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "OK");
    assert!(daemon.ok(&["ps", "-q", "--no-trunc"]).contains(id.trim()));
    assert_eq!(
        daemon.ok(&["version", "-f", "{{.Server.Version}}"]).trim(),
        DOCK_VERSION
    );
}

/// Certificates the way `docker` looks for them by default: ca.pem, cert.pem and key.pem in
/// DOCKER_CERT_PATH, for the daemon as for the CLI.
#[test]
fn the_cert_path_defaults_serve_both_sides() {
    let pki = Pki::new();
    let server_dir = pki.path("server-dir");
    let client_dir = pki.path("client-dir");
    for (dir, who) in [(&server_dir, "server"), (&client_dir, "client")] {
        std::fs::create_dir(dir).unwrap();
        std::fs::copy(pki.path("ca.pem"), dir.join("ca.pem")).unwrap();
        std::fs::copy(pki.path(&format!("{who}-cert.pem")), dir.join("cert.pem")).unwrap();
        std::fs::copy(pki.path(&format!("{who}-key.pem")), dir.join("key.pem")).unwrap();
    }
    let port = free_port();
    let root = DockRoot::new();
    let log = std::fs::File::create(root.path().join("daemon.log")).unwrap();
    let child = Command::new(dock_bin())
        .arg("--root")
        .arg(root.path())
        .args([
            "daemon",
            "-H",
            &format!("tcp://127.0.0.1:{port}"),
            "--tlsverify",
        ])
        .env("DOCKER_CERT_PATH", &server_dir)
        .env("DOCK_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let daemon = Daemon::started(
        root,
        format!("tcp://127.0.0.1:{port}"),
        PathBuf::from("/nonexistent"),
        child,
        Vec::new(),
    );
    let with_cert_path = |dir: &Path| {
        let mut cmd = daemon.bare_docker_cmd();
        cmd.env("DOCKER_CERT_PATH", dir)
            .env("DOCKER_TLS_VERIFY", "1")
            .args(["version", "-f", "{{.Server.Version}}"]);
        cmd.output().unwrap()
    };
    let out = with_cert_path(&client_dir);
    assert!(out.status.success(), "{}\n{}", stderr(&out), daemon.log());
    assert_eq!(stdout(&out).trim(), DOCK_VERSION);
    // The server's own certificate is no client certificate.
    let out = with_cert_path(&server_dir);
    assert!(!out.status.success(), "{}", stdout(&out));
}
