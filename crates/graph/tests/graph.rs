//! Docker 0.1.0's graph_test.go in Rust form, plus the behaviour 0.1.0 got wrong or lacked.

use std::fs::{self, File};
use std::io::{Cursor, Read};

use graph::{generate_id, is_full_id, Error, Graph, Image, NewImage};

/// 0.1.0's `fakeTar`: three files with absolute names, mode 0, no directory entries.
fn fake_tar() -> Cursor<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for name in [
        "/etc/postgres/postgres.conf",
        "/etc/passwd",
        "/var/log/postgres/postgres.conf",
    ] {
        let content = b"Hello world!\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0);
        header.set_entry_type(tar::EntryType::Regular);
        // set_path refuses absolute names; write the raw name like Go's archive/tar did.
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, &content[..]).unwrap();
    }
    Cursor::new(builder.into_inner().unwrap())
}

fn temp_graph() -> (tempfile::TempDir, Graph) {
    let dir = tempfile::tempdir().unwrap();
    let graph = Graph::open(dir.path().join("graph")).unwrap();
    (dir, graph)
}

fn new_image(comment: &str, parent: Option<&str>) -> NewImage {
    NewImage {
        comment: comment.to_string(),
        parent: parent.map(str::to_string),
        ..NewImage::default()
    }
}

fn ids(images: &[Image]) -> Vec<String> {
    let mut ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    ids
}

fn staging_entries(graph: &Graph) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(graph.root().join("_tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn init_empty_graph_lists_nothing() {
    let (_dir, graph) = temp_graph();
    assert!(graph.root().is_dir());
    assert!(graph.all().unwrap().is_empty());
    assert!(graph.heads().unwrap().is_empty());
}

#[test]
fn create_gives_valid_id_and_keeps_comment() {
    let (_dir, graph) = temp_graph();
    let image = graph
        .create(fake_tar(), new_image("Testing", None))
        .unwrap();
    assert!(is_full_id(&image.id), "{}", image.id);
    assert_eq!(image.comment, "Testing");
    assert_eq!(graph.all().unwrap().len(), 1);
    let passwd = graph.layer_path(&image.id).join("etc/passwd");
    assert_eq!(fs::read(passwd).unwrap(), b"Hello world!\n");
    assert!(staging_entries(&graph).is_empty());
}

#[test]
fn register_then_get_round_trips() {
    let (_dir, graph) = temp_graph();
    let image = Image {
        id: generate_id(),
        comment: "testing".to_string(),
        created: chrono::Utc::now(),
        author: "someone <a@b.c>".to_string(),
        container_config: Some(serde_json::json!({"Cmd": ["/bin/sh"]})),
        ..Image::default()
    };
    let registered = graph.register(fake_tar(), image.clone()).unwrap();
    assert_eq!(graph.all().unwrap().len(), 1);
    let got = graph.get(&image.id).unwrap();
    assert_eq!(got.id, image.id);
    assert_eq!(got.comment, "testing");
    assert_eq!(got.created, image.created, "nanoseconds survive the json");
    assert_eq!(got, registered);
}

#[test]
fn register_existing_id_errors() {
    let (_dir, graph) = temp_graph();
    let image = Image {
        id: generate_id(),
        ..Image::default()
    };
    graph.register(fake_tar(), image.clone()).unwrap();
    let err = graph.register(fake_tar(), image.clone()).unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists(ref id) if *id == image.id),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("image {} already exists", image.id)
    );
}

#[test]
fn delete_removes_and_twice_or_unknown_errors() {
    let (_dir, graph) = temp_graph();
    assert_eq!(graph.all().unwrap().len(), 0);
    let image = graph
        .create(fake_tar(), new_image("Testing", None))
        .unwrap();
    assert_eq!(graph.all().unwrap().len(), 1);
    graph.delete(&image.id).unwrap();
    assert_eq!(graph.all().unwrap().len(), 0);
    assert!(!graph.root().join(&image.id).exists());
    assert!(staging_entries(&graph).is_empty());
    let err = graph.delete(&image.id).unwrap_err();
    assert_eq!(err.to_string(), format!("no such image: {}", image.id));

    // Two images from one already-drained archive: both layers are empty.
    let mut archive = fake_tar();
    let mut sink = Vec::new();
    archive.read_to_end(&mut sink).unwrap();
    let first = graph
        .create(&mut archive, new_image("Testing", None))
        .unwrap();
    let second = graph
        .create(&mut archive, new_image("Testing", None))
        .unwrap();
    assert_eq!(graph.all().unwrap().len(), 2);
    assert_eq!(second.size, 0);
    graph.delete(&first.id).unwrap();
    assert_eq!(graph.all().unwrap().len(), 1);

    let err = graph.delete("Not_foo").unwrap_err();
    assert!(err.to_string().contains("Not_foo"), "{err}");
    assert_eq!(graph.all().unwrap().len(), 1);
}

/// A <- B <- C, each the parent of the next.
fn chain(graph: &Graph) -> (Image, Image, Image) {
    let a = graph.create(fake_tar(), new_image("a", None)).unwrap();
    let b = graph
        .create(fake_tar(), new_image("b", Some(&a.id)))
        .unwrap();
    let c = graph
        .create(fake_tar(), new_image("c", Some(&b.id)))
        .unwrap();
    (a, b, c)
}

#[test]
fn heads_of_a_chain_is_its_tip() {
    let (_dir, graph) = temp_graph();
    let (a, _b, c) = chain(&graph);
    assert_eq!(ids(&graph.heads().unwrap()), vec![c.id.clone()]);
    let d = graph
        .create(fake_tar(), new_image("d", Some(&a.id)))
        .unwrap();
    assert_eq!(ids(&graph.heads().unwrap()), ids(&[c, d]));
}

#[test]
fn children_history_and_layers() {
    let (_dir, graph) = temp_graph();
    let (a, b, c) = chain(&graph);
    assert_eq!(ids(&graph.children(&a.id).unwrap()), vec![b.id.clone()]);
    assert!(graph.children(&c.id).unwrap().is_empty());
    let history: Vec<String> = graph
        .history(&c.id)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(history, vec![c.id.clone(), b.id.clone(), a.id.clone()]);
    let layers = graph.layers(&c.id).unwrap();
    let expected: Vec<_> = [&c, &b, &a]
        .iter()
        .map(|i| graph.layer_path(&i.id))
        .collect();
    assert_eq!(layers, expected);
    assert_eq!(layers[0], graph.root().join(&c.id).join("layer"));
}

#[test]
fn history_names_a_missing_parent() {
    let (_dir, graph) = temp_graph();
    let (a, b, c) = chain(&graph);
    // Simulate a store damaged outside dock: the middle image vanished.
    fs::remove_dir_all(graph.root().join(&b.id)).unwrap();
    let err = graph.history(&c.id).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("image {}: parent image {} not found", c.id, b.id)
    );
    assert!(graph.layers(&c.id).is_err());
    assert_eq!(graph.history(&a.id).unwrap().len(), 1);
}

#[test]
fn delete_refuses_with_children_naming_them() {
    let (_dir, graph) = temp_graph();
    let (a, b, c) = chain(&graph);
    let err = graph.delete(&a.id).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("image {} has children: {}", a.id, b.id)
    );
    assert!(graph.exists(&a.id));
    graph.delete(&c.id).unwrap();
    graph.delete(&b.id).unwrap();
    graph.delete(&a.id).unwrap();
    assert!(graph.all().unwrap().is_empty());
}

#[test]
fn create_with_unknown_parent_errors() {
    let (_dir, graph) = temp_graph();
    let parent = generate_id();
    let err = graph
        .create(fake_tar(), new_image("x", Some(&parent)))
        .unwrap_err();
    assert!(err.to_string().contains(&parent), "{err}");
    assert!(graph.all().unwrap().is_empty());
}

#[test]
fn resolve_full_prefix_ambiguous_unknown() {
    let (_dir, graph) = temp_graph();
    let mut images = Vec::new();
    for _ in 0..40 {
        images.push(graph.create(fake_tar(), new_image("", None)).unwrap());
    }
    let first = &images[0];
    assert_eq!(graph.resolve(&first.id).unwrap().id, first.id);
    // 40 random ids: some two share their first hex digit, and 12 digits are unique.
    assert_eq!(graph.resolve(&first.id[..12]).unwrap().id, first.id);
    let shared = images
        .iter()
        .flat_map(|x| images.iter().map(move |y| (x, y)))
        .find(|(x, y)| x.id != y.id && x.id[..1] == y.id[..1])
        .map(|(x, _)| x.id[..1].to_string())
        .expect("pigeonhole: 40 ids over 16 first digits");
    let err = graph.resolve(&shared).unwrap_err();
    assert!(matches!(err, Error::Ambiguous { .. }), "{err}");
    assert!(err.to_string().contains("ambiguous"), "{err}");
    assert!(err.to_string().contains(&shared), "{err}");
    assert_eq!(
        graph.resolve("xyz").unwrap_err().to_string(),
        "no such image: xyz"
    );
    assert_eq!(
        graph.resolve("").unwrap_err().to_string(),
        "no such image: "
    );
    let unknown = generate_id();
    assert_eq!(
        graph.resolve(&unknown).unwrap_err().to_string(),
        format!("no such image: {unknown}")
    );
}

#[test]
fn path_building_rejects_bad_ids() {
    let (dir, graph) = temp_graph();
    for bad in ["../graph", "..", "a/b", "_tmp", ""] {
        assert!(matches!(graph.get(bad), Err(Error::InvalidId(_))), "{bad}");
        assert!(
            matches!(graph.delete(bad), Err(Error::InvalidId(_))),
            "{bad}"
        );
        assert!(!graph.exists(bad));
        assert!(!graph.layer_path(bad).exists(), "{bad}");
        let image = Image {
            id: bad.to_string(),
            ..Image::default()
        };
        assert!(matches!(
            graph.register(fake_tar(), image),
            Err(Error::InvalidId(_))
        ));
    }
    assert!(graph.root().is_dir(), "{}", dir.path().display());
}

#[test]
fn json_uses_docker_field_names() {
    let (_dir, graph) = temp_graph();
    let image = graph
        .create(fake_tar(), new_image("Testing", None))
        .unwrap();
    let raw: serde_json::Value =
        serde_json::from_slice(&fs::read(graph.root().join(&image.id).join("json")).unwrap())
            .unwrap();
    let object = raw.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort();
    // parent, container and author are omitted when empty; container_config never is; the
    // layer's diff ID (which 0.1.0 did not have) is always known.
    assert_eq!(
        keys,
        vec![
            "comment",
            "container_config",
            "created",
            "diff_id",
            "id",
            "size"
        ]
    );
    assert!(object["container_config"].is_null());
    let created = object["created"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == "2013-03-23T12:00:00.123456789Z".len(),
        "{created}"
    );
    assert_eq!(object["size"].as_u64(), Some(image.size));
}

#[test]
fn failed_create_leaves_nothing() {
    let (_dir, graph) = temp_graph();
    // A tar header with a bad checksum followed by garbage: extraction fails.
    let mut garbage = vec![b'x'; 1024];
    garbage[..5].copy_from_slice(b"hello");
    let err = graph
        .create(Cursor::new(garbage), new_image("bad", None))
        .unwrap_err();
    assert!(matches!(err, Error::Extract { .. }), "{err}");
    assert!(graph.all().unwrap().is_empty());
    assert!(
        staging_entries(&graph).is_empty(),
        "{:?}",
        staging_entries(&graph)
    );
    let mut entries: Vec<String> = fs::read_dir(graph.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    // Staging and the (empty) listing index's directory.
    assert_eq!(entries, ["_index", "_tmp"]);
}

#[test]
fn open_removes_stale_staging_but_not_live_imports() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("graph");
    let graph = Graph::open(&root).unwrap();
    let staging = root.join("_tmp");

    // A crashed import: staging dir and lock file, nobody holding the lock.
    let stale = format!("{}-0123456789abcdef", generate_id());
    fs::create_dir_all(staging.join(&stale).join("layer/etc")).unwrap();
    fs::write(staging.join(&stale).join("layer/etc/passwd"), "x").unwrap();
    File::create(staging.join(format!("{stale}.lock"))).unwrap();
    // A crashed delete: a renamed-away image without a lock file.
    let deleted = format!("{}-0123456789abcdef.deleted", generate_id());
    fs::create_dir_all(staging.join(&deleted).join("layer")).unwrap();
    // A live import in another process: its lock file is held.
    let live = format!("{}-fedcba9876543210", generate_id());
    fs::create_dir_all(staging.join(&live).join("layer")).unwrap();
    let live_lock = File::create(staging.join(format!("{live}.lock"))).unwrap();
    live_lock.lock().unwrap();

    let reopened = Graph::open(&root).unwrap();
    assert_eq!(
        staging_entries(&reopened),
        vec![live.clone(), format!("{live}.lock")]
    );
    assert!(reopened.all().unwrap().is_empty());

    // The "importer" died: now its staging goes too.
    drop(live_lock);
    let reopened = Graph::open(&root).unwrap();
    assert!(staging_entries(&reopened).is_empty());
    drop(graph);
}

#[test]
fn listing_reads_json_only() {
    let (_dir, graph) = temp_graph();
    let (a, b, c) = chain(&graph);
    // With every layer dir gone, listing still works: it never looks at them.
    for image in [&a, &b, &c] {
        fs::remove_dir_all(graph.layer_path(&image.id)).unwrap();
    }
    assert_eq!(graph.all().unwrap().len(), 3);
    assert_eq!(ids(&graph.heads().unwrap()), vec![c.id.clone()]);
    assert_eq!(graph.resolve(&b.id[..16]).unwrap().id, b.id);
    assert_eq!(graph.history(&c.id).unwrap().len(), 3);
}

#[test]
fn ten_thousand_images_list() {
    let (_dir, graph) = temp_graph();
    // Written directly (json only, as listing sees them) to keep the test fast.
    let mut parent: Option<String> = None;
    for n in 0..10_000 {
        let image = Image {
            id: generate_id(),
            parent: if n % 2 == 1 { parent.clone() } else { None },
            comment: format!("image {n}"),
            ..Image::default()
        };
        let dir = graph.root().join(&image.id);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("json"), serde_json::to_vec(&image).unwrap()).unwrap();
        parent = Some(image.id);
    }
    assert_eq!(graph.all().unwrap().len(), 10_000);
    assert_eq!(graph.heads().unwrap().len(), 5_000);
}

const CHILD_ROOT: &str = "GRAPH_TEST_CHILD_ROOT";

/// In `import_killed_midway_leaves_nothing`'s child process (the env names the graph), import
/// from stdin, which the parent never finishes; run on its own, import `fake_tar`.
#[test]
fn import_from_stdin() {
    match std::env::var_os(CHILD_ROOT) {
        Some(root) => {
            let graph = Graph::open(root).unwrap();
            graph
                .create(std::io::stdin().lock(), new_image("killed", None))
                .unwrap();
        }
        None => {
            let (_dir, graph) = temp_graph();
            let image = graph.create(fake_tar(), new_image("whole", None)).unwrap();
            assert_eq!(graph.get(&image.id).unwrap().comment, "whole");
        }
    }
}

/// Kills the child on drop, so a failing assertion leaves no process behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn import_killed_midway_leaves_nothing() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let (_dir, graph) = temp_graph();
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "import_from_stdin",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_ROOT, graph.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // One header and half a file: the importer is now blocked in the middle of extraction.
    let tar = fake_tar().into_inner();
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(&tar[..512 + 6]).unwrap();
    stdin.flush().unwrap();

    // Wait (without a deadline that could make the test flaky) until the staging dir exists.
    let staged = || {
        staging_entries(&graph)
            .iter()
            .any(|name| graph.root().join("_tmp").join(name).join("layer").is_dir())
    };
    while !staged() {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "importer exited early"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Another process opening the graph leaves a live import alone.
    let live = staging_entries(&graph);
    assert_eq!(live.len(), 2, "{live:?}");
    assert_eq!(staging_entries(&Graph::open(graph.root()).unwrap()), live);

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    drop(stdin);
    let reopened = Graph::open(graph.root()).unwrap();
    assert!(staging_entries(&reopened).is_empty());
    assert!(reopened.all().unwrap().is_empty());
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_graph_and_its_image_dirs_are_private_and_layers_keep_their_mode() {
    let (_dir, graph) = temp_graph();
    assert_eq!(mode(graph.root()), 0o700);
    assert_eq!(mode(&graph.root().join("_tmp")), 0o700);
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_path("./").unwrap();
    header.set_mode(0o755);
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_cksum();
    builder.append(&header, &[][..]).unwrap();
    let image = graph
        .create(
            Cursor::new(builder.into_inner().unwrap()),
            new_image("", None),
        )
        .unwrap();
    let image_dir = graph.root().join(&image.id);
    assert_eq!(mode(&image_dir), 0o700);
    // The layer is the container's `/`: its own mode is the image's.
    assert_eq!(mode(&image_dir.join("layer")), 0o755);
}

#[test]
fn an_open_graph_of_an_older_version_is_closed_when_opened() {
    let (_dir, graph) = temp_graph();
    let image = graph.create(fake_tar(), new_image("", None)).unwrap();
    let image_dir = graph.root().join(&image.id);
    let layer = image_dir.join("layer");
    let layer_mode = mode(&layer);
    for dir in [graph.root(), &graph.root().join("_tmp"), &image_dir] {
        chmod(dir, 0o755);
    }
    let reopened = Graph::open(graph.root()).unwrap();
    for dir in [reopened.root(), &reopened.root().join("_tmp"), &image_dir] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    assert_eq!(mode(&layer), layer_mode);
    assert_eq!(reopened.get(&image.id).unwrap(), image);

    // Only the graph directory itself is looked at when it is private already.
    chmod(&image_dir, 0o755);
    assert_eq!(
        Graph::secure(reopened.root()).unwrap(),
        graph::perms::DirMode::Private
    );
    assert_eq!(mode(&image_dir), 0o755);
}

/// Sets the graph directory's modification time an hour back, as if it had settled.
fn settle(graph: &Graph) {
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    File::open(graph.root())
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
}

/// A settled graph's listing is kept in `_index/images` and used while nothing changes; an
/// image added or deleted (even one whose directory is made by hand) makes it stale, and a
/// damaged index is read past and rewritten.
#[test]
fn the_listing_index_follows_every_change() {
    let (_dir, graph) = temp_graph();
    let index = graph.root().join("_index").join("images");
    let a = graph.create(fake_tar(), new_image("a", None)).unwrap();
    // Not settled yet: listed from the json files, no index under a time still moving.
    assert_eq!(ids(&graph.all().unwrap()), std::slice::from_ref(&a.id));
    assert!(!index.exists());
    settle(&graph);
    assert_eq!(graph.all().unwrap(), vec![a.clone()]);
    assert!(index.exists());
    // The index is what the next listing reads: make it say something only it can say.
    let mut text = fs::read_to_string(&index).unwrap();
    text = text.replace("\"comment\":\"a\"", "\"comment\":\"from the index\"");
    fs::write(&index, &text).unwrap();
    assert_eq!(graph.all().unwrap()[0].comment, "from the index");

    let b = graph
        .create(fake_tar(), new_image("b", Some(&a.id)))
        .unwrap();
    let listed = graph.all().unwrap();
    assert_eq!(ids(&listed), ids(&[a.clone(), b.clone()]));
    assert!(listed.iter().all(|i| i.comment != "from the index"));
    settle(&graph);
    assert_eq!(graph.all().unwrap().len(), 2);
    assert_eq!(graph.heads().unwrap(), vec![b.clone()]);

    graph.delete(&b.id).unwrap();
    assert_eq!(graph.all().unwrap(), vec![a.clone()]);
    settle(&graph);
    assert_eq!(graph.all().unwrap(), vec![a.clone()]);

    // An entry made by hand (as the benchmarks do) is a change of the directory too.
    let c = Image {
        id: generate_id(),
        ..Image::default()
    };
    fs::create_dir(graph.root().join(&c.id)).unwrap();
    fs::write(
        graph.root().join(&c.id).join("json"),
        serde_json::to_vec(&c).unwrap(),
    )
    .unwrap();
    assert_eq!(ids(&graph.all().unwrap()), ids(&[a.clone(), c.clone()]));

    settle(&graph);
    graph.all().unwrap();
    let current = fs::read_to_string(&index).unwrap();
    let stamp = current.lines().next().unwrap();
    fs::write(&index, format!("{stamp}\nnot json\n")).unwrap();
    assert_eq!(ids(&graph.all().unwrap()), ids(&[a, c]));
    // Rewritten: every line parses again.
    let rewritten = fs::read_to_string(&index).unwrap();
    assert!(!rewritten.contains("not json"));
}

/// A damaged image json (truncated, not JSON, wrong types, another id) leaves the others
/// listed, is reported with its file, even when a listing index was written before the
/// damage, and the image can still be deleted.
#[test]
fn a_damaged_image_json_is_listed_as_broken_and_can_be_deleted() {
    let (dir, graph) = temp_graph();
    let good = graph.create(fake_tar(), new_image("good", None)).unwrap();
    let bad = graph.create(fake_tar(), new_image("bad", None)).unwrap();
    // An index written while both were whole (the graph dir's time must settle first).
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert_eq!(graph.all().unwrap().len(), 2);
    let json = dir.path().join("graph").join(&bad.id).join("json");
    for damage in [
        &b"{\"id\": \"trunc"[..],
        b"not json",
        br#"{"id": 5, "created": []}"#,
        format!(r#"{{"id":"{}","created":"2024-01-01T00:00:00Z"}}"#, good.id).as_bytes(),
    ] {
        fs::write(&json, damage).unwrap();
        // The first read of the image notices, and drops the index.
        let err = graph.get(&bad.id).unwrap_err();
        assert!(
            err.to_string().contains(&json.display().to_string()),
            "{err}"
        );
        let listing = graph.listing().unwrap();
        assert_eq!(ids(&listing.images), vec![good.id.clone()]);
        assert_eq!(listing.broken.len(), 1);
        assert_eq!(listing.broken[0].id, bad.id);
        assert_eq!(listing.broken[0].path, json);
        assert!(listing.broken[0].reason().starts_with("json: "));
        assert_eq!(ids(&graph.all().unwrap()), vec![good.id.clone()]);
        assert_eq!(graph.resolve_id(&bad.id[..8]).unwrap(), bad.id);
        // The other image is untouched by it.
        assert_eq!(graph.get(&good.id).unwrap(), good);
        assert_eq!(graph.history(&good.id).unwrap().len(), 1);
    }
    graph.delete(&bad.id).unwrap();
    let listing = graph.listing().unwrap();
    assert!(listing.broken.is_empty());
    assert_eq!(ids(&listing.images), vec![good.id]);
}
