//! `dock load`: an image archive (Docker 25+, Docker 20.10 or OCI layout) into the graph.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek};

use chrono::{DateTime, Utc};
use graph::{Graph, Image};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tagstore::TagStore;

use super::{
    familiar, hex_of, io_err, is_sha256_digest, short, ArchiveError, Result, ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME, INDEX_JSON, JSON_LIMIT, MANIFEST_JSON, MEMORY_BUDGET, PROGRESS_STEP,
    SMALL_ENTRY,
};
use crate::digest::{chain_ids, sha256_digest, HashingReader};
use crate::media;
use crate::platform::Platform;

/// A layer being registered: `layer` is its short diff ID, `total` the bytes of its blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadEvent {
    Loading {
        layer: String,
        current: u64,
        total: u64,
    },
}

/// An image the archive held, now in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// hex of the config digest
    pub id: String,
    /// `REPO:TAG` names it was tagged with
    pub names: Vec<String>,
    /// names that named another image before: (name, that image's id)
    pub replaced: Vec<(String, String)>,
}

/// Docker's lines after a load: a name that moved, then each name, or the ID of an image
/// without one.
pub fn messages(loaded: &[Loaded]) -> Vec<String> {
    let mut lines = Vec::new();
    for image in loaded {
        for (name, old) in &image.replaced {
            lines.push(format!(
                "The image {name} already exists, renaming the old one with ID sha256:{old} to empty string"
            ));
        }
        for name in &image.names {
            lines.push(format!("Loaded image: {name}"));
        }
        if image.names.is_empty() {
            lines.push(format!("Loaded image ID: sha256:{}", image.id));
        }
    }
    lines
}

/// What an archive entry held, as far as the load needs it.
enum Content {
    Memory(Vec<u8>),
    /// An unnamed temporary file in the graph directory.
    Spooled(File, u64),
    /// Read while it streamed by (registered, or its layer was in the store already).
    Consumed {
        digest: String,
        size: u64,
    },
    /// A symbolic (`symbolic`) or hard link, `target` as the entry wrote it.
    Link {
        target: String,
        symbolic: bool,
    },
    /// Directories, devices, fifos: nothing a manifest may name.
    Other,
}

struct PlanLayer {
    path: String,
    /// From the blob's name or descriptor; `None` for `<id>/layer.tar`.
    blob_digest: Option<String>,
    size: Option<u64>,
    diff_id: String,
    /// hex chain IDs: the graph entry and its parent
    chain: String,
    parent: Option<String>,
}

struct PlanImage {
    id: String,
    config: Vec<u8>,
    created: DateTime<Utc>,
    names: Vec<String>,
    layers: Vec<PlanLayer>,
}

struct Loader<'a> {
    graph: &'a Graph,
    entries: HashMap<String, Content>,
    memory: u64,
    plan: Option<Vec<PlanImage>>,
    /// Entries this load registered, removed again should it fail.
    created: Vec<String>,
    progress: &'a mut dyn FnMut(LoadEvent),
}

/// Loads every image of the archive `input` (any compression) and tags it. On any error
/// nothing of the archive stays in the store.
pub fn load(
    graph: &Graph,
    tags: &TagStore,
    input: impl Read,
    progress: &mut dyn FnMut(LoadEvent),
) -> Result<Vec<Loaded>> {
    let mut loader = Loader {
        graph,
        entries: HashMap::new(),
        memory: 0,
        plan: None,
        created: Vec::new(),
        progress,
    };
    match loader.run(tags, input) {
        Ok(loaded) => Ok(loaded),
        Err(e) => {
            for id in loader.created.iter().rev() {
                if let Err(err) = graph.delete(id) {
                    tracing::warn!(%id, %err, "could not remove what a failed load registered");
                }
            }
            Err(e)
        }
    }
}

/// The archive path an entry or a manifest names, made relative and checked: no `..`, no
/// absolute path, valid UTF-8.
fn clean_path(raw: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(raw).map_err(|_| ArchiveError::UnsafePath {
        path: String::from_utf8_lossy(raw).into_owned(),
        reason: "not UTF-8".to_string(),
    })?;
    let unsafe_path = |reason: &str| ArchiveError::UnsafePath {
        path: text.to_string(),
        reason: reason.to_string(),
    };
    if text.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_path("path leads outside the archive")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// `a/b/../c` -> `a/c`, lexically; `None` when `..` climbs above the archive's root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl Loader<'_> {
    fn run(&mut self, tags: &TagStore, input: impl Read) -> Result<Vec<Loaded>> {
        let stream = archive::decompressed(input)
            .map_err(|source| ArchiveError::Read { source })?
            .ok_or(ArchiveError::NotAnImageArchive)?;
        let mut tar = tar::Archive::new(stream);
        let entries = tar
            .entries()
            .map_err(|source| ArchiveError::Read { source })?;
        for entry in entries {
            let entry = entry.map_err(|source| ArchiveError::Read { source })?;
            self.entry(entry)?;
        }
        let plan = match self.plan.take() {
            Some(plan) => plan,
            None => self.make_plan()?.ok_or(ArchiveError::NotAnImageArchive)?,
        };
        self.finish(tags, plan)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let path = clean_path(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        if path.is_empty() {
            if kind.is_dir() {
                return Ok(()); // the archive's own root, `./`
            }
            return Err(ArchiveError::UnsafePath {
                path: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                reason: "empty path".to_string(),
            });
        }
        let content = if kind.is_file() {
            let size = entry.size();
            match self.layer_uses(&path) {
                Some(uses) if !uses.is_empty() => self.stream_layer(&path, &mut entry, size)?,
                _ => self.keep(&path, &mut entry, size)?,
            }
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(t.as_ref()).into_owned())
                .unwrap_or_default();
            Content::Link {
                target,
                symbolic: kind.is_symlink(),
            }
        } else {
            Content::Other
        };
        if matches!(content, Content::Other) && self.entries.contains_key(&path) {
            // A directory named twice (`./` and `.`) is harmless.
            return Ok(());
        }
        if self.entries.insert(path.clone(), content).is_some() {
            return Err(ArchiveError::Duplicate { path });
        }
        if self.plan.is_none() && self.entries.contains_key(MANIFEST_JSON) {
            // Docker's and dock's layout: manifest.json and the configs decide.
            self.plan = self.try_manifest_plan()?;
        }
        Ok(())
    }

    /// Where a regular entry of a path no known layer uses goes: memory when small, else
    /// an unnamed temporary file in the graph directory.
    fn keep(&mut self, path: &str, entry: &mut impl Read, size: u64) -> Result<Content> {
        if size <= SMALL_ENTRY && self.memory + size <= MEMORY_BUDGET {
            let mut bytes = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|source| ArchiveError::Read { source })?;
            check_length(path, size, bytes.len() as u64)?;
            self.memory += size;
            return Ok(Content::Memory(bytes));
        }
        let mut file = tempfile::tempfile_in(self.graph.root()).map_err(io_err(format!(
            "create a temporary file in {}",
            self.graph.root().display()
        )))?;
        let copied = io::copy(entry, &mut file).map_err(|source| ArchiveError::Read { source })?;
        check_length(path, size, copied)?;
        Ok(Content::Spooled(file, size))
    }

    /// The layers of the known plan stored at `path`: `None` while there is no plan.
    fn layer_uses(&self, path: &str) -> Option<Vec<(usize, usize)>> {
        let plan = self.plan.as_ref()?;
        let mut uses = Vec::new();
        for (i, image) in plan.iter().enumerate() {
            for (j, layer) in image.layers.iter().enumerate() {
                if layer.path == path {
                    uses.push((i, j));
                }
            }
        }
        Some(uses)
    }

    fn is_stored(&self, id: &str) -> bool {
        self.graph.exists(id)
    }

    /// A layer blob whose images are known as it arrives: registered straight from the
    /// stream when exactly one graph entry needs it and its parent is there; only hashed
    /// when its entries exist; kept for later otherwise.
    fn stream_layer(&mut self, path: &str, entry: &mut impl Read, size: u64) -> Result<Content> {
        let plan = self.plan.as_ref().expect("a plan when layers are known");
        let uses = self.layer_uses(path).unwrap_or_default();
        let mut needed: Vec<&PlanLayer> = Vec::new();
        for (i, j) in uses {
            let layer = &plan[i].layers[j];
            if !self.is_stored(&layer.chain) && !needed.iter().any(|l| l.chain == layer.chain) {
                needed.push(layer);
            }
        }
        match needed.as_slice() {
            [] => {
                let mut hashing = HashingReader::new(entry);
                let n = io::copy(&mut hashing, &mut io::sink())
                    .map_err(|source| ArchiveError::Read { source })?;
                check_length(path, size, n)?;
                Ok(Content::Consumed {
                    digest: hashing.digest(),
                    size: n,
                })
            }
            [layer] if layer.parent.as_deref().is_none_or(|p| self.is_stored(p)) => {
                let (chain, parent, diff_id, blob) = (
                    layer.chain.clone(),
                    layer.parent.clone(),
                    layer.diff_id.clone(),
                    layer.blob_digest.clone(),
                );
                let (digest, n) =
                    self.register(path, entry, size, &chain, parent, &diff_id, blob.as_deref())?;
                Ok(Content::Consumed { digest, size: n })
            }
            _ => self.keep_large(path, entry, size),
        }
    }

    fn keep_large(&mut self, path: &str, entry: &mut impl Read, size: u64) -> Result<Content> {
        let mut file = tempfile::tempfile_in(self.graph.root()).map_err(io_err(format!(
            "create a temporary file in {}",
            self.graph.root().display()
        )))?;
        let copied = io::copy(entry, &mut file).map_err(|source| ArchiveError::Read { source })?;
        check_length(path, size, copied)?;
        Ok(Content::Spooled(file, size))
    }

    /// Registers graph entry `chain` from the blob `reader` (any compression); the blob's
    /// digest and size. The graph checks the diff ID before it commits; when the blob is
    /// named by that same digest (an uncompressed layer, as Docker and dock save them), that
    /// check is the blob's and the bytes are not hashed a second time.
    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        path: &str,
        reader: impl Read,
        size: u64,
        chain: &str,
        parent: Option<String>,
        diff_id: &str,
        blob_digest: Option<&str>,
    ) -> Result<(String, u64)> {
        let layer = short(diff_id);
        let progress = &mut *self.progress;
        let checked_by_graph = blob_digest == Some(diff_id);
        let mut blob = Blob {
            inner: Progress {
                path,
                inner: reader,
                done: 0,
                reported: 0,
                total: size,
                layer,
                progress,
            },
            hasher: (!checked_by_graph).then(Sha256::new),
            count: 0,
        };
        let image = Image {
            id: chain.to_string(),
            parent,
            created: Utc::now(),
            diff_id: Some(diff_id.to_string()),
            ..Image::default()
        };
        let mut verified = checked_by_graph;
        match self.graph.register(&mut blob, image) {
            Ok(_) => self.created.push(chain.to_string()),
            // Registered meanwhile by another load or pull: the same content by its chain ID.
            // Refused before a byte was read, the blob is hashed as it is drained below.
            Err(graph::Error::AlreadyExists(_)) => {
                if blob.count == 0 && blob.hasher.is_none() {
                    blob.hasher = Some(Sha256::new());
                    verified = false;
                }
            }
            Err(graph::Error::DiffIdMismatch {
                expected, actual, ..
            }) => {
                return Err(ArchiveError::DiffIdMismatch {
                    path: path.to_string(),
                    expected,
                    actual,
                })
            }
            Err(e) => return Err(e.into()),
        }
        // Whatever the tar reader left (padding after the end blocks) is part of the blob.
        io::copy(&mut blob, &mut io::sink()).map_err(|source| ArchiveError::Read { source })?;
        let n = blob.count;
        check_length(path, size, n)?;
        let digest = match blob.hasher {
            Some(hasher) if !verified => {
                format!("sha256:{}", crate::digest::hex(&hasher.finalize()))
            }
            _ => diff_id.to_string(),
        };
        Ok((digest, n))
    }

    /// The bytes of a small document (a manifest, config or index) at `path`, following
    /// links the layout allows.
    fn document(&self, what: &str, path: &str) -> Result<Vec<u8>> {
        let (path, content) = self.resolve(what, path)?;
        match content {
            Content::Memory(bytes) => Ok(bytes.clone()),
            Content::Spooled(file, size) => {
                if *size > JSON_LIMIT {
                    return Err(ArchiveError::Invalid {
                        what: format!("{what} {path}"),
                        reason: format!("{size} bytes is too large"),
                    });
                }
                let mut bytes = Vec::with_capacity(*size as usize);
                let mut file = file;
                file.rewind().map_err(io_err(format!("read {path}")))?;
                file.take(*size)
                    .read_to_end(&mut bytes)
                    .map_err(io_err(format!("read {path}")))?;
                Ok(bytes)
            }
            Content::Consumed { .. } => Err(ArchiveError::Invalid {
                what: format!("{what} {path}"),
                reason: "it is a layer".to_string(),
            }),
            Content::Link { .. } | Content::Other => Err(ArchiveError::NotRegular { path }),
        }
    }

    /// The content at `path`: in the OCI `blobs/` tree a link is refused; elsewhere (Docker
    /// 20.10 wrote a repeated layer as a relative symlink to the first) a link is followed
    /// when it stays inside the archive and ends at a regular entry.
    fn resolve(&self, what: &str, path: &str) -> Result<(String, &Content)> {
        let mut path = path.to_string();
        for _ in 0..8 {
            let content = self
                .entries
                .get(&path)
                .ok_or_else(|| ArchiveError::Missing {
                    what: what.to_string(),
                    path: path.clone(),
                })?;
            let Content::Link { target, symbolic } = content else {
                return Ok((path, content));
            };
            let link_err = |reason: &str| ArchiveError::Link {
                path: path.clone(),
                target: target.clone(),
                reason: reason.to_string(),
            };
            if path.starts_with("blobs/") {
                return Err(link_err("blobs must be regular files"));
            }
            let joined = if *symbolic {
                if target.starts_with('/') {
                    return Err(link_err("an absolute link leads outside the archive"));
                }
                match path.rsplit_once('/') {
                    Some((dir, _)) => format!("{dir}/{target}"),
                    None => target.clone(),
                }
            } else {
                target.clone()
            };
            path = normalize(&joined).ok_or_else(|| link_err("it leads outside the archive"))?;
        }
        Err(ArchiveError::Link {
            path: path.clone(),
            target: path,
            reason: "too many levels of links".to_string(),
        })
    }

    /// The plan from manifest.json once it and every config it names have arrived; `None`
    /// while one is still to come.
    fn try_manifest_plan(&self) -> Result<Option<Vec<PlanImage>>> {
        let manifest = self.manifest_items()?;
        for item in &manifest {
            let path = clean_path(item.config.as_bytes())?;
            if !matches!(self.entries.get(&path), Some(Content::Memory(_))) {
                return Ok(None);
            }
        }
        self.manifest_plan(manifest).map(Some)
    }

    fn manifest_items(&self) -> Result<Vec<ManifestItem>> {
        let bytes = self.document("manifest", MANIFEST_JSON)?;
        let items: Option<Vec<ManifestItem>> =
            serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Invalid {
                what: MANIFEST_JSON.to_string(),
                reason: e.to_string(),
            })?;
        items.ok_or_else(|| ArchiveError::Invalid {
            what: MANIFEST_JSON.to_string(),
            reason: "manifest cannot be null (but can be [])".to_string(),
        })
    }

    /// The plan once the whole archive was read: manifest.json when there is one (Docker
    /// reads only that), else the OCI layout's index.json.
    fn make_plan(&self) -> Result<Option<Vec<PlanImage>>> {
        if self.entries.contains_key(MANIFEST_JSON) {
            return self.manifest_plan(self.manifest_items()?).map(Some);
        }
        if self.entries.contains_key(INDEX_JSON) {
            return self.index_plan().map(Some);
        }
        Ok(None)
    }

    fn manifest_plan(&self, items: Vec<ManifestItem>) -> Result<Vec<PlanImage>> {
        let mut plan: Vec<PlanImage> = Vec::new();
        for item in items {
            let config_path = clean_path(item.config.as_bytes())?;
            let config = self.document("config", &config_path)?;
            let id = sha256_digest(&config);
            // `blobs/sha256/<hex>` (Docker 25+) and `<hex>.json` (Docker 20.10) name their digest.
            let named = config_path
                .strip_prefix("blobs/sha256/")
                .or_else(|| config_path.strip_suffix(".json"))
                .filter(|h| graph::is_full_id(h))
                .map(str::to_string);
            if let Some(named) = named {
                if named != hex_of(&id) {
                    return Err(ArchiveError::DigestMismatch {
                        path: config_path,
                        expected: format!("sha256:{named}"),
                        actual: id,
                    });
                }
            }
            let mut layers = Vec::new();
            for layer in &item.layers {
                let path = clean_path(layer.as_bytes())?;
                let blob_digest = path
                    .strip_prefix("blobs/sha256/")
                    .filter(|h| graph::is_full_id(h))
                    .map(|h| format!("sha256:{h}"));
                layers.push((path, blob_digest, None));
            }
            let mut names = Vec::new();
            for name in item.repo_tags.unwrap_or_default() {
                names.push(checked_name(&name, false)?);
            }
            add_image(&mut plan, &config_path, config, layers, names)?;
        }
        Ok(plan)
    }

    fn index_plan(&self) -> Result<Vec<PlanImage>> {
        let index = parse_json(INDEX_JSON, &self.document("index", INDEX_JSON)?)?;
        let mut plan: Vec<PlanImage> = Vec::new();
        for descriptor in array(INDEX_JSON, &index["manifests"])? {
            let manifest_path = self.manifest_of(descriptor, 0)?;
            let manifest_bytes = self.document("manifest", &manifest_path)?;
            let manifest = parse_json(&manifest_path, &manifest_bytes)?;
            let config_desc = &manifest["config"];
            let config_path = self.blob(&manifest_path, config_desc)?;
            let config = self.document("config", &config_path)?;
            let mut layers = Vec::new();
            for layer in array(&manifest_path, &manifest["layers"])? {
                let media_type = layer["mediaType"].as_str().unwrap_or_default();
                if crate::digest::LayerCompression::from_media_type(media_type).is_err() {
                    return Err(ArchiveError::MediaType {
                        path: manifest_path.clone(),
                        media_type: media_type.to_string(),
                    });
                }
                let path = blob_path(&manifest_path, layer)?;
                let digest = layer["digest"].as_str().map(str::to_string);
                layers.push((path, digest, layer["size"].as_u64()));
            }
            let annotations = &descriptor["annotations"];
            let name = annotations[ANNOTATION_IMAGE_NAME]
                .as_str()
                .map(|n| checked_name(n, true))
                .or_else(|| {
                    annotations[ANNOTATION_REF_NAME]
                        .as_str()
                        .filter(|n| n.contains(':') || n.contains('/'))
                        .map(|n| checked_name(n, true))
                })
                .transpose()?;
            add_image(
                &mut plan,
                &config_path,
                config,
                layers,
                name.into_iter().collect(),
            )?;
        }
        Ok(plan)
    }

    /// The path of the image manifest a descriptor of an index names; an index in turn is
    /// followed to the host's platform.
    fn manifest_of(&self, descriptor: &Value, depth: usize) -> Result<String> {
        let path = self.blob(INDEX_JSON, descriptor)?;
        let media_type = descriptor["mediaType"].as_str().unwrap_or_default();
        if media::is_image_manifest(media_type) {
            return Ok(path);
        }
        if !media::is_index(media_type) || depth > 4 {
            return Err(ArchiveError::MediaType {
                path,
                media_type: media_type.to_string(),
            });
        }
        let index = parse_json(&path, &self.document("index", &path)?)?;
        let host = Platform::host();
        for entry in array(&path, &index["manifests"])? {
            let platform = &entry["platform"];
            if host.matches(
                platform["os"].as_str().unwrap_or_default(),
                platform["architecture"].as_str().unwrap_or_default(),
                platform["variant"].as_str(),
            ) {
                return self.manifest_of(entry, depth + 1);
            }
        }
        Err(ArchiveError::Platform {
            path,
            platform: format!("{}/{}", host.os, host.architecture),
        })
    }

    /// The blob a descriptor names, its digest and size checked against the content.
    fn blob(&self, referrer: &str, descriptor: &Value) -> Result<String> {
        let path = blob_path(referrer, descriptor)?;
        let bytes = self.document("blob", &path)?;
        let expected = descriptor["digest"].as_str().unwrap_or_default();
        let actual = sha256_digest(&bytes);
        if actual != expected {
            return Err(ArchiveError::DigestMismatch {
                path,
                expected: expected.to_string(),
                actual,
            });
        }
        if let Some(size) = descriptor["size"].as_u64() {
            if size != bytes.len() as u64 {
                return Err(ArchiveError::SizeMismatch {
                    path,
                    expected: size,
                    actual: bytes.len() as u64,
                });
            }
        }
        Ok(path)
    }

    /// Every layer checked and registered (base first), then the configs, then the tags.
    fn finish(&mut self, tags: &TagStore, plan: Vec<PlanImage>) -> Result<Vec<Loaded>> {
        // Nothing new is registered before every blob is known to be there and readable.
        for image in &plan {
            for layer in &image.layers {
                let (path, content) = self.resolve("layer", &layer.path)?;
                match content {
                    Content::Memory(_) | Content::Spooled(..) => {}
                    Content::Consumed { digest, size } => check_blob(&path, layer, digest, *size)?,
                    Content::Link { .. } | Content::Other => {
                        return Err(ArchiveError::NotRegular { path })
                    }
                }
            }
        }
        // Blobs of layers the store has: still checked, so a broken archive is refused
        // whatever the store holds.
        for image in &plan {
            for layer in &image.layers {
                if !self.is_stored(&layer.chain) {
                    continue;
                }
                let (path, content) = self.resolve("layer", &layer.path)?;
                let (digest, size) = match content {
                    Content::Memory(bytes) => (sha256_digest(bytes), bytes.len() as u64),
                    Content::Spooled(file, size) => {
                        let mut file = file;
                        file.rewind().map_err(io_err(format!("read {path}")))?;
                        let mut hashing = HashingReader::new(file.take(*size));
                        io::copy(&mut hashing, &mut io::sink())
                            .map_err(io_err(format!("read {path}")))?;
                        (hashing.digest(), hashing.count())
                    }
                    _ => continue,
                };
                check_blob(&path, layer, &digest, size)?;
            }
        }
        for image in &plan {
            for layer in &image.layers {
                if self.is_stored(&layer.chain) {
                    continue;
                }
                let (path, content) = self.resolve("layer", &layer.path)?;
                let reader: Box<dyn Read> = match content {
                    Content::Memory(bytes) => Box::new(Cursor::new(bytes.clone())),
                    Content::Spooled(file, size) => {
                        let mut file = file.try_clone().map_err(io_err(format!("read {path}")))?;
                        file.rewind().map_err(io_err(format!("read {path}")))?;
                        Box::new(file.take(*size))
                    }
                    _ => {
                        return Err(ArchiveError::Invalid {
                            what: format!("layer {path}"),
                            reason: "its entry was read before it was needed".to_string(),
                        })
                    }
                };
                let size = match content {
                    Content::Memory(bytes) => bytes.len() as u64,
                    Content::Spooled(_, size) => *size,
                    _ => 0,
                };
                let (digest, n) = self.register(
                    &path,
                    reader,
                    size,
                    &layer.chain,
                    layer.parent.clone(),
                    &layer.diff_id,
                    layer.blob_digest.as_deref(),
                )?;
                check_blob(&path, layer, &digest, n)?;
            }
        }
        let mut loaded = Vec::new();
        for image in &plan {
            let entry = Image {
                id: image.id.clone(),
                parent: image.layers.last().map(|l| l.chain.clone()),
                created: image.created,
                layerless: true,
                ..Image::default()
            };
            match self.graph.register_config(entry, &image.config) {
                Ok(_) => self.created.push(image.id.clone()),
                Err(graph::Error::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let repositories = tags.repositories()?;
        for image in &plan {
            let mut replaced = Vec::new();
            for name in &image.names {
                let (repo, tag) = tagstore::parse_reference(name);
                let tag = tag.unwrap_or_else(|| "latest".to_string());
                if let Some(old) = repositories.get(&repo).and_then(|t| t.get(&tag)) {
                    if *old != image.id {
                        replaced.push((name.clone(), old.clone()));
                    }
                }
                tags.set(self.graph, &repo, &tag, &image.id, true)?;
            }
            loaded.push(Loaded {
                id: image.id.clone(),
                names: image.names.clone(),
                replaced,
            });
        }
        // Loaded: nothing is rolled back any more.
        self.created.clear();
        Ok(loaded)
    }
}

#[derive(serde::Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn check_length(path: &str, expected: u64, actual: u64) -> Result<()> {
    if expected != actual {
        return Err(ArchiveError::Truncated {
            path: path.to_string(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// A layer blob's digest and size against what its name or descriptor says.
fn check_blob(path: &str, layer: &PlanLayer, digest: &str, size: u64) -> Result<()> {
    if let Some(expected) = &layer.blob_digest {
        if expected != digest {
            return Err(ArchiveError::DigestMismatch {
                path: path.to_string(),
                expected: expected.clone(),
                actual: digest.to_string(),
            });
        }
    }
    if let Some(expected) = layer.size {
        if expected != size {
            return Err(ArchiveError::SizeMismatch {
                path: path.to_string(),
                expected,
                actual: size,
            });
        }
    }
    Ok(())
}

/// `blobs/sha256/<hex>` of a descriptor's digest; anything else is refused.
fn blob_path(referrer: &str, descriptor: &Value) -> Result<String> {
    let digest = descriptor["digest"].as_str().unwrap_or_default();
    if !is_sha256_digest(digest) {
        return Err(ArchiveError::Invalid {
            what: format!("descriptor in {referrer}"),
            reason: format!("digest {digest:?} is not sha256:<64 hex>"),
        });
    }
    Ok(format!("blobs/sha256/{}", hex_of(digest)))
}

fn parse_json(what: &str, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| ArchiveError::Invalid {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

fn array<'v>(what: &str, value: &'v Value) -> Result<&'v Vec<Value>> {
    value.as_array().ok_or_else(|| ArchiveError::Invalid {
        what: what.to_string(),
        reason: "a list is missing".to_string(),
    })
}

/// `NAME:TAG` as the tag store keeps it (Docker Hub's prefix dropped); `default_tag` adds
/// `latest` to a name without one (containerd names), else a tag is required (manifest.json).
fn checked_name(name: &str, default_tag: bool) -> Result<String> {
    let bad = |reason: String| ArchiveError::Name {
        name: name.to_string(),
        reason,
    };
    let familiar_name = familiar(name);
    let familiar_name = familiar_name.split('@').next().unwrap_or_default();
    let (repo, tag) = tagstore::parse_reference(familiar_name);
    let tag = match tag {
        Some(tag) => tag,
        None if default_tag => "latest".to_string(),
        None => return Err(bad("no tag".to_string())),
    };
    tagstore::validate_repository(&repo).map_err(|e| bad(e.to_string()))?;
    tagstore::validate_tag(&tag).map_err(|e| bad(e.to_string()))?;
    Ok(format!("{repo}:{tag}"))
}

/// Adds (or merges by image ID) an image: config checked (os, diff IDs, one per layer),
/// chain IDs computed. Layers are `(path, blob digest, size)`.
fn add_image(
    plan: &mut Vec<PlanImage>,
    config_path: &str,
    config: Vec<u8>,
    layers: Vec<(String, Option<String>, Option<u64>)>,
    names: Vec<String>,
) -> Result<()> {
    let id = hex_of(&sha256_digest(&config)).to_string();
    if let Some(same) = plan.iter_mut().find(|p| p.id == id) {
        for name in names {
            if !same.names.contains(&name) {
                same.names.push(name);
            }
        }
        return Ok(());
    }
    let value = parse_json(config_path, &config)?;
    if let Some(os) = value["os"].as_str() {
        if !os.is_empty() && os != "linux" {
            return Err(ArchiveError::Os { os: os.to_string() });
        }
    }
    let mut diff_ids = Vec::new();
    for d in value["rootfs"]["diff_ids"].as_array().into_iter().flatten() {
        match d.as_str() {
            Some(d) if is_sha256_digest(d) => diff_ids.push(d.to_string()),
            _ => {
                return Err(ArchiveError::Invalid {
                    what: format!("image config {config_path}"),
                    reason: format!("diff id {d} is not sha256:<64 hex>"),
                })
            }
        }
    }
    if diff_ids.len() != layers.len() {
        return Err(ArchiveError::LayerCount {
            config: config_path.to_string(),
            layers: layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let chains: Vec<String> = chain_ids(&diff_ids)
        .iter()
        .map(|c| hex_of(c).to_string())
        .collect();
    let created = value["created"]
        .as_str()
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    let layers = layers
        .into_iter()
        .enumerate()
        .map(|(i, (path, blob_digest, size))| PlanLayer {
            path,
            blob_digest,
            size,
            diff_id: diff_ids[i].clone(),
            chain: chains[i].clone(),
            parent: i.checked_sub(1).map(|p| chains[p].clone()),
        })
        .collect();
    plan.push(PlanImage {
        id,
        config,
        created,
        names,
        layers,
    });
    Ok(())
}

/// A blob on its way into the graph: counted, and hashed unless the graph's diff ID check
/// covers it.
struct Blob<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
}

impl<R: Read> Read for Blob<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// A layer's blob on its way into the graph, reporting how far it got.
struct Progress<'a, R> {
    path: &'a str,
    inner: R,
    done: u64,
    reported: u64,
    total: u64,
    layer: String,
    progress: &'a mut dyn FnMut(LoadEvent),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.done < self.total {
            // The layer's reader should not see a plain end: the archive was cut short.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the image archive is truncated: {} ends after {} of its {} bytes",
                    self.path, self.done, self.total
                ),
            ));
        }
        self.done += n as u64;
        if self.done - self.reported >= PROGRESS_STEP || (n > 0 && self.done == self.total) {
            self.reported = self.done;
            (self.progress)(LoadEvent::Loading {
                layer: self.layer.clone(),
                current: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

#[cfg(test)]
pub(super) fn clean_path_for_tests(raw: &[u8]) -> Result<String> {
    clean_path(raw)
}

#[cfg(test)]
pub(super) fn normalize_for_tests(path: &str) -> Option<String> {
    normalize(path)
}
