//! Pulling into dock's store: the image's layers as graph entries named by chain ID (each
//! stored once, whoever pulled it), the config as a layerless entry named by its digest (the
//! image ID), the repo digest on the image entry and, on each layer entry, which blob in which
//! repository it came from (so a push back uploads nothing).
//!
//! Up to [`MAX_DOWNLOADS`] layers download at once, each into an unnamed temporary file in the
//! graph directory; layers are applied in order with `Graph::register` as soon as their turn
//! comes, the one being applied streaming straight from its download. A layer is committed
//! only after its blob digest and its diff ID matched (see `verify`); the image entry is
//! written last, so an interrupted pull leaves no image, only complete layers the next pull
//! skips.

mod progress;
mod spool;
mod verify;

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use chrono::{DateTime, Utc};
use graph::{BlobSource, Graph, Image};
use oci_spec::image::Descriptor;
use tagstore::TagStore;

pub use progress::{human_size, progress_bar, Event};

use crate::client::Client;
use crate::digest::{chain_ids, uncompressed, LayerCompression};
use crate::platform::Platform;
use crate::reference::{ParsedName, Reference};
use spool::{Spool, SpoolReader};
use verify::{ErrorSlot, Verified};

/// Layers downloading at once, as in Docker.
pub const MAX_DOWNLOADS: usize = 3;
/// Progress is reported after each this many bytes.
const PROGRESS_STEP: u64 = 512 << 10;
const COPY_CHUNK: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] crate::Error),
    #[error(transparent)]
    Graph(#[from] graph::Error),
    #[error(transparent)]
    Tags(#[from] tagstore::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("image {reference} has {layers} layers but its config lists {diff_ids} diff ids")]
    LayerCount {
        reference: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("invalid image id {id} of {reference}: want sha256:<64 hex>")]
    ImageId { reference: String, id: String },
    #[error("a tag can't be used with --all-tags/-a: {name}")]
    AllTagsWithTag { name: String },
    #[error("no such image: {name}")]
    NoSuchImage { name: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `None`: the host's platform.
    pub platform: Option<Platform>,
    /// Every tag of the repository (`pull -a`).
    pub all_tags: bool,
}

/// What a pull stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// `REPO:TAG` or `REPO@DIGEST`, the name as the user gave it (Docker's last line).
    pub name: String,
    /// The image ID: hex of the config digest, the graph entry's id.
    pub id: String,
    /// The repo digest (the index's when there is one).
    pub digest: String,
    /// False when the tag already named this image.
    pub updated: bool,
}

/// The repository as the user named it (`busybox`, `127.0.0.1:5000/team/app`): the tag store
/// key a pull tags, so `run` finds the image by the same name.
pub fn local_repository(name: &str) -> crate::Result<String> {
    let parsed = ParsedName::parse(name)?;
    Ok(match parsed.registry {
        Some(host) => format!("{host}/{}", parsed.path),
        None => parsed.path,
    })
}

/// Pulls `name` (`NAME[:TAG|@DIGEST]`, the client's default registry applied) into the store
/// and tags it; with `all_tags`, every tag of the repository. Progress goes to `progress` on
/// the calling thread.
pub fn pull(
    client: &Client,
    graph: &Graph,
    tags: &TagStore,
    name: &str,
    opts: &PullOptions,
    progress: &mut dyn FnMut(Event),
) -> Result<Vec<Pulled>> {
    // Parsed (and the default registry applied) before anything is contacted.
    let reference = client.config().reference(name)?;
    let local = local_repository(name)?;
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    if !opts.all_tags {
        return Ok(vec![pull_one(
            client, graph, tags, &reference, &local, &platform, progress,
        )?]);
    }
    if reference.tag.is_some() || reference.digest.is_some() {
        return Err(Error::AllTagsWithTag {
            name: name.to_string(),
        });
    }
    let mut pulled = Vec::new();
    for tag in client.tags(&reference)? {
        let r = Reference {
            tag: Some(tag),
            ..reference.clone()
        };
        pulled.push(pull_one(
            client, graph, tags, &r, &local, &platform, progress,
        )?);
    }
    Ok(pulled)
}

/// A layer to download and apply.
struct Job {
    descriptor: Descriptor,
    /// Short blob digest, Docker's progress id.
    short: String,
    compression: LayerCompression,
    diff_id: String,
    id: String,
    parent: Option<String>,
    spool: Arc<Spool>,
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn short(digest: &str) -> String {
    hex(digest).chars().take(12).collect()
}

fn pull_one(
    client: &Client,
    graph: &Graph,
    tags: &TagStore,
    reference: &Reference,
    local: &str,
    platform: &Platform,
    progress: &mut dyn FnMut(Event),
) -> Result<Pulled> {
    progress(Event::PullingFrom {
        id: reference
            .tag_or_latest()
            .or(reference.digest.as_deref())
            .unwrap_or("latest")
            .to_string(),
        repository: reference.repository.clone(),
    });
    let image = client.resolve(reference, platform)?;
    let diff_ids = image.diff_ids();
    if diff_ids.len() != image.layers.len() {
        return Err(Error::LayerCount {
            reference: reference.to_string(),
            layers: image.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let image_id = hex(&image.id()).to_string();
    if !image.id().starts_with("sha256:") || !graph::is_full_id(&image_id) {
        return Err(Error::ImageId {
            reference: reference.to_string(),
            id: image.id(),
        });
    }
    let chains: Vec<String> = chain_ids(&diff_ids)
        .iter()
        .map(|c| hex(c).to_string())
        .collect();
    let existed = graph.exists(&image_id);

    // Plan: which layers the store has (by chain ID), which to fetch.
    let spool_dir = graph.root();
    let mut jobs = Vec::new();
    for (i, layer) in image.layers.iter().enumerate() {
        let short = short(layer.digest().as_ref());
        if graph.exists(&chains[i]) {
            progress(Event::AlreadyExists { layer: short });
            continue;
        }
        let compression = LayerCompression::from_media_type(layer.media_type().as_ref())?;
        let spool = Spool::new(spool_dir).map_err(|source| Error::Io {
            context: format!("create a temporary file in {}", spool_dir.display()),
            source,
        })?;
        progress(Event::PullingFsLayer {
            layer: short.clone(),
        });
        jobs.push(Job {
            descriptor: layer.clone(),
            short,
            compression,
            diff_id: diff_ids[i].clone(),
            id: chains[i].clone(),
            parent: i.checked_sub(1).map(|p| chains[p].clone()),
            spool,
        });
    }
    for job in jobs.iter().skip(MAX_DOWNLOADS) {
        progress(Event::Waiting {
            layer: job.short.clone(),
        });
    }
    if !jobs.is_empty() {
        fetch_and_apply(client, graph, reference, &jobs, progress)?;
    }

    // Where each layer came from, for a push back to this registry.
    for (i, layer) in image.layers.iter().enumerate() {
        record_source(graph, &chains[i], reference, layer)?;
    }

    // The image entry last: until it exists there is no image.
    let config_entry = Image {
        id: image_id.clone(),
        parent: chains.last().cloned(),
        created: image
            .image_config
            .created()
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
        layerless: true,
        ..Image::default()
    };
    match graph.register_config(config_entry, &image.config_bytes) {
        Ok(_) | Err(graph::Error::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let repo_digest = format!("{}@{}", reference.name(), image.digest);
    graph.update_meta(&image_id, |meta| {
        if !meta.repo_digests.contains(&repo_digest) {
            meta.repo_digests.push(repo_digest.clone());
        }
    })?;

    let (name, updated) = match reference.tag_or_latest() {
        Some(tag) => {
            let before = tags
                .repositories()?
                .get(local)
                .and_then(|t| t.get(tag))
                .cloned();
            tags.set(graph, local, tag, &image_id, true)?;
            (
                format!("{local}:{tag}"),
                !existed || before.as_deref() != Some(image_id.as_str()),
            )
        }
        None => (format!("{local}@{}", image.digest), !existed),
    };
    progress(Event::Digest {
        digest: image.digest.clone(),
    });
    progress(Event::Status {
        updated,
        name: name.clone(),
    });
    Ok(Pulled {
        name,
        id: image_id,
        digest: image.digest,
        updated,
    })
}

/// Adds `layer`'s blob in `reference`'s repository to the sources of entry `id`.
fn record_source(graph: &Graph, id: &str, reference: &Reference, layer: &Descriptor) -> Result<()> {
    let source = BlobSource {
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        digest: layer.digest().to_string(),
        media_type: layer.media_type().to_string(),
        size: layer.size(),
    };
    let same = |s: &BlobSource| {
        s.registry == source.registry
            && s.repository == source.repository
            && s.digest == source.digest
    };
    if graph.meta(id)?.sources.iter().any(same) {
        return Ok(());
    }
    graph.update_meta(id, |meta| {
        if !meta.sources.iter().any(same) {
            meta.sources.push(source.clone());
        }
    })?;
    Ok(())
}

/// Downloads `jobs` (up to [`MAX_DOWNLOADS`] at once) and applies them in order.
fn fetch_and_apply(
    client: &Client,
    graph: &Graph,
    reference: &Reference,
    jobs: &[Job],
    progress: &mut dyn FnMut(Event),
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Event>();
    thread::scope(|s| {
        for _ in 0..jobs.len().min(MAX_DOWNLOADS) {
            let tx = tx.clone();
            let (next, failed) = (&next, &failed);
            s.spawn(move || loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let Some(job) = jobs.get(next.fetch_add(1, Ordering::SeqCst)) else {
                    return;
                };
                let result = download(client, reference, job, &tx);
                job.spool.finish(result);
            });
        }
        let applier = {
            let tx = tx.clone();
            let failed = &failed;
            s.spawn(move || {
                for job in jobs {
                    if let Err(e) = apply(graph, job, &tx) {
                        failed.store(true, Ordering::SeqCst);
                        for j in jobs {
                            j.spool.cancel();
                        }
                        return Err(e);
                    }
                }
                Ok(())
            })
        };
        drop(tx);
        for event in rx {
            progress(event);
        }
        applier
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// One blob into its spool, verified (digest and size) at its end.
fn download(
    client: &Client,
    reference: &Reference,
    job: &Job,
    tx: &mpsc::Sender<Event>,
) -> crate::Result<()> {
    let digest = job.descriptor.digest().to_string();
    let total = job.descriptor.size();
    let mut blob = client.open_blob(reference, &digest, Some(total))?;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut reported = 0;
    loop {
        if job.spool.is_cancelled() {
            return Ok(());
        }
        let n = blob.read(&mut buf).map_err(|e| blob.error(e))?;
        if n == 0 {
            break;
        }
        job.spool
            .append(&buf[..n])
            .map_err(|e| crate::Error::io("write a layer download to its temporary file", e))?;
        let done = blob.count();
        if done - reported >= PROGRESS_STEP {
            reported = done;
            let _ = tx.send(Event::Downloading {
                layer: job.short.clone(),
                current: done,
                total,
            });
        }
    }
    let _ = tx.send(Event::VerifyingChecksum {
        layer: job.short.clone(),
    });
    let _ = tx.send(Event::DownloadComplete {
        layer: job.short.clone(),
    });
    Ok(())
}

/// The compressed stream of a spool, reporting how far extraction has read.
struct Extracting<'a> {
    inner: SpoolReader,
    job: &'a Job,
    tx: mpsc::Sender<Event>,
    reported: u64,
}

impl Read for Extracting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let done = self.inner.offset();
        // The layer being applied extracts while it downloads; as Docker shows it, it is
        // "Extracting" only once "Download complete" (sent before the spool is done).
        let step = done - self.reported >= PROGRESS_STEP && self.job.spool.is_done();
        if step || (n == 0 && done != self.reported) {
            self.reported = done;
            let _ = self.tx.send(Event::Extracting {
                layer: self.job.short.clone(),
                current: done,
                total: self.job.descriptor.size(),
            });
        }
        Ok(n)
    }
}

/// Registers one layer from its spool; its digest and diff ID are checked before the graph
/// commits it.
fn apply(graph: &Graph, job: &Job, tx: &mpsc::Sender<Event>) -> Result<()> {
    let digest = job.descriptor.digest().to_string();
    let compressed = Extracting {
        inner: job.spool.reader(),
        job,
        tx: tx.clone(),
        reported: 0,
    };
    let stream = uncompressed(compressed, job.compression).map_err(|source| Error::Io {
        context: format!("decompress layer {digest}"),
        source,
    })?;
    let slot = ErrorSlot::default();
    let mut verified = Verified::new(
        stream,
        &job.diff_id,
        format!("uncompressed layer {digest}"),
        slot.clone(),
    );
    let entry = Image {
        id: job.id.clone(),
        parent: job.parent.clone(),
        created: Utc::now(),
        diff_id: Some(job.diff_id.clone()),
        ..Image::default()
    };
    let registered = match graph.register(&mut verified, entry) {
        Ok(_) => true,
        // Another pull stored it meanwhile: the same content by its chain ID.
        Err(graph::Error::AlreadyExists(_)) => false,
        Err(e) => {
            let cause = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(match cause.or_else(|| job.spool.take_error()) {
                Some(cause) => cause.into(),
                None => e.into(),
            });
        }
    };
    if !registered {
        job.spool.cancel();
        let _ = tx.send(Event::PullComplete {
            layer: job.short.clone(),
        });
        return Ok(());
    }
    // Bytes after the held-back tail (never in a well-formed layer) are checked here.
    let checked = match verified.diff_id() {
        Ok(actual) if actual == job.diff_id => Ok(()),
        Ok(actual) => Err(crate::Error::DigestMismatch {
            what: format!("uncompressed layer {digest}"),
            expected: job.diff_id.clone(),
            actual,
        }
        .into()),
        Err(e) => Err(match job.spool.take_error() {
            Some(cause) => cause.into(),
            None => Error::Io {
                context: format!("read layer {digest}"),
                source: e,
            },
        }),
    };
    if let Err(e) = checked {
        let _ = graph.delete(&job.id);
        return Err(e);
    }
    let _ = tx.send(Event::PullComplete {
        layer: job.short.clone(),
    });
    Ok(())
}

/// The image `name` names: `REPO@DIGEST` by the repo digests pulls recorded, anything else
/// through the tag store (full id, unique prefix, `REPO[:TAG]`).
pub fn lookup(
    client_config: &crate::RegistryConfig,
    graph: &Graph,
    tags: &TagStore,
    name: &str,
) -> Result<Image> {
    let Some((repo, digest)) = name.split_once('@') else {
        return Ok(tags.lookup(graph, name)?);
    };
    let qualified = client_config.reference(name).ok().map(|r| r.name());
    let wanted = |recorded: &str| {
        recorded
            .rsplit_once('@')
            .is_some_and(|(r, d)| d == digest && (r == repo || qualified.as_deref() == Some(r)))
    };
    for image in graph.all()? {
        if !image.layerless {
            continue;
        }
        if graph
            .meta(&image.id)?
            .repo_digests
            .iter()
            .any(|d| wanted(d))
        {
            return Ok(image);
        }
    }
    Err(Error::NoSuchImage {
        name: name.to_string(),
    })
}
