//! sha256 digests over streams, layer decompression by media type, diff IDs and chain IDs.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::media;

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Checks `bytes` against `expected` (`sha256:<hex>`).
pub fn verify(what: &str, bytes: &[u8], expected: &str) -> Result<()> {
    let actual = sha256_digest(bytes);
    if actual != expected {
        return Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// The sha256 and the byte count of what has passed so far, for [`HashingReader`] and
/// [`HashingWriter`].
struct Tally {
    hasher: Sha256,
    count: u64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            hasher: Sha256::new(),
            count: 0,
        }
    }
    fn add(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.count += bytes.len() as u64;
    }
    fn digest(&self) -> String {
        format!("sha256:{}", hex(&self.hasher.clone().finalize()))
    }
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    tally: Tally,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            tally: Tally::new(),
        }
    }
    /// `sha256:<hex>` of everything read so far.
    pub fn digest(&self) -> String {
        self.tally.digest()
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.tally.count
    }
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tally.add(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    tally: Tally,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            tally: Tally::new(),
        }
    }
    /// `sha256:<hex>` of everything written so far.
    pub fn digest(&self) -> String {
        self.tally.digest()
    }
    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.tally.count
    }
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.tally.add(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

impl LayerCompression {
    /// OCI `tar`, `tar+gzip`, `tar+zstd` (and their non-distributable forms), Docker's
    /// `rootfs.diff.tar.gzip` (and foreign), `rootfs.diff.tar`.
    pub fn from_media_type(media_type: &str) -> Result<LayerCompression> {
        use LayerCompression::*;
        Ok(match media_type {
            media::OCI_LAYER | media::OCI_LAYER_NONDIST | media::DOCKER_LAYER => None,
            media::OCI_LAYER_GZIP
            | media::OCI_LAYER_NONDIST_GZIP
            | media::DOCKER_LAYER_GZIP
            | media::DOCKER_LAYER_FOREIGN_GZIP => Gzip,
            media::OCI_LAYER_ZSTD | media::OCI_LAYER_NONDIST_ZSTD => Zstd,
            other => {
                return Err(Error::UnsupportedMediaType {
                    what: "layer".to_string(),
                    media_type: other.to_string(),
                })
            }
        })
    }
}

/// The uncompressed tar stream of a layer blob, hashed as it is read: once read to the end,
/// [`HashingReader::digest`] is the layer's diff ID. gzip goes through `MultiGzDecoder` (pigz
/// and eStargz write several members); zstd reads multi-frame input.
///
/// A tar reader may stop at the end-of-archive blocks: read the rest (`io::copy` into
/// `io::sink()`) before taking the digest.
pub fn uncompressed<'a, R: Read + Send + 'a>(
    blob: R,
    compression: LayerCompression,
) -> io::Result<HashingReader<Box<dyn Read + Send + 'a>>> {
    Ok(HashingReader::new(decompressed(blob, compression)?))
}

/// The uncompressed tar stream of a layer blob, not hashed (for a consumer that hashes it).
pub fn decompressed<'a, R: Read + Send + 'a>(
    blob: R,
    compression: LayerCompression,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        LayerCompression::None => Box::new(blob),
        LayerCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        LayerCompression::Zstd => Box::new(zstd::stream::read::Decoder::new(blob)?),
    })
}

/// ChainID(0) = DiffID(0); ChainID(n) = sha256("ChainID(n-1) DiffID(n)").
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The chain ID of the whole stack.
pub fn chain_id(diff_ids: &[String]) -> Option<String> {
    chain_ids(diff_ids).pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_digest(b"{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let err = verify("x", b"{}", &sha256_digest(b"")).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = sha256_digest(b"a");
        let b = sha256_digest(b"b");
        let c = sha256_digest(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        let ab = sha256_digest(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], sha256_digest(format!("{ab} {c}").as_bytes()));
        assert_eq!(chain_id(&[]), None);
    }

    #[test]
    fn diff_id_through_each_compression() {
        let tar = b"pretend this is a tar stream".repeat(100);
        let want = sha256_digest(&tar);
        // Two gzip members in one blob.
        let mut gz = Vec::new();
        for half in tar.chunks(tar.len() / 2) {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(half).unwrap();
            gz.extend(enc.finish().unwrap());
        }
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        for (blob, c) in [
            (tar.clone(), LayerCompression::None),
            (gz, LayerCompression::Gzip),
            (zst, LayerCompression::Zstd),
        ] {
            let mut r = uncompressed(&blob[..], c).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, tar, "{c:?}");
            assert_eq!(r.digest(), want, "{c:?}");
        }
    }

    #[test]
    fn compression_by_media_type() {
        use LayerCompression::*;
        assert_eq!(
            LayerCompression::from_media_type(media::DOCKER_LAYER_GZIP).unwrap(),
            Gzip
        );
        assert_eq!(
            LayerCompression::from_media_type(media::OCI_LAYER_ZSTD).unwrap(),
            Zstd
        );
        assert_eq!(
            LayerCompression::from_media_type(media::OCI_LAYER).unwrap(),
            None
        );
        assert!(matches!(
            LayerCompression::from_media_type("application/x-foo"),
            Err(Error::UnsupportedMediaType { .. })
        ));
    }
}
