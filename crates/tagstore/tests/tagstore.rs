use std::fs;
use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};

use graph::{Graph, Image, NewImage};
use tagstore::{parse_reference, validate_repository, validate_tag, Error, TagStore};

struct Store {
    dir: tempfile::TempDir,
    graph: Graph,
    tags: TagStore,
}

fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let graph = Graph::open(dir.path().join("graph")).unwrap();
    let tags = TagStore::open(dir.path().join("repositories")).unwrap();
    Store { dir, graph, tags }
}

fn empty_layer() -> Cursor<Vec<u8>> {
    Cursor::new(Vec::new())
}

fn image(graph: &Graph) -> Image {
    graph.create(empty_layer(), NewImage::default()).unwrap()
}

fn image_with_prefix(graph: &Graph, prefix: &str) -> Image {
    let mut id = prefix.to_string();
    id.push_str(&graph::generate_id()[prefix.len()..]);
    let image = Image {
        id,
        ..Image::default()
    };
    graph.register(empty_layer(), image).unwrap()
}

#[test]
fn missing_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let tags = TagStore::open(dir.path().join("sub/repositories")).unwrap();
    assert!(tags.repositories().unwrap().is_empty());
    assert!(tags.names(&graph::generate_id()).unwrap().is_empty());
    assert!(dir.path().join("sub").is_dir());
}

/// A damaged file is reported (naming it) by what needs the tags, never overwritten: tag
/// changes are refused and the file stays byte for byte; lookups by id still work.
#[test]
fn damaged_file_is_reported_kept_and_ids_still_resolve() {
    let s = store();
    let img = image(&s.graph);
    let path = s.dir.path().join("repositories");
    fs::write(&path, "{not json").unwrap();
    let tags = TagStore::open(&path).unwrap();
    let named = |err: Error| {
        assert!(matches!(err, Error::Damaged { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    };
    named(TagStore::open_read(&path).unwrap_err());
    named(tags.repositories().unwrap_err());
    named(tags.names(&img.id).unwrap_err());
    named(tags.lookup(&s.graph, "base").unwrap_err());
    named(tags.set(&s.graph, "base", "", &img.id, false).unwrap_err());
    named(tags.untag("base", "").unwrap_err());
    named(tags.remove_image(&img.id).unwrap_err());
    assert_eq!(tags.lookup(&s.graph, &img.id).unwrap().id, img.id);
    assert_eq!(tags.lookup(&s.graph, &img.id[..10]).unwrap().id, img.id);
    assert_eq!(fs::read(&path).unwrap(), b"{not json", "kept as it was");
}

#[test]
fn set_then_lookup_by_tag_default_tag_id_and_prefix() {
    let s = store();
    let img = image(&s.graph);
    assert_eq!(
        s.tags.set(&s.graph, "base", "", &img.id, false).unwrap(),
        img.id
    );
    s.tags
        .set(&s.graph, "base", "v1", &img.id[..12], false)
        .unwrap();
    // The image may itself be named by repo:tag.
    s.tags
        .set(&s.graph, "other", "x", "base:v1", false)
        .unwrap();

    for name in [
        "base",
        "base:latest",
        "base:v1",
        "other:x",
        &img.id,
        &img.id[..12],
    ] {
        assert_eq!(s.tags.lookup(&s.graph, name).unwrap().id, img.id, "{name}");
    }
    let raw: serde_json::Value =
        serde_json::from_slice(&fs::read(s.dir.path().join("repositories")).unwrap()).unwrap();
    assert_eq!(raw["Repositories"]["base"]["latest"], img.id.as_str());
    assert_eq!(raw["Repositories"]["base"]["v1"], img.id.as_str());
    assert_eq!(raw["Repositories"]["other"]["x"], img.id.as_str());

    let err = s.tags.lookup(&s.graph, "base:nope").unwrap_err();
    assert_eq!(err.to_string(), "no such image: base:nope");
    let err = s.tags.lookup(&s.graph, "nothing").unwrap_err();
    assert_eq!(err.to_string(), "no such image: nothing");
    let err = s
        .tags
        .set(&s.graph, "base", "v2", "nothing", false)
        .unwrap_err();
    assert_eq!(err.to_string(), "no such image: nothing");
}

#[test]
fn moving_a_tag_needs_force() {
    let s = store();
    let first = image(&s.graph);
    let second = image(&s.graph);
    s.tags.set(&s.graph, "app", "v1", &first.id, false).unwrap();
    // Re-setting the same image is fine.
    s.tags.set(&s.graph, "app", "v1", &first.id, false).unwrap();
    let err = s
        .tags
        .set(&s.graph, "app", "v1", &second.id, false)
        .unwrap_err();
    assert!(matches!(err, Error::TagExists { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "tag app:v1 is already on image {}; use -f to move it",
            first.id
        )
    );
    assert_eq!(s.tags.lookup(&s.graph, "app:v1").unwrap().id, first.id);
    s.tags.set(&s.graph, "app", "v1", &second.id, true).unwrap();
    assert_eq!(s.tags.lookup(&s.graph, "app:v1").unwrap().id, second.id);
}

#[test]
fn tag_wins_over_id_prefix() {
    let s = store();
    let tagged = image_with_prefix(&s.graph, "1111");
    let by_prefix = image_with_prefix(&s.graph, "abc");
    s.tags.set(&s.graph, "abc", "", &tagged.id, false).unwrap();
    assert_eq!(s.tags.lookup(&s.graph, "abc").unwrap().id, tagged.id);
    assert_eq!(s.tags.lookup(&s.graph, "abc:latest").unwrap().id, tagged.id);
    // With a tag that does not exist, the id prefix is used.
    assert_eq!(
        s.tags.lookup(&s.graph, &by_prefix.id[..5]).unwrap().id,
        by_prefix.id
    );
}

#[test]
fn ambiguous_prefix_says_so() {
    let s = store();
    image_with_prefix(&s.graph, "beef0");
    image_with_prefix(&s.graph, "beef1");
    let err = s.tags.lookup(&s.graph, "beef").unwrap_err();
    assert!(err.to_string().contains("ambiguous"), "{err}");
    assert!(err.to_string().contains("beef"), "{err}");
    assert_eq!(s.tags.lookup(&s.graph, "beef1").unwrap().id[..5], *"beef1");
}

#[test]
fn tag_of_a_deleted_image_names_both() {
    let s = store();
    let img = image(&s.graph);
    s.tags.set(&s.graph, "gone", "v1", &img.id, false).unwrap();
    s.graph.delete(&img.id).unwrap();
    let err = s.tags.lookup(&s.graph, "gone:v1").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "tag gone:v1 points at image {}, which does not exist",
            img.id
        )
    );
}

#[test]
fn registry_style_names() {
    assert_eq!(
        parse_reference("localhost:5000/team/app:v1"),
        (
            "localhost:5000/team/app".to_string(),
            Some("v1".to_string())
        )
    );
    assert_eq!(
        parse_reference("localhost:5000/team/app"),
        ("localhost:5000/team/app".to_string(), None)
    );
    assert_eq!(
        parse_reference("ubuntu:12.04"),
        ("ubuntu".to_string(), Some("12.04".to_string()))
    );
    assert_eq!(parse_reference("ubuntu"), ("ubuntu".to_string(), None));

    let s = store();
    let img = image(&s.graph);
    s.tags
        .set(&s.graph, "localhost:5000/team/app", "v1", &img.id, false)
        .unwrap();
    assert_eq!(
        s.tags
            .lookup(&s.graph, "localhost:5000/team/app:v1")
            .unwrap()
            .id,
        img.id
    );
    let err = s
        .tags
        .lookup(&s.graph, "localhost:5000/team/app")
        .unwrap_err();
    assert_eq!(err.to_string(), "no such image: localhost:5000/team/app");
    assert_eq!(
        s.tags.names(&img.id).unwrap(),
        vec!["localhost:5000/team/app:v1".to_string()]
    );
}

#[test]
fn repository_names_follow_docker_rules() {
    for good in [
        "base",
        "ubuntu",
        "a",
        "team/app",
        "my_app",
        "my__app",
        "my-app",
        "my--app",
        "my.app",
        "a1/b2/c3",
        "localhost/app",
        "localhost:5000/team/app",
        "registry.example.com/app",
        "registry.example.com:443/a/b",
        "my-registry:5000/x",
        // Docker's domains may have capitals (found by crates/registry/tests/names_prop.rs).
        "Registry.example.com/app",
        "[::1]:5000/app",
    ] {
        validate_repository(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "",
        "Base",
        "team/App",
        "registry.example.com/App",
        "app:tag",
        "localhost:5000",
        "a//b",
        "/a",
        "a/",
        "_app",
        "app_",
        "a___b",
        "a..b",
        "-app",
        "app-",
        "a b",
        "localhost:port/app",
        "-host.com/app",
        "host_name.com/app",
        "app/../x",
    ] {
        let err = validate_repository(bad).unwrap_err();
        assert!(
            err.to_string().contains(&format!("{bad:?}")),
            "{bad}: {err}"
        );
    }
    let s = store();
    let img = image(&s.graph);
    let err = s
        .tags
        .set(&s.graph, "Base", "", &img.id, false)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidRepository(ref name) if name == "Base"),
        "{err}"
    );
    assert!(s.tags.repositories().unwrap().is_empty());
    assert!(
        !s.dir.path().join("repositories").exists(),
        "nothing written"
    );
}

#[test]
fn tag_names_follow_docker_rules() {
    let long_ok = "a".repeat(128);
    for good in [
        "latest",
        "v1",
        "12.04",
        "_x",
        "A-b.C_d",
        "0",
        long_ok.as_str(),
    ] {
        validate_tag(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    let too_long = "a".repeat(129);
    for bad in ["", ".x", "-x", "a/b", "a:b", "a b", "ä", too_long.as_str()] {
        let err = validate_tag(bad).unwrap_err();
        assert!(
            err.to_string().contains(&format!("{bad:?}")),
            "{bad}: {err}"
        );
    }
    let s = store();
    let img = image(&s.graph);
    let err = s
        .tags
        .set(&s.graph, "app", "a/b", &img.id, false)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTag(_)), "{err}");
}

#[test]
fn untag_names_and_remove_image() {
    let s = store();
    let one = image(&s.graph);
    let two = image(&s.graph);
    s.tags.set(&s.graph, "zeta", "", &one.id, false).unwrap();
    s.tags.set(&s.graph, "alpha", "v2", &one.id, false).unwrap();
    s.tags.set(&s.graph, "alpha", "v1", &one.id, false).unwrap();
    s.tags.set(&s.graph, "a-b", "x", &one.id, false).unwrap();
    s.tags
        .set(&s.graph, "alpha", "other", &two.id, false)
        .unwrap();
    assert_eq!(
        s.tags.names(&one.id).unwrap(),
        vec!["a-b:x", "alpha:v1", "alpha:v2", "zeta:latest"]
    );

    assert_eq!(s.tags.untag("zeta", "").unwrap(), one.id);
    assert!(
        !s.tags.repositories().unwrap().contains_key("zeta"),
        "empty repo dropped"
    );
    let err = s.tags.untag("zeta", "latest").unwrap_err();
    assert_eq!(err.to_string(), "no such tag: zeta:latest");
    let err = s.tags.untag("alpha", "nope").unwrap_err();
    assert_eq!(err.to_string(), "no such tag: alpha:nope");

    assert_eq!(
        s.tags.remove_image(&one.id).unwrap(),
        vec!["a-b:x", "alpha:v1", "alpha:v2"]
    );
    assert!(s.tags.names(&one.id).unwrap().is_empty());
    assert!(s.tags.remove_image(&one.id).unwrap().is_empty());
    let repositories = s.tags.repositories().unwrap();
    assert_eq!(repositories.len(), 1);
    assert_eq!(repositories["alpha"].len(), 1);
    assert_eq!(repositories["alpha"]["other"], two.id);
}

#[test]
fn twenty_threads_setting_tags_lose_nothing() {
    let s = store();
    let img = image(&s.graph);
    let barrier = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|n| {
            let barrier = Arc::clone(&barrier);
            let root = s.dir.path().to_path_buf();
            let id = img.id.clone();
            std::thread::spawn(move || {
                // Each thread opens its own handles, as separate processes would.
                let graph = Graph::open(root.join("graph")).unwrap();
                let tags = TagStore::open(root.join("repositories")).unwrap();
                barrier.wait();
                tags.set(&graph, "race", &format!("t{n}"), &id, false)
                    .unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let repositories = s.tags.repositories().unwrap();
    assert_eq!(repositories["race"].len(), 20);
    for n in 0..20 {
        assert_eq!(repositories["race"][&format!("t{n}")], img.id);
    }
}

const CHILD_ROOT: &str = "TAGSTORE_TEST_CHILD_ROOT";
const CHILD_TAG: &str = "TAGSTORE_TEST_CHILD_TAG";
const CHILD_IMAGE: &str = "TAGSTORE_TEST_CHILD_IMAGE";

fn set_tag_in(root: &Path, tag: &str, id: &str) {
    let graph = Graph::open(root.join("graph")).unwrap();
    let tags = TagStore::open(root.join("repositories")).unwrap();
    tags.set(&graph, "race", tag, id, false).unwrap();
    assert_eq!(tags.lookup(&graph, &format!("race:{tag}")).unwrap().id, id);
}

/// Run by `twenty_processes_setting_tags_lose_nothing` in each child process (the env says
/// which store and tag); run on its own it sets one tag in a store of its own.
#[test]
fn set_one_tag() {
    match std::env::var_os(CHILD_ROOT) {
        Some(root) => {
            let tag = std::env::var(CHILD_TAG).unwrap();
            let id = std::env::var(CHILD_IMAGE).unwrap();
            set_tag_in(Path::new(&root), &tag, &id);
        }
        None => {
            let s = store();
            let img = image(&s.graph);
            set_tag_in(s.dir.path(), "solo", &img.id);
        }
    }
}

#[test]
fn twenty_processes_setting_tags_lose_nothing() {
    let s = store();
    let img = image(&s.graph);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..20)
        .map(|n| {
            Command::new(&exe)
                .args(["--exact", "set_one_tag", "--test-threads=1", "--quiet"])
                .env(CHILD_ROOT, s.dir.path())
                .env(CHILD_TAG, format!("p{n}"))
                .env(CHILD_IMAGE, &img.id)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let repositories = s.tags.repositories().unwrap();
    assert_eq!(repositories["race"].len(), 20, "{:?}", repositories["race"]);
    for n in 0..20 {
        assert_eq!(repositories["race"][&format!("p{n}")], img.id);
    }
}

/// The pairs `repositories` gives, each as `(id, "repo:tag")`, sorted.
fn pairs_of(tags: &TagStore) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = tags
        .repositories()
        .unwrap()
        .into_iter()
        .flat_map(|(repo, tags)| {
            tags.into_iter()
                .map(move |(t, id)| (id, format!("{repo}:{t}")))
        })
        .collect();
    pairs.sort();
    pairs
}

/// Tags `web:v2` and `localhost:5000/team/app:latest` on `a`, `web:v10` and `base:latest` on
/// `b`.
fn set_four_tags(s: &Store, a: &Image, b: &Image) {
    for (repo, tag, id) in [
        ("web", "v2", &a.id),
        ("web", "v10", &b.id),
        ("localhost:5000/team/app", "latest", &a.id),
        ("base", "latest", &b.id),
    ] {
        s.tags.set(&s.graph, repo, tag, id, true).unwrap();
    }
}

/// `names_by_id` reads the file in one pass: the same pairs the maps give, for a file the
/// store wrote, for one edited by hand (keys out of order, a key twice: the last one wins),
/// and none, or the same error, without a whole file.
#[test]
fn names_by_id_are_the_maps_pairs_sorted() {
    let s = store();
    let (a, b) = (image(&s.graph), image(&s.graph));
    set_four_tags(&s, &a, &b);
    let names = s.tags.names_by_id().unwrap();
    assert_eq!(names, pairs_of(&s.tags));
    assert_eq!(names.len(), 4);
    assert!(names.is_sorted());

    let path = s.dir.path().join("repositories");
    let by_hand = format!(
        r#"{{"Repositories": {{"web": {{"v2": "{a}", "v1": "{b}"}}, "base": {{"x": "{a}"}},
            "web": {{"v3": "{b}", "v3": "{a}"}}, "b\u0061se": {{"y": "{b}"}}}}}}"#,
        a = a.id,
        b = b.id
    );
    fs::write(&path, by_hand).unwrap();
    let names = s.tags.names_by_id().unwrap();
    assert_eq!(names, pairs_of(&s.tags));
    assert_eq!(
        names,
        [
            (a.id.clone(), "web:v3".to_string()),
            (b.id.clone(), "base:y".to_string())
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    // Escaped names in order are read as themselves.
    fs::write(
        &path,
        format!(
            r#"{{"Repositories": {{"b\u0061se": {{"t\u0031": "{}"}}}}}}"#,
            a.id
        ),
    )
    .unwrap();
    assert_eq!(
        s.tags.names_by_id().unwrap(),
        [(a.id.clone(), "base:t1".to_string())]
    );

    fs::write(&path, r#"{"Repositories": {"web": {"v1": "#).unwrap();
    assert!(matches!(s.tags.names_by_id(), Err(Error::Damaged { .. })));
    fs::write(&path, r#"{"Repositories": {}, "Repositories": {}}"#).unwrap();
    assert!(matches!(s.tags.names_by_id(), Err(Error::Damaged { .. })));
    // An empty file is damaged, as for every read; no file is an empty store.
    fs::write(&path, "").unwrap();
    assert!(matches!(s.tags.names_by_id(), Err(Error::Damaged { .. })));
    assert!(matches!(s.tags.repositories(), Err(Error::Damaged { .. })));
    fs::remove_file(&path).unwrap();
    assert!(s.tags.names_by_id().unwrap().is_empty());
}

/// `find_names` gives what lookups by tag and `names` give, for a file the store wrote and
/// for one edited by hand (keys out of order, a key twice: the last one wins).
#[test]
fn found_names_are_what_the_maps_give() {
    let s = store();
    let (a, b, c) = (image(&s.graph), image(&s.graph), image(&s.graph));
    set_four_tags(&s, &a, &b);
    let references = [
        ("web", "v2"),
        ("web", "v3"),
        ("base", "latest"),
        ("nope", "latest"),
        ("web", "v2"),
    ];
    let images = [a.id.as_str(), c.id.as_str(), b.id.as_str()];
    let as_maps = |tags: &TagStore| {
        let repositories = tags.repositories().unwrap();
        tagstore::FoundNames {
            named: references
                .iter()
                .map(|(repo, tag)| repositories.get(*repo)?.get(*tag).cloned())
                .collect(),
            first: images
                .iter()
                .map(|id| tags.names(id).unwrap().into_iter().next())
                .collect(),
        }
    };
    let found = s.tags.find_names(&references, &images).unwrap();
    assert_eq!(found, as_maps(&s.tags));
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        found.named,
        [some(&a.id), None, some(&b.id), None, some(&a.id)]
    );
    assert_eq!(
        found.first,
        [
            some("localhost:5000/team/app:latest"),
            None,
            some("base:latest")
        ]
    );

    let path = s.dir.path().join("repositories");
    let by_hand = format!(
        r#"{{"Repositories": {{"web": {{"v2": "{a}", "v1": "{b}"}}, "base": {{"x": "{a}"}},
            "web": {{"v3": "{b}", "v3": "{a}"}}, "b\u0061se": {{"latest": "{c}"}}}}}}"#,
        a = a.id,
        b = b.id,
        c = c.id
    );
    fs::write(&path, by_hand).unwrap();
    let found = s.tags.find_names(&references, &images).unwrap();
    assert_eq!(found, as_maps(&s.tags));
    assert_eq!(found.named, [None, some(&a.id), some(&c.id), None, None]);

    fs::remove_file(&path).unwrap();
    let none = s.tags.find_names(&references, &images).unwrap();
    assert_eq!((none.named, none.first), (vec![None; 5], vec![None; 3]));
    fs::write(&path, r#"{"Repositories": {"web": {"v1": "#).unwrap();
    assert!(matches!(
        s.tags.find_names(&references, &images),
        Err(Error::Damaged { .. })
    ));
}
