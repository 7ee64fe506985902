//! Volumes and mounts: `-v HOST:CTR[:ro]`, `-v NAME:CTR`, `-v CTR` (anonymous), `--mount`,
//! `--tmpfs`, and the named volumes under `<root>/volumes/NAME/_data` (with their
//! `volume.json`), as Docker has them.
//!
//! At create the requests are parsed and checked before anything exists, then made real (a
//! missing `-v` host path is created as a directory, a `--mount type=bind` one is refused; a
//! named volume is created on first use, an anonymous one gets a random name and Docker's
//! `com.docker.volume.anonymous` label) and stored as the container's [`MountPoint`]s. At
//! every start an empty volume is seeded from the image's content at its path (as Docker
//! does, unless `nocopy`) and [`sysinit_mounts`] hands sysinit the mounts, which it makes in
//! the container's own mount namespace: volume contents never reach the upper dir, so `diff`,
//! `commit` and `export` never see them.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The label Docker puts on anonymous volumes (`-v /path`); `rm -v` and `--rm` remove them.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// The only volume driver.
pub const LOCAL_DRIVER: &str = "local";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid volume specification: '{spec}': {reason}")]
    InvalidSpec { spec: String, reason: String },
    #[error("invalid mount config for type \"{kind}\": {reason}")]
    InvalidMount { kind: String, reason: String },
    #[error("invalid argument {spec:?} for --mount: {reason}")]
    InvalidMountFlag { spec: String, reason: String },
    #[error("duplicate mount point: {0}")]
    Duplicate(String),
    #[error("invalid volume name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    #[error("remove {name}: volume is in use - [{}]", containers.join(", "))]
    InUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("volume driver {0:?} is not supported: only local")]
    Driver(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    fn io(path: &Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A named volume, as `docker volume inspect` shows it (and as `volume.json` stores it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    pub created_at: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: PathBuf,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub scope: String,
}

impl Volume {
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// The volumes of one root: `<root>/volumes/NAME/{volume.json,_data}`; creation and removal
/// are serialized by `<root>/volumes/.lock`.
pub struct VolumeStore {
    dir: PathBuf,
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, as Docker's local driver wants (one character is fine too).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl VolumeStore {
    /// Opens (creating, private) `<root>/volumes`.
    pub fn open(root: &Path) -> Result<VolumeStore> {
        let dir = root.join("volumes");
        graph::perms::ensure_private(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(VolumeStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory a volume's content lives in (its `Mountpoint`).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Holds the store's lock until dropped.
    pub fn lock(&self) -> Result<crate::container::Lock, crate::Error> {
        crate::container::Lock::acquire(&self.dir.join(".lock"))
    }

    /// The volume `name`, created when missing (an existing one is returned as it is, as
    /// Docker does); `None`: a new random name. The caller holds [`VolumeStore::lock`].
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume> {
        if !driver.is_empty() && driver != LOCAL_DRIVER {
            return Err(Error::Driver(driver.to_string()));
        }
        let name = match name {
            Some(name) if !valid_name(name) => return Err(Error::InvalidName(name.to_string())),
            Some(name) => name.to_string(),
            None => graph::generate_id(),
        };
        match self.get(&name) {
            Ok(existing) => return Ok(existing),
            Err(Error::NoSuchVolume(_)) => {}
            Err(e) => return Err(e),
        }
        let volume = Volume {
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            driver: LOCAL_DRIVER.into(),
            labels,
            mountpoint: self.data_dir(&name),
            name: name.clone(),
            options,
            scope: "local".into(),
        };
        // Built aside and renamed into place: no half-made volume is ever listed.
        let staged = self.dir.join(format!(".new-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staged);
        let result = (|| {
            fs::DirBuilder::new()
                .mode(0o701)
                .create(&staged)
                .map_err(|e| Error::io(&staged, e))?;
            let data = staged.join("_data");
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&data)
                .map_err(|e| Error::io(&data, e))?;
            let json = staged.join("volume.json");
            let bytes = serde_json::to_vec_pretty(&volume).map_err(|e| Error::Json {
                path: json.clone(),
                source: e,
            })?;
            fs::write(&json, bytes).map_err(|e| Error::io(&json, e))?;
            let target = self.dir.join(&name);
            fs::rename(&staged, &target).map_err(|e| Error::io(&target, e))
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staged);
        }
        result?;
        tracing::debug!(%name, "created volume");
        Ok(volume)
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(Error::NoSuchVolume(name.to_string()));
        }
        let json = self.dir.join(name).join("volume.json");
        let bytes = match fs::read(&json) {
            Ok(bytes) => bytes,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(Error::NoSuchVolume(name.to_string()))
            }
            Err(e) => return Err(Error::io(&json, e)),
        };
        let mut volume: Volume = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: json,
            source: e,
        })?;
        // The store may have moved since: the path is where it is now.
        volume.mountpoint = self.data_dir(name);
        Ok(volume)
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut all = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.get(&name) {
                Ok(v) => all.push(v),
                Err(Error::NoSuchVolume(_)) => {}
                Err(e) => tracing::debug!(%name, error = %e, "skipping unreadable volume"),
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Deletes the volume and its content; the caller checked it is unused (and holds the
    /// lock). Renamed aside first, so it is gone from listings at once.
    pub fn delete(&self, name: &str) -> Result<()> {
        self.get(name)?;
        let dir = self.dir.join(name);
        let doomed = self
            .dir
            .join(format!(".removed-{name}-{}", std::process::id()));
        fs::rename(&dir, &doomed).map_err(|e| Error::io(&dir, e))?;
        tracing::debug!(%name, "removing volume");
        fs::remove_dir_all(&doomed).map_err(|e| Error::io(&doomed, e))
    }

    /// Bytes in the volume's files (for prune's "reclaimed space").
    pub fn size(&self, name: &str) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data_dir(name))
    }
}

/// What a mount is.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

impl std::fmt::Display for MountType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        })
    }
}

/// A mount of a container as stored in its config.json (`Mounts`): Docker's inspect fields
/// (`Type`, `Name`, `Source`, `Destination`, `Driver`, `Mode`, `RW`, `Propagation`) and what
/// the start needs besides.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: MountType,
    /// The volume's name; empty for binds and tmpfs.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Host path: the bind's source or the volume's data dir; empty for tmpfs.
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// The `-v` mode as given (`ro`, `z`, ...); empty for `--mount`.
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
    /// A volume of Docker's anonymous kind (removed by `rm -v` and `--rm`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// Seed an empty volume from the image (not with `nocopy`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub copy_data: bool,
    /// tmpfs options (`size=65536k,mode=1777`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tmpfs_options: String,
}

impl MountPoint {
    /// The entry of `Mounts` in Docker's container inspect.
    pub fn inspect(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "Type": self.kind.to_string(),
            "Source": self.source,
            "Destination": self.destination,
            "Mode": self.mode,
            "RW": self.rw,
            "Propagation": self.propagation,
        });
        if self.kind == MountType::Volume {
            v["Name"] = self.name.clone().into();
            v["Driver"] = self.driver.clone().into();
        }
        v
    }
}

/// `HostConfig.Mounts` entries (what `--mount` becomes), Docker's API shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub target: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub propagation: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_copy: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    #[serde(skip_serializing_if = "is_zero")]
    pub size_bytes: i64,
    #[serde(skip_serializing_if = "is_zero_mode")]
    pub mode: u32,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_mode(n: &u32) -> bool {
    *n == 0
}

/// One mount asked for, checked but not yet made real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: MountType,
    /// Host path (bind), volume name (volume; empty: anonymous), empty (tmpfs).
    pub source: String,
    pub destination: String,
    pub readonly: bool,
    /// A missing bind source is created as a directory (`-v`), else refused (`--mount`).
    pub create_source: bool,
    pub copy_data: bool,
    pub mode: String,
    pub propagation: String,
    pub tmpfs_options: String,
    pub labels: BTreeMap<String, String>,
}

impl Request {
    fn new(kind: MountType, source: &str, destination: &str) -> Request {
        Request {
            kind,
            source: source.to_string(),
            destination: destination.to_string(),
            readonly: false,
            create_source: false,
            copy_data: kind == MountType::Volume,
            mode: String::new(),
            propagation: String::new(),
            tmpfs_options: String::new(),
            labels: BTreeMap::new(),
        }
    }
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// A destination in the container: absolute, cleaned, not `/`.
fn clean_destination(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    (!parts.is_empty()).then(|| format!("/{}", parts.join("/")))
}

/// `-v` / `HostConfig.Binds`: `HOST:CTR[:MODE]`, `NAME:CTR[:MODE]` or `CTR` (anonymous);
/// MODE is a comma list of `ro`, `rw`, `z`, `Z`, `nocopy` and a propagation.
pub fn parse_volume(spec: &str) -> Result<Request> {
    let invalid = |reason: &str| Error::InvalidSpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [dst] => ("", *dst, ""),
        [src, dst] if dst.starts_with('/') => (*src, *dst, ""),
        [dst, mode] if dst.starts_with('/') => ("", *dst, *mode),
        [src, dst, mode] => (*src, *dst, *mode),
        _ => return Err(invalid("expected [SOURCE:]DESTINATION[:MODE]")),
    };
    let destination = clean_destination(destination)
        .ok_or_else(|| invalid("the destination must be an absolute path other than /"))?;
    let mut request = if source.is_empty() {
        Request::new(MountType::Volume, "", &destination)
    } else if source.starts_with('/') {
        let mut r = Request::new(MountType::Bind, source, &destination);
        r.create_source = true;
        r
    } else if valid_name(source) {
        Request::new(MountType::Volume, source, &destination)
    } else {
        return Err(invalid(&format!(
            "{source:?} includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed; a host path must be absolute"
        )));
    };
    request.mode = mode.to_string();
    for option in mode.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => request.readonly = true,
            "rw" | "z" | "Z" => {}
            "nocopy" if request.kind == MountType::Volume => request.copy_data = false,
            p if PROPAGATIONS.contains(&p) && request.kind == MountType::Bind => {
                request.propagation = p.to_string()
            }
            other => return Err(invalid(&format!("invalid mode: {other}"))),
        }
    }
    if request.kind == MountType::Bind && request.propagation.is_empty() {
        request.propagation = "rprivate".into();
    }
    Ok(request)
}

/// `--tmpfs CTR[:OPTIONS]` as (destination, options), what `HostConfig.Tmpfs` holds.
pub fn parse_tmpfs_flag(spec: &str) -> Result<(String, String)> {
    let (dst, options) = spec.split_once(':').unwrap_or((spec, ""));
    let dst = clean_destination(dst).ok_or_else(|| Error::InvalidMount {
        kind: "tmpfs".into(),
        reason: format!("invalid mount path: {dst:?} mount path must be absolute"),
    })?;
    Ok((dst, options.to_string()))
}

/// `--mount type=bind|volume|tmpfs,source=,target=,readonly,...` as the API's `Mount`.
pub fn parse_mount_flag(spec: &str) -> Result<Mount> {
    let invalid = |reason: String| Error::InvalidMountFlag {
        spec: spec.to_string(),
        reason,
    };
    let mut m = Mount {
        kind: "volume".into(),
        ..Mount::default()
    };
    let boolean = |key: &str, value: Option<&str>| match value {
        None | Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(other) => Err(invalid(format!("invalid value for {key}: {other}"))),
    };
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = |value: Option<&str>| {
            value
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("invalid field '{field}' must be a key=value pair")))
        };
        match key.as_str() {
            "type" => m.kind = need(value)?,
            "source" | "src" => m.source = need(value)?,
            "target" | "dst" | "destination" => m.target = need(value)?,
            "readonly" | "ro" => m.read_only = boolean(&key, value)?,
            "bind-propagation" => {
                m.bind_options
                    .get_or_insert_with(Default::default)
                    .propagation = need(value)?
            }
            "volume-nocopy" => {
                m.volume_options
                    .get_or_insert_with(Default::default)
                    .no_copy = boolean(&key, value)?
            }
            "volume-label" => {
                let label = need(value)?;
                let (k, v) = label.split_once('=').unwrap_or((&label, ""));
                m.volume_options
                    .get_or_insert_with(Default::default)
                    .labels
                    .insert(k.to_string(), v.to_string());
            }
            "tmpfs-size" => {
                let size = need(value)?;
                m.tmpfs_options
                    .get_or_insert_with(Default::default)
                    .size_bytes = crate::parse_memory(&size)
                    .ok_or_else(|| invalid(format!("invalid tmpfs-size: {size}")))?
            }
            "tmpfs-mode" => {
                let mode = need(value)?;
                m.tmpfs_options.get_or_insert_with(Default::default).mode =
                    u32::from_str_radix(&mode, 8)
                        .map_err(|_| invalid(format!("invalid tmpfs-mode: {mode}")))?
            }
            other => return Err(invalid(format!("unexpected key '{other}'"))),
        }
    }
    if m.target.is_empty() {
        return Err(invalid("target is required".into()));
    }
    Ok(m)
}

/// A `HostConfig.Mounts` entry as a request, checked as dockerd checks it.
pub fn mount_request(m: &Mount) -> Result<Request> {
    let invalid = |reason: String| Error::InvalidMount {
        kind: m.kind.clone(),
        reason,
    };
    let destination = clean_destination(&m.target).ok_or_else(|| {
        invalid(format!(
            "invalid mount path: '{}' mount path must be absolute",
            m.target
        ))
    })?;
    let mut request = match m.kind.as_str() {
        "bind" => {
            if m.source.is_empty() {
                return Err(invalid("field Source must not be empty".into()));
            }
            if !m.source.starts_with('/') {
                return Err(invalid(format!(
                    "invalid mount path: '{}' mount path must be absolute",
                    m.source
                )));
            }
            let mut r = Request::new(MountType::Bind, &m.source, &destination);
            r.propagation = m
                .bind_options
                .as_ref()
                .map(|b| b.propagation.clone())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rprivate".into());
            if !PROPAGATIONS.contains(&r.propagation.as_str()) {
                return Err(invalid(format!(
                    "invalid propagation mode: {}",
                    r.propagation
                )));
            }
            r
        }
        "volume" => {
            if !m.source.is_empty() && !valid_name(&m.source) {
                return Err(invalid(format!("invalid volume name: {}", m.source)));
            }
            let mut r = Request::new(MountType::Volume, &m.source, &destination);
            if let Some(options) = &m.volume_options {
                r.copy_data = !options.no_copy;
                r.labels = options.labels.clone();
            }
            r
        }
        "tmpfs" => {
            if !m.source.is_empty() {
                return Err(invalid("field Source must not be specified".into()));
            }
            let mut r = Request::new(MountType::Tmpfs, "", &destination);
            let mut options = Vec::new();
            if let Some(t) = &m.tmpfs_options {
                if t.size_bytes > 0 {
                    options.push(format!("size={}", t.size_bytes));
                }
                if t.mode != 0 {
                    options.push(format!("mode={:o}", t.mode));
                }
            }
            r.tmpfs_options = options.join(",");
            r
        }
        other => {
            return Err(Error::InvalidMount {
                kind: other.to_string(),
                reason: "mount type unknown: use bind, volume or tmpfs".into(),
            })
        }
    };
    request.readonly = m.read_only;
    Ok(request)
}

/// Every mount a container asks for: `Binds`, `Mounts`, `Tmpfs`, then the anonymous
/// `volumes` (Config.Volumes) no other mount covers; a destination twice is an error.
/// Checks only: nothing is created.
pub fn requests(
    binds: &[String],
    mounts: &[Mount],
    tmpfs: &BTreeMap<String, String>,
    anonymous: &BTreeSet<String>,
) -> Result<Vec<Request>> {
    let mut all = Vec::new();
    for spec in binds {
        all.push(parse_volume(spec)?);
    }
    for m in mounts {
        all.push(mount_request(m)?);
    }
    for (dst, options) in tmpfs {
        let (dst, _) = parse_tmpfs_flag(dst)?;
        let mut r = Request::new(MountType::Tmpfs, "", &dst);
        r.tmpfs_options = options.clone();
        all.push(r);
    }
    let mut seen = BTreeSet::new();
    for r in &all {
        if !seen.insert(r.destination.clone()) {
            return Err(Error::Duplicate(r.destination.clone()));
        }
    }
    for dst in anonymous {
        let r = parse_volume(dst)?;
        if seen.insert(r.destination.clone()) {
            all.push(r);
        }
    }
    Ok(all)
}

/// Makes `requests` real (the caller holds the store's lock): missing `-v` sources become
/// directories, `--mount` bind sources must exist, volumes are created (anonymous ones with a
/// random name). The mount points, parents before what is mounted below them. On error, the
/// anonymous volumes made so far are deleted again.
pub fn materialize(store: &VolumeStore, requests: &[Request]) -> Result<Vec<MountPoint>> {
    let mut made: Vec<MountPoint> = Vec::new();
    let result = (|| {
        for r in requests {
            let mut point = MountPoint {
                kind: r.kind,
                destination: r.destination.clone(),
                mode: r.mode.clone(),
                rw: !r.readonly,
                propagation: r.propagation.clone(),
                copy_data: r.copy_data,
                tmpfs_options: r.tmpfs_options.clone(),
                ..MountPoint::default()
            };
            match r.kind {
                MountType::Bind => {
                    let source = Path::new(&r.source);
                    if fs::symlink_metadata(source).is_err() && fs::metadata(source).is_err() {
                        if !r.create_source {
                            return Err(Error::InvalidMount {
                                kind: "bind".into(),
                                reason: format!("bind source path does not exist: {}", r.source),
                            });
                        }
                        tracing::debug!(source = %r.source, "creating missing bind source");
                        fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o755)
                            .create(source)
                            .map_err(|e| Error::io(source, e))?;
                    }
                    point.source = r.source.clone();
                }
                MountType::Volume => {
                    let anonymous = r.source.is_empty();
                    let mut labels = r.labels.clone();
                    if anonymous {
                        labels.insert(ANONYMOUS_LABEL.into(), String::new());
                    }
                    let name = (!anonymous).then_some(r.source.as_str());
                    let volume = store.create(name, LOCAL_DRIVER, labels, BTreeMap::new())?;
                    point.anonymous = volume.is_anonymous();
                    point.name = volume.name;
                    point.source = volume.mountpoint.to_string_lossy().into_owned();
                    point.driver = volume.driver;
                    if point.mode.is_empty() && r.mode.is_empty() {
                        point.mode = if r.readonly { "ro" } else { "z" }.into();
                    }
                }
                MountType::Tmpfs => {}
            }
            made.push(point);
        }
        Ok(())
    })();
    if let Err(e) = result {
        for point in made.iter().filter(|p| p.anonymous) {
            let _ = store.delete(&point.name);
        }
        return Err(e);
    }
    made.sort_by_key(|p| p.destination.split('/').count());
    Ok(made)
}

/// The sysinit mounts of a container about to start: its /etc files from `etc_dir`
/// (hostname, hosts, resolv.conf, unless a mount of its own covers one) and its mount points,
/// parents first. Empty volumes are seeded from the image under `rootfs` first.
pub fn sysinit_mounts(
    mounts: &[MountPoint],
    etc_dir: &Path,
    rootfs: &Path,
) -> Result<Vec<sysinit::Mount>> {
    let mut out: Vec<(usize, sysinit::Mount)> = Vec::new();
    for (file, destination) in crate::etcfiles::FILES {
        if mounts.iter().any(|m| m.destination == destination) {
            continue;
        }
        out.push((
            2,
            sysinit::Mount {
                destination: destination.to_string(),
                kind: sysinit::MountKind::Bind {
                    source: etc_dir.join(file),
                },
                readonly: false,
            },
        ));
    }
    for m in mounts {
        if m.kind == MountType::Volume && m.copy_data {
            seed(rootfs, &m.destination, Path::new(&m.source))?;
        }
        let kind = match m.kind {
            MountType::Tmpfs => sysinit::MountKind::Tmpfs {
                options: m.tmpfs_options.clone(),
            },
            _ => sysinit::MountKind::Bind {
                source: PathBuf::from(&m.source),
            },
        };
        out.push((
            m.destination.split('/').count() - 1,
            sysinit::Mount {
                destination: m.destination.clone(),
                kind,
                readonly: !m.rw,
            },
        ));
    }
    out.sort_by_key(|(depth, _)| *depth);
    Ok(out.into_iter().map(|(_, m)| m).collect())
}

/// Copies what the image has at `destination` (resolved inside `rootfs`, symlinks as the
/// container sees them) into the volume dir `data` when `data` is empty, with owners and
/// modes, as Docker seeds a new volume; the volume dir takes the image dir's owner and mode.
pub fn seed(rootfs: &Path, destination: &str, data: &Path) -> Result<()> {
    let empty = fs::read_dir(data)
        .map_err(|e| Error::io(data, e))?
        .next()
        .is_none();
    if !empty {
        return Ok(());
    }
    let Some(dir) = open_in_root(rootfs, destination)? else {
        return Ok(());
    };
    let from = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let meta = fs::metadata(&from).map_err(|e| Error::io(&rootfs.join(&destination[1..]), e))?;
    if !meta.is_dir() {
        return Ok(());
    }
    tracing::debug!(%destination, data = %data.display(), "seeding volume from the image");
    copy_dir(&from, data)?;
    copy_owner_and_mode(&meta, data)
}

/// An `O_PATH` descriptor of `destination` in `rootfs`, resolved with `RESOLVE_IN_ROOT`;
/// `None` when it does not exist.
fn open_in_root(rootfs: &Path, destination: &str) -> Result<Option<OwnedFd>> {
    let root = fs::File::open(rootfs).map_err(|e| Error::io(rootfs, e))?;
    let rel = destination.trim_start_matches('/');
    let c_rel = CString::new(rel).map_err(|_| {
        Error::io(
            rootfs,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "nul byte in a mount destination",
            ),
        )
    })?;
    match sysinit::openat2(
        root.as_fd(),
        &c_rel,
        libc::O_PATH | libc::O_CLOEXEC,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(Error::io(&rootfs.join(rel), e)),
    }
}

fn copy_owner_and_mode(meta: &fs::Metadata, to: &Path) -> Result<()> {
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| Error::io(to, e))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| Error::io(to, e))?;
    }
    Ok(())
}

/// Copies the tree under `from` into the existing dir `to`, never following a symlink.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let entries = fs::read_dir(from).map_err(|e| Error::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).map_err(|e| Error::io(&src, e))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            fs::create_dir(&dst).map_err(|e| Error::io(&dst, e))?;
            copy_dir(&src, &dst)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&src).map_err(|e| Error::io(&src, e))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(|e| Error::io(&dst, e))?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
        } else if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
            let c_dst = CString::new(dst.as_os_str().as_encoded_bytes())
                .map_err(|_| Error::io(&dst, io::Error::from(io::ErrorKind::InvalidInput)))?;
            // SAFETY: mknod of a new path with the source's type and device numbers.
            if unsafe { libc::mknod(c_dst.as_ptr(), meta.mode(), meta.rdev()) } < 0 {
                return Err(Error::io(&dst, io::Error::last_os_error()));
            }
        } else {
            continue; // sockets belong to a process, not to the image
        }
        copy_owner_and_mode(&meta, &dst)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags_parse_like_docker() {
        let r = parse_volume("/host/dir:/data:ro").unwrap();
        assert_eq!(
            (
                r.kind,
                r.source.as_str(),
                r.destination.as_str(),
                r.readonly
            ),
            (MountType::Bind, "/host/dir", "/data", true)
        );
        assert!(r.create_source);
        assert_eq!(r.propagation, "rprivate");
        let r = parse_volume("cache:/var/cache/").unwrap();
        assert_eq!((r.kind, r.source.as_str()), (MountType::Volume, "cache"));
        assert_eq!(r.destination, "/var/cache");
        assert!(r.copy_data);
        let r = parse_volume("/anon").unwrap();
        assert_eq!((r.kind, r.source.as_str()), (MountType::Volume, ""));
        assert!(!parse_volume("name:/d:nocopy").unwrap().copy_data);
        assert!(parse_volume("rel/path:/d").is_err());
        assert!(parse_volume("/h:relative").is_err());
        assert!(parse_volume("/h:/").is_err());
        assert!(parse_volume("/h:/d:bogus").is_err());
        assert!(parse_volume("a:b:c:d").is_err());
    }

    #[test]
    fn mount_flags_become_api_mounts_and_requests() {
        let m = parse_mount_flag("type=bind,src=/h,dst=/d,readonly").unwrap();
        assert_eq!(
            (m.kind.as_str(), m.source.as_str(), m.target.as_str()),
            ("bind", "/h", "/d")
        );
        assert!(m.read_only);
        let r = mount_request(&m).unwrap();
        assert!(!r.create_source && r.readonly);
        let m = parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(
            mount_request(&m).unwrap().tmpfs_options,
            "size=67108864,mode=1770"
        );
        let m = parse_mount_flag("target=/v,volume-nocopy").unwrap();
        let r = mount_request(&m).unwrap();
        assert_eq!(
            (r.kind, r.source.as_str(), r.copy_data),
            (MountType::Volume, "", false)
        );
        assert!(parse_mount_flag("type=bind,src=/h").is_err());
        assert!(parse_mount_flag("type=bind,src=/h,dst=/d,bogus=1").is_err());
        assert!(mount_request(&parse_mount_flag("type=nfs,dst=/d").unwrap()).is_err());
        assert!(mount_request(&parse_mount_flag("type=tmpfs,src=/x,dst=/d").unwrap()).is_err());
    }

    #[test]
    fn duplicate_destinations_are_refused_and_anonymous_ones_give_way() {
        let tmpfs = BTreeMap::from([("/t".to_string(), "size=1m".to_string())]);
        let anonymous = BTreeSet::from(["/data".to_string(), "/other".to_string()]);
        let all = requests(&["/h:/data".into()], &[], &tmpfs, &anonymous).unwrap();
        let dsts: Vec<&str> = all.iter().map(|r| r.destination.as_str()).collect();
        assert_eq!(dsts, ["/data", "/t", "/other"]);
        let err = requests(
            &["/h:/d".into(), "v:/d/".into()],
            &[],
            &BTreeMap::new(),
            &BTreeSet::new(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Duplicate(d) if d == "/d"));
    }

    #[test]
    fn the_store_creates_lists_and_deletes_and_materialize_makes_sources() {
        let tmp = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(tmp.path()).unwrap();
        let v = store
            .create(Some("data"), "", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(v.mountpoint, tmp.path().join("volumes/data/_data"));
        assert!(v.mountpoint.is_dir());
        // Creating it again gives the same volume.
        assert_eq!(
            store
                .create(Some("data"), "local", BTreeMap::new(), BTreeMap::new())
                .unwrap(),
            v
        );
        assert!(store
            .create(Some("-bad"), "", BTreeMap::new(), BTreeMap::new())
            .is_err());
        assert!(store
            .create(Some("x"), "nfs", BTreeMap::new(), BTreeMap::new())
            .is_err());

        let host = tmp.path().join("host/new");
        let reqs = requests(
            &[format!("{}:/a/b", host.display()), "data:/a".into()],
            &[],
            &BTreeMap::new(),
            &BTreeSet::from(["/anon".to_string()]),
        )
        .unwrap();
        let points = materialize(&store, &reqs).unwrap();
        assert!(host.is_dir(), "a missing -v source is created");
        let order: Vec<&str> = points.iter().map(|p| p.destination.as_str()).collect();
        assert_eq!(order, ["/a", "/anon", "/a/b"]);
        let anon = points.iter().find(|p| p.anonymous).unwrap();
        assert!(store.get(&anon.name).unwrap().is_anonymous());
        assert_eq!(store.list().unwrap().len(), 2);

        // A --mount bind of a missing path is refused, and the anonymous volume made before
        // it goes again.
        let missing = Mount {
            kind: "bind".into(),
            source: tmp.path().join("nope").display().to_string(),
            target: "/n".into(),
            ..Mount::default()
        };
        let reqs = requests(
            &[],
            &[missing],
            &BTreeMap::new(),
            &BTreeSet::from(["/z".to_string()]),
        )
        .unwrap();
        let err = materialize(&store, &reqs).unwrap_err().to_string();
        assert!(err.contains("bind source path does not exist"), "{err}");
        assert_eq!(store.list().unwrap().len(), 2);

        store.delete("data").unwrap();
        assert!(matches!(store.get("data"), Err(Error::NoSuchVolume(_))));
        assert!(!tmp.path().join("volumes/data").exists());
    }

    #[test]
    fn seeding_copies_the_image_dir_once_and_stays_in_the_rootfs() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        fs::create_dir_all(rootfs.join("srv/sub")).unwrap();
        fs::write(rootfs.join("srv/sub/f"), "image").unwrap();
        std::os::unix::fs::symlink("sub/f", rootfs.join("srv/link")).unwrap();
        fs::set_permissions(rootfs.join("srv"), fs::Permissions::from_mode(0o750)).unwrap();
        // An absolute symlink leading to the host's /etc stays inside the rootfs.
        std::os::unix::fs::symlink("/etc", rootfs.join("escape")).unwrap();
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        seed(&rootfs, "/srv", &data).unwrap();
        assert_eq!(fs::read_to_string(data.join("sub/f")).unwrap(), "image");
        assert_eq!(
            fs::read_link(data.join("link")).unwrap(),
            Path::new("sub/f")
        );
        assert_eq!(fs::metadata(&data).unwrap().mode() & 0o777, 0o750);
        // Not empty any more: never seeded again.
        fs::write(rootfs.join("srv/new"), "x").unwrap();
        seed(&rootfs, "/srv", &data).unwrap();
        assert!(!data.join("new").exists());
        let other = tmp.path().join("other");
        fs::create_dir(&other).unwrap();
        seed(&rootfs, "/escape", &other).unwrap();
        assert_eq!(fs::read_dir(&other).unwrap().count(), 0);
        seed(&rootfs, "/missing", &other).unwrap();
    }
}
