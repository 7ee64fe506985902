//! `dock save`: images of the graph into one tar in Docker 25+'s layout.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use graph::{Graph, Image};
use serde::Serialize;
use serde_json::json;
use tagstore::TagStore;

use super::{
    hex_of, short, ArchiveError, Result, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, INDEX_JSON,
    MANIFEST_JSON, OCI_LAYOUT, OCI_LAYOUT_CONTENT, PROGRESS_STEP, REPOSITORIES,
};
use crate::config::RegistryConfig;
use crate::digest::sha256_digest;
use crate::media;

/// An image to save and the names (`REPO:TAG`) it goes under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveImage {
    /// The graph entry (hex id).
    pub id: String,
    pub repo_tags: Vec<String>,
}

/// A layer being written: `layer` is its short diff ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveEvent {
    pub layer: String,
    pub current: u64,
    pub total: u64,
}

/// The images `names` name, as `docker save` reads them: `REPO:TAG` that tag, a bare `REPO`
/// every tag of the repository (when it has tags), `REPO@DIGEST` by the recorded repo
/// digests, an id or unique id prefix the image without a name. Each image once, its names
/// in the order given.
pub fn resolve_names(
    config: &RegistryConfig,
    graph: &Graph,
    tags: &TagStore,
    names: &[String],
) -> Result<Vec<SaveImage>> {
    let repositories = tags.repositories()?;
    let mut out: Vec<SaveImage> = Vec::new();
    let mut add = |id: String, tag: Option<String>| {
        let i = match out.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                out.push(SaveImage {
                    id,
                    repo_tags: Vec::new(),
                });
                out.len() - 1
            }
        };
        if let Some(tag) = tag {
            if !out[i].repo_tags.contains(&tag) {
                out[i].repo_tags.push(tag);
            }
        }
    };
    for name in names {
        let name = super::familiar(name);
        if !name.contains('@') {
            let (repo, tag) = tagstore::parse_reference(name);
            match tag {
                None => {
                    if let Some(all) = repositories.get(&repo).filter(|t| !t.is_empty()) {
                        for (tag, id) in all {
                            add(id.clone(), Some(format!("{repo}:{tag}")));
                        }
                        continue;
                    }
                }
                Some(tag) => {
                    if let Some(id) = repositories.get(&repo).and_then(|t| t.get(&tag)) {
                        add(id.clone(), Some(format!("{repo}:{tag}")));
                        continue;
                    }
                }
            }
        }
        let image = crate::store::lookup(config, graph, tags, name).map_err(|e| match e {
            crate::store::Error::Graph(graph::Error::Ambiguous { .. }) => ArchiveError::Invalid {
                what: format!("image name {name}"),
                reason: e.to_string(),
            },
            _ => ArchiveError::NoSuchImage {
                name: name.to_string(),
            },
        })?;
        add(image.id, None);
    }
    Ok(out)
}

/// One image as it goes into the archive.
struct Item {
    /// hex of the config digest: the image ID
    id: String,
    config: Vec<u8>,
    manifest: Vec<u8>,
    repo_tags: Vec<String>,
    /// (layer entry, diff ID, tar size), base first
    layers: Vec<(String, String, u64)>,
    mtime: u64,
}

#[derive(Serialize)]
struct ManifestItem<'a> {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: &'a [String],
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", hex_of(digest))
}

/// Everything about `image` but the layer bytes: its config (synthesized for images that
/// have none, as for a push), diff IDs, tar sizes and OCI manifest.
fn item(graph: &Graph, image: &SaveImage) -> Result<Item> {
    let mut history = graph.history(&image.id)?;
    history.reverse();
    let entries: Vec<&Image> = history.iter().filter(|i| !i.layerless).collect();
    let mut layers = Vec::with_capacity(entries.len());
    let mut diff_ids = Vec::with_capacity(entries.len());
    for entry in entries {
        let diff_id = graph.diff_id(&entry.id)?;
        let size = graph.layer_tar_size(&entry.id)?;
        diff_ids.push(diff_id.clone());
        layers.push((entry.id.clone(), diff_id, size));
    }
    let config = crate::push_image::image_config(graph, &image.id, &history, &diff_ids).map_err(
        |source| ArchiveError::Config {
            id: image.id.clone(),
            source: Box::new(source),
        },
    )?;
    let config_digest = sha256_digest(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": media::OCI_CONFIG,
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers.iter().map(|(_, diff_id, size)| json!({
            "mediaType": media::OCI_LAYER,
            "digest": diff_id,
            "size": size,
        })).collect::<Vec<_>>(),
    });
    let created = history
        .last()
        .map(|i| i.created.timestamp())
        .unwrap_or_default();
    Ok(Item {
        id: hex_of(&config_digest).to_string(),
        manifest: serde_json::to_vec(&manifest).expect("JSON values serialize"),
        config,
        repo_tags: image.repo_tags.clone(),
        layers,
        mtime: u64::try_from(created).unwrap_or(0),
    })
}

/// Writes `images` as one archive to `out`. Everything is checked (configs, diff IDs, tar
/// sizes) before the first byte goes out; a layer that no longer gives its tar (changed on
/// disk) is an error and the archive is cut short.
pub fn save(
    graph: &Graph,
    images: &[SaveImage],
    out: impl Write,
    progress: &mut dyn FnMut(SaveEvent),
) -> Result<()> {
    let mut items: Vec<Item> = Vec::new();
    for image in images {
        let item = item(graph, image)?;
        match items.iter_mut().find(|i| i.id == item.id) {
            Some(same) => {
                for tag in item.repo_tags {
                    if !same.repo_tags.contains(&tag) {
                        same.repo_tags.push(tag);
                    }
                }
            }
            None => items.push(item),
        }
    }

    let manifest: Vec<ManifestItem> = items
        .iter()
        .map(|i| ManifestItem {
            config: blob_path(&i.id),
            repo_tags: &i.repo_tags,
            layers: i.layers.iter().map(|(_, d, _)| blob_path(d)).collect(),
        })
        .collect();
    let mut manifest_json = serde_json::to_vec(&manifest).expect("JSON values serialize");
    manifest_json.push(b'\n');

    let mut descriptors = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in &items {
        let descriptor = |annotations: Option<serde_json::Value>| {
            let mut d = json!({
                "mediaType": media::OCI_MANIFEST,
                "digest": sha256_digest(&item.manifest),
                "size": item.manifest.len(),
            });
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            d
        };
        if item.repo_tags.is_empty() {
            descriptors.push(descriptor(None));
        }
        for name in &item.repo_tags {
            let (repo, tag) = tagstore::parse_reference(name);
            let tag = tag.unwrap_or_else(|| "latest".to_string());
            descriptors.push(descriptor(Some(json!({
                ANNOTATION_IMAGE_NAME: full_name(&repo, &tag),
                ANNOTATION_REF_NAME: tag,
            }))));
            if let Some((_, top, _)) = item.layers.last() {
                repositories
                    .entry(repo)
                    .or_default()
                    .insert(tag, hex_of(top).to_string());
            }
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": descriptors,
    });

    let mut tar = TarWriter {
        out,
        mtime: items.iter().map(|i| i.mtime).max().unwrap_or(0),
    };
    tar.file(MANIFEST_JSON, &manifest_json)?;
    tar.file(
        INDEX_JSON,
        &serde_json::to_vec(&index).expect("JSON values serialize"),
    )?;
    tar.file(OCI_LAYOUT, OCI_LAYOUT_CONTENT.as_bytes())?;
    if !repositories.is_empty() {
        let mut bytes = serde_json::to_vec(&repositories).expect("JSON values serialize");
        bytes.push(b'\n');
        tar.file(REPOSITORIES, &bytes)?;
    }
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    let mut written = HashSet::new();
    for item in &items {
        if written.insert(item.id.clone()) {
            tar.mtime = item.mtime;
            tar.file(&blob_path(&item.id), &item.config)?;
        }
        let digest = sha256_digest(&item.manifest);
        if written.insert(hex_of(&digest).to_string()) {
            tar.file(&blob_path(&digest), &item.manifest)?;
        }
    }
    for item in &items {
        tar.mtime = item.mtime;
        for (entry, diff_id, size) in &item.layers {
            if !written.insert(hex_of(diff_id).to_string()) {
                continue;
            }
            tar.header(&blob_path(diff_id), *size, tar::EntryType::Regular, 0o644)?;
            let mut counted = Counted {
                out: &mut tar.out,
                done: 0,
                reported: 0,
                total: *size,
                layer: short(diff_id),
                progress: &mut *progress,
            };
            graph.layer_tar(entry, &mut counted)?;
            let done = counted.done;
            if done != *size {
                return Err(ArchiveError::LayerSize {
                    id: entry.clone(),
                    expected: *size,
                    actual: done,
                });
            }
            tar.pad(*size)?;
        }
    }
    tar.finish()
}

/// `busybox`, `latest` -> `docker.io/library/busybox:latest`, as Docker annotates an index;
/// a name with a registry stays as it is.
fn full_name(repo: &str, tag: &str) -> String {
    let first = repo.split('/').next().unwrap_or_default();
    let has_host =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        format!("{repo}:{tag}")
    } else if repo.contains('/') {
        format!("docker.io/{repo}:{tag}")
    } else {
        format!("docker.io/library/{repo}:{tag}")
    }
}

/// A tar written entry by entry: GNU headers (sizes past 8 GiB work), root-owned entries.
struct TarWriter<W> {
    out: W,
    mtime: u64,
}

impl<W: Write> TarWriter<W> {
    fn header(&mut self, path: &str, size: u64, kind: tar::EntryType, mode: u32) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header
            .set_path(path)
            .map_err(|source| ArchiveError::Write { source })?;
        header.set_size(size);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        header.set_entry_type(kind);
        header.set_cksum();
        self.write(header.as_bytes())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|source| ArchiveError::Write { source })
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rest = (512 - size % 512) % 512;
        self.write(&[0u8; 512][..rest as usize])
    }

    fn file(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.header(path, data.len() as u64, tar::EntryType::Regular, 0o644)?;
        self.write(data)?;
        self.pad(data.len() as u64)
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        self.header(path, 0, tar::EntryType::Directory, 0o755)
    }

    fn finish(mut self) -> Result<()> {
        self.write(&[0u8; 1024])?;
        self.out
            .flush()
            .map_err(|source| ArchiveError::Write { source })
    }
}

/// Counts a layer's bytes on their way out and reports progress.
struct Counted<'a, W> {
    out: W,
    done: u64,
    reported: u64,
    total: u64,
    layer: String,
    progress: &'a mut dyn FnMut(SaveEvent),
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= PROGRESS_STEP || (n > 0 && self.done == self.total) {
            self.reported = self.done;
            (self.progress)(SaveEvent {
                layer: self.layer.clone(),
                current: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
