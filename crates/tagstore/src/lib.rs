//! The `repositories` file: `{"Repositories": {repo: {tag: id}}}`.
//!
//! Every change is a read-modify-write under an exclusive lock on a sibling `<file>.lock`, and is
//! written to a temp file, fsynced and renamed into place, so concurrent processes never lose an
//! update and readers (who take no lock) always see a whole file. A missing file is empty.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use graph::{Graph, Image};
use serde::{Deserialize, Serialize};

/// The tag a reference without one means.
pub const DEFAULT_TAG: &str = "latest";

/// repo -> tag -> image id
pub type Repositories = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Graph(#[from] graph::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The `repositories` file does not parse. It is never overwritten: tags cannot change
    /// until it is repaired (or moved aside, which starts an empty store); lookups by id
    /// still work.
    #[error(
        "the tag store {} is damaged ({source}): tags cannot be read or changed until it is \
         repaired or moved aside",
        path.display()
    )]
    Damaged {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "invalid repository name {0:?}: want lowercase [a-z0-9] components separated by '.', '_', \
         '__' or '-', joined by '/', with an optional host[:port]/ prefix"
    )]
    InvalidRepository(String),
    #[error("invalid tag name {0:?}: want [A-Za-z0-9_][A-Za-z0-9_.-], at most 128 characters")]
    InvalidTag(String),
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("tag {reference} points at image {id}, which does not exist")]
    DanglingTag { reference: String, id: String },
    #[error("tag {reference} is already on image {id}; use -f to move it")]
    TagExists { reference: String, id: String },
    #[error("no such tag: {0}")]
    NoSuchTag(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(context: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    let context = context.to_string();
    move |source| Error::Io { context, source }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RepositoriesFile {
    #[serde(rename = "Repositories", default)]
    repositories: Repositories,
}

/// Split `name` into repository and tag: the tag follows the last `:` after the last `/`, so
/// `localhost:5000/team/app:v1` is `("localhost:5000/team/app", Some("v1"))` and
/// `localhost:5000/team/app` has no tag.
pub fn parse_reference(name: &str) -> (String, Option<String>) {
    let (repo, tag) = split_reference(name);
    (repo.to_string(), tag.map(str::to_string))
}

/// [`parse_reference`], borrowing from `name`.
pub fn split_reference(name: &str) -> (&str, Option<&str>) {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (&name[..colon], Some(&name[colon + 1..]))
        }
        None => (name, None),
    }
}

/// `[a-z0-9]+` runs separated by `.`, `_`, `__` or one or more `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false; // empty run: leading, trailing or doubled separator
        }
        if i == bytes.len() {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += if bytes.get(i + 1) == Some(&b'_') {
                    2
                } else {
                    1
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// Docker's domain: `host(.host)*` labels of `[A-Za-z0-9]` with inner `-`, or an IPv6
/// address in brackets, then an optional `:port`.
fn is_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok()
    });
    name.is_none_or(|name| name.split('.').all(label_ok)) && port_ok
}

/// Check a repository name by Docker's rules; the error names the bad name.
pub fn validate_repository(name: &str) -> Result<()> {
    let bad = || Err(Error::InvalidRepository(name.to_string()));
    if name.is_empty() || name.len() > 255 {
        return bad();
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    // Docker's rule: a first component with a `.` or `:`, `localhost`, or capitals is a host.
    let is_domain = first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase());
    if components.len() > 1 && is_domain {
        if !is_host(first) {
            return bad();
        }
        components.remove(0);
    }
    if components.iter().all(|c| is_path_component(c)) {
        Ok(())
    } else {
        bad()
    }
}

/// Check a tag name: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let ok = tag.len() <= 128
        && tag.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
        })
        && !tag.is_empty();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidTag(tag.to_string()))
    }
}

fn tag_or_default(tag: &str) -> &str {
    if tag.is_empty() {
        DEFAULT_TAG
    } else {
        tag
    }
}

/// The tag store over one `repositories` file.
#[derive(Debug, Clone)]
pub struct TagStore {
    path: PathBuf,
    lock_path: PathBuf,
}

impl TagStore {
    /// Open the store at `path` (the file need not exist yet; its directory is created). A
    /// damaged file opens: what needs the tags fails with [`Error::Damaged`], the rest works.
    pub fn open(path: impl Into<PathBuf>) -> Result<TagStore> {
        let path = path.into();
        let mut lock_name = path.file_name().unwrap_or_default().to_os_string();
        lock_name.push(".lock");
        let store = TagStore {
            lock_path: path.with_file_name(lock_name),
            path,
        };
        if let Some(dir) = store.dir() {
            fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        }
        store.clean_temp();
        Ok(store)
    }

    /// [`TagStore::open`], and the repositories it read doing so: a listing needs no second
    /// read of the file. A damaged file is [`Error::Damaged`].
    pub fn open_read(path: impl Into<PathBuf>) -> Result<(TagStore, Repositories)> {
        let store = TagStore::open(path)?;
        let repositories = store.read()?;
        Ok((store, repositories))
    }

    /// The `repositories` file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> Option<&Path> {
        self.path.parent().filter(|d| !d.as_os_str().is_empty())
    }

    /// The temp file a write goes through; only the lock holder writes it.
    fn temp_path(&self) -> PathBuf {
        self.path.with_extension("tmp")
    }

    /// Removes the temp file of a writer that was killed before its rename (it would be
    /// overwritten by the next write, but nothing else removes it). One stat when there is
    /// none; left alone while a writer holds the lock.
    fn clean_temp(&self) {
        let tmp = self.temp_path();
        if !tmp.exists() {
            return;
        }
        let Ok(lock) = File::open(&self.lock_path) else {
            return;
        };
        if lock.try_lock().is_ok() {
            tracing::debug!(path = %tmp.display(), "removing a killed writer's temp file");
            let _ = fs::remove_file(&tmp);
        }
    }

    fn read(&self) -> Result<Repositories> {
        match self.read_bytes()? {
            Some(bytes) => self.parse(&bytes),
            None => Ok(Repositories::new()),
        }
    }

    /// The file's bytes; None when there is no file (an empty store).
    fn read_bytes(&self) -> Result<Option<Vec<u8>>> {
        self.unless_absent(fs::read(&self.path))
    }

    /// [`TagStore::read_bytes`] for a listing: mapped rather than copied into fresh memory,
    /// as [`graph::stamped::map`] maps an index. The store only ever replaces the file by
    /// rename ([`TagStore::write`]); one cut short in place by hand during a listing would
    /// end it with SIGBUS, so what changes tags reads a copy.
    fn map_bytes(&self) -> Result<Option<graph::stamped::Mapped>> {
        self.unless_absent(graph::stamped::map(&self.path))
    }

    /// What reading the file gave; None when there is no file.
    fn unless_absent<T>(&self, read: io::Result<T>) -> Result<Option<T>> {
        match read {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_err(format!("read {}", self.path.display()))(err)),
        }
    }

    /// The file's `bytes` as its repositories.
    fn parse(&self, bytes: &[u8]) -> Result<Repositories> {
        let file: RepositoriesFile =
            serde_json::from_slice(bytes).map_err(|source| Error::Damaged {
                path: self.path.clone(),
                source,
            })?;
        Ok(file.repositories)
    }

    fn write(&self, repositories: Repositories) -> Result<()> {
        let tmp = self.temp_path();
        let json = serde_json::to_vec(&RepositoriesFile { repositories }).expect("map serializes");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(format!("create {}", tmp.display())))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(io_err(format!("write {}", tmp.display())))?;
        fs::rename(&tmp, &self.path).map_err(io_err(format!(
            "rename {} to {}",
            tmp.display(),
            self.path.display()
        )))?;
        let dir = self.dir().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(format!("sync {}", dir.display())))
    }

    /// Run `change` on the current contents under the exclusive lock; write back if it says so.
    fn modify<T>(&self, change: impl FnOnce(&mut Repositories) -> Result<(T, bool)>) -> Result<T> {
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(io_err(format!("open {}", self.lock_path.display())))?;
        lock.lock()
            .map_err(io_err(format!("lock {}", self.lock_path.display())))?;
        let mut repositories = self.read()?;
        let (result, changed) = change(&mut repositories)?;
        if changed {
            // The temp file name is fixed: only the lock holder writes it.
            self.write(repositories)?;
        }
        drop(lock);
        Ok(result)
    }

    /// Every repository with its tags.
    pub fn repositories(&self) -> Result<Repositories> {
        self.read()
    }

    /// Every `(image id, "repo:tag")` of the store, sorted: what a listing of 10,000 images
    /// joins to them. Read straight from the file (as [`in_order::each_tag`] says) rather
    /// than through the maps [`TagStore::repositories`] builds and a copy of each name.
    pub fn names_by_id(&self) -> Result<Vec<(String, String)>> {
        let Some(bytes) = self.map_bytes()? else {
            return Ok(Vec::new());
        };
        let mut names = self.give_tags(&bytes, NamesById::default)?.names;
        names.sort_unstable();
        Ok(names)
    }

    /// For each of `references` (`(repo, tag)`), the image id its tag names, and for each of
    /// `images`, its first `repo:tag` (sorted, as [`TagStore::names`]): what a listing that
    /// shows a few images' names needs, found in one pass over the file rather than through
    /// the maps [`TagStore::repositories`] builds of every repository.
    pub fn find_names(&self, references: &[(&str, &str)], images: &[&str]) -> Result<FoundNames> {
        let start = || NameFinder::new(references, images);
        let finder = match self.map_bytes()? {
            Some(bytes) => self.give_tags(&bytes, start)?,
            None => start(),
        };
        Ok(finder.found)
    }

    /// Gives every tag of the file's `bytes` to what `start` makes: in one pass when the
    /// file is in order; else (what that pass gave thrown away) through the maps, which
    /// read a file out of order or say why it is damaged.
    fn give_tags<T: in_order::Tags>(&self, bytes: &[u8], start: impl Fn() -> T) -> Result<T> {
        let mut tags = start();
        if in_order::each_tag(bytes, &mut tags).is_ok() {
            return Ok(tags);
        }
        let mut tags = start();
        for (repo, repo_tags) in self.parse(bytes)? {
            tags.repository(&repo);
            for (tag, id) in repo_tags {
                tags.tag(&tag, &id);
            }
        }
        Ok(tags)
    }

    /// The image `name` means: `repo[:tag]` (tag `latest` by default) if such a tag exists,
    /// otherwise a full id or unique id prefix. Like Docker, a tag wins over an id prefix.
    /// With a damaged file, an id or id prefix still resolves.
    pub fn lookup(&self, graph: &Graph, name: &str) -> Result<Image> {
        let (repo, tag) = parse_reference(name);
        let tag = tag_or_default(tag.as_deref().unwrap_or(""));
        let repositories = match self.read() {
            Ok(repositories) => repositories,
            Err(damaged @ Error::Damaged { .. }) => {
                return graph.resolve(name).map_err(|err| match err {
                    graph::Error::NoSuchImage(_) => damaged,
                    err => err.into(),
                })
            }
            Err(err) => return Err(err),
        };
        if let Some(id) = repositories.get(&repo).and_then(|tags| tags.get(tag)) {
            return match graph.get(id) {
                Ok(image) => Ok(image),
                Err(graph::Error::NoSuchImage(_) | graph::Error::InvalidId(_)) => {
                    Err(Error::DanglingTag {
                        reference: format!("{repo}:{tag}"),
                        id: id.clone(),
                    })
                }
                Err(err) => Err(err.into()),
            };
        }
        match graph.resolve(name) {
            Ok(image) => Ok(image),
            Err(graph::Error::NoSuchImage(_)) => Err(Error::NoSuchImage(name.to_string())),
            Err(err) => Err(err.into()),
        }
    }

    /// Point `repo:tag` (empty tag = `latest`) at the image `image_name` names; returns its id.
    /// Moving an existing tag to another image needs `force`.
    pub fn set(
        &self,
        graph: &Graph,
        repo: &str,
        tag: &str,
        image_name: &str,
        force: bool,
    ) -> Result<String> {
        validate_repository(repo)?;
        let tag = tag_or_default(tag);
        validate_tag(tag)?;
        // Resolved and recorded under the store lock, so an `rmi` runs wholly before (the
        // name is gone) or after (it sees the tag).
        let _store = graph.lock_store()?;
        let id = self.lookup(graph, image_name)?.id;
        tracing::debug!(repo, tag, id = %id, "setting tag");
        self.modify(|repositories| {
            let tags = repositories.entry(repo.to_string()).or_default();
            match tags.get(tag) {
                Some(current) if *current == id => return Ok((id.clone(), false)),
                Some(current) if !force => {
                    return Err(Error::TagExists {
                        reference: format!("{repo}:{tag}"),
                        id: current.clone(),
                    })
                }
                _ => {}
            }
            tags.insert(tag.to_string(), id.clone());
            Ok((id.clone(), true))
        })
    }

    /// Remove `repo:tag` (empty tag = `latest`); returns the id it named.
    pub fn untag(&self, repo: &str, tag: &str) -> Result<String> {
        let tag = tag_or_default(tag);
        tracing::debug!(repo, tag, "removing tag");
        self.modify(|repositories| {
            let Some(tags) = repositories.get_mut(repo) else {
                return Err(Error::NoSuchTag(format!("{repo}:{tag}")));
            };
            let Some(id) = tags.remove(tag) else {
                return Err(Error::NoSuchTag(format!("{repo}:{tag}")));
            };
            if tags.is_empty() {
                repositories.remove(repo);
            }
            Ok((id, true))
        })
    }

    /// Every `repo:tag` naming `id`, sorted.
    pub fn names(&self, id: &str) -> Result<Vec<String>> {
        Ok(names_of(&self.read()?, id))
    }

    /// Remove every tag naming `id`; returns the removed `repo:tag` names, sorted.
    pub fn remove_image(&self, id: &str) -> Result<Vec<String>> {
        tracing::debug!(id, "removing every tag of image");
        self.modify(|repositories| {
            let removed = names_of(repositories, id);
            for tags in repositories.values_mut() {
                tags.retain(|_, tagged| tagged != id);
            }
            repositories.retain(|_, tags| !tags.is_empty());
            let changed = !removed.is_empty();
            Ok((removed, changed))
        })
    }
}

/// Deletes `image` and then, with `prune`, each parent left untagged, childless and unused
/// (`in_use` says whether a container runs from an id), as Docker's `rmi` does: a pulled
/// image's own layers go with it, layers another image shares stay. Returns the deleted ids,
/// the image first. The caller has checked that `image` itself may go.
pub fn delete_with_parents(
    graph: &Graph,
    tags: &TagStore,
    image: Image,
    prune: bool,
    in_use: &mut dyn FnMut(&str) -> Result<bool>,
) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    let mut next = Some(image);
    while let Some(image) = next.take() {
        graph.delete(&image.id)?;
        tracing::debug!(id = %image.id, "deleted image");
        deleted.push(image.id.clone());
        let Some(parent) = image.parent.filter(|_| prune) else {
            break;
        };
        let Ok(parent) = graph.get(&parent) else {
            break;
        };
        if tags.names(&parent.id)?.is_empty()
            && graph.children(&parent.id)?.is_empty()
            && !in_use(&parent.id)?
        {
            next = Some(parent);
        }
    }
    Ok(deleted)
}

/// What [`TagStore::find_names`] found, in the order asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoundNames {
    /// For each reference, the id its tag names; None when there is no such tag.
    pub named: Vec<Option<String>>,
    /// For each image, its first `repo:tag`; None when no tag names it.
    pub first: Vec<Option<String>>,
}

/// [`TagStore::names_by_id`] under way.
#[derive(Default)]
struct NamesById {
    repo: String,
    names: Vec<(String, String)>,
}

impl in_order::Tags for NamesById {
    fn repository(&mut self, repo: &str) {
        repo.clone_into(&mut self.repo);
    }

    fn tag(&mut self, tag: &str, id: &str) {
        let name = format!("{}:{tag}", self.repo);
        self.names.push((id.to_string(), name));
    }
}

/// [`TagStore::find_names`] under way. What is asked is kept sorted, and searched: a few
/// names are asked of thousands of tags, and a search of a few keys costs less than hashing
/// each tag's 64-byte id.
struct NameFinder<'q> {
    /// The references asked, sorted, with their positions.
    references: Vec<(&'q str, &'q str, usize)>,
    /// The images asked, sorted by [`graph::id_key`], with their positions.
    images: Vec<(u64, &'q str, usize)>,
    /// The repository of the tags now given, and where its references are.
    repo: String,
    asked_of_repo: std::ops::Range<usize>,
    found: FoundNames,
}

impl<'q> NameFinder<'q> {
    fn new(references: &[(&'q str, &'q str)], images: &[&'q str]) -> NameFinder<'q> {
        let mut sorted_references: Vec<_> = references
            .iter()
            .enumerate()
            .map(|(at, &(repo, tag))| (repo, tag, at))
            .collect();
        sorted_references.sort_unstable();
        let mut sorted_images: Vec<_> = images
            .iter()
            .enumerate()
            .map(|(at, &id)| (graph::id_key(id), id, at))
            .collect();
        sorted_images.sort_unstable();
        NameFinder {
            references: sorted_references,
            images: sorted_images,
            repo: String::new(),
            asked_of_repo: 0..0,
            found: FoundNames {
                named: vec![None; references.len()],
                first: vec![None; images.len()],
            },
        }
    }
}

impl in_order::Tags for NameFinder<'_> {
    fn repository(&mut self, repo: &str) {
        let start = self.references.partition_point(|&(asked, ..)| asked < repo);
        let count = self.references[start..]
            .iter()
            .take_while(|&&(asked, ..)| asked == repo)
            .count();
        self.asked_of_repo = start..start + count;
        repo.clone_into(&mut self.repo);
    }

    fn tag(&mut self, tag: &str, id: &str) {
        for &(_, asked, at) in &self.references[self.asked_of_repo.clone()] {
            if asked == tag {
                self.found.named[at] = Some(id.to_string());
            }
        }
        let key = graph::id_key(id);
        let start = self.images.partition_point(|&(asked, ..)| asked < key);
        for &(_, asked, at) in self.images[start..].iter().take_while(|&&(k, ..)| k == key) {
            if asked != id {
                continue;
            }
            let first = &mut self.found.first[at];
            if first
                .as_deref()
                .is_none_or(|first| is_before(&self.repo, tag, first))
            {
                *first = Some(format!("{}:{tag}", self.repo));
            }
        }
    }
}

/// Whether `repo:tag` sorts before `name`.
fn is_before(repo: &str, tag: &str, name: &str) -> bool {
    let joined = repo.bytes().chain([b':']).chain(tag.bytes());
    joined.lt(name.bytes())
}

fn names_of(repositories: &Repositories, id: &str) -> Vec<String> {
    let mut names: Vec<String> = repositories
        .iter()
        .flat_map(|(repo, tags)| {
            tags.iter()
                .filter(move |(_, tagged)| tagged.as_str() == id)
                .map(move |(tag, _)| format!("{repo}:{tag}"))
        })
        .collect();
    names.sort();
    names
}

/// The `repositories` file read into `(image id, "repo:tag")` pairs in one pass.
mod in_order {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde::Deserialize;

    /// What the tags of a file are given to, a repository at a time.
    pub(super) trait Tags {
        /// The tags given next are `repo`'s.
        fn repository(&mut self, repo: &str);
        /// Tag `tag` of the repository given last names image `id`.
        fn tag(&mut self, tag: &str, id: &str);
    }

    /// Gives `tags` every tag of `bytes`, a file whose repositories, and each one's tags,
    /// come in strictly ascending order, as [`super::TagStore`] writes them (from maps). Then
    /// no key comes twice, and the tags are the maps' own. A file out of order (edited by
    /// hand, where a key may come twice and the last one wins) is refused part way: what
    /// `tags` was given is to be thrown away, and the maps read it.
    pub(super) fn each_tag(bytes: &[u8], tags: &mut dyn Tags) -> serde_json::Result<()> {
        let mut file = serde_json::Deserializer::from_slice(bytes);
        de::DeserializeSeed::deserialize(File(tags), &mut file)?;
        file.end()
    }

    /// The whole file: `{"Repositories": ...}`.
    struct File<'a>(&'a mut dyn Tags);

    impl<'de> de::DeserializeSeed<'de> for File<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for File<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a repositories file")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = false;
            while let Some(Text(key)) = map.next_key()? {
                if key == "Repositories" {
                    if std::mem::replace(&mut seen, true) {
                        return Err(de::Error::duplicate_field("Repositories"));
                    }
                    map.next_value_seed(Repositories(&mut *self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    /// `{repo: {tag: id}}`, each repository and its tags given.
    struct Repositories<'a>(&'a mut dyn Tags);

    impl<'de> de::DeserializeSeed<'de> for Repositories<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Repositories<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("repositories")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut last: Option<Cow<str>> = None;
            while let Some(Text(repo)) = map.next_key()? {
                self.0.repository(&repo);
                ascending(&mut last, repo)?;
                map.next_value_seed(RepoTags(&mut *self.0))?;
            }
            Ok(())
        }
    }

    /// `{tag: id}` of one repository, each tag given.
    struct RepoTags<'a>(&'a mut dyn Tags);

    impl<'de> de::DeserializeSeed<'de> for RepoTags<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for RepoTags<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("tags")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut last: Option<Cow<str>> = None;
            while let Some((Text(tag), Text(id))) = map.next_entry::<Text, Text>()? {
                self.0.tag(&tag, &id);
                ascending(&mut last, tag)?;
            }
            Ok(())
        }
    }

    /// Refuses `key` unless it comes after `last`; it is the last one then.
    fn ascending<'de, E: de::Error>(
        last: &mut Option<Cow<'de, str>>,
        key: Cow<'de, str>,
    ) -> Result<(), E> {
        if last.as_ref().is_some_and(|last| *last >= key) {
            return Err(E::custom("keys out of order"));
        }
        *last = Some(key);
        Ok(())
    }

    #[cfg(test)]
    #[test]
    fn a_file_the_store_wrote_is_read_in_one_pass_and_one_out_of_order_refused() {
        let file = super::RepositoriesFile {
            repositories: [
                ("a/b".to_string(), [("v1", "x"), ("v2", "y")]),
                ("host:5000/c".to_string(), [("latest", "x"), ("z", "x")]),
            ]
            .into_iter()
            .map(|(repo, tags)| {
                let tags = tags
                    .into_iter()
                    .map(|(t, id)| (t.to_string(), id.to_string()));
                (repo, tags.collect())
            })
            .collect(),
        };
        let written = serde_json::to_vec(&file).unwrap();
        let read = |bytes: &[u8]| {
            let mut names = super::NamesById::default();
            each_tag(bytes, &mut names).map(|()| names.names)
        };
        let pair = |id: &str, name: &str| (id.to_string(), name.to_string());
        assert_eq!(
            read(&written).unwrap(),
            [
                pair("x", "a/b:v1"),
                pair("y", "a/b:v2"),
                pair("x", "host:5000/c:latest"),
                pair("x", "host:5000/c:z"),
            ]
        );
        for out_of_order in [
            r#"{"Repositories": {"b": {}, "a": {}}}"#,
            r#"{"Repositories": {"a": {"v2": "x", "v1": "y"}}}"#,
            r#"{"Repositories": {"a": {"v1": "x", "v1": "y"}}}"#,
            r#"{"Repositories": {}} {}"#,
        ] {
            assert!(read(out_of_order.as_bytes()).is_err(), "{out_of_order}");
        }
    }

    /// A string borrowed from the file where it has no escapes.
    struct Text<'de>(Cow<'de, str>);

    impl<'de> Deserialize<'de> for Text<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Str;
            impl<'de> Visitor<'de> for Str {
                type Value = Text<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
                    Ok(Text(Cow::Borrowed(text)))
                }
                fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                    Ok(Text(Cow::Owned(text.to_string())))
                }
            }
            d.deserialize_str(Str)
        }
    }
}
