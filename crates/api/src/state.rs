//! What every handler works on: the state directory and the stores in it, shared with the
//! `dock` commands, and the bridge from async handlers to the synchronous libraries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use graph::Graph;
use runtime::Runtime;
use tagstore::TagStore;

use crate::error::{ApiError, ApiResult, Error};
use crate::runs::Runs;

pub struct State {
    pub root: PathBuf,
    pub graph: Graph,
    pub tags: TagStore,
    pub runtime: Runtime,
    pub runs: Arc<Runs>,
    pub execs: crate::exec::Execs,
}

impl State {
    pub fn open(root: &Path) -> Result<State, Error> {
        let store_error = |path: PathBuf, err: &dyn std::fmt::Display| Error::Store {
            path,
            message: err.to_string(),
        };
        // First: opening the runtime makes the state directory private before anything
        // is created in it. Monitors are this executable (`dock`) in its hidden monitor role.
        let runtime =
            Runtime::open(root).map_err(|err| store_error(root.join("containers"), &err))?;
        let graph_dir = root.join("graph");
        let graph = Graph::open(&graph_dir).map_err(|err| store_error(graph_dir, &err))?;
        let tags_file = root.join("repositories");
        let tags = TagStore::open(&tags_file).map_err(|err| store_error(tags_file, &err))?;
        Ok(State {
            root: root.to_path_buf(),
            graph,
            tags,
            runtime,
            runs: Arc::new(Runs::default()),
            execs: Default::default(),
        })
    }
}

/// Run synchronous library code off the async workers.
pub async fn blocking<T, F>(work: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal(format!("request handler failed: {err}")))?
}
