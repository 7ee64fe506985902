//! Test helpers: a real `docker-registry serve` on 127.0.0.1 (optionally with TLS and
//! htpasswd), OCI layouts written here and copied in with `skopeo`, and a small fake HTTP
//! server for what a real registry cannot be made to do (Bearer challenges, schema 1,
//! corrupted answers, redirects).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use registry::{Client, Credentials, RegistryConfig};
use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// TLS material for a registry on 127.0.0.1: a CA and a server certificate it signed.
pub struct Tls {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    pub fn generate(dir: &Path) -> Tls {
        let ca_key = dir.join("ca.key");
        let ca = dir.join("ca.crt");
        let key = dir.join("server.key");
        let csr = dir.join("server.csr");
        let cert = dir.join("server.crt");
        let ext = dir.join("ext.cnf");
        fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let p = |p: &Path| p.to_str().unwrap().to_string();
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=dock test CA",
            "-keyout",
            &p(&ca_key),
            "-out",
            &p(&ca),
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p(&key),
            "-out",
            &p(&csr),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&cert),
        ]);
        Tls {
            dir: dir.to_path_buf(),
            ca,
            cert,
            key,
        }
    }
}

pub struct RegistryOptions<'a> {
    pub tls: Option<&'a Tls>,
    /// htpasswd file (bcrypt)
    pub htpasswd: Option<PathBuf>,
}

/// `docker-registry serve` on 127.0.0.1 with its own storage; killed on drop.
pub struct TestRegistry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        Self::start_with(RegistryOptions {
            tls: None,
            htpasswd: None,
        })
    }

    pub fn start_with(opts: RegistryOptions<'_>) -> TestRegistry {
        let mut last_log = String::new();
        // A free port can be taken between the probe and the bind: try a few.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let storage = dir.path().join("storage");
            fs::create_dir(&storage).unwrap();
            let port = free_port();
            let mut yml = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: dock-test-secret\n",
                storage.display()
            );
            if let Some(tls) = opts.tls {
                yml += &format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    tls.cert.display(),
                    tls.key.display()
                );
            }
            if let Some(h) = &opts.htpasswd {
                yml += &format!(
                    "auth:\n  htpasswd:\n    realm: dock-test\n    path: {}\n",
                    h.display()
                );
            }
            let config = dir.path().join("config.yml");
            fs::write(&config, yml).unwrap();
            let log = fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry (scripts/setup.sh installs it)");
            let mut reg = TestRegistry { dir, port, child };
            if reg.wait_ready() {
                return reg;
            }
            last_log = fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default();
            // Dropping `reg` kills it.
        }
        panic!("docker-registry did not start: {last_log}");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                // Any answer on /v2/ (a TLS alert included) means it serves.
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 1];
                if s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {
                    return true;
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file holding a blob in the registry's storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certs.d that does not exist: only the system roots are trusted.
pub fn no_certs_dir() -> PathBuf {
    PathBuf::from("/nonexistent/dock-test/certs.d")
}

/// A client with the default configuration but `certs_dir` (no certs.d by default).
pub fn client(certs_dir: Option<&Path>, creds: Option<&Path>) -> Client {
    let config = RegistryConfig {
        certs_dir: certs_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(no_certs_dir),
        ..RegistryConfig::default()
    };
    Client::new(config, creds.map(Credentials::at))
}

pub fn skopeo(args: &[&str]) -> std::process::Output {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---- OCI layouts ----

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A tar of `files` (path, content), directories created as needed.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An image written into an OCI layout.
pub struct Image {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    /// (compressed blob, its digest, diff id)
    pub layers: Vec<(Vec<u8>, String, String)>,
}

pub struct Layout {
    pub dir: PathBuf,
    entries: Vec<serde_json::Value>,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        }
    }

    pub fn blob(&self, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        fs::write(self.dir.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
        d
    }

    /// An image of gzip layers (each a list of files) for `arch`; not yet in index.json.
    pub fn image(&self, arch: &str, layers: &[&[(&str, &[u8])]]) -> Image {
        let mut out = Vec::new();
        for files in layers {
            let tar = tar_of(files);
            let gz = gzip(&tar);
            let d = self.blob(&gz);
            out.push((gz, d, sha256(&tar)));
        }
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin", "FROM=test"], "Cmd": ["/bin/sh"], "WorkingDir": "/w"},
            "rootfs": {"type": "layers", "diff_ids": out.iter().map(|l| l.2.clone()).collect::<Vec<_>>()},
            "history": []
        });
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = self.blob(&config);
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": out.iter().map(|(gz, d, _)| serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len()
            })).collect::<Vec<_>>()
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let manifest_digest = self.blob(&manifest);
        Image {
            manifest,
            manifest_digest,
            config,
            config_digest,
            layers: out,
        }
    }

    /// Names `image` `tag` in index.json.
    pub fn tag(&mut self, tag: &str, media_type: &str, digest: &str, size: usize) {
        self.entries.push(serde_json::json!({
            "mediaType": media_type, "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }));
        let index = serde_json::json!({"schemaVersion": 2, "manifests": self.entries});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    /// An index over `(image, os/arch)` pairs; returns its bytes.
    pub fn index(&self, entries: &[(&Image, &str, &str)]) -> Vec<u8> {
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": entries.iter().map(|(img, os, arch)| serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": img.manifest_digest, "size": img.manifest.len(),
                "platform": {"os": os, "architecture": arch}
            })).collect::<Vec<_>>()
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        self.blob(&bytes);
        bytes
    }

    /// `oci:DIR:TAG`
    pub fn source(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }
}

/// A standard three-layer image (the last layer deletes a file of the first) pushed to
/// `reg` as `NAME:TAG` with skopeo, with extra skopeo flags.
pub fn push_fixture(
    reg: &TestRegistry,
    name: &str,
    tag: &str,
    flags: &[&str],
) -> (tempfile::TempDir, Image) {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let img = layout.image(
        "amd64",
        &[
            &[
                ("etc/base", b"base layer\n"),
                ("etc/gone", b"to be removed\n"),
            ],
            &[("usr/bin/tool", b"#!/bin/sh\necho tool\n")],
            &[("etc/.wh.gone", b""), ("app/data", &[7u8; 100_000])],
        ],
    );
    layout.tag(tag, OCI_MANIFEST, &img.manifest_digest, img.manifest.len());
    let dest = format!("docker://{}/{name}:{tag}", reg.host());
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    args.extend_from_slice(flags);
    let src = layout.source(tag);
    args.push(&src);
    args.push(&dest);
    skopeo(&args);
    (dir, img)
}

// ---- a fake HTTP server ----

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// the request head as received, for proxying
    raw_head: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_lowercase()).map(String::as_str)
    }
}

pub enum Answer {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Forward to a server on 127.0.0.1:PORT and relay its answer.
    Proxy(u16),
}

impl Answer {
    pub fn new(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Answer {
        Answer::Respond {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Answer + Send + Sync;

/// A tiny HTTP/1.1 server on 127.0.0.1 that closes every connection after one answer and
/// records every request. Stopped on drop.
pub struct FakeServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, stop2) = (requests.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (handler, reqs) = (handler.clone(), reqs.clone());
                        thread::spawn(move || serve(conn, &*handler, &reqs));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, handler: &Handler, reqs: &Mutex<Vec<Request>>) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut raw_head = Vec::new();
    let mut headers = HashMap::new();
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    raw_head.extend_from_slice(first.as_bytes());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_lowercase();
        // Proxied requests must close after one answer too.
        if !lower.starts_with("connection:") {
            raw_head.extend_from_slice(line.as_bytes());
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    raw_head.extend_from_slice(b"Connection: close\r\n\r\n");
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut parts = first.split_whitespace();
    let req = Request {
        method: parts.next().unwrap_or("").to_string(),
        path: parts.next().unwrap_or("").to_string(),
        headers,
        body,
        raw_head,
    };
    reqs.lock().unwrap().push(req.clone());
    let mut conn = conn;
    match handler(&req) {
        Answer::Respond {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out += &format!("{k}: {v}\r\n");
            }
            out += "\r\n";
            let _ = conn.write_all(out.as_bytes());
            if req.method != "HEAD" {
                let _ = conn.write_all(&body);
            }
        }
        Answer::Proxy(port) => {
            let mut up = TcpStream::connect(("127.0.0.1", port)).unwrap();
            up.write_all(&req.raw_head).unwrap();
            up.write_all(&req.body).unwrap();
            let _ = std::io::copy(&mut up, &mut conn);
        }
    }
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Both);
}

// ---- a Docker schema 2 image as dock will push it ----

/// A Docker schema 2 image (gzip layers, Docker config type) as dock will push it.
pub struct DockerImage {
    pub layers: Vec<(Vec<u8>, String, String)>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
}

pub fn docker_image() -> DockerImage {
    let layers: Vec<_> = [
        tar_of(&[("etc/hello", b"hello\n")]),
        tar_of(&[("bin/app", &[1u8; 50_000])]),
    ]
    .iter()
    .map(|t| {
        let gz = gzip(t);
        let d = sha256(&gz);
        (gz, d, sha256(t))
    })
    .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/app"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.2.clone()).collect::<Vec<_>>()}
    }))
    .unwrap();
    let config_digest = sha256(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": registry::media::DOCKER_MANIFEST,
        "config": {"mediaType": registry::media::DOCKER_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": layers.iter().map(|(gz, d, _)| serde_json::json!({
            "mediaType": registry::media::DOCKER_LAYER_GZIP, "digest": d, "size": gz.len()})).collect::<Vec<_>>()
    }))
    .unwrap();
    DockerImage {
        layers,
        config,
        config_digest,
        manifest,
    }
}

pub fn push(
    client: &registry::Client,
    r: &registry::Reference,
    img: &DockerImage,
    mount_from: Option<&str>,
) -> registry::Result<(Vec<registry::PushedBlob>, String)> {
    let mut what = Vec::new();
    for (blob, digest, _) in &img.layers {
        what.push(client.push_blob(r, digest, blob.len() as u64, mount_from, || Ok(&blob[..]))?);
    }
    what.push(
        client.push_blob(r, &img.config_digest, img.config.len() as u64, None, || {
            Ok(&img.config[..])
        })?,
    );
    let digest = client.put_manifest(r, registry::media::DOCKER_MANIFEST, &img.manifest)?;
    Ok((what, digest))
}
