//! Reading from a registry: manifests (checked against their digests and media types), the
//! choice of a platform from an index, configs, blobs streamed with verification, tags.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use ureq::http::{Method, Response};
use ureq::Body;

use crate::client::{
    error_codes, error_detail_suffix, pull_scope, read_capped, read_small, Client, Payload,
};
use crate::digest::{sha256_digest, HashingReader, LayerCompression};
use crate::error::{Error, Result};
use crate::media;
use crate::platform::Platform;
use crate::reference::Reference;

/// Manifests larger than this are refused (Docker's limit is 4 MiB).
const MANIFEST_MAX: u64 = 4 << 20;
/// Image configs larger than this are refused.
const CONFIG_MAX: u64 = 32 << 20;

/// A manifest or index as received: its digest is over these exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// An image resolved for one platform.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The name it was resolved from.
    pub reference: Reference,
    /// What the name points to in the registry: the index when there is one, else the
    /// manifest. This is Docker's repo digest (`NAME@DIGEST` in `RepoDigests`).
    pub digest: String,
    /// The index or manifest list the platform was chosen from.
    pub index: Option<RawManifest>,
    /// The platform's image manifest.
    pub manifest: RawManifest,
    pub image_manifest: ImageManifest,
    /// The config descriptor; `config.digest()` is the image ID.
    pub config: Descriptor,
    /// The config as received (verified against `config.digest()`).
    pub config_bytes: Vec<u8>,
    pub image_config: ImageConfiguration,
    /// Base layer first.
    pub layers: Vec<Descriptor>,
}

impl ResolvedImage {
    /// The config's `rootfs.diff_ids`, base first; as many as `layers`.
    pub fn diff_ids(&self) -> Vec<String> {
        self.image_config.rootfs().diff_ids().clone()
    }
    /// The image ID as Docker shows it: the config digest.
    pub fn id(&self) -> String {
        self.config.digest().to_string()
    }
}

/// What an error response is about, for its message.
pub(crate) enum About<'a> {
    Manifest(&'a Reference),
    Blob(&'a Reference, &'a str),
    Repository(&'a Reference),
}

/// Where a pull reads from: a mirror (its base URL given) or the registry itself.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    host: String,
    mirror: Option<String>,
}

impl Source {
    fn registry(r: &Reference) -> Source {
        Source {
            host: r.api_host().to_string(),
            mirror: None,
        }
    }
    fn mirror(url: &str) -> Source {
        Source {
            host: crate::client::url_host(url).unwrap_or(url).to_string(),
            mirror: Some(url.to_string()),
        }
    }
}

impl Client {
    /// `scheme://host/v2/REPOSITORY`.
    pub(crate) fn repo_url(&self, r: &Reference) -> Result<String> {
        Ok(format!("{}/v2/{}", self.base(r.api_host())?, r.repository))
    }

    fn source_repo_url(&self, src: &Source, r: &Reference) -> Result<String> {
        match &src.mirror {
            Some(m) => Ok(format!("{m}/v2/{}", r.repository)),
            None => self.repo_url(r),
        }
    }

    /// Sources for a manifest by tag: the mirrors (for the default registry), then the
    /// registry. By digest and for blobs: the mirror that served the tag, then the registry.
    fn sources(&self, r: &Reference, by_tag: bool) -> Vec<Source> {
        let mut out: Vec<Source> = if by_tag {
            self.config
                .pull_mirrors(r)
                .iter()
                .map(|m| Source::mirror(m))
                .collect()
        } else {
            self.route(&r.registry)
                .iter()
                .map(|m| Source::mirror(m))
                .collect()
        };
        out.push(Source::registry(r));
        out
    }

    /// Tries each source in order; a mirror's failure falls through to the next, the
    /// registry's is the answer.
    fn try_sources<T>(
        &self,
        r: &Reference,
        by_tag: bool,
        f: impl Fn(&Source) -> Result<T>,
    ) -> Result<T> {
        let sources = self.sources(r, by_tag);
        let last = sources.len() - 1;
        for (i, src) in sources.iter().enumerate() {
            match f(src) {
                Ok(v) => {
                    if by_tag {
                        self.set_route(&r.registry, src.mirror.as_deref());
                    }
                    return Ok(v);
                }
                Err(e) if i < last => {
                    tracing::debug!(mirror = ?src.mirror, error = %e, "mirror failed, next source");
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the registry itself is always the last source")
    }

    /// Turns an unsuccessful answer into the error it means.
    pub(crate) fn response_error(
        &self,
        method: &Method,
        url: &str,
        resp: ureq::http::Response<ureq::Body>,
        about: About<'_>,
    ) -> Error {
        let status = resp.status().as_u16();
        let body = read_small(resp.into_body()).unwrap_or_default();
        let codes = error_codes(&body);
        let has = |c: &str| codes.iter().any(|(code, _)| code == c);
        let (r, host) = match &about {
            About::Manifest(r) | About::Blob(r, _) | About::Repository(r) => {
                (*r, r.api_host().to_string())
            }
        };
        if status == 401 || has("UNAUTHORIZED") || has("DENIED") {
            return Error::Unauthorized {
                host: r.registry.clone(),
                detail: if status == 401 {
                    String::new()
                } else {
                    error_detail_suffix(&body).replacen(": ", " (", 1) + ")"
                },
            };
        }
        if has("NAME_UNKNOWN") {
            return Error::NameUnknown { name: r.name() };
        }
        match about {
            About::Manifest(r) if status == 404 || has("MANIFEST_UNKNOWN") => {
                return Error::ManifestUnknown {
                    reference: manifest_name(r),
                }
            }
            About::Blob(r, digest) if status == 404 || has("BLOB_UNKNOWN") => {
                return Error::BlobUnknown {
                    name: r.name(),
                    digest: digest.to_string(),
                }
            }
            _ => {}
        }
        tracing::debug!(host, status, "registry error");
        Error::Registry {
            method: method.to_string(),
            url: url.to_string(),
            status,
            detail: error_detail_suffix(&body),
        }
    }

    /// `GET /v2/NAME/manifests/TAG|DIGEST` accepting the four manifest types. The digest is
    /// checked when fetched by digest (and against `Docker-Content-Digest` when the registry
    /// sends one); `Content-Type` must agree with the body's `mediaType`; schema 1 is refused.
    pub fn fetch_manifest(&self, r: &Reference) -> Result<RawManifest> {
        self.try_sources(r, r.digest.is_none(), |src| {
            self.fetch_manifest_from(src, r)
        })
    }

    fn fetch_manifest_from(&self, src: &Source, r: &Reference) -> Result<RawManifest> {
        let url = format!(
            "{}/manifests/{}",
            self.source_repo_url(src, r)?,
            r.manifest_ref()
        );
        let resp = self.pull_get(&src.host, &url, r, &[("accept", media::MANIFEST_ACCEPT)])?;
        if !resp.status().is_success() {
            return Err(self.response_error(&Method::GET, &url, resp, About::Manifest(r)));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        };
        let content_type = header("content-type").unwrap_or_default();
        let header_digest = header("docker-content-digest");
        let bytes = read_capped(resp.into_body(), MANIFEST_MAX)
            .map_err(|e| Error::io(format!("read {url}"), e))?;
        let digest = sha256_digest(&bytes);
        let what = manifest_name(r);
        let expected = r
            .digest
            .clone()
            .or(header_digest.filter(|d| d.starts_with("sha256:")));
        if let Some(expected) = expected {
            if expected != digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {what}"),
                    expected,
                    actual: digest,
                });
            }
        }
        let media_type = manifest_media_type(&what, &content_type, &bytes)?;
        Ok(RawManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Resolves `r` to one image for `platform`: from an index or list the first entry for
    /// the platform (entries for `unknown/unknown`, attestations, are skipped), then its
    /// manifest and config, all verified.
    pub fn resolve(&self, r: &Reference, platform: &Platform) -> Result<ResolvedImage> {
        let top = self.fetch_manifest(r)?;
        let (index, manifest) = if media::is_index(&top.media_type) {
            let idx: ImageIndex = parse_json(&format!("index {}", manifest_name(r)), &top.bytes)?;
            let entry = choose_platform(&idx, platform).ok_or_else(|| {
                let available: Vec<String> = idx
                    .manifests()
                    .iter()
                    .filter_map(|d| d.platform().as_ref())
                    .filter(|p| !is_unknown(p))
                    .map(platform_name)
                    .collect();
                Error::PlatformNotFound {
                    reference: manifest_name(r),
                    wanted: platform.to_string(),
                    available: if available.is_empty() {
                        "no platforms".to_string()
                    } else {
                        available.join(", ")
                    },
                }
            })?;
            let child = self.fetch_manifest(&r.with_digest(entry.digest().as_ref()))?;
            if !media::is_image_manifest(&child.media_type) {
                return Err(Error::UnsupportedMediaType {
                    what: format!("entry {} of {}", entry.digest(), manifest_name(r)),
                    media_type: child.media_type,
                });
            }
            (Some(top), child)
        } else {
            (None, top)
        };
        let what = format!("manifest {}@{}", r.name(), manifest.digest);
        let image_manifest: ImageManifest = parse_json(&what, &manifest.bytes)?;
        let config = image_manifest.config().clone();
        let config_type = config.media_type().to_string();
        if config_type != media::DOCKER_CONFIG && config_type != media::OCI_CONFIG {
            return Err(Error::UnsupportedMediaType {
                what: format!("config of {}", manifest_name(r)),
                media_type: config_type,
            });
        }
        let config_bytes =
            self.fetch_blob_bytes(r, config.digest().as_ref(), Some(config.size()))?;
        let image_config: ImageConfiguration =
            parse_json(&format!("config {}", config.digest()), &config_bytes)?;
        let layers = image_manifest.layers().clone();
        let diffs = image_config.rootfs().diff_ids().len();
        if diffs != layers.len() {
            return Err(Error::InvalidDocument {
                what: what.clone(),
                reason: format!(
                    "{} layers but {diffs} diff_ids in config {}",
                    layers.len(),
                    config.digest()
                ),
            });
        }
        Ok(ResolvedImage {
            reference: r.clone(),
            digest: index.as_ref().unwrap_or(&manifest).digest.clone(),
            index,
            manifest,
            image_manifest,
            config,
            config_bytes,
            image_config,
            layers,
        })
    }

    /// `GET url` from `host` with `headers`, authorised to pull `r`.
    fn pull_get(
        &self,
        host: &str,
        url: &str,
        r: &Reference,
        headers: &[(&str, &str)],
    ) -> Result<Response<Body>> {
        self.request(
            host,
            Method::GET,
            url,
            &pull_scope(r),
            headers,
            Payload::Empty,
        )
    }

    /// `GET /v2/NAME/blobs/DIGEST` as a stream that checks size and digest at its end
    /// (redirects are followed without the `Authorization` header).
    pub fn open_blob(&self, r: &Reference, digest: &str, size: Option<u64>) -> Result<BlobReader> {
        crate::reference::validate_digest(digest).map_err(|reason| Error::InvalidDocument {
            what: format!("blob digest of {}", r.name()),
            reason,
        })?;
        self.try_sources(r, false, |src| self.open_blob_from(src, r, digest, size))
    }

    fn open_blob_from(
        &self,
        src: &Source,
        r: &Reference,
        digest: &str,
        size: Option<u64>,
    ) -> Result<BlobReader> {
        let url = format!("{}/blobs/{digest}", self.source_repo_url(src, r)?);
        let resp = self.pull_get(&src.host, &url, r, &[])?;
        if !resp.status().is_success() {
            return Err(self.response_error(&Method::GET, &url, resp, About::Blob(r, digest)));
        }
        let reader: Box<dyn Read + Send> = Box::new(resp.into_body().into_reader());
        Ok(BlobReader {
            inner: HashingReader::new(reader),
            what: format!("blob {}@{digest}", r.name()),
            digest: digest.to_string(),
            size,
            checked: false,
        })
    }

    /// A layer's uncompressed tar stream (by its media type) over the verified blob: see
    /// [`LayerReader`].
    pub fn open_layer(&self, r: &Reference, layer: &Descriptor) -> Result<LayerReader> {
        let compression = LayerCompression::from_media_type(layer.media_type().as_ref())?;
        let blob = self.open_blob(r, layer.digest().as_ref(), Some(layer.size()))?;
        let what = blob.what.clone();
        let blob = Arc::new(Mutex::new(blob));
        let inner = crate::digest::uncompressed(SharedBlob(blob.clone()), compression)
            .map_err(|e| Error::io(format!("decompress {what}"), e))?;
        Ok(LayerReader {
            inner,
            blob,
            what,
            drained: false,
        })
    }

    /// Streams a blob into `out`, verified; returns its size. On a mismatch `out` has received
    /// the bytes anyway: the caller discards them.
    pub fn fetch_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let mut blob = self.open_blob(r, digest, size)?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = blob.read(&mut buf).map_err(|e| blob.error(e))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| Error::io(format!("write {}", blob.what), e))?;
        }
        Ok(blob.inner.count())
    }

    /// A small blob (a config) into memory, verified.
    pub fn fetch_blob_bytes(
        &self,
        r: &Reference,
        digest: &str,
        size: Option<u64>,
    ) -> Result<Vec<u8>> {
        if size.is_some_and(|s| s > CONFIG_MAX) {
            return Err(Error::InvalidDocument {
                what: format!("blob {}@{digest}", r.name()),
                reason: format!("larger than {CONFIG_MAX} bytes"),
            });
        }
        let mut out = Vec::new();
        self.fetch_blob(r, digest, size, &mut out)?;
        Ok(out)
    }

    /// `GET /v2/NAME/tags/list`, following `Link` pages.
    pub fn tags(&self, r: &Reference) -> Result<Vec<String>> {
        let base = self.base(r.api_host())?;
        let mut url = format!("{}/tags/list", self.repo_url(r)?);
        let mut tags = Vec::new();
        loop {
            let resp = self.pull_get(r.api_host(), &url, r, &[])?;
            if !resp.status().is_success() {
                return Err(self.response_error(&Method::GET, &url, resp, About::Repository(r)));
            }
            let next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.split_once('<'))
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(u, _)| u.to_string());
            let body =
                read_small(resp.into_body()).map_err(|e| Error::io(format!("read {url}"), e))?;
            #[derive(serde::Deserialize)]
            struct List {
                tags: Option<Vec<String>>,
            }
            let list: List = serde_json::from_slice(&body).map_err(|e| Error::Json {
                context: format!("tag list of {}", r.name()),
                source: e,
            })?;
            tags.extend(list.tags.unwrap_or_default());
            match next {
                Some(n) if n.starts_with('/') => url = format!("{base}{n}"),
                Some(n) => url = n,
                None => return Ok(tags),
            }
        }
    }
}

/// A blob being downloaded. Reading it to the end checks its size and digest: a mismatch is
/// an `io::Error` of kind `InvalidData` carrying [`Error::DigestMismatch`] or
/// [`Error::SizeMismatch`] ([`BlobReader::error`] turns it back).
pub struct BlobReader {
    inner: HashingReader<Box<dyn Read + Send>>,
    what: String,
    digest: String,
    size: Option<u64>,
    checked: bool,
}

impl BlobReader {
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.inner.count()
    }

    /// Reads what is left (a tar reader may stop at its end blocks) and checks the blob.
    pub fn finish(mut self) -> Result<u64> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| self.error(e))?;
        Ok(self.inner.count())
    }

    /// The crate error inside an `io::Error` from `read`, or the read error itself.
    pub fn error(&self, e: io::Error) -> Error {
        into_error(e, &self.what)
    }

    fn check(&mut self) -> Result<()> {
        if let Some(size) = self.size {
            if self.inner.count() != size {
                return Err(Error::SizeMismatch {
                    what: self.what.clone(),
                    expected: size,
                    actual: self.inner.count(),
                });
            }
        }
        let actual = self.inner.digest();
        if actual != self.digest {
            return Err(Error::DigestMismatch {
                what: self.what.clone(),
                expected: self.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// An `io::Error` that carries a crate [`Error`] (from [`BlobReader`]) back to that error.
pub fn into_error(e: io::Error, what: &str) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(err) = inner.downcast::<Error>() {
                return *err;
            }
        }
        unreachable!("checked that the io::Error carries a registry error")
    }
    Error::io(format!("read {what}"), e)
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(size) = self.size {
            if self.inner.count() > size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Error::SizeMismatch {
                        what: self.what.clone(),
                        expected: size,
                        actual: self.inner.count(),
                    },
                ));
            }
        }
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            self.check()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        Ok(n)
    }
}

/// A layer's uncompressed tar stream. When the uncompressed stream ends, the rest of the
/// compressed blob is read too and checked against its digest and size, so a corrupt blob
/// fails the last read even where the decompressor or a tar reader would not notice;
/// [`LayerReader::finish`] reads what a tar reader left and gives the diff ID.
pub struct LayerReader {
    inner: HashingReader<Box<dyn Read + Send>>,
    blob: Arc<Mutex<BlobReader>>,
    what: String,
    drained: bool,
}

impl LayerReader {
    /// Compressed bytes downloaded so far (for progress).
    pub fn compressed_count(&self) -> u64 {
        self.blob.lock().unwrap_or_else(|e| e.into_inner()).count()
    }

    /// Uncompressed bytes read so far.
    pub fn count(&self) -> u64 {
        self.inner.count()
    }

    /// Reads to the end, checks the blob and, when given, the diff ID; returns the diff ID.
    pub fn finish(mut self, expected_diff_id: Option<&str>) -> Result<String> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| self.error(e))?;
        let diff_id = self.inner.digest();
        if let Some(expected) = expected_diff_id {
            if expected != diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("uncompressed {}", self.what),
                    expected: expected.to_string(),
                    actual: diff_id,
                });
            }
        }
        Ok(diff_id)
    }

    /// The crate error inside an `io::Error` from `read`, or the read error itself.
    pub fn error(&self, e: io::Error) -> Error {
        into_error(e, &self.what)
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.drained {
            self.drained = true;
            let mut blob = self.blob.lock().unwrap_or_else(|e| e.into_inner());
            io::copy(&mut *blob, &mut io::sink())?;
        }
        Ok(n)
    }
}

struct SharedBlob(Arc<Mutex<BlobReader>>);

impl Read for SharedBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).read(buf)
    }
}

/// `NAME:TAG` or `NAME@DIGEST`, as Docker names a manifest in messages.
pub(crate) fn manifest_name(r: &Reference) -> String {
    match (&r.digest, r.tag_or_latest()) {
        (Some(d), _) => format!("{}@{d}", r.name()),
        (None, Some(t)) => format!("{}:{t}", r.name()),
        (None, None) => r.name(),
    }
}

/// The media type of a received manifest, from its body and `Content-Type`.
fn manifest_media_type(what: &str, content_type: &str, bytes: &[u8]) -> Result<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let head: Head = serde_json::from_slice(bytes).map_err(|e| Error::Json {
        context: format!("manifest {what}"),
        source: e,
    })?;
    if head.schema_version == Some(1)
        || media::is_schema1(content_type)
        || head.media_type.as_deref().is_some_and(media::is_schema1)
    {
        return Err(Error::Schema1 {
            reference: what.to_string(),
        });
    }
    let known = |t: &str| media::is_index(t) || media::is_image_manifest(t);
    let media_type = match head.media_type {
        Some(body_type) => {
            if known(content_type) && content_type != body_type {
                return Err(Error::MediaTypeMismatch {
                    what: format!("manifest {what}"),
                    content_type: content_type.to_string(),
                    media_type: body_type,
                });
            }
            body_type
        }
        None if known(content_type) => content_type.to_string(),
        // OCI documents may leave out mediaType; their shape tells.
        None if head.manifests.is_some() => media::OCI_INDEX.to_string(),
        None if head.config.is_some() => media::OCI_MANIFEST.to_string(),
        None => content_type.to_string(),
    };
    if !known(&media_type) {
        return Err(Error::UnsupportedMediaType {
            what: format!("manifest {what}"),
            media_type,
        });
    }
    Ok(media_type)
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Json {
        context: format!("parse {what}"),
        source: e,
    })
}

fn is_unknown(p: &oci_spec::image::Platform) -> bool {
    p.os().to_string() == "unknown" && p.architecture().to_string() == "unknown"
}

fn platform_name(p: &oci_spec::image::Platform) -> String {
    match p.variant() {
        Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
        None => format!("{}/{}", p.os(), p.architecture()),
    }
}

/// The first entry for `platform`; an entry without platform serves any (as in containerd)
/// when no entry names it.
fn choose_platform<'a>(idx: &'a ImageIndex, platform: &Platform) -> Option<&'a Descriptor> {
    let entries = idx.manifests();
    entries
        .iter()
        .find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                !is_unknown(p)
                    && platform.matches(
                        &p.os().to_string(),
                        &p.architecture().to_string(),
                        p.variant().as_deref(),
                    )
            })
        })
        .or_else(|| entries.iter().find(|d| d.platform().is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_readers_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Client>();
        send::<BlobReader>();
        send::<LayerReader>();
    }

    /// A config as Docker writes it (nulls, ports and volumes as maps, fields OCI lacks).
    #[test]
    fn docker_config_parses() {
        let raw = br##"{"architecture":"amd64","config":{"Hostname":"","Env":["PATH=/bin"],
          "Cmd":["sh"],"WorkingDir":"/","ArgsEscaped":true,"OnBuild":null,"Labels":null,
          "ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/data":{}},
          "Healthcheck":{"Test":["CMD","true"]},"Image":"sha256:00","Entrypoint":null,
          "User":"","StopSignal":"SIGTERM"},"container":"abc",
          "container_config":{"Cmd":["/bin/sh","-c","#(nop) CMD [\"sh\"]"]},
          "created":"2024-09-26T21:31:42.000000000Z","docker_version":"20.10.23",
          "history":[{"created":"2024-09-26T21:31:42Z","created_by":"/bin/sh -c #(nop) ADD file"},
            {"created":"2024-09-26T21:31:42Z","created_by":"CMD","empty_layer":true}],
          "os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"##;
        let c: ImageConfiguration = parse_json("config", raw).unwrap();
        let cfg = c.config().as_ref().unwrap();
        assert_eq!(cfg.cmd().as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(cfg.exposed_ports().as_ref().map(Vec::len), Some(2));
        assert_eq!(cfg.stop_signal().as_deref(), Some("SIGTERM"));
        assert_eq!(c.rootfs().diff_ids().len(), 1);
    }

    #[test]
    fn media_type_rules() {
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}"#;
        assert_eq!(
            manifest_media_type("x", media::DOCKER_MANIFEST, docker).unwrap(),
            media::DOCKER_MANIFEST
        );
        assert!(matches!(
            manifest_media_type("x", media::OCI_MANIFEST, docker),
            Err(Error::MediaTypeMismatch { .. })
        ));
        let oci = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(
            manifest_media_type("x", "application/json", oci).unwrap(),
            media::OCI_MANIFEST
        );
        let s1 = br#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        assert!(matches!(
            manifest_media_type("x", media::DOCKER_SCHEMA1_SIGNED, s1),
            Err(Error::Schema1 { .. })
        ));
        assert!(matches!(
            manifest_media_type("x", "application/json", br#"{"schemaVersion":2}"#),
            Err(Error::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn platform_choice_skips_attestations() {
        let idx: ImageIndex = serde_json::from_str(&format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"mediaType":"{m}","digest":"sha256:{a}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}},
              {{"mediaType":"{m}","digest":"sha256:{b}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{m}","digest":"sha256:{c}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            m = media::OCI_MANIFEST,
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64)
        ))
        .unwrap();
        let pick =
            |p: &str| choose_platform(&idx, &p.parse().unwrap()).map(|d| d.digest().to_string());
        assert_eq!(
            pick("linux/amd64"),
            Some(format!("sha256:{}", "c".repeat(64)))
        );
        assert_eq!(
            pick("linux/arm64"),
            Some(format!("sha256:{}", "b".repeat(64)))
        );
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("unknown/unknown"), None);
    }
}
