//! The image store: `<dir>/<id>/json` (metadata) and `<dir>/<id>/layer/` (the extracted layer).
//!
//! An image is built in `<dir>/_tmp/<id>-<random>` and renamed into `<dir>/<id>` only when its
//! layer and json are complete and on disk, so readers and crashes see either no image or a
//! whole one. Each staging dir has a sibling `<name>.lock` file, created and flock'ed before the
//! dir itself; `Graph::open` removes a staging dir only when it can take that lock, i.e. when the
//! process that was importing into it is gone. Deleted images are renamed into `_tmp/` (without a
//! lock file) and removed from there.
//!
//! Listing reads `<id>/json` files only; no layer directory is touched. What it read is kept
//! in `<dir>/_index/images` ([`stamped`]: every image's json, one a line, under a stamp of
//! the graph directory), so a listing of an unchanged graph reads one file. Every change of
//! the graph (an image renamed in or out) changes the directory's modification time, and an
//! image's json never changes once in place (its `meta.json` does, and touches the
//! directory).
//!
//! The graph directory and each `<id>` directory are private to their owner ([`perms`]):
//! layers keep images' setuid files and device nodes, which no other host user may reach.
//! A graph an older version left open is closed when opened.

pub mod perms;
pub mod rfc3339;
pub mod stamped;
pub mod storelock;

pub use storelock::{store_lock_path, StoreLock};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Name of the staging directory inside the graph root.
pub const STAGING_DIR: &str = "_tmp";
const LOCK_SUFFIX: &str = ".lock";
/// An image entry's raw configuration.
const CONFIG_FILE: &str = "config";
/// The skeleton of a layer's tar ([`archive::rebuild`]), zstd-compressed.
const SKELETON_FILE: &str = "layer.skeleton.zst";
/// What was learned about an entry after registration ([`Meta`]).
const META_FILE: &str = "meta.json";
/// The listing index's directory inside the graph root, and its file.
pub const INDEX_DIR: &str = "_index";
const INDEX_FILE: &str = "images";
const INDEX_MAGIC: &str = "dock-graph-index 2";

/// The listing index against the graph directory ([`Graph::index_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    /// No index: the next listing reads every json.
    Absent,
    /// Written under another stamp of the directory: ignored and rebuilt by the next listing.
    Stale,
    /// Current, and it lists exactly the images the directories hold.
    Agrees,
    /// Current by its stamp, but it lists other images than the directories hold.
    Disagrees,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("parse image json {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("extract layer of image {id}: {source}")]
    Extract {
        id: String,
        #[source]
        source: archive::Error,
    },
    #[error("invalid image id {0:?}: want 64 lowercase hex characters")]
    InvalidId(String),
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("ambiguous image id prefix {prefix}: it matches {count} images")]
    Ambiguous { prefix: String, count: usize },
    #[error("image {0} already exists")]
    AlreadyExists(String),
    #[error("image {id}: parent image {parent} not found")]
    MissingParent { id: String, parent: String },
    #[error("image {id} has a parent cycle through {parent}")]
    ParentCycle { id: String, parent: String },
    #[error("image {id} has children: {}", children.join(", "))]
    HasChildren { id: String, children: Vec<String> },
    #[error("image {0} is a configuration and has no layer")]
    NoLayer(String),
    #[error("layer {id}: its tar has digest {actual}, expected {expected}")]
    DiffIdMismatch {
        id: String,
        expected: String,
        actual: String,
    },
    #[error("image config for {id} has digest {actual}")]
    ConfigDigest { id: String, actual: String },
    #[error("tar layer of image {id}: {source}")]
    Tar {
        id: String,
        #[source]
        source: archive::Error,
    },
    #[error("parse {path}: {source}")]
    MetaJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("image json {path} holds id {found}, expected {expected}")]
    WrongId {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(context: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    let context = context.to_string();
    move |source| Error::Io { context, source }
}

/// What a caller says about an image it creates; the id, time and size are filled in.
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    pub parent: Option<String>,
    pub container: Option<String>,
    pub container_config: Option<serde_json::Value>,
    pub comment: String,
    pub author: String,
}

/// What [`Graph::listing`] finds.
#[derive(Debug, Default)]
pub struct Listing {
    pub images: Vec<Image>,
    pub broken: Vec<BrokenImage>,
    /// What a listing shows of an image beyond its json, by id; images with nothing more
    /// (no config of their own, no repo digest) are left out.
    pub details: HashMap<String, Details>,
}

/// An image's listing details: read from its `config` and `meta.json` when the index is
/// built, so a listing reads no file per image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Details {
    /// The `config.Labels` of the entry's own configuration; None when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_labels: Option<BTreeMap<String, String>>,
    /// [`Meta::repo_digests`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
}

impl Details {
    fn is_empty(&self) -> bool {
        self.config_labels.is_none() && self.repo_digests.is_empty()
    }
}

/// One line of the listing index.
#[derive(Serialize, Deserialize)]
struct IndexEntry {
    image: Image,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
}

/// An image whose `<id>/json` cannot be read: `images` lists it as broken, `rmi -f` removes it.
#[derive(Debug)]
pub struct BrokenImage {
    pub id: String,
    /// Its json file.
    pub path: PathBuf,
    /// [`Error::Json`], [`Error::WrongId`] or [`Error::Io`].
    pub error: Error,
}

impl BrokenImage {
    /// `json: <what is wrong>`: the file by its name and the parse error.
    pub fn reason(&self) -> String {
        match &self.error {
            Error::Json { source, .. } => format!("json: {source}"),
            Error::WrongId { found, .. } => format!("json: holds id {found}"),
            other => other.to_string(),
        }
    }
}

/// An image's metadata, stored as `<id>/json` with Docker 0.1.0's field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(
        serialize_with = "ser_time",
        deserialize_with = "rfc3339::deserialize_strict"
    )]
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Always written (as `null` when absent), as 0.1.0 always wrote its Config struct.
    #[serde(default)]
    pub container_config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// Bytes of regular file data in the layer.
    #[serde(default)]
    pub size: u64,
    /// `sha256:<hex>` of the layer's uncompressed tar, as registries and image configs name it,
    /// when it was known at registration (pulled layers); see [`Graph::diff_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// An image configuration entry: no layer of its own, its config at `<id>/config`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub layerless: bool,
}

/// Where a layer's compressed blob is known to live: a registry repository that has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSource {
    /// `host[:port]`
    pub registry: String,
    pub repository: String,
    /// `sha256:<hex>` of the compressed blob
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// What the store learns about an entry after it was registered: `<id>/meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// `host/repository@sha256:<hex>` names the image was pulled or pushed as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
    /// Registry blobs this layer was pulled from or pushed as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<BlobSource>,
    /// The layer's diff ID when it was computed after registration (imported, committed and
    /// legacy layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
}

/// RFC 3339 with nanoseconds, like Go's `time.Time` JSON.
fn ser_time<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex sha256 of `bytes`: the id of an image whose config they are.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A writer that hashes what passes through it.
struct HashWriter<W> {
    hasher: Sha256,
    inner: W,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that only counts.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Finds images by id in a listing sorted by id (as [`Graph::listing`] gives it). A lookup
/// searches the ids' first eight bytes, kept side by side, rather than 10,000 scattered
/// strings.
pub struct Positions<'a> {
    images: &'a [Image],
    keys: Vec<u64>,
}

impl<'a> Positions<'a> {
    pub fn new(images: &'a [Image]) -> Self {
        debug_assert!(
            images.is_sorted_by(|a, b| a.id < b.id),
            "a listing sorted by id"
        );
        Positions {
            images,
            keys: images.iter().map(|image| id_key(&image.id)).collect(),
        }
    }

    /// Where the image `id` is in the listing.
    pub fn get(&self, id: &str) -> Option<usize> {
        let key = id_key(id);
        let start = self.keys.partition_point(|&k| k < key);
        (start..self.keys.len())
            .take_while(|&at| self.keys[at] == key)
            .find(|&at| self.images[at].id == id)
    }

    /// The position of the parent of the image at `at`.
    pub fn parent_of(&self, at: usize) -> Option<usize> {
        self.get(self.images[at].parent.as_deref()?)
    }
}

/// An id's first eight bytes as a number (big-endian, so it sorts as the id does): random ids
/// are told apart by these, so a lookup can search numbers side by side before it compares a
/// whole id.
pub fn id_key(id: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let head = &id.as_bytes()[..id.len().min(8)];
    bytes[..head.len()].copy_from_slice(head);
    u64::from_be_bytes(bytes)
}

/// [`Graph::image_size`] of every image in `images` (a listing sorted by id, as
/// [`Graph::listing`] gives it), in the same order, without reading anything more: each
/// chain is summed once.
pub fn image_sizes(images: &[Image]) -> Vec<u64> {
    let positions = Positions::new(images);
    let mut sizes: Vec<Option<u64>> = vec![None; images.len()];
    let mut chain = Vec::new();
    for start in 0..images.len() {
        // Walk up to the first image whose size is known (or the base), then fill in down.
        let mut next = Some(start);
        let mut base = 0;
        while let Some(at) = next {
            if let Some(known) = sizes[at] {
                base = known;
                break;
            }
            if chain.len() > images.len() {
                break; // a parent cycle: what is summed so far stands
            }
            chain.push(at);
            next = positions.parent_of(at);
        }
        for at in chain.drain(..).rev() {
            base += images[at].size;
            sizes[at] = Some(base);
        }
    }
    sizes.into_iter().map(Option::unwrap_or_default).collect()
}

/// A new random image id: 32 random bytes as 64 lowercase hex characters.
pub fn generate_id() -> String {
    let mut bytes = [0u8; 32];
    // The kernel's random source does not fail on Linux once booted; without it no id is safe.
    getrandom::fill(&mut bytes).expect("read random bytes for an image id");
    hex(&bytes)
}

/// Whether `s` is a full image id: exactly 64 lowercase hex characters.
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Every path built from an id goes through here: only full ids become path components.
fn check_id(id: &str) -> Result<()> {
    if is_full_id(id) {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

pub(crate) fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("read random bytes for a staging name");
    hex(&bytes)
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("sync {}", dir.display())))
}

/// Make everything written under `dir` durable: one syncfs of its filesystem flushes the
/// whole layer at once, where an fsync per file would cost one flush per file.
fn sync_filesystem(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(io_err(format!("open {}", dir.display())))?;
    // SAFETY: syncfs only reads the descriptor, which `handle` keeps open.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(io_err(format!("sync {}", dir.display()))(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Remove a directory tree, treating "already gone" as done (another process may race us).
fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(io_err(format!("remove {}", path.display()))(err))
        }
        _ => Ok(()),
    }
}

fn remove_file_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(io_err(format!("remove {}", path.display()))(err))
        }
        _ => Ok(()),
    }
}

/// The pid in an index temp file's name (`images.<pid>.<random>.tmp`).
pub fn index_temp_pid(name: &str) -> Option<u32> {
    stamped::temp_pid(name, INDEX_FILE)
}

/// A staging directory owned by this process; removed on drop unless committed.
struct Staging {
    dir: PathBuf,
    lock_path: PathBuf,
    /// Held (flock'ed) for as long as the staging dir may exist.
    _lock: File,
}

impl Staging {
    fn new(staging_root: &Path, id: &str) -> Result<Staging> {
        let name = format!("{id}-{}", random_suffix());
        let dir = staging_root.join(&name);
        let lock_path = staging_root.join(format!("{name}{LOCK_SUFFIX}"));
        // The lock exists and is held before the dir does, so open() never mistakes a live
        // import for a crashed one.
        let lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock_path)
            .map_err(io_err(format!("create {}", lock_path.display())))?;
        lock.lock()
            .map_err(io_err(format!("lock {}", lock_path.display())))?;
        let staging = Staging {
            dir,
            lock_path,
            _lock: lock,
        };
        // Private from the start: renamed into place, it is the image's directory.
        fs::DirBuilder::new()
            .mode(perms::PRIVATE_MODE)
            .create(&staging.dir)
            .map_err(io_err(format!("create {}", staging.dir.display())))?;
        Ok(staging)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // After a successful commit the dir is gone already; after a failure this is the cleanup.
        if let Err(err) = remove_tree(&self.dir) {
            tracing::warn!(%err, "staging cleanup failed");
        }
        if let Err(err) = remove_file_if_present(&self.lock_path) {
            tracing::warn!(%err, "staging lock cleanup failed");
        }
    }
}

/// The image store over one directory.
#[derive(Debug, Clone)]
pub struct Graph {
    root: PathBuf,
}

impl Graph {
    /// Open (creating if needed) the graph at `dir` and remove staging left by crashed processes.
    /// `dir` is made private to its owner; when it was open (an older graph), so is each
    /// image directory in it.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Graph> {
        let graph = Graph { root: dir.into() };
        Graph::secure(&graph.root)?;
        let staging_root = graph.staging_root();
        perms::ensure_private(&staging_root)
            .map_err(io_err(format!("create {}", staging_root.display())))?;
        graph.clean_staging()?;
        // Made here rather than by the first index written, which would then be stale at once.
        let index_dir = graph.root.join(INDEX_DIR);
        stamped::clean_temps(&index_dir, INDEX_FILE);
        // Best effort: without it, listings read every json.
        match fs::DirBuilder::new().mode(0o700).create(&index_dir) {
            Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                tracing::debug!(%err, dir = %index_dir.display(), "no listing index");
            }
            _ => {}
        }
        Ok(graph)
    }

    /// The graph at `dir` as it is: nothing created, secured or cleaned (for checking a
    /// store without changing it).
    pub fn at(dir: impl Into<PathBuf>) -> Graph {
        Graph { root: dir.into() }
    }

    /// What is in `_tmp/` that no live process owns: staging of crashed imports and deleted
    /// images not yet removed. [`Graph::open`] removes these.
    pub fn staging_leftovers(&self) -> Result<Vec<PathBuf>> {
        let staging_root = self.staging_root();
        let entries = match fs::read_dir(&staging_root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io_err(format!("read {}", staging_root.display()))(err)),
        };
        let mut names = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(io_err(format!("read {}", staging_root.display())))?;
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
        let mut left = Vec::new();
        for name in &names {
            let path = staging_root.join(name);
            if let Some(stage) = name.strip_suffix(LOCK_SUFFIX) {
                let Ok(lock) = File::open(&path) else {
                    continue;
                };
                if lock.try_lock().is_ok() {
                    left.push(path);
                    if names.contains(stage) {
                        left.push(staging_root.join(stage));
                    }
                }
            } else if !staging_root.join(format!("{name}{LOCK_SUFFIX}")).exists() {
                // Checked now, not in the listing, which may predate a starting import's lock
                // (imports create their lock before their dir), as `clean_staging` does.
                left.push(path);
            }
        }
        left.sort();
        Ok(left)
    }

    /// Make the graph directory `dir` private, creating it if needed; when it was open, also
    /// each directory in it (images and staging), so no layer stays reachable. One stat when
    /// it is private already.
    pub fn secure(dir: &Path) -> Result<perms::DirMode> {
        perms::ensure_private_tree(dir).map_err(io_err(format!("secure {}", dir.display())))
    }

    /// The directory this graph lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take the store-wide lock ([`storelock`]), waiting for its holder.
    pub fn lock_store(&self) -> Result<StoreLock> {
        StoreLock::acquire(&store_lock_path(&self.root))
    }

    /// The store-wide lock if nobody else holds it.
    pub fn try_lock_store(&self) -> Result<Option<StoreLock>> {
        StoreLock::try_acquire(&store_lock_path(&self.root))
    }

    fn staging_root(&self) -> PathBuf {
        self.root.join(STAGING_DIR)
    }

    fn image_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn json_path(&self, id: &str) -> PathBuf {
        self.image_dir(id).join("json")
    }

    /// Remove staging dirs whose importer is gone, and deleted images left half-removed.
    fn clean_staging(&self) -> Result<()> {
        let staging_root = self.staging_root();
        let entries = fs::read_dir(&staging_root)
            .map_err(io_err(format!("read {}", staging_root.display())))?;
        let mut names = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(io_err(format!("read {}", staging_root.display())))?;
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
        for name in &names {
            let path = staging_root.join(name);
            if let Some(stage) = name.strip_suffix(LOCK_SUFFIX) {
                let lock = match File::open(&path) {
                    Ok(lock) => lock,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(io_err(format!("open {}", path.display()))(err)),
                };
                if lock.try_lock().is_err() {
                    continue; // an import is running in another process (or thread)
                }
                tracing::debug!(staging = %stage, "removing staging left by a crashed import");
                remove_tree(&staging_root.join(stage))?;
                remove_file_if_present(&path)?;
            } else if !staging_root.join(format!("{name}{LOCK_SUFFIX}")).exists() {
                // No lock file (checked now, not in the listing, which may predate it): a deleted
                // image, or an import that already finished. Imports create their lock before
                // their dir and remove it only after the dir is gone, so this is no live import.
                tracing::debug!(path = %path.display(), "removing deleted image leftovers");
                if let Err(err) = remove_tree(&path) {
                    // Another process may be removing the same tree; it is garbage either way.
                    tracing::warn!(%err, "removing deleted image leftovers failed");
                }
            }
        }
        Ok(())
    }

    /// Import `layer` (a tar stream) as a new image with a fresh id.
    pub fn create(&self, layer: impl Read, new: NewImage) -> Result<Image> {
        let image = Image {
            id: generate_id(),
            parent: new.parent,
            comment: new.comment,
            created: Utc::now(),
            container: new.container,
            container_config: new.container_config,
            author: new.author,
            size: 0,
            diff_id: None,
            layerless: false,
        };
        self.register(layer, image)
    }

    /// Import `layer` as `image`, whose id the caller chose; fails if that id exists.
    pub fn register(&self, layer: impl Read, mut image: Image) -> Result<Image> {
        image.layerless = false;
        let staging = self.stage(&image)?;
        let layer_dir = staging.dir.join("layer");
        fs::create_dir(&layer_dir).map_err(io_err(format!("create {}", layer_dir.display())))?;
        tracing::debug!(id = %image.id, dir = %layer_dir.display(), "extracting layer");
        let skeleton_path = staging.dir.join(SKELETON_FILE);
        let skeleton = File::create(&skeleton_path)
            .map_err(io_err(format!("create {}", skeleton_path.display())))?;
        let mut skeleton = zstd::Encoder::new(io::BufWriter::new(skeleton), 1)
            .map_err(io_err(format!("create {}", skeleton_path.display())))?;
        let recorded =
            archive::extract_recorded(layer, &layer_dir, &mut skeleton).map_err(|source| {
                Error::Extract {
                    id: image.id.clone(),
                    source,
                }
            })?;
        skeleton
            .finish()
            .and_then(|mut w| w.flush())
            .map_err(io_err(format!("write {}", skeleton_path.display())))?;
        match &image.diff_id {
            Some(expected) if *expected != recorded.diff_id => {
                return Err(Error::DiffIdMismatch {
                    id: image.id,
                    expected: expected.clone(),
                    actual: recorded.diff_id,
                })
            }
            _ => image.diff_id = Some(recorded.diff_id),
        }
        image.size = recorded.stats.bytes;
        self.commit(staging, image)
    }

    /// Store an image configuration entry: `config` (kept byte for byte, as its digest is
    /// over those bytes) at `<id>/config`, no layer. `image.id` must be the hex sha256 of
    /// `config`: an image's id is its config's digest, as Docker shows it.
    pub fn register_config(&self, mut image: Image, config: &[u8]) -> Result<Image> {
        let actual = sha256_hex(config);
        if actual != image.id {
            return Err(Error::ConfigDigest {
                id: image.id,
                actual: format!("sha256:{actual}"),
            });
        }
        image.layerless = true;
        image.size = 0;
        let staging = self.stage(&image)?;
        let path = staging.dir.join(CONFIG_FILE);
        fs::write(&path, config).map_err(io_err(format!("write {}", path.display())))?;
        self.commit(staging, image)
    }

    /// Check a new entry's id and parent and open its staging dir.
    fn stage(&self, image: &Image) -> Result<Staging> {
        check_id(&image.id)?;
        if let Some(parent) = &image.parent {
            check_id(parent)?;
            if !self.exists(parent) {
                return Err(Error::MissingParent {
                    id: image.id.clone(),
                    parent: parent.clone(),
                });
            }
        }
        if self.exists(&image.id) {
            return Err(Error::AlreadyExists(image.id.clone()));
        }
        Staging::new(&self.staging_root(), &image.id)
    }

    /// Write the json into `staging`, make it durable and rename it into place.
    fn commit(&self, staging: Staging, image: Image) -> Result<Image> {
        let json_path = staging.dir.join("json");
        let json = serde_json::to_vec(&image).expect("image json serializes");
        let mut file =
            File::create(&json_path).map_err(io_err(format!("create {}", json_path.display())))?;
        file.write_all(&json)
            .map_err(io_err(format!("write {}", json_path.display())))?;
        drop(file);
        sync_filesystem(&staging.dir)?;

        let target = self.image_dir(&image.id);
        // Under the store lock: an `rmi` of the parent either ran before (and this fails) or
        // runs after and sees this child.
        let store = self.lock_store()?;
        if let Some(parent) = &image.parent {
            if !self.exists(parent) {
                return Err(Error::MissingParent {
                    id: image.id.clone(),
                    parent: parent.clone(),
                });
            }
        }
        match fs::rename(&staging.dir, &target) {
            Ok(()) => {}
            // A concurrent register of the same id won the race.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
                ) =>
            {
                return Err(Error::AlreadyExists(image.id));
            }
            Err(err) => {
                return Err(io_err(format!(
                    "rename {} to {}",
                    staging.dir.display(),
                    target.display()
                ))(err))
            }
        }
        fsync_dir(&self.root)?;
        drop(store);
        fsync_dir(&self.staging_root())?;
        drop(staging);
        tracing::debug!(id = %image.id, size = image.size, "image committed");
        Ok(image)
    }

    /// This entry's raw image configuration; `None` for layers and images stored without one
    /// (imported, or made by an older dock).
    pub fn config(&self, id: &str) -> Result<Option<Vec<u8>>> {
        check_id(id)?;
        let path = self.image_dir(id).join(CONFIG_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                if self.exists(id) {
                    Ok(None)
                } else {
                    Err(Error::NoSuchImage(id.to_string()))
                }
            }
            Err(err) => Err(io_err(format!("read {}", path.display()))(err)),
        }
    }

    /// The configuration an image runs with: the first entry in its history that has one.
    pub fn image_config(&self, id: &str) -> Result<Option<Vec<u8>>> {
        for image in self.history(id)? {
            if let Some(config) = self.config(&image.id)? {
                return Ok(Some(config));
            }
        }
        Ok(None)
    }

    /// What the store learned about the entry since it was registered (empty when nothing).
    pub fn meta(&self, id: &str) -> Result<Meta> {
        check_id(id)?;
        if !self.exists(id) {
            return Err(Error::NoSuchImage(id.to_string()));
        }
        self.read_meta(&self.image_dir(id).join(META_FILE))
    }

    fn read_meta(&self, path: &Path) -> Result<Meta> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::MetaJson {
                path: path.to_path_buf(),
                source,
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Meta::default()),
            Err(err) => Err(io_err(format!("read {}", path.display()))(err)),
        }
    }

    /// Change the entry's meta under a lock on its directory (so concurrent pulls and pushes
    /// each add what they learned) and replace the file atomically. Returns the new meta.
    pub fn update_meta(&self, id: &str, change: impl FnOnce(&mut Meta)) -> Result<Meta> {
        check_id(id)?;
        let dir = self.image_dir(id);
        let handle = match File::open(&dir) {
            Ok(handle) => handle,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoSuchImage(id.to_string()))
            }
            Err(err) => return Err(io_err(format!("open {}", dir.display()))(err)),
        };
        handle
            .lock()
            .map_err(io_err(format!("lock {}", dir.display())))?;
        let path = dir.join(META_FILE);
        let mut meta = self.read_meta(&path)?;
        let before = meta.clone();
        change(&mut meta);
        if meta != before {
            let temp = dir.join(format!("{META_FILE}.{}", random_suffix()));
            let bytes = serde_json::to_vec(&meta).expect("meta json serializes");
            let written = File::create(&temp)
                .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
                .and_then(|()| fs::rename(&temp, &path));
            if let Err(err) = written {
                let _ = fs::remove_file(&temp);
                return Err(io_err(format!("write {}", path.display()))(err));
            }
            // The listing index holds every image's repo digests: a new modification time
            // of the graph directory makes any index written before this change stale.
            self.touch_root()?;
        }
        Ok(meta)
    }

    /// The layer's diff ID (`sha256:<hex>` of its uncompressed tar). Every layer registered
    /// by this version knows it from its extraction; for an older one it is the digest of the
    /// tar [`Graph::layer_tar`] gives, computed once and recorded.
    pub fn diff_id(&self, id: &str) -> Result<String> {
        let image = self.get(id)?;
        if let Some(diff_id) = image.diff_id {
            return Ok(diff_id);
        }
        if image.layerless {
            return Err(Error::NoLayer(id.to_string()));
        }
        if let Some(diff_id) = self.meta(id)?.diff_id {
            return Ok(diff_id);
        }
        self.layer_tar(id, io::sink())
    }

    /// Write the layer's tar: exactly the bytes it was registered from (rebuilt from the
    /// skeleton kept at registration and the extracted files), so its digest is the layer's
    /// diff ID whoever wrote the original. A layer stored by an older version without a
    /// skeleton is tarred anew and that tar's digest recorded as its diff ID. Returns the
    /// digest; a rebuilt tar that does not match (the layer was changed on disk) is an error
    /// after the bytes were written, so the caller must not use them.
    pub fn layer_tar(&self, id: &str, out: impl Write) -> Result<String> {
        let image = self.get(id)?;
        if image.layerless {
            return Err(Error::NoLayer(id.to_string()));
        }
        let layer = self.layer_path(id);
        let mut out = HashWriter {
            hasher: Sha256::new(),
            inner: out,
        };
        let skeleton_path = self.image_dir(id).join(SKELETON_FILE);
        let tar_err = |source| Error::Tar {
            id: id.to_string(),
            source,
        };
        match File::open(&skeleton_path) {
            Ok(file) => {
                let skeleton = zstd::Decoder::new(file)
                    .map_err(io_err(format!("read {}", skeleton_path.display())))?;
                archive::rebuild(skeleton, &layer, &mut out).map_err(tar_err)?;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                archive::tar_dir(&layer, &mut out, archive::Compression::None).map_err(tar_err)?;
            }
            Err(err) => return Err(io_err(format!("open {}", skeleton_path.display()))(err)),
        }
        let digest = format!("sha256:{}", hex(&out.hasher.finalize()));
        let recorded = match image.diff_id {
            Some(diff_id) => Some(diff_id),
            None => self.meta(id)?.diff_id,
        };
        match recorded {
            Some(expected) if expected != digest => Err(Error::DiffIdMismatch {
                id: id.to_string(),
                expected,
                actual: digest,
            }),
            Some(_) => Ok(digest),
            None => {
                self.update_meta(id, |meta| meta.diff_id = Some(digest.clone()))?;
                Ok(digest)
            }
        }
    }

    /// The size in bytes of the tar [`Graph::layer_tar`] writes, from the layer's skeleton
    /// alone (no file of the layer is read), so a container format that needs the size
    /// before the bytes (a tar of tars, `docker save`) can stream the layer. A layer stored
    /// without a skeleton is tarred once to count.
    pub fn layer_tar_size(&self, id: &str) -> Result<u64> {
        let image = self.get(id)?;
        if image.layerless {
            return Err(Error::NoLayer(id.to_string()));
        }
        let skeleton_path = self.image_dir(id).join(SKELETON_FILE);
        match File::open(&skeleton_path) {
            Ok(file) => {
                let skeleton = zstd::Decoder::new(file)
                    .map_err(io_err(format!("read {}", skeleton_path.display())))?;
                archive::rebuilt_size(skeleton).map_err(|source| Error::Tar {
                    id: id.to_string(),
                    source,
                })
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let mut count = CountingSink(0);
                self.layer_tar(id, &mut count)?;
                Ok(count.0)
            }
            Err(err) => Err(io_err(format!("open {}", skeleton_path.display()))(err)),
        }
    }

    /// The image with this full id.
    pub fn get(&self, id: &str) -> Result<Image> {
        check_id(id)?;
        match self.read_json(id)? {
            Some(image) => Ok(image),
            None => Err(Error::NoSuchImage(id.to_string())),
        }
    }

    /// Read `<id>/json`; `None` when the image does not exist (or was deleted meanwhile).
    fn read_json(&self, id: &str) -> Result<Option<Image>> {
        let path = self.json_path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_err(format!("read {}", path.display()))(err)),
        };
        let image: Image = serde_json::from_slice(&bytes).map_err(|source| {
            // Damaged in place: a listing index may still show it whole.
            self.forget_index();
            Error::Json {
                path: path.clone(),
                source,
            }
        })?;
        if image.id != id {
            self.forget_index();
            return Err(Error::WrongId {
                path,
                expected: id.to_string(),
                found: image.id,
            });
        }
        Ok(Some(image))
    }

    /// The ids of every image, from directory names alone.
    fn ids(&self) -> Result<Vec<String>> {
        let entries =
            fs::read_dir(&self.root).map_err(io_err(format!("read {}", self.root.display())))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(format!("read {}", self.root.display())))?;
            if let Ok(name) = entry.file_name().into_string() {
                if is_full_id(&name) {
                    ids.push(name);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The image with this full id or unique id prefix.
    pub fn resolve(&self, id_or_prefix: &str) -> Result<Image> {
        if is_full_id(id_or_prefix) {
            return self.get(id_or_prefix);
        }
        self.get(&self.unique_prefix(id_or_prefix)?)
    }

    /// The full id a full id or unique id prefix names, from directory names alone: it
    /// resolves an image whose json is broken too (for `rmi -f`).
    pub fn resolve_id(&self, id_or_prefix: &str) -> Result<String> {
        if is_full_id(id_or_prefix) {
            return match self.image_dir(id_or_prefix).join("json").exists() {
                true => Ok(id_or_prefix.to_string()),
                false => Err(Error::NoSuchImage(id_or_prefix.to_string())),
            };
        }
        self.unique_prefix(id_or_prefix)
    }

    /// The one image directory's id that starts with `prefix`, a non-empty lowercase hex
    /// string.
    fn unique_prefix(&self, prefix: &str) -> Result<String> {
        let is_hex = prefix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if prefix.is_empty() || !is_hex {
            return Err(Error::NoSuchImage(prefix.to_string()));
        }
        let mut matches: Vec<String> = self
            .ids()?
            .into_iter()
            .filter(|id| id.starts_with(prefix))
            .collect();
        match matches.len() {
            0 => Err(Error::NoSuchImage(prefix.to_string())),
            1 => Ok(matches.remove(0)),
            count => Err(Error::Ambiguous {
                prefix: prefix.to_string(),
                count,
            }),
        }
    }

    /// Whether an image with this full id exists.
    pub fn exists(&self, id: &str) -> bool {
        is_full_id(id) && self.json_path(id).is_file()
    }

    /// Every image that can be read, sorted by id; broken ones are left out (see
    /// [`Graph::listing`]).
    pub fn all(&self) -> Result<Vec<Image>> {
        Ok(self.listing()?.images)
    }

    /// Every image, sorted by id, and every image whose json cannot be read (damaged, or
    /// naming another id): from the listing index when the graph has not changed since it
    /// was written, else from every `<id>/json` (and the index is written again, unless an
    /// image is broken: the next listing reads them all again and still reports it). The
    /// index trusts that an image's json never changes in place; one damaged in place is
    /// noticed by the first read of that image, which drops the index.
    pub fn listing(&self) -> Result<Listing> {
        let stamp = self.stamp()?;
        if let Some(listing) = self.read_index(&stamp) {
            return Ok(listing);
        }
        let mut listing = Listing::default();
        for id in self.ids()? {
            // An image deleted between the listing and the read is simply not there any more.
            match self.read_json(&id) {
                Ok(Some(image)) => {
                    let details = self.read_details(&id);
                    if !details.is_empty() {
                        listing.details.insert(id, details);
                    }
                    listing.images.push(image)
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(%id, %error, "broken image");
                    listing.broken.push(BrokenImage {
                        path: self.json_path(&id),
                        id,
                        error,
                    });
                }
            }
        }
        if stamp.settled() && listing.broken.is_empty() {
            if let Err(err) = self.write_index(&stamp, &listing) {
                tracing::debug!(%err, "listing index not written");
            }
        }
        Ok(listing)
    }

    /// Drops the listing index (best effort), so the next listing reads every json again.
    fn forget_index(&self) {
        if let Err(err) = self.drop_index() {
            tracing::debug!(%err, "listing index not removed");
        }
    }

    /// The graph directory's identity and modification time, read before its listing.
    fn stamp(&self) -> Result<stamped::Stamp> {
        stamped::Stamp::of(&self.root, INDEX_MAGIC)
            .map_err(io_err(format!("stat {}", self.root.display())))
    }

    /// Sets the graph directory's modification time to now, which stales the listing index.
    fn touch_root(&self) -> Result<()> {
        stamped::touch(&self.root).map_err(io_err(format!("touch {}", self.root.display())))
    }

    /// The listing index file.
    pub fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_DIR).join(INDEX_FILE)
    }

    /// Whether the listing index agrees with the image directories (see [`IndexState`]).
    pub fn index_state(&self) -> Result<IndexState> {
        let stamp = self.stamp()?;
        let path = self.index_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(IndexState::Absent),
            Err(err) => return Err(io_err(format!("read {}", path.display()))(err)),
        };
        if text.lines().next() != Some(stamp.line()) {
            return Ok(IndexState::Stale);
        }
        let Some(indexed) = self.read_index(&stamp) else {
            return Ok(IndexState::Disagrees);
        };
        let mut actual = Vec::new();
        let mut details = HashMap::new();
        for id in self.ids()? {
            match self.read_json(&id) {
                Ok(Some(image)) => {
                    let found = self.read_details(&id);
                    if !found.is_empty() {
                        details.insert(id, found);
                    }
                    actual.push(image)
                }
                Ok(None) => {}
                Err(_) => return Ok(IndexState::Disagrees),
            }
        }
        Ok(if indexed.images == actual && indexed.details == details {
            IndexState::Agrees
        } else {
            IndexState::Disagrees
        })
    }

    /// Removes the listing index; the next listing writes it again.
    pub fn drop_index(&self) -> Result<()> {
        remove_file_if_present(&self.index_path())
    }

    /// The images of an index written under `stamp`; None when there is none, it is stale
    /// or it cannot be read (it is then rebuilt).
    fn read_index(&self, stamp: &stamped::Stamp) -> Option<Listing> {
        let entries: Vec<IndexEntry> = stamped::read(&self.index_path(), stamp)?;
        let mut details = HashMap::new();
        // Collected in place (an image is smaller than its entry): the entries' array
        // becomes the images' one, with no new memory for thousands of them.
        let images = entries
            .into_iter()
            .map(|entry| {
                if let Some(entry_details) = entry.details {
                    details.insert(entry.image.id.clone(), entry_details);
                }
                entry.image
            })
            .collect();
        Some(Listing {
            images,
            broken: Vec::new(),
            details,
        })
    }

    /// The details of image `id` for a listing; what cannot be read is left out (a listing
    /// reports images, not their configs' or metas' damage).
    fn read_details(&self, id: &str) -> Details {
        let dir = self.image_dir(id);
        let config_labels = fs::read(dir.join(CONFIG_FILE)).ok().map(|raw| {
            #[derive(Deserialize)]
            struct Doc {
                #[serde(default)]
                config: Option<Config>,
            }
            #[derive(Deserialize)]
            struct Config {
                #[serde(default, rename = "Labels")]
                labels: Option<BTreeMap<String, String>>,
            }
            serde_json::from_slice::<Doc>(&raw)
                .ok()
                .and_then(|doc| doc.config?.labels)
                .unwrap_or_default()
        });
        let repo_digests = self
            .read_meta(&dir.join(META_FILE))
            .map(|meta| meta.repo_digests)
            .unwrap_or_default();
        Details {
            config_labels,
            repo_digests,
        }
    }

    /// Replaces the index. Writing inside `_index/` leaves the graph directory's time.
    fn write_index(&self, stamp: &stamped::Stamp, listing: &Listing) -> io::Result<()> {
        #[derive(Serialize)]
        struct Entry<'a> {
            image: &'a Image,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a Details>,
        }
        let entries: Vec<String> = listing
            .images
            .iter()
            .map(|image| {
                let entry = Entry {
                    image,
                    details: listing.details.get(&image.id),
                };
                serde_json::to_string(&entry).expect("index entry serializes")
            })
            .collect();
        stamped::write(&self.index_path(), stamp, &entries)
    }

    /// Images that are no image's parent.
    pub fn heads(&self) -> Result<Vec<Image>> {
        let images = self.all()?;
        let parents: HashSet<&str> = images.iter().filter_map(|i| i.parent.as_deref()).collect();
        let heads = images
            .iter()
            .filter(|i| !parents.contains(i.id.as_str()))
            .cloned()
            .collect();
        Ok(heads)
    }

    /// The image's size as Docker shows it: its own layer and every parent's.
    pub fn image_size(&self, id: &str) -> Result<u64> {
        Ok(self.history(id)?.iter().map(|image| image.size).sum())
    }

    /// The images whose parent is `id`.
    pub fn children(&self, id: &str) -> Result<Vec<Image>> {
        check_id(id)?;
        if !self.exists(id) {
            return Err(Error::NoSuchImage(id.to_string()));
        }
        Ok(self
            .all()?
            .into_iter()
            .filter(|i| i.parent.as_deref() == Some(id))
            .collect())
    }

    /// The image, then its parent, then that one's parent, and so on.
    pub fn history(&self, id: &str) -> Result<Vec<Image>> {
        let mut chain = vec![self.get(id)?];
        let mut seen = HashSet::from([id.to_string()]);
        while let Some(parent) = chain.last().and_then(|i| i.parent.clone()) {
            let child = chain.last().map(|i| i.id.clone()).unwrap_or_default();
            if !seen.insert(parent.clone()) {
                return Err(Error::ParentCycle { id: child, parent });
            }
            let image = match self.get(&parent) {
                Ok(image) => image,
                Err(Error::NoSuchImage(_) | Error::InvalidId(_)) => {
                    return Err(Error::MissingParent { id: child, parent })
                }
                Err(err) => return Err(err),
            };
            chain.push(image);
        }
        Ok(chain)
    }

    /// The layer directories of the image and its parents, top first (config entries have
    /// none).
    pub fn layers(&self, id: &str) -> Result<Vec<PathBuf>> {
        Ok(self
            .history(id)?
            .iter()
            .filter(|image| !image.layerless)
            .map(|image| self.image_dir(&image.id).join("layer"))
            .collect())
    }

    /// `<dir>/<id>/layer`. An id that is not a full id names no path component: the result is
    /// `<dir>/_tmp/invalid-id`, which never exists.
    pub fn layer_path(&self, id: &str) -> PathBuf {
        if is_full_id(id) {
            self.image_dir(id).join("layer")
        } else {
            tracing::warn!(id, "layer path asked for an invalid image id");
            self.staging_root().join("invalid-id")
        }
    }

    /// Remove the image. Readers see it either whole or gone: it is renamed out of the graph
    /// first, then removed. Refuses while other images name it as their parent.
    pub fn delete(&self, id: &str) -> Result<()> {
        check_id(id)?;
        // Under the store lock: a child registered concurrently is either seen here or finds
        // its parent gone.
        let store = self.lock_store()?;
        if !self.exists(id) {
            return Err(Error::NoSuchImage(id.to_string()));
        }
        let children = self.children(id)?;
        if !children.is_empty() {
            return Err(Error::HasChildren {
                id: id.to_string(),
                children: children.into_iter().map(|c| c.id).collect(),
            });
        }
        let from = self.image_dir(id);
        let trash = self
            .staging_root()
            .join(format!("{id}-{}.deleted", random_suffix()));
        tracing::debug!(id, "deleting image");
        match fs::rename(&from, &trash) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoSuchImage(id.to_string()))
            }
            Err(err) => {
                return Err(io_err(format!(
                    "rename {} to {}",
                    from.display(),
                    trash.display()
                ))(err))
            }
        }
        fsync_dir(&self.root)?;
        drop(store);
        remove_tree(&trash)
    }
}
