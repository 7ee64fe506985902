//! `dock system check [--repair]`: the store checked as a whole. Images (json parses and names
//! its directory, layer or config present, parent present, no cycle), the listing index,
//! graph staging, the tag file (parses, every tag names an image), containers (config parses,
//! image present) and whatever is left in `graph/` or `containers/` that no command lists:
//! crashed staging, half-removed containers, temp files of dead processes, foreign entries.
//!
//! The check runs under the store lock ([`graph::storelock`]), so no create, tag, commit or
//! `rmi` is half-way while it looks. `--repair` removes what cannot be used and keeps all
//! that can: a valid image or container is never touched; a broken one that a container or
//! child image still needs, a running container and a container whose config cannot be read
//! (it may hold processes and mounts: `rm -f` releases them) are kept and said so.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use graph::{Graph, IndexState};
use tagstore::TagStore;

use crate::container::{self, Container};
use crate::{overlay, remove_tree, CREATING_PREFIX, NAMES_LOCK, REMOVED_PREFIX};

/// One thing wrong with the store; its `Display` is the line `system check` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// In `graph/_tmp/`, owned by no live process.
    Staging {
        path: PathBuf,
    },
    /// An entry no command lists or removes.
    Orphan {
        path: PathBuf,
    },
    /// `graph/<id>/json` missing, unparsable or naming another id.
    ImageJson {
        id: String,
        path: PathBuf,
        message: String,
    },
    /// An image's layer directory (or, for a configuration entry, its config) is missing.
    MissingLayer {
        id: String,
        path: PathBuf,
    },
    MissingParent {
        id: String,
        parent: String,
    },
    ParentCycle {
        id: String,
    },
    /// The listing index is current by its stamp but lists other images.
    Index {
        path: PathBuf,
    },
    /// A temp file left by a process that is gone.
    Temp {
        path: PathBuf,
    },
    /// `repositories` does not parse.
    TagFile {
        path: PathBuf,
        message: String,
    },
    DanglingTag {
        reference: String,
        id: String,
    },
    /// `containers/.removed-<id>`: a removal that did not finish.
    Removed {
        path: PathBuf,
    },
    /// `containers/.creating-<id>`: a create that did not finish.
    Creating {
        path: PathBuf,
    },
    /// `containers/<id>/config.json` missing, unparsable or naming another id.
    ContainerConfig {
        id: String,
        path: PathBuf,
        message: String,
    },
    /// The container's image is not in the graph.
    ContainerImage {
        id: String,
        image: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Staging { path } => {
                write!(f, "{}: staging left by a crashed process", path.display())
            }
            Problem::Orphan { path } => {
                write!(f, "{}: not part of the store (orphan)", path.display())
            }
            Problem::ImageJson { id, path, message } => {
                write!(f, "image {id}: {}: {message}", path.display())
            }
            Problem::MissingLayer { id, path } => {
                write!(f, "image {id}: {} is missing", path.display())
            }
            Problem::MissingParent { id, parent } => {
                write!(f, "image {id}: parent image {parent} is missing")
            }
            Problem::ParentCycle { id } => write!(f, "image {id}: its parents form a cycle"),
            Problem::Index { path } => write!(
                f,
                "{}: listing index disagrees with the image directories",
                path.display()
            ),
            Problem::Temp { path } => {
                write!(f, "{}: temp file of a process that is gone", path.display())
            }
            Problem::TagFile { path, message } => {
                write!(f, "{}: does not parse: {message}", path.display())
            }
            Problem::DanglingTag { reference, id } => {
                write!(f, "tag {reference}: image {id} does not exist")
            }
            Problem::Removed { path } => {
                write!(f, "{}: removal of a container not finished", path.display())
            }
            Problem::Creating { path } => write!(
                f,
                "{}: creation of a container not finished",
                path.display()
            ),
            Problem::ContainerConfig { id, path, message } => {
                write!(f, "container {id}: {}: {message}", path.display())
            }
            Problem::ContainerImage { id, image } => {
                write!(f, "container {id}: image {image} does not exist")
            }
        }
    }
}

/// What `--repair` did about a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Removed (or moved aside) what could not be used.
    Fixed(String),
    /// Left as it is, and why.
    Kept(String),
}

/// A problem and, with `--repair`, what was done about it.
#[derive(Debug)]
pub struct Finding {
    pub problem: Problem,
    pub repair: Option<Repair>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Graph(#[from] graph::Error),
    #[error(transparent)]
    Tags(#[from] tagstore::Error),
}

fn io_err(context: impl fmt::Display) -> impl FnOnce(io::Error) -> CheckError {
    let context = context.to_string();
    move |source| CheckError::Io { context, source }
}

/// Entry names of `dir`, sorted; none when it does not exist.
fn names(dir: &Path) -> Result<Vec<String>, CheckError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("read {}", dir.display()))(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(format!("read {}", dir.display())))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Whether a temp file named `<anything><sep><pid>` (or `.<pid>.tmp`) belongs to a live
/// process.
fn pid_alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// The temp files in the index directory `dir` (those `temp_pid` names a writer of) whose
/// writer is gone.
fn dead_index_temps(
    dir: &Path,
    temp_pid: impl Fn(&str) -> Option<u32>,
    problems: &mut Vec<Problem>,
) -> Result<(), CheckError> {
    for entry in names(dir)? {
        if temp_pid(&entry).is_some_and(|pid| !pid_alive(&pid.to_string())) {
            problems.push(Problem::Temp {
                path: dir.join(&entry),
            });
        }
    }
    Ok(())
}

/// What the check knows about one image directory.
struct ImageEntry {
    parent: Option<String>,
}

/// Checks the store at `root`; with `repair`, repairs what it found and checks again until
/// nothing more can be done. Returns every problem of the first pass with what was done,
/// then (with `repair`) those that remained or appeared later.
pub fn check_store(root: &Path, repair: bool) -> Result<Vec<Finding>, CheckError> {
    let graph_dir = root.join("graph");
    // No graph: an empty store (nothing can be half-made without one).
    let _store = if graph_dir.is_dir() {
        Some(graph::StoreLock::acquire(&graph::store_lock_path(
            &graph_dir,
        ))?)
    } else {
        None
    };
    let mut findings: Vec<Finding> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    // A repair can uncover more (an image removed leaves its children without a parent):
    // repeat while a pass fixes something, a few times at most.
    for _ in 0..8 {
        let problems = check(root)?;
        let fresh: Vec<Problem> = problems
            .into_iter()
            .filter(|p| seen.insert(p.to_string()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let mut fixed_any = false;
        for problem in fresh {
            let repair = if repair {
                let outcome = repair_one(root, &problem)?;
                fixed_any |= matches!(outcome, Repair::Fixed(_));
                Some(outcome)
            } else {
                None
            };
            findings.push(Finding { problem, repair });
        }
        if !fixed_any {
            break;
        }
    }
    Ok(findings)
}

/// Every problem of the store at `root`, without changing anything. The caller holds the
/// store lock (or nothing else runs), so `.creating-` dirs are stale.
pub fn check(root: &Path) -> Result<Vec<Problem>, CheckError> {
    let mut problems = Vec::new();
    let graph_dir = root.join("graph");
    let graph = Graph::at(&graph_dir);
    let images = check_graph(&graph, &mut problems)?;
    check_tags(root, &images, &mut problems)?;
    check_containers(root, &images, &mut problems)?;
    Ok(problems)
}

fn check_graph(
    graph: &Graph,
    problems: &mut Vec<Problem>,
) -> Result<BTreeMap<String, ImageEntry>, CheckError> {
    let dir = graph.root();
    let mut images = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(images);
    }
    for path in graph.staging_leftovers()? {
        problems.push(Problem::Staging { path });
    }
    let mut json_ok = true;
    for name in names(dir)? {
        let path = dir.join(&name);
        if name == graph::STAGING_DIR || name == graph::storelock::STORE_LOCK_FILE {
            continue;
        }
        if name == graph::INDEX_DIR {
            dead_index_temps(&path, graph::index_temp_pid, problems)?;
            continue;
        }
        if !graph::is_full_id(&name) {
            problems.push(Problem::Orphan { path });
            continue;
        }
        let json = path.join("json");
        // A missing or unparsable json is damage; any other read error (EIO, EACCES) may
        // pass, and is an error of the check, never a reason for --repair to delete.
        let read = match fs::read(&json) {
            Ok(bytes) => serde_json::from_slice::<graph::Image>(&bytes).map_err(|e| e.to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e.to_string()),
            Err(source) => {
                return Err(CheckError::Io {
                    context: format!("read {}", json.display()),
                    source,
                })
            }
        };
        let image = match read {
            Ok(image) => image,
            Err(message) => {
                json_ok = false;
                problems.push(Problem::ImageJson {
                    id: name.clone(),
                    path: json,
                    message,
                });
                continue;
            }
        };
        if image.id != name {
            json_ok = false;
            problems.push(Problem::ImageJson {
                id: name.clone(),
                path: json,
                message: format!("it holds id {}", image.id),
            });
            continue;
        }
        let content = if image.layerless {
            path.join("config")
        } else {
            path.join("layer")
        };
        let present = if image.layerless {
            content.is_file()
        } else {
            content.is_dir()
        };
        if !present {
            problems.push(Problem::MissingLayer {
                id: name.clone(),
                path: content,
            });
        }
        images.insert(
            name,
            ImageEntry {
                parent: image.parent,
            },
        );
    }
    // Parents of the images whose json parsed; a broken parent is reported as itself.
    let broken: BTreeSet<String> = problems
        .iter()
        .filter_map(|p| match p {
            Problem::ImageJson { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    for (id, entry) in &images {
        if let Some(parent) = &entry.parent {
            if !images.contains_key(parent) && !broken.contains(parent) {
                problems.push(Problem::MissingParent {
                    id: id.clone(),
                    parent: parent.clone(),
                });
            }
        }
        let mut walked = HashSet::from([id.as_str()]);
        let mut next = entry.parent.as_deref();
        while let Some(current) = next {
            if !walked.insert(current) {
                problems.push(Problem::ParentCycle { id: id.clone() });
                break;
            }
            next = images.get(current).and_then(|e| e.parent.as_deref());
        }
    }
    if json_ok && graph.index_state()? == IndexState::Disagrees {
        problems.push(Problem::Index {
            path: graph.index_path(),
        });
    }
    Ok(images)
}

fn check_tags(
    root: &Path,
    images: &BTreeMap<String, ImageEntry>,
    problems: &mut Vec<Problem>,
) -> Result<(), CheckError> {
    let path = root.join("repositories");
    let tmp = path.with_extension("tmp");
    // Written only under the tag file's lock: a temp file is stale when the lock is free.
    if tmp.exists() && tag_lock_free(root)? {
        problems.push(Problem::Temp { path: tmp });
    }
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
    };
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(rename = "Repositories", default)]
        repositories: tagstore::Repositories,
    }
    let file: File = match serde_json::from_slice(&bytes) {
        Ok(file) => file,
        Err(e) => {
            problems.push(Problem::TagFile {
                path,
                message: e.to_string(),
            });
            return Ok(());
        }
    };
    let graph_dir = root.join("graph");
    for (repo, tags) in &file.repositories {
        for (tag, id) in tags {
            // A broken image (unparsable json) is reported as itself; its tags stand.
            let there =
                images.contains_key(id) || (graph::is_full_id(id) && graph_dir.join(id).is_dir());
            if !there {
                problems.push(Problem::DanglingTag {
                    reference: format!("{repo}:{tag}"),
                    id: id.clone(),
                });
            }
        }
    }
    Ok(())
}

fn tag_lock_free(root: &Path) -> Result<bool, CheckError> {
    let path = root.join("repositories.lock");
    let file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io_err(format!("open {}", path.display()))(e)),
    };
    Ok(file.try_lock().is_ok())
}

fn check_containers(
    root: &Path,
    images: &BTreeMap<String, ImageEntry>,
    problems: &mut Vec<Problem>,
) -> Result<(), CheckError> {
    let dir = root.join("containers");
    let graph_dir = root.join("graph");
    for name in names(&dir)? {
        let path = dir.join(&name);
        if name == NAMES_LOCK {
            continue;
        }
        if name == graph::INDEX_DIR {
            let temp_pid =
                |entry: &str| graph::stamped::temp_pid(entry, crate::listindex::INDEX_FILE);
            dead_index_temps(&path, temp_pid, problems)?;
            continue;
        }
        if name.starts_with(REMOVED_PREFIX) {
            problems.push(Problem::Removed { path });
            continue;
        }
        if name.starts_with(CREATING_PREFIX) {
            problems.push(Problem::Creating { path });
            continue;
        }
        if !graph::is_full_id(&name) {
            problems.push(Problem::Orphan { path });
            continue;
        }
        for entry in names(&path)? {
            if let Some(pid) = entry.strip_prefix("config.json.tmp-") {
                if !pid_alive(pid) {
                    problems.push(Problem::Temp {
                        path: path.join(&entry),
                    });
                }
            }
        }
        let config = path.join("config.json");
        let c: Container = match container::load(&config) {
            Ok(c) => c,
            Err(e) => {
                let message = match &e {
                    crate::Error::Io { source, .. } => source.to_string(),
                    crate::Error::Corrupt { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                problems.push(Problem::ContainerConfig {
                    id: name.clone(),
                    path: config,
                    message,
                });
                continue;
            }
        };
        if c.id != name {
            problems.push(Problem::ContainerConfig {
                id: name.clone(),
                path: config,
                message: format!("it holds id {}", c.id),
            });
            continue;
        }
        let image_there = images.contains_key(&c.image)
            || (graph::is_full_id(&c.image) && graph_dir.join(&c.image).is_dir());
        if !image_there {
            problems.push(Problem::ContainerImage {
                id: name,
                image: c.image,
            });
        }
    }
    Ok(())
}

/// Ids of containers whose config names `image`.
fn containers_of(root: &Path, image: &str) -> Result<Vec<String>, CheckError> {
    let dir = root.join("containers");
    let mut users = Vec::new();
    for name in names(&dir)? {
        if !graph::is_full_id(&name) {
            continue;
        }
        if let Ok(c) = container::load(&dir.join(&name).join("config.json")) {
            if c.image == image {
                users.push(name);
            }
        }
    }
    Ok(users)
}

/// Ids of images whose json names `parent` as their parent.
fn children_of(graph_dir: &Path, parent: &str) -> Result<Vec<String>, CheckError> {
    let mut children = Vec::new();
    for name in names(graph_dir)? {
        if !graph::is_full_id(&name) {
            continue;
        }
        let Ok(bytes) = fs::read(graph_dir.join(&name).join("json")) else {
            continue;
        };
        if let Ok(image) = serde_json::from_slice::<graph::Image>(&bytes) {
            if image.parent.as_deref() == Some(parent) {
                children.push(name);
            }
        }
    }
    Ok(children)
}

fn remove_path(path: &Path) -> Result<Repair, CheckError> {
    remove_tree(path).map_err(io_err(format!("remove {}", path.display())))?;
    Ok(Repair::Fixed(format!("removed {}", path.display())))
}

/// Removes an image that cannot be used, unless a container or a child image needs it.
fn remove_image(root: &Path, id: &str) -> Result<Repair, CheckError> {
    let graph_dir = root.join("graph");
    if let Some(user) = containers_of(root, id)?.first() {
        return Ok(Repair::Kept(format!("kept: container {user} uses it")));
    }
    if let Some(child) = children_of(&graph_dir, id)?.first() {
        return Ok(Repair::Kept(format!(
            "kept: image {child} names it as parent"
        )));
    }
    // Renamed out first, as `Graph::delete` does: no reader sees half an image.
    let staging = graph_dir.join(graph::STAGING_DIR);
    fs::create_dir_all(&staging).map_err(io_err(format!("create {}", staging.display())))?;
    let from = graph_dir.join(id);
    let trash = staging.join(format!("{id}-check.deleted"));
    fs::rename(&from, &trash).map_err(io_err(format!("rename {}", from.display())))?;
    remove_tree(&trash).map_err(io_err(format!("remove {}", trash.display())))?;
    let tags = TagStore::open(root.join("repositories"))?;
    let untagged = tags.remove_image(id)?;
    let mut said = format!("removed image {id}");
    if !untagged.is_empty() {
        said.push_str(&format!(" and its tags {}", untagged.join(", ")));
    }
    Ok(Repair::Fixed(said))
}

/// Removes a stopped container's directory (renamed out first, as `rm` does).
fn remove_container(root: &Path, id: &str) -> Result<Repair, CheckError> {
    let dir = root.join("containers").join(id);
    if overlay::is_mounted(&dir.join("rootfs")) {
        return Ok(Repair::Kept(
            "kept: its rootfs is mounted (running?); stop it and use rm -f".into(),
        ));
    }
    let removed = root
        .join("containers")
        .join(format!("{REMOVED_PREFIX}{id}"));
    fs::rename(&dir, &removed).map_err(io_err(format!("rename {}", dir.display())))?;
    remove_tree(&removed).map_err(io_err(format!("remove {}", removed.display())))?;
    Ok(Repair::Fixed(format!("removed container {id}")))
}

fn repair_one(root: &Path, problem: &Problem) -> Result<Repair, CheckError> {
    match problem {
        Problem::Staging { path }
        | Problem::Orphan { path }
        | Problem::Temp { path }
        | Problem::Removed { path }
        | Problem::Creating { path } => remove_path(path),
        Problem::ImageJson { id, .. }
        | Problem::MissingLayer { id, .. }
        | Problem::MissingParent { id, .. } => remove_image(root, id),
        Problem::ParentCycle { .. } => Ok(Repair::Kept(
            "kept: remove the images of the cycle with rmi".into(),
        )),
        Problem::Index { path } => {
            Graph::at(root.join("graph")).drop_index()?;
            Ok(Repair::Fixed(format!(
                "removed {} (the next listing rebuilds it)",
                path.display()
            )))
        }
        Problem::TagFile { path, .. } => {
            let aside = path.with_extension("broken");
            fs::rename(path, &aside).map_err(io_err(format!("rename {}", path.display())))?;
            Ok(Repair::Fixed(format!(
                "moved {} to {}; every tag is gone",
                path.display(),
                aside.display()
            )))
        }
        Problem::DanglingTag { reference, .. } => {
            let (repo, tag) = tagstore::parse_reference(reference);
            TagStore::open(root.join("repositories"))?
                .untag(&repo, tag.as_deref().unwrap_or(""))?;
            Ok(Repair::Fixed(format!("untagged {reference}")))
        }
        Problem::ContainerConfig { id, path, .. } => {
            if path.exists() {
                // It may have processes, mounts, cgroups and a network: `rm -f` releases them.
                Ok(Repair::Kept(format!(
                    "kept: remove it with `dock rm -f {id}`"
                )))
            } else {
                // Never started (start needs the config): nothing to release.
                remove_container(root, id)
            }
        }
        Problem::ContainerImage { id, .. } => {
            let c = container::load(&root.join("containers").join(id).join("config.json"));
            match c {
                Ok(c) if c.state.running => Ok(Repair::Kept(format!(
                    "kept: it is running; stop it and `dock rm {id}`"
                ))),
                _ => remove_container(root, id),
            }
        }
    }
}

/// For tests and embedders: whether `check` finds nothing.
pub fn is_clean(root: &Path) -> Result<bool, CheckError> {
    Ok(check(root)?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn image(root: &Path, id: &str, parent: Option<&str>, layer: bool) {
        let dir = root.join("graph").join(id);
        fs::create_dir_all(&dir).unwrap();
        if layer {
            fs::create_dir(dir.join("layer")).unwrap();
        }
        let mut json = serde_json::json!({"id": id, "created": "2024-01-01T00:00:00Z"});
        if let Some(parent) = parent {
            json["parent"] = parent.into();
        }
        fs::write(dir.join("json"), json.to_string()).unwrap();
    }

    fn container(root: &Path, id: &str, image: &str) {
        let dir = root.join("containers").join(id);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        let json = serde_json::json!({"Id": id, "Created": "2024-01-01T00:00:00Z",
            "Path": "true", "Args": [], "Config": {},
            "State": {"Running": false, "Pid": 0, "ExitCode": 0,
                      "StartedAt": "0001-01-01T00:00:00Z"},
            "Image": image, "NetworkSettings": {}, "Name": format!("c{}", &id[..4])});
        fs::write(dir.join("config.json"), json.to_string()).unwrap();
    }

    fn tags(root: &Path, tags: &[(&str, &str)]) {
        let mut repos = serde_json::Map::new();
        for (repo, id) in tags {
            repos.insert(repo.to_string(), serde_json::json!({"latest": id}));
        }
        fs::write(
            root.join("repositories"),
            serde_json::json!({ "Repositories": repos }).to_string(),
        )
        .unwrap();
    }

    /// A store with one of everything that is fine.
    fn healthy(root: &Path) {
        fs::create_dir_all(root.join("graph/_tmp")).unwrap();
        fs::create_dir_all(root.join("graph/_index")).unwrap();
        fs::create_dir_all(root.join("containers")).unwrap();
        fs::write(root.join("containers").join(NAMES_LOCK), "").unwrap();
        image(root, &id(1), None, true);
        image(root, &id(2), Some(&id(1)), true);
        container(root, &id(0xc1), &id(2));
        tags(root, &[("base", &id(1)), ("app", &id(2))]);
    }

    #[test]
    fn a_healthy_store_is_clean_and_repair_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        healthy(dir.path());
        assert_eq!(check(dir.path()).unwrap(), vec![]);
        assert!(check_store(dir.path(), true).unwrap().is_empty());
        assert!(dir.path().join("graph").join(id(2)).join("layer").is_dir());
        assert!(dir.path().join("containers").join(id(0xc1)).is_dir());
    }

    #[test]
    fn finds_every_kind_of_damage_and_repair_removes_only_the_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        healthy(root);
        // Images: one without its layer, one with a missing parent, one with a bad json,
        // a child of the bad one (kept while it names it), foreign and staging entries.
        image(root, &id(3), None, false);
        image(root, &id(4), Some(&id(0xee)), true);
        fs::create_dir_all(root.join("graph").join(id(5))).unwrap();
        fs::write(root.join("graph").join(id(5)).join("json"), "{broken").unwrap();
        fs::create_dir_all(root.join("graph/stray")).unwrap();
        fs::create_dir_all(root.join("graph/_tmp/abc-1234.deleted/layer")).unwrap();
        fs::write(root.join("graph/_tmp/def-99.lock"), "").unwrap();
        fs::create_dir_all(root.join("graph/_tmp/def-99/layer")).unwrap();
        // Tags: one naming a missing image; a temp file of a dead writer.
        tags(
            root,
            &[("base", &id(1)), ("app", &id(2)), ("gone", &id(0xdd))],
        );
        fs::write(root.join("repositories.tmp"), "{}").unwrap();
        // Containers: image missing, no config, bad config, half-made, half-removed, foreign.
        container(root, &id(0xc2), &id(0xdd));
        fs::create_dir_all(root.join("containers").join(id(0xc3)).join("upper")).unwrap();
        container(root, &id(0xc4), &id(1));
        fs::write(
            root.join("containers").join(id(0xc4)).join("config.json"),
            "{not json",
        )
        .unwrap();
        fs::create_dir_all(root.join("containers/.creating-xyz/upper")).unwrap();
        fs::create_dir_all(root.join("containers/.removed-xyz/upper")).unwrap();
        fs::write(root.join("containers/junk"), "x").unwrap();
        fs::write(
            root.join("containers")
                .join(id(0xc1))
                .join("config.json.tmp-999999999"),
            "",
        )
        .unwrap();

        let lines: Vec<String> = check(root).unwrap().iter().map(|p| p.to_string()).collect();
        let has = |needle: &str| {
            assert!(
                lines.iter().any(|l| l.contains(needle)),
                "no line with {needle:?} in {lines:#?}"
            )
        };
        has(&format!("image {}: ", id(3)));
        has(&format!(
            "image {}: parent image {} is missing",
            id(4),
            id(0xee)
        ));
        has(&format!("image {}: ", id(5)));
        has("graph/stray: not part of the store");
        has("abc-1234.deleted: staging left");
        has("def-99: staging left");
        has(&format!(
            "tag gone:latest: image {} does not exist",
            id(0xdd)
        ));
        has("repositories.tmp: temp file");
        has(&format!(
            "container {}: image {} does not exist",
            id(0xc2),
            id(0xdd)
        ));
        has(&format!("container {}: ", id(0xc3)));
        has(&format!("container {}: ", id(0xc4)));
        has(".creating-xyz: creation of a container not finished");
        has(".removed-xyz: removal of a container not finished");
        has("containers/junk: not part of the store");
        has("config.json.tmp-999999999: temp file");
        assert_eq!(lines.len(), 16, "{lines:#?}");

        let findings = check_store(root, true).unwrap();
        let kept: Vec<String> = findings
            .iter()
            .filter(|f| matches!(f.repair, Some(Repair::Kept(_))))
            .map(|f| f.problem.to_string())
            .collect();
        // Only the container whose config cannot be read is left (for `rm -f`).
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].contains(&id(0xc4)), "{kept:?}");
        let left: Vec<String> = check(root).unwrap().iter().map(|p| p.to_string()).collect();
        assert_eq!(left, kept);
        // Everything valid is still there.
        for valid in [id(1), id(2)] {
            assert!(root.join("graph").join(&valid).join("layer").is_dir());
        }
        assert!(root
            .join("containers")
            .join(id(0xc1))
            .join("config.json")
            .is_file());
        let repos = fs::read_to_string(root.join("repositories")).unwrap();
        assert!(repos.contains("base") && repos.contains("app") && !repos.contains("gone"));
        for gone in [id(3), id(4), id(5)] {
            assert!(!root.join("graph").join(gone).exists());
        }
        assert!(!root.join("containers").join(id(0xc2)).exists());
        assert!(!root.join("containers").join(id(0xc3)).exists());
    }

    #[test]
    fn a_broken_image_a_container_needs_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        healthy(root);
        fs::remove_dir(root.join("graph").join(id(2)).join("layer")).unwrap();
        let findings = check_store(root, true).unwrap();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(matches!(&findings[0].repair, Some(Repair::Kept(why)) if why.contains(&id(0xc1))));
        assert!(root.join("graph").join(id(2)).join("json").is_file());
    }

    #[test]
    fn a_stale_listing_index_is_found_and_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        healthy(root);
        let graph = Graph::at(root.join("graph"));
        std::thread::sleep(std::time::Duration::from_millis(150));
        graph.all().unwrap(); // writes the index
        assert!(graph.index_path().is_file());
        // Rewrite it under the same stamp, listing one image too few.
        let text = fs::read_to_string(graph.index_path()).unwrap();
        let cut: Vec<&str> = text.lines().take(2).collect();
        fs::write(graph.index_path(), cut.join("\n") + "\n").unwrap();
        let problems = check(root).unwrap();
        assert!(
            matches!(problems.as_slice(), [Problem::Index { .. }]),
            "{problems:?}"
        );
        check_store(root, true).unwrap();
        assert_eq!(check(root).unwrap(), vec![]);
    }
}
