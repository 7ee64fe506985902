//! Runs the top-level embedding example's steps, so it cannot rot.

#[allow(dead_code)]
#[path = "../../../examples/embed.rs"]
mod embed;

use std::fs;

use graph::Graph;
use tagstore::TagStore;

#[test]
fn embed_example_imports_tags_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let id = embed::run(dir.path(), None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(&format!("imported {id}")), "{text}");
    assert!(
        text.contains(&format!(
            "embed/example                  latest     {}",
            &id[..12]
        )),
        "{text}"
    );

    let graph = Graph::open(dir.path().join("graph")).unwrap();
    let tags = TagStore::open(dir.path().join("repositories")).unwrap();
    assert_eq!(tags.lookup(&graph, "embed/example").unwrap().id, id);
    let motd = graph.layer_path(&id).join("etc/motd");
    assert_eq!(
        fs::read_to_string(motd).unwrap(),
        "hello from an embedded dock store\n"
    );
}

#[test]
fn embed_example_imports_a_tarball_file_twice() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("layer.tar");
    fs::write(&tarball, embed::small_tarball().unwrap()).unwrap();
    let root = dir.path().join("root");
    let first = embed::run(&root, Some(&tarball), &mut Vec::new()).unwrap();
    let second = embed::run(&root, Some(&tarball), &mut Vec::new()).unwrap();
    let mut out = Vec::new();
    let third = embed::run(&root, Some(&tarball), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let graph = Graph::open(root.join("graph")).unwrap();
    assert_eq!(graph.all().unwrap().len(), 3);
    assert!(
        text.contains(&format!(
            "<none>                         <none>     {}",
            &first[..12]
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "<none>                         <none>     {}",
            &second[..12]
        )),
        "{text}"
    );
    // The tag moved to the newest import; the older ones are listed untagged.
    assert!(
        text.contains(&format!(
            "embed/example                  latest     {}",
            &third[..12]
        )),
        "{text}"
    );
    let missing = dir.path().join("missing.tar");
    let err = embed::run(&root, Some(&missing), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("missing.tar"), "{err}");
}
