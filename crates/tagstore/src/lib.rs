//! The tag store (being written).
