//! `container prune`, `image prune`, `system df` (and so `system prune`): what the CLI and the
//! API (`POST /containers/prune`, `POST /images/prune`, `GET /system/df`) share.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::{events, Container, Error, Result, Runtime};

/// Docker's prune filters: `until=TIME` (created before), `label=K`, `label=K=V`,
/// `label!=K`, `label!=K=V`.
#[derive(Debug, Clone, Default)]
pub struct PruneFilters {
    /// Nanoseconds since the epoch.
    pub until: Option<i64>,
    pub labels: Vec<LabelFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    pub key: String,
    pub value: Option<String>,
    /// `label!=`: keep what does not match.
    pub negated: bool,
}

impl PruneFilters {
    /// From `KEY=VALUE` specs; keys other than until, label and label! are refused.
    pub fn parse(specs: &[String], now: DateTime<Utc>) -> Result<PruneFilters> {
        let mut filters = PruneFilters::default();
        for spec in specs {
            let (key, value) = spec
                .split_once('=')
                .ok_or_else(|| Error::InvalidFilter(spec.clone()))?;
            filters.add(key, value, now)?;
        }
        Ok(filters)
    }

    pub fn add(&mut self, key: &str, value: &str, now: DateTime<Utc>) -> Result<()> {
        match key {
            "until" => {
                let t = events::parse_time(value, now)
                    .map_err(|_| Error::InvalidFilter(format!("until={value}")))?;
                self.until = Some(t);
            }
            "label" | "label!" => {
                let (k, v) = match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                };
                self.labels.push(LabelFilter {
                    key: k,
                    value: v,
                    negated: key == "label!",
                });
            }
            _ => return Err(Error::InvalidFilter(format!("{key}={value}"))),
        }
        Ok(())
    }

    /// Whether something created at `created` with `labels` is pruned.
    pub fn matches(&self, created: DateTime<Utc>, labels: &BTreeMap<String, String>) -> bool {
        if let Some(until) = self.until {
            if created.timestamp_nanos_opt().unwrap_or(i64::MAX) >= until {
                return false;
            }
        }
        self.labels.iter().all(|f| {
            let hit = match (&f.value, labels.get(&f.key)) {
                (None, Some(_)) => true,
                (Some(want), Some(have)) => want == have,
                (_, None) => false,
            };
            hit != f.negated
        })
    }
}

/// What a prune removed and the bytes it freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: Vec<String>,
    pub space: u64,
}

/// One line of an image prune, as Docker's `ImageDeleteResponseItem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRemoval {
    Untagged(String),
    Deleted(String),
}

#[derive(Debug, Clone, Default)]
pub struct ImagesPruned {
    pub removals: Vec<ImageRemoval>,
    pub space: u64,
}

/// `system df`'s numbers (the API's `GET /system/df`).
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    /// Every graph entry's layer, counted once.
    pub layers_size: u64,
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
    pub volumes: Vec<VolumeUsage>,
}

#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub id: String,
    pub parent: Option<String>,
    pub repo_tags: Vec<String>,
    pub created: DateTime<Utc>,
    /// Its whole chain.
    pub size: u64,
    /// The part of its chain other listed images share.
    pub shared_size: u64,
    /// Containers created from it.
    pub containers: usize,
}

#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub container: Container,
    /// Bytes its writable layer holds (Docker's SizeRw).
    pub size_rw: u64,
}

#[derive(Debug, Clone)]
pub struct VolumeUsage {
    pub volume: crate::volumes::Volume,
    pub size: u64,
    pub ref_count: usize,
}

/// Bytes in the files under `dir` (symlinks not followed; whiteouts count nothing).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

impl Runtime {
    /// Removes every stopped container the filters select; their ids and writable layers'
    /// bytes.
    pub fn prune_containers(&self, filters: &PruneFilters) -> Result<Pruned> {
        let mut pruned = Pruned::default();
        for c in self.list()? {
            if c.state.running || !filters.matches(c.created, &c.config.labels) {
                continue;
            }
            let size = dir_size(&self.paths(&c.id).upper());
            match self.remove(&c.id, false) {
                Ok(()) => {
                    pruned.deleted.push(c.id);
                    pruned.space += size;
                }
                // Started or removed meanwhile: not ours to prune.
                Err(Error::Running(_) | Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        events::record(
            &self.root,
            &events::Message::new("container", "prune", "").with("reclaimed", pruned.space),
        );
        Ok(pruned)
    }

    /// Graph entries containers run from, with their parents.
    fn images_used(&self, graph: &graph::Graph) -> Result<BTreeSet<String>> {
        let mut used = BTreeSet::new();
        for c in self.list()? {
            if used.contains(&c.image) {
                continue;
            }
            match graph.history(&c.image) {
                Ok(chain) => used.extend(chain.into_iter().map(|i| i.id)),
                Err(_) => {
                    used.insert(c.image.clone());
                }
            }
        }
        Ok(used)
    }

    /// `image prune`: untagged images nothing builds on and no container uses (`all`: every
    /// image no container uses, names and all), with the parents they leave unused. Filters
    /// select by creation time (`until`) and by the labels of the image's config.
    pub fn prune_images(&self, all: bool, filters: &PruneFilters) -> Result<ImagesPruned> {
        let graph = self.graph()?;
        let tags = self.tags()?;
        let graph_err = |e: graph::Error| Error::Graph(e.to_string());
        let tag_err = |e: tagstore::Error| Error::Graph(e.to_string());
        // Under the store lock, as rmi: a container created meanwhile is seen in `used`, or
        // waits and then finds its image gone.
        let _store = graph.lock_store().map_err(graph_err)?;
        let used = self.images_used(&graph)?;
        let mut out = ImagesPruned::default();
        let sizes: HashMap<String, u64> = graph
            .all()
            .map_err(graph_err)?
            .into_iter()
            .map(|i| (i.id, i.size))
            .collect();
        // A tagged parent becomes a head once its last child went: go again until nothing moves.
        loop {
            let mut moved = false;
            for head in graph.heads().map_err(graph_err)? {
                if used.contains(&head.id) {
                    continue;
                }
                let names = tags.names(&head.id).map_err(tag_err)?;
                if !names.is_empty() && !all {
                    continue;
                }
                let labels = self
                    .image_defaults(&graph, &head)
                    .ok()
                    .flatten()
                    .and_then(|c| c.labels().clone())
                    .map(|l| l.into_iter().collect())
                    .unwrap_or_default();
                if !filters.matches(head.created, &labels) {
                    continue;
                }
                for name in tags.remove_image(&head.id).map_err(tag_err)? {
                    events::image(&self.root, &head.id, "untag", Some(&name));
                    out.removals.push(ImageRemoval::Untagged(name));
                }
                let mut in_use = |id: &str| Ok(used.contains(id));
                for id in tagstore::delete_with_parents(&graph, &tags, head, true, &mut in_use)
                    .map_err(tag_err)?
                {
                    events::image(&self.root, &id, "delete", None);
                    out.space += sizes.get(&id).copied().unwrap_or(0);
                    out.removals
                        .push(ImageRemoval::Deleted(format!("sha256:{id}")));
                }
                moved = true;
            }
            if !moved {
                break;
            }
        }
        events::record(
            &self.root,
            &events::Message::new("image", "prune", "").with("reclaimed", out.space),
        );
        Ok(out)
    }

    /// `system df`: images (as `images` lists them: heads and tagged ones; pulled layer
    /// entries count in the layers' size only), containers and volumes, with their sizes.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let graph = self.graph()?;
        let tags = self.tags()?;
        let graph_err = |e: graph::Error| Error::Graph(e.to_string());
        let everything = graph.all().map_err(graph_err)?;
        let by_id: HashMap<&str, &graph::Image> =
            everything.iter().map(|i| (i.id.as_str(), i)).collect();
        let repositories = tags
            .repositories()
            .map_err(|e| Error::Graph(e.to_string()))?;
        let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (repo, repo_tags) in &repositories {
            for (tag, id) in repo_tags {
                names
                    .entry(id.clone())
                    .or_default()
                    .push(format!("{repo}:{tag}"));
            }
        }
        let parents: BTreeSet<&str> = everything
            .iter()
            .filter_map(|i| i.parent.as_deref())
            .collect();
        let listed: Vec<&graph::Image> = everything
            .iter()
            .filter(|i| names.contains_key(&i.id) || !parents.contains(i.id.as_str()))
            .collect();
        let chain = |id: &str| -> Vec<String> {
            let mut out = Vec::new();
            let mut next = by_id.get(id).copied();
            while let Some(image) = next {
                out.push(image.id.clone());
                next = image.parent.as_deref().and_then(|p| by_id.get(p).copied());
            }
            out
        };
        let chains: Vec<Vec<String>> = listed.iter().map(|i| chain(&i.id)).collect();
        let mut holders: HashMap<&str, usize> = HashMap::new();
        for c in &chains {
            for id in c {
                *holders.entry(id.as_str()).or_default() += 1;
            }
        }
        let containers = self.list()?;
        let mut per_image: HashMap<&str, usize> = HashMap::new();
        for c in &containers {
            *per_image.entry(c.image.as_str()).or_default() += 1;
        }
        let size_of = |id: &String| by_id.get(id.as_str()).map_or(0, |i| i.size);
        let images = listed
            .iter()
            .zip(&chains)
            .map(|(image, chain)| ImageUsage {
                id: image.id.clone(),
                parent: image.parent.clone(),
                repo_tags: names.get(&image.id).cloned().unwrap_or_default(),
                created: image.created,
                size: chain.iter().map(size_of).sum(),
                shared_size: chain
                    .iter()
                    .filter(|id| holders.get(id.as_str()).copied().unwrap_or(0) > 1)
                    .map(size_of)
                    .sum(),
                containers: per_image.get(image.id.as_str()).copied().unwrap_or(0),
            })
            .collect();
        let containers = containers
            .into_iter()
            .map(|c| ContainerUsage {
                size_rw: dir_size(&self.paths(&c.id).upper()),
                container: c,
            })
            .collect();
        let store = self.volumes()?;
        let mut volumes = Vec::new();
        for volume in store.list()? {
            let ref_count = self.volume_users(&volume.name)?.len();
            volumes.push(VolumeUsage {
                size: store.size(&volume.name),
                ref_count,
                volume,
            });
        }
        Ok(DiskUsage {
            layers_size: everything.iter().map(|i| i.size).sum(),
            images,
            containers,
            volumes,
        })
    }
}

impl DiskUsage {
    /// Docker's reclaimable bytes of images: all layers but those of images in use (their
    /// own part; shared parts are counted as Docker's CLI counts them).
    pub fn images_reclaimable(&self) -> u64 {
        let used: u64 = self
            .images
            .iter()
            .filter(|i| i.containers > 0)
            .map(|i| i.size - i.shared_size)
            .sum();
        self.layers_size.saturating_sub(used)
    }

    pub fn containers_size(&self) -> u64 {
        self.containers.iter().map(|c| c.size_rw).sum()
    }

    pub fn containers_reclaimable(&self) -> u64 {
        self.containers
            .iter()
            .filter(|c| !c.container.state.running)
            .map(|c| c.size_rw)
            .sum()
    }

    pub fn volumes_size(&self) -> u64 {
        self.volumes.iter().map(|v| v.size).sum()
    }

    pub fn volumes_reclaimable(&self) -> u64 {
        self.volumes
            .iter()
            .filter(|v| v.ref_count == 0)
            .map(|v| v.size)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn filters_select_by_age_and_labels() {
        let now = at("2026-01-01T01:00:00Z");
        let f = |specs: &[&str]| {
            PruneFilters::parse(
                &specs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                now,
            )
            .unwrap()
        };
        let labels: BTreeMap<String, String> = [("env".to_string(), "test".to_string())].into();
        let none = BTreeMap::new();
        let old = at("2026-01-01T00:00:00Z");
        let new = at("2026-01-01T00:59:00Z");
        assert!(f(&[]).matches(new, &none));
        assert!(f(&["until=30m"]).matches(old, &none));
        assert!(!f(&["until=30m"]).matches(new, &none));
        assert!(f(&["label=env"]).matches(new, &labels));
        assert!(f(&["label=env=test"]).matches(new, &labels));
        assert!(!f(&["label=env=prod"]).matches(new, &labels));
        assert!(!f(&["label=env"]).matches(new, &none));
        assert!(f(&["label!=env"]).matches(new, &none));
        assert!(!f(&["label!=env=test"]).matches(new, &labels));
        assert!(PruneFilters::parse(&["dangling=true".into()], now).is_err());
        assert!(PruneFilters::parse(&["until".into()], now).is_err());
        assert!(PruneFilters::parse(&["until=never".into()], now).is_err());
    }

    #[test]
    fn dir_size_counts_files_once_and_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/b"), [0u8; 23]).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        assert_eq!(dir_size(dir.path()), 123);
    }
}
