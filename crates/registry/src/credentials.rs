//! The Docker client's credentials file (`~/.docker/config.json`, or `$DOCKER_CONFIG/config.json`):
//! `{"auths": {"HOST[:PORT]": {"auth": base64("user:pass")}}}`, Docker Hub under
//! `https://index.docker.io/v1/`. Both tools share the file: everything else in it is kept as it
//! was, and it is replaced atomically with mode 0600.
//!
//! Credential helpers (`credsStore`, `credHelpers`) are not run: entries stored in a helper are
//! not seen, and `store` always writes into `auths`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::reference::auth_key;

#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    path: PathBuf,
}

impl Credentials {
    pub fn at(path: impl Into<PathBuf>) -> Credentials {
        Credentials { path: path.into() }
    }

    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The login stored for `server` (`host[:port]`, a URL, or a Docker Hub name). Keys written
    /// as URLs (`https://host/v1/`) match their host too, as in Docker.
    pub fn get(&self, server: &str) -> Result<Option<Login>> {
        let key = auth_key(server);
        let doc = self.read()?;
        let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| auth_key(k) == key)
                .map(|(_, v)| v)
        });
        let Some(entry) = entry else {
            return Ok(None);
        };
        let invalid = |reason: &str| Error::Credentials {
            path: self.path.clone(),
            reason: format!("entry {key}: {reason}"),
        };
        if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
            if auth.is_empty() {
                return Ok(None);
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| invalid("auth is not base64"))?;
            let text = String::from_utf8(raw).map_err(|_| invalid("auth is not UTF-8"))?;
            let (user, pass) = text
                .split_once(':')
                .ok_or_else(|| invalid("auth is not user:password"))?;
            return Ok(Some(Login {
                username: user.to_string(),
                password: pass.trim_end_matches('\n').to_string(),
            }));
        }
        match (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            (Some(u), Some(p)) => Ok(Some(Login {
                username: u.to_string(),
                password: p.to_string(),
            })),
            _ => Ok(None),
        }
    }

    /// Stores `login` for `server` (what `dock login` does after the registry accepted it).
    pub fn store(&self, server: &str, login: &Login) -> Result<()> {
        let mut doc = self.read()?;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", login.username, login.password));
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let mut entry = Map::new();
        entry.insert("auth".to_string(), Value::String(auth));
        auths
            .as_object_mut()
            .expect("auths is an object")
            .insert(auth_key(server), Value::Object(entry));
        self.write(&doc)
    }

    /// Removes the login for `server`; false when there was none.
    pub fn erase(&self, server: &str) -> Result<bool> {
        let key = auth_key(server);
        let mut doc = self.read()?;
        let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
            return Ok(false);
        };
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| **k == key || auth_key(k) == key)
            .cloned()
            .collect();
        if keys.is_empty() {
            return Ok(false);
        }
        for k in keys {
            auths.remove(&k);
        }
        self.write(&doc)?;
        Ok(true)
    }

    fn read(&self) -> Result<Map<String, Value>> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => return Err(Error::io(format!("read {}", self.path.display()), e)),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(Error::Credentials {
                path: self.path.clone(),
                reason: "not a JSON object".to_string(),
            }),
            Err(e) => Err(Error::Json {
                context: format!("parse {}", self.path.display()),
                source: e,
            }),
        }
    }

    /// Write-temp (0600) + fsync + rename; the directory is created 0700 when missing.
    fn write(&self, doc: &Map<String, Value>) -> Result<()> {
        let io_err = |what: &str, e| Error::io(format!("{what} {}", self.path.display()), e);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| io_err("create directory of", e))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_err("chmod directory of", e))?;
        }
        let mut text = serde_json::to_string_pretty(doc).expect("JSON values serialise");
        text.push('\n');
        // Named per process and call: logins in two threads of one process (the API server)
        // must not write the same temporary file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".{}.{}.{}.tmp",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id(),
            WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(u: &str, p: &str) -> Login {
        Login {
            username: u.to_string(),
            password: p.to_string(),
        }
    }

    #[test]
    fn store_get_erase_keep_other_keys_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let creds = Credentials::at(&path);
        assert_eq!(creds.get("localhost:5000").unwrap(), None);
        creds.store("localhost:5000", &login("u", "p:w")).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Another tool's keys survive.
        let mut doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["auths"]["localhost:5000"]["auth"], "dTpwOnc=");
        doc["credsStore"] = Value::String("desktop".into());
        fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        creds.store("docker.io", &login("hub", "x")).unwrap();
        let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["credsStore"], "desktop");
        assert!(doc["auths"]["https://index.docker.io/v1/"]["auth"].is_string());
        assert_eq!(
            creds.get("localhost:5000").unwrap(),
            Some(login("u", "p:w"))
        );
        assert_eq!(
            creds.get("index.docker.io").unwrap(),
            Some(login("hub", "x"))
        );
        assert!(creds.erase("localhost:5000").unwrap());
        assert!(!creds.erase("localhost:5000").unwrap());
        assert_eq!(creds.get("localhost:5000").unwrap(), None);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn url_keys_and_bad_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths": {"https://reg.example:5000/v1/": {"auth": "YTpi"}, "bad": {"auth": "!!"}}}"#,
        )
        .unwrap();
        let creds = Credentials::at(&path);
        assert_eq!(
            creds.get("reg.example:5000").unwrap(),
            Some(login("a", "b"))
        );
        assert!(matches!(creds.get("bad"), Err(Error::Credentials { .. })));
        fs::write(&path, "[").unwrap();
        assert!(matches!(creds.get("x"), Err(Error::Json { .. })));
    }
}
