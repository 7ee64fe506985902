//! Names of the tar (`.wh.`) form of overlay whiteouts.
//!
//! In a tar layer a deleted `NAME` is an empty file `.wh.NAME` and an opaque directory holds
//! `.wh..wh..opq`; in an overlay upper directory the same facts are a 0/0 character device
//! `NAME` and the xattr `trusted.overlay.opaque=y` on the directory.

/// Prefix of a whiteout name in the tar form.
pub const PREFIX: &[u8] = b".wh.";
/// Prefix of AUFS metadata names (`.wh..wh.plnk`, `.wh..wh.aufs`, ...), never real content.
pub const META_PREFIX: &[u8] = b".wh..wh.";
/// Marker file of an opaque directory in the tar form.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The overlay xattr that marks a directory opaque.
pub const OPAQUE_XATTR: &std::ffi::CStr = c"trusted.overlay.opaque";
/// Prefix of every overlay-internal xattr; never taken from or written to a tar stream.
pub const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// What a tar entry name means for the whiteout conversion.
#[derive(Debug, PartialEq, Eq)]
pub enum TarName<'a> {
    /// A normal name.
    Plain,
    /// `.wh..wh..opq`: the directory holding it is opaque.
    Opaque,
    /// Other `.wh..wh.*` AUFS metadata: dropped.
    Meta,
    /// `.wh.NAME`: NAME was deleted.
    Deleted(&'a [u8]),
}

/// Classify the last component of a tar entry name.
pub fn classify(name: &[u8]) -> TarName<'_> {
    if name == OPAQUE_MARKER {
        TarName::Opaque
    } else if name.starts_with(META_PREFIX) {
        TarName::Meta
    } else if let Some(deleted) = name.strip_prefix(PREFIX) {
        // `.wh.` alone names nothing.
        if deleted.is_empty() {
            TarName::Meta
        } else {
            TarName::Deleted(deleted)
        }
    } else {
        TarName::Plain
    }
}

/// The tar form name of a whiteout for `name`.
pub fn tar_name(name: &[u8]) -> Vec<u8> {
    let mut out = PREFIX.to_vec();
    out.extend_from_slice(name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decode_by_prefix_not_by_character_set() {
        // Docker 0.1.0's TrimLeft(".wh.") turned `.wh.hello` into `ello` and `.wh.www` into ``.
        assert_eq!(classify(b".wh.hello"), TarName::Deleted(b"hello"));
        assert_eq!(classify(b".wh.www"), TarName::Deleted(b"www"));
        assert_eq!(classify(b".wh..hidden"), TarName::Deleted(b".hidden"));
        assert_eq!(classify(b".wh..wh..opq"), TarName::Opaque);
        assert_eq!(classify(b".wh..wh.plnk"), TarName::Meta);
        assert_eq!(classify(b".wh."), TarName::Meta);
        assert_eq!(classify(b"whale"), TarName::Plain);
        assert_eq!(classify(b".what"), TarName::Plain);
        assert_eq!(tar_name(b"hello"), b".wh.hello");
    }
}
