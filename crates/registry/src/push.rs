//! Writing to a registry: blob presence, cross-repository mounts, monolithic uploads
//! (`POST` then `PUT LOCATION&digest=` with the whole body), manifests.

use std::io::Read;

use ureq::http::{self, Method};
use ureq::SendBody;

use crate::client::{encode, http_err, push_scope, Client, Payload};
use crate::digest::sha256_digest;
use crate::error::{Error, Result};
use crate::pull::About;
use crate::reference::Reference;

/// What [`Client::push_blob`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushedBlob {
    /// The repository had it already.
    Exists,
    /// Mounted from another repository of the same registry: no bytes sent.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// The answer to a mount request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// 201: the blob is now in the repository.
    Mounted,
    /// 202: the registry started an ordinary upload instead, at this location.
    Upload(String),
}

impl Client {
    /// `HEAD /v2/NAME/blobs/DIGEST`: whether the repository has the blob.
    pub fn blob_exists(&self, r: &Reference, digest: &str) -> Result<bool> {
        let url = format!("{}/blobs/{digest}", self.repo_url(r)?);
        let resp = self.request(
            r.api_host(),
            Method::HEAD,
            &url,
            &push_scope(r),
            &[],
            Payload::Empty,
        )?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.response_error(&Method::HEAD, &url, resp, About::Blob(r, digest))),
        }
    }

    /// `POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=REPOSITORY` (same registry).
    pub fn mount_blob(&self, r: &Reference, digest: &str, from: &str) -> Result<Mount> {
        let url = format!(
            "{}/blobs/uploads/?mount={}&from={}",
            self.repo_url(r)?,
            encode(digest),
            encode(from)
        );
        let mut scopes = push_scope(r);
        scopes.push(format!("repository:{from}:pull"));
        let resp = self.request(
            r.api_host(),
            Method::POST,
            &url,
            &scopes,
            &[("content-length", "0")],
            Payload::Empty,
        )?;
        match resp.status().as_u16() {
            201 => Ok(Mount::Mounted),
            202 => Ok(Mount::Upload(self.location(r, &url, &resp)?)),
            _ => Err(self.response_error(&Method::POST, &url, resp, About::Repository(r))),
        }
    }

    /// `POST /v2/NAME/blobs/uploads/`: the location to upload to.
    pub fn start_upload(&self, r: &Reference) -> Result<String> {
        let url = format!("{}/blobs/uploads/", self.repo_url(r)?);
        let resp = self.request(
            r.api_host(),
            Method::POST,
            &url,
            &push_scope(r),
            &[("content-length", "0")],
            Payload::Empty,
        )?;
        match resp.status().as_u16() {
            202 => self.location(r, &url, &resp),
            _ => Err(self.response_error(&Method::POST, &url, resp, About::Repository(r))),
        }
    }

    /// `PUT LOCATION&digest=DIGEST` with the whole blob (`size` bytes, sent with
    /// `Content-Length`). The registry checks the digest.
    pub fn finish_upload(
        &self,
        r: &Reference,
        location: &str,
        digest: &str,
        size: u64,
        mut blob: impl Read,
    ) -> Result<()> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", encode(digest));
        let host = r.api_host();
        let agent = self.agent(host)?;
        let mut req = http::Request::builder()
            .method(Method::PUT)
            .uri(&url)
            .header("content-type", "application/octet-stream")
            .header("content-length", size.to_string());
        // The POST before answered any challenge: the credentials are known now.
        if let Some(auth) = self.auth_header(host, &push_scope(r))? {
            req = req.header("authorization", auth);
        }
        tracing::debug!(url, size, "registry blob upload");
        let req = req
            .body(SendBody::from_reader(&mut blob))
            .map_err(|e| http_err(&url, ureq::Error::Http(e)))?;
        let resp = agent.run(req).map_err(|e| http_err(&url, e))?;
        match resp.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(self.response_error(&Method::PUT, &url, resp, About::Blob(r, digest))),
        }
    }

    /// Upload a blob: `POST`, then `PUT` with the body.
    pub fn upload_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        blob: impl Read,
    ) -> Result<()> {
        let location = self.start_upload(r)?;
        self.finish_upload(r, &location, digest, size, blob)
    }

    /// Makes sure the repository has the blob: present already, mounted from `mount_from`
    /// (a repository on the same registry that has it), or uploaded from `open()`.
    pub fn push_blob<R: Read>(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        mount_from: Option<&str>,
        open: impl FnOnce() -> std::io::Result<R>,
    ) -> Result<PushedBlob> {
        if self.blob_exists(r, digest)? {
            return Ok(PushedBlob::Exists);
        }
        let location = match mount_from.filter(|f| *f != r.repository) {
            Some(from) => match self.mount_blob(r, digest, from)? {
                Mount::Mounted => return Ok(PushedBlob::Mounted),
                Mount::Upload(location) => location,
            },
            None => self.start_upload(r)?,
        };
        let blob = open().map_err(|e| Error::io(format!("open blob {digest}"), e))?;
        self.finish_upload(r, &location, digest, size, blob)?;
        Ok(PushedBlob::Uploaded)
    }

    /// `PUT /v2/NAME/manifests/TAG|DIGEST` with `Content-Type` = `media_type`; returns the
    /// digest, checked against the registry's `Docker-Content-Digest`.
    pub fn put_manifest(&self, r: &Reference, media_type: &str, bytes: &[u8]) -> Result<String> {
        let url = format!("{}/manifests/{}", self.repo_url(r)?, r.manifest_ref());
        let length = bytes.len().to_string();
        let resp = self.request(
            r.api_host(),
            Method::PUT,
            &url,
            &push_scope(r),
            &[("content-type", media_type), ("content-length", &length)],
            Payload::Bytes(bytes),
        )?;
        if !resp.status().is_success() {
            return Err(self.response_error(&Method::PUT, &url, resp, About::Manifest(r)));
        }
        let digest = sha256_digest(bytes);
        if let Some(theirs) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if theirs != digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest pushed to {url}"),
                    expected: digest,
                    actual: theirs.to_string(),
                });
            }
        }
        Ok(digest)
    }

    /// The absolute upload URL from a `Location` header (registry 2.8 sends absolute URLs
    /// with a `_state` query; others send a path).
    fn location(
        &self,
        r: &Reference,
        url: &str,
        resp: &http::Response<ureq::Body>,
    ) -> Result<String> {
        let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) else {
            return Err(Error::Registry {
                method: "POST".into(),
                url: url.to_string(),
                status: resp.status().as_u16(),
                detail: ": no Location header".to_string(),
            });
        };
        if loc.starts_with("http://") || loc.starts_with("https://") {
            return Ok(loc.to_string());
        }
        let base = self.base(r.api_host())?;
        if loc.starts_with('/') {
            Ok(format!("{base}{loc}"))
        } else {
            Ok(format!("{base}/v2/{}/blobs/uploads/{loc}", r.repository))
        }
    }
}
