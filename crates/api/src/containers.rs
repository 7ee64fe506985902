//! Container endpoints over the `runtime` crate.

use crate::error::ApiResult;
use crate::state::State;

/// How many containers exist, and how many of them run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub total: usize,
    pub running: usize,
}

/// Phase 1: the runtime crate is not wired in yet, so no container exists.
pub fn counts(_state: &State) -> ApiResult<Counts> {
    Ok(Counts::default())
}

/// Ids of the containers created from image `image_id`.
pub fn using_image(_state: &State, _image_id: &str) -> ApiResult<Vec<String>> {
    Ok(Vec::new())
}
