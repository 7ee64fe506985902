//! Pushing an image of the graph: its layers (base first), its config and a manifest.
//!
//! Each layer goes by the cheapest way there is:
//! 1. a blob recorded for it on the same registry is in the repository already (HEAD), or is
//!    mounted from the repository it was recorded in;
//! 2. otherwise its tar, exactly the bytes it was registered from (`Graph::layer_tar`, checked
//!    against its diff ID), is gzip'ed into a temporary file and uploaded unless the repository
//!    has that blob. Pulled, imported and committed layers alike: no other registry is needed.
//!
//! Every blob pushed is recorded as a source of its layer, so the next push finds it. The
//! config is the image's raw config, byte for byte; an image without one (imported, legacy)
//! gets one synthesized from its layers' diff IDs. The manifest is Docker's schema 2 (an OCI
//! manifest when a layer is zstd, which schema 2 cannot name).

use std::io::{self, BufWriter, Read, Seek};

use graph::{BlobSource, Graph, Image};
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::Client;
use crate::digest::{sha256_digest, HashingWriter};
use crate::error::Error;
use crate::media;
use crate::platform::Platform;
use crate::push::PushedBlob;
use crate::reference::Reference;

/// Progress is reported after each this many bytes of an upload.
const PROGRESS_STEP: u64 = 512 << 10;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] Error),

    #[error("image store: {0}")]
    Graph(#[from] graph::Error),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot push {reference}: name a tag, not a digest")]
    DigestReference { reference: String },

    #[error("invalid image config of {id}: {reason}")]
    Config { id: String, reason: String },
}

pub type PushResult<T> = std::result::Result<T, PushError>;

/// What happened to one layer, as Docker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    Preparing,
    Pushing {
        current: u64,
        total: u64,
    },
    Pushed,
    /// "Layer already exists"
    Exists,
    /// "Mounted from REPOSITORY"
    Mounted {
        from: String,
    },
}

/// A layer's progress; `id` is the short diff ID Docker shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEvent {
    pub id: String,
    pub status: LayerStatus,
}

/// The pushed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub tag: String,
    pub digest: String,
    pub size: u64,
    /// `host/repository@digest`, recorded on the image
    pub repo_digest: String,
}

/// The blob a layer went out as.
#[derive(Debug, Clone)]
struct LayerBlob {
    digest: String,
    media_type: String,
    size: u64,
}

/// Pushes image `image_id` of `graph` to `target` (a tag; `latest` when it names none).
pub fn push_image(
    client: &Client,
    graph: &Graph,
    image_id: &str,
    target: &Reference,
    progress: &mut dyn FnMut(LayerEvent),
) -> PushResult<Pushed> {
    if target.digest.is_some() && target.tag.is_none() {
        return Err(PushError::DigestReference {
            reference: target.to_string(),
        });
    }
    let tag = target.tag.clone().unwrap_or_else(|| "latest".to_string());
    let target = Reference {
        tag: Some(tag.clone()),
        digest: None,
        ..target.clone()
    };
    let mut history = graph.history(image_id)?;
    history.reverse();
    let layers: Vec<&Image> = history.iter().filter(|i| !i.layerless).collect();
    let mut diff_ids = Vec::with_capacity(layers.len());
    for layer in &layers {
        let diff_id = graph.diff_id(&layer.id)?;
        progress(LayerEvent {
            id: short(&diff_id),
            status: LayerStatus::Preparing,
        });
        diff_ids.push(diff_id);
    }
    let mut blobs = Vec::with_capacity(layers.len());
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        let id = short(diff_id);
        let mut report = |status| {
            progress(LayerEvent {
                id: id.clone(),
                status,
            })
        };
        let (blob, status) = push_layer(client, graph, layer, &target, &mut report)?;
        record_source(graph, &layer.id, &target, &blob)?;
        report(status);
        blobs.push(blob);
    }

    let config = image_config(graph, image_id, &history, &diff_ids)?;
    let config_digest = sha256_digest(&config);
    client.push_blob(&target, &config_digest, config.len() as u64, None, || {
        Ok(&config[..])
    })?;

    let oci = blobs.iter().any(|b| b.media_type == media::OCI_LAYER_ZSTD);
    let manifest = manifest_bytes(oci, &config_digest, config.len() as u64, &blobs);
    let media_type = if oci {
        media::OCI_MANIFEST
    } else {
        media::DOCKER_MANIFEST
    };
    let digest = client.put_manifest(&target, media_type, &manifest)?;
    let name = target.name();
    let repo_digest = format!("{name}@{digest}");
    let prefix = format!("{name}@");
    graph.update_meta(image_id, |meta| {
        meta.repo_digests.retain(|d| !d.starts_with(&prefix));
        meta.repo_digests.push(repo_digest.clone());
    })?;
    Ok(Pushed {
        tag,
        digest,
        size: manifest.len() as u64,
        repo_digest,
    })
}

/// `sha256:0123456789abcdef…` -> `0123456789ab`.
fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex[..hex.len().min(12)].to_string()
}

fn push_layer(
    client: &Client,
    graph: &Graph,
    layer: &Image,
    target: &Reference,
    report: &mut dyn FnMut(LayerStatus),
) -> PushResult<(LayerBlob, LayerStatus)> {
    let sources = graph.meta(&layer.id)?.sources;
    let here: Vec<&BlobSource> = sources
        .iter()
        .filter(|s| s.registry == target.registry)
        .collect();
    let blob_of = |s: &BlobSource| LayerBlob {
        digest: s.digest.clone(),
        media_type: s.media_type.clone(),
        size: s.size,
    };

    // 1. On this registry: in the repository already, or mounted from where it is.
    let mut checked = Vec::new();
    for s in &here {
        if !checked.contains(&&s.digest) {
            checked.push(&s.digest);
            if client.blob_exists(target, &s.digest)? {
                return Ok((blob_of(s), LayerStatus::Exists));
            }
        }
    }
    for s in here.iter().filter(|s| s.repository != target.repository) {
        match client.mount_blob(target, &s.digest, &s.repository) {
            Ok(crate::push::Mount::Mounted) => {
                return Ok((
                    blob_of(s),
                    LayerStatus::Mounted {
                        from: s.repository.clone(),
                    },
                ))
            }
            // The registry would not mount it (or not from there): it is uploaded below. An
            // upload session it opened instead is left to the registry's own cleanup.
            Ok(crate::push::Mount::Upload(_)) => {}
            Err(e @ Error::Unauthorized { .. }) => return Err(e.into()),
            Err(e) => tracing::debug!(from = %s.repository, error = %e, "mount failed"),
        }
    }

    // 2. Anywhere else: the layer's own tar, exactly as it was registered, compressed anew.
    push_local_layer(client, graph, layer, target, report)
}

/// The layer's tar (`Graph::layer_tar`: the bytes its diff ID is the digest of), gzip'ed into
/// an unnamed temporary file in the store, then uploaded unless the repository has the blob.
fn push_local_layer(
    client: &Client,
    graph: &Graph,
    layer: &Image,
    target: &Reference,
    report: &mut dyn FnMut(LayerStatus),
) -> PushResult<(LayerBlob, LayerStatus)> {
    let io_err = |context: &str| {
        let context = format!("{context} for layer {}", layer.id);
        move |source| PushError::Io { context, source }
    };
    let file = tempfile::tempfile_in(graph.root()).map_err(io_err("create a temporary file"))?;
    let compressed = HashingWriter::new(BufWriter::new(file));
    let gzip = flate2::write::GzEncoder::new(compressed, flate2::Compression::default());
    let mut tar = HashingWriter::new(gzip);
    // Checked against the layer's diff ID by the graph: a layer changed on disk is an error.
    graph.layer_tar(&layer.id, &mut tar)?;
    let compressed = tar
        .into_inner()
        .finish()
        .map_err(io_err("compress the layer"))?;
    let digest = compressed.digest();
    let size = compressed.count();
    let mut file = compressed
        .into_inner()
        .into_inner()
        .map_err(|e| io_err("write the compressed layer")(e.into_error()))?;
    file.rewind()
        .map_err(io_err("rewind the compressed layer"))?;
    let pushed = client.push_blob(target, &digest, size, None, || {
        Ok(Progress::new(file, size, &mut *report))
    })?;
    let status = match pushed {
        PushedBlob::Exists => LayerStatus::Exists,
        _ => LayerStatus::Pushed,
    };
    Ok((
        LayerBlob {
            digest,
            media_type: media::DOCKER_LAYER_GZIP.to_string(),
            size,
        },
        status,
    ))
}

fn record_source(
    graph: &Graph,
    layer_id: &str,
    target: &Reference,
    blob: &LayerBlob,
) -> PushResult<()> {
    let source = BlobSource {
        registry: target.registry.clone(),
        repository: target.repository.clone(),
        digest: blob.digest.clone(),
        media_type: blob.media_type.clone(),
        size: blob.size,
    };
    graph.update_meta(layer_id, |meta| {
        if !meta.sources.contains(&source) {
            meta.sources.push(source);
        }
    })?;
    Ok(())
}

/// A reader that reports how much of `total` has passed.
struct Progress<'a, R> {
    inner: R,
    done: u64,
    reported: u64,
    total: u64,
    report: &'a mut dyn FnMut(LayerStatus),
}

impl<'a, R: Read> Progress<'a, R> {
    fn new(inner: R, total: u64, report: &'a mut dyn FnMut(LayerStatus)) -> Self {
        Progress {
            inner,
            done: 0,
            reported: 0,
            total,
            report,
        }
    }
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= PROGRESS_STEP || (n > 0 && self.done == self.total) {
            self.reported = self.done;
            (self.report)(LayerStatus::Pushing {
                current: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

/// The config an image goes out as (pushed, or saved by `dock save`): the image's own raw
/// bytes when their `rootfs.diff_ids` are the image's layers; otherwise (no config, or one
/// inherited from a base below newer layers) one synthesized over what there is, the same
/// bytes every time. `history` is [`Graph::history`] base first, `diff_ids` those of its
/// layers (the entries that are not layerless), base first.
pub fn image_config(
    graph: &Graph,
    image_id: &str,
    history: &[Image],
    diff_ids: &[String],
) -> PushResult<Vec<u8>> {
    let raw = graph.image_config(image_id)?;
    let base: Option<Value> = match &raw {
        Some(bytes) => Some(
            serde_json::from_slice(bytes).map_err(|e| PushError::Config {
                id: image_id.to_string(),
                reason: e.to_string(),
            })?,
        ),
        None => None,
    };
    if let (Some(bytes), Some(value)) = (&raw, &base) {
        if config_diff_ids(value) == diff_ids {
            return Ok(bytes.clone());
        }
    }
    Ok(synthesize_config(base, history, diff_ids))
}

fn config_diff_ids(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A config for `history` (base first): the base config's settings and history when it has
/// one, a history entry for each layer it does not cover, and rootfs over `diff_ids`.
fn synthesize_config(base: Option<Value>, history: &[Image], diff_ids: &[String]) -> Vec<u8> {
    let mut config = match base {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let covered = config_diff_ids(&Value::Object(config.clone()));
    let keep_history = diff_ids.starts_with(&covered);
    let mut entries: Vec<Value> = if keep_history {
        config
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let skip = if keep_history { covered.len() } else { 0 };
    for image in history.iter().filter(|i| !i.layerless).skip(skip) {
        let mut entry = serde_json::Map::new();
        entry.insert("created".into(), json!(rfc3339(image)));
        if !image.author.is_empty() {
            entry.insert("author".into(), json!(image.author));
        }
        if let Some(cmd) = image
            .container_config
            .as_ref()
            .and_then(|c| c.get("Cmd"))
            .and_then(Value::as_array)
        {
            let words: Vec<&str> = cmd.iter().filter_map(Value::as_str).collect();
            entry.insert("created_by".into(), json!(words.join(" ")));
        }
        if !image.comment.is_empty() {
            entry.insert("comment".into(), json!(image.comment));
        }
        entries.push(Value::Object(entry));
    }
    let platform = Platform::host();
    config
        .entry("architecture")
        .or_insert_with(|| json!(platform.architecture));
    if let Some(variant) = &platform.variant {
        config.entry("variant").or_insert_with(|| json!(variant));
    }
    config.entry("os").or_insert_with(|| json!("linux"));
    config.entry("config").or_insert_with(|| json!({}));
    if let Some(top) = history.last() {
        config.insert("created".into(), json!(rfc3339(top)));
    }
    config.insert("history".into(), Value::Array(entries));
    config.insert(
        "rootfs".into(),
        json!({ "type": "layers", "diff_ids": diff_ids }),
    );
    serde_json::to_vec(&Value::Object(config)).expect("JSON values serialize")
}

fn rfc3339(image: &Image) -> String {
    image
        .created
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a str,
}

/// The manifest as Docker writes it (3-space indent, Docker's field order).
fn manifest_bytes(
    oci: bool,
    config_digest: &str,
    config_size: u64,
    layers: &[LayerBlob],
) -> Vec<u8> {
    let layer_type = |t: &str| -> String {
        let gzip = matches!(
            t,
            media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP | media::OCI_LAYER_NONDIST_GZIP
        );
        let plain = matches!(t, media::OCI_LAYER | media::DOCKER_LAYER);
        match (oci, gzip, plain) {
            (false, true, _) => media::DOCKER_LAYER_GZIP.to_string(),
            (false, _, true) => media::DOCKER_LAYER.to_string(),
            (true, true, _) => media::OCI_LAYER_GZIP.to_string(),
            (true, _, true) => media::OCI_LAYER.to_string(),
            _ => t.to_string(),
        }
    };
    let types: Vec<String> = layers.iter().map(|l| layer_type(&l.media_type)).collect();
    let manifest = Manifest {
        schema_version: 2,
        media_type: if oci {
            media::OCI_MANIFEST
        } else {
            media::DOCKER_MANIFEST
        },
        config: Descriptor {
            media_type: if oci {
                media::OCI_CONFIG
            } else {
                media::DOCKER_CONFIG
            },
            size: config_size,
            digest: config_digest,
        },
        layers: layers
            .iter()
            .zip(&types)
            .map(|(l, t)| Descriptor {
                media_type: t,
                size: l.size,
                digest: &l.digest,
            })
            .collect(),
    };
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    manifest.serialize(&mut ser).expect("a manifest serializes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(media_type: &str, n: u8) -> LayerBlob {
        LayerBlob {
            digest: sha256_digest(&[n]),
            media_type: media_type.to_string(),
            size: 10 + n as u64,
        }
    }

    #[test]
    fn docker_manifest_with_docker_types() {
        let layers = [
            layer(media::OCI_LAYER_GZIP, 1),
            layer(media::DOCKER_LAYER, 2),
        ];
        let bytes = manifest_bytes(false, &sha256_digest(b"{}"), 2, &layers);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n   \"config\": {\n      \"mediaType\""), "{text}");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["config"]["mediaType"], media::DOCKER_CONFIG);
        assert_eq!(v["config"]["size"], 2);
        assert_eq!(v["layers"][0]["mediaType"], media::DOCKER_LAYER_GZIP);
        assert_eq!(v["layers"][1]["mediaType"], media::DOCKER_LAYER);
        assert_eq!(v["layers"][1]["digest"], sha256_digest(&[2]));
        assert_eq!(v["layers"][1]["size"], 12);
        // The same input gives the same bytes: a second push has the same digest.
        assert_eq!(
            bytes,
            manifest_bytes(false, &sha256_digest(b"{}"), 2, &layers)
        );
    }

    #[test]
    fn zstd_layers_make_an_oci_manifest() {
        let layers = [
            layer(media::DOCKER_LAYER_GZIP, 1),
            layer(media::OCI_LAYER_ZSTD, 2),
        ];
        let v: Value =
            serde_json::from_slice(&manifest_bytes(true, &sha256_digest(b"{}"), 2, &layers))
                .unwrap();
        assert_eq!(v["mediaType"], media::OCI_MANIFEST);
        assert_eq!(v["config"]["mediaType"], media::OCI_CONFIG);
        assert_eq!(v["layers"][0]["mediaType"], media::OCI_LAYER_GZIP);
        assert_eq!(v["layers"][1]["mediaType"], media::OCI_LAYER_ZSTD);
    }

    fn image(id: char, comment: &str, cmd: Option<&[&str]>) -> Image {
        Image {
            id: id.to_string().repeat(64),
            comment: comment.to_string(),
            created: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            container_config: cmd.map(|c| json!({ "Cmd": c })),
            ..Image::default()
        }
    }

    #[test]
    fn synthesized_config_for_imported_and_legacy_images() {
        let history = [
            image('a', "Imported from -", None),
            image('b', "", Some(&["sh", "-c", "echo hi > /f"])),
        ];
        let diff_ids = [sha256_digest(b"a"), sha256_digest(b"b")];
        let bytes = synthesize_config(None, &history, &diff_ids);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["os"], "linux");
        assert_eq!(v["architecture"], Platform::host().architecture);
        assert_eq!(v["rootfs"]["type"], "layers");
        assert_eq!(config_diff_ids(&v), diff_ids);
        assert_eq!(v["history"][0]["comment"], "Imported from -");
        assert_eq!(v["history"][1]["created_by"], "sh -c echo hi > /f");
        assert_eq!(v["created"], "2023-11-14T22:13:20Z");
        // Deterministic: pushing again gives the same config digest.
        assert_eq!(bytes, synthesize_config(None, &history, &diff_ids));

        // On a base config: its settings and history stay, the new layer is added.
        let base = json!({
            "architecture": "arm64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_ids[0]]},
            "history": [{"created_by": "base"}]
        });
        let v: Value =
            serde_json::from_slice(&synthesize_config(Some(base), &history, &diff_ids)).unwrap();
        assert_eq!(v["architecture"], "arm64");
        assert_eq!(v["config"]["Cmd"][0], "/bin/sh");
        assert_eq!(v["history"].as_array().unwrap().len(), 2);
        assert_eq!(v["history"][0]["created_by"], "base");
        assert_eq!(config_diff_ids(&v), diff_ids);
    }
}
