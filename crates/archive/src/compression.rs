//! Compression of tar streams: detection from magic bytes, decoders and encoders.

use std::io::{self, BufRead, BufReader, Read, Write};

/// Compression of a tar stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Enough leading bytes to tell every supported format apart.
pub(crate) const MAGIC_LEN: usize = 6;

/// The compression of a stream that starts with `first_bytes` (never guessed from a file name).
pub fn detect(first_bytes: &[u8]) -> Compression {
    if first_bytes.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if first_bytes.starts_with(BZIP2_MAGIC) {
        Compression::Bzip2
    } else if first_bytes.starts_with(XZ_MAGIC) {
        Compression::Xz
    } else if first_bytes.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Capacity of the buffer the tar parser reads through: large reads, few syscalls.
const READ_BUFFER: usize = 1 << 20;

/// The decompressed stream of `reader` (any supported compression, detected from its first
/// bytes; multi-member gzip, bzip2 and xz, multi-frame zstd), or `None` when the input is
/// empty (an empty layer).
pub fn decompressed<'a>(mut reader: impl Read + 'a) -> io::Result<Option<Box<dyn BufRead + 'a>>> {
    // Read until enough bytes for detection arrived or the input ended: a pipe may deliver
    // the magic in pieces.
    let mut head = [0u8; MAGIC_LEN];
    let mut filled = 0;
    while filled < MAGIC_LEN {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    if filled == 0 {
        return Ok(None);
    }
    let compression = detect(&head[..filled]);
    tracing::debug!(?compression, "detected archive compression");
    let input = BufReader::with_capacity(
        READ_BUFFER,
        io::Cursor::new(head[..filled].to_vec()).chain(reader),
    );
    let stream: Box<dyn BufRead + 'a> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            READ_BUFFER,
            flate2::bufread::MultiGzDecoder::new(input),
        )),
        Compression::Bzip2 => Box::new(BufReader::with_capacity(
            READ_BUFFER,
            bzip2::bufread::MultiBzDecoder::new(input),
        )),
        Compression::Xz => Box::new(BufReader::with_capacity(
            READ_BUFFER,
            liblzma::bufread::XzDecoder::new_multi_decoder(input),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            READ_BUFFER,
            zstd::stream::read::Decoder::with_buffer(input)?,
        )),
    };
    Ok(Some(stream))
}

/// A compressing writer; [`Encoder::finish`] writes the trailer and returns the inner writer.
pub(crate) enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Bzip2(bzip2::write::BzEncoder<W>),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(out: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            )),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                out,
                bzip2::Compression::default(),
            )),
            Compression::Xz => Encoder::Xz(liblzma::write::XzEncoder::new(out, 6)),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, 0)?),
        })
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        let mut out = match self {
            Encoder::None(out) => out,
            Encoder::Gzip(enc) => enc.finish()?,
            Encoder::Bzip2(enc) => enc.finish()?,
            Encoder::Xz(enc) => enc.finish()?,
            Encoder::Zstd(enc) => enc.finish()?,
        };
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(out) => out.write(buf),
            Encoder::Gzip(enc) => enc.write(buf),
            Encoder::Bzip2(enc) => enc.write(buf),
            Encoder::Xz(enc) => enc.write(buf),
            Encoder::Zstd(enc) => enc.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(out) => out.flush(),
            Encoder::Gzip(enc) => enc.flush(),
            Encoder::Bzip2(enc) => enc.flush(),
            Encoder::Xz(enc) => enc.flush(),
            Encoder::Zstd(enc) => enc.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_every_magic_and_falls_back_to_none() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(detect(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Compression::Xz);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(detect(b"etc/passwd\0"), Compression::None);
        assert_eq!(detect(b""), Compression::None);
        // A truncated magic is not enough.
        assert_eq!(detect(&[0xfd, b'7', b'z']), Compression::None);
    }

    #[test]
    fn every_encoder_round_trips_through_detection_and_decoding() {
        let payload: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let mut enc = Encoder::new(Vec::new(), compression).unwrap();
            enc.write_all(&payload).unwrap();
            let bytes = enc.finish().unwrap();
            assert_eq!(detect(&bytes), compression);
            // Hand the data over one byte per read, as a slow pipe would.
            let mut decoded = Vec::new();
            decompressed(OneByte(&bytes))
                .unwrap()
                .unwrap()
                .read_to_end(&mut decoded)
                .unwrap();
            assert_eq!(decoded, payload, "{compression:?}");
        }
    }

    #[test]
    fn empty_input_is_no_stream() {
        assert!(decompressed(io::empty()).unwrap().is_none());
    }

    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }
}
