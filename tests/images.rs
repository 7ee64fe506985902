//! `dock` image commands end to end: import (file, stdin, URL), images, tag, history, rmi, inspect.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;

use common::{busybox_tar, stderr, stdout, DockRoot};

/// Serve `body` with `status` to every request on 127.0.0.1 until the test ends.
fn serve(status: u16, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("{addr}")
}

fn image_ids(root: &DockRoot) -> Vec<String> {
    let mut ids: Vec<String> = root
        .ok(&["images", "-a", "-q", "--no-trunc"])
        .lines()
        // Docker's untruncated ids: sha256:<hex>.
        .map(|l| l.strip_prefix("sha256:").unwrap_or(l).to_string())
        .collect();
    ids.sort();
    ids
}

fn staging_is_empty(root: &DockRoot) -> bool {
    match std::fs::read_dir(root.path().join("graph/_tmp")) {
        Ok(entries) => entries.count() == 0,
        Err(_) => true,
    }
}

#[test]
fn import_from_file_prints_a_full_id_and_lists_it() {
    let root = DockRoot::new();
    let id = root.import_busybox("busybox");
    assert_eq!(id.len(), 64, "{id}");
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let listing = root.ok(&["images"]);
    let mut lines = listing.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with("busybox"), "{row}");
    assert!(row.contains("latest") && row.contains(&id[..12]), "{row}");
    assert!(
        // "Less than a second ago", "1 second ago" or "N seconds ago", as the import took.
        row.contains("second ago") || row.contains("seconds ago"),
        "{row}"
    );
    assert_eq!(lines.next(), None);
}

#[test]
fn import_from_stdin_with_repository_and_tag_arguments() {
    let root = DockRoot::new();
    let tar = std::fs::File::open(busybox_tar()).unwrap();
    let out = root
        .cmd()
        .args(["import", "-", "team/base", "v1"])
        .stdin(tar)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert_eq!(root.ok(&["images", "-q", "team/base"]).trim(), &id[..12]);
    let inspect: serde_json::Value =
        serde_json::from_str(&root.ok(&["inspect", "team/base:v1"])).unwrap();
    assert_eq!(inspect[0]["Id"], format!("sha256:{id}"));
    assert_eq!(inspect[0]["Comment"], "Imported from -");
}

#[test]
fn import_from_a_url_served_on_loopback() {
    let root = DockRoot::new();
    let addr = serve(200, std::fs::read(busybox_tar()).unwrap());
    // A URL needs its scheme (Docker 28): without one the source is a file.
    let out = root.run(&["import", &format!("{addr}/busybox.tar"), "web:1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("open {addr}/busybox.tar")),
        "{}",
        stderr(&out)
    );
    let out = root.run(&["import", &format!("http://{addr}/busybox.tar"), "web:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("Downloading from http://{addr}/busybox.tar")));
    let id = stdout(&out).trim().to_string();
    assert_eq!(image_ids(&root), vec![id]);
}

#[test]
fn import_of_a_missing_url_fails_and_leaves_no_image() {
    let root = DockRoot::new();
    let addr = serve(404, b"not here".to_vec());
    let out = root.run(&["import", &format!("http://{addr}/nope.tar")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("Error: ") && err.contains("404"), "{err}");
    assert!(image_ids(&root).is_empty());
}

#[test]
fn import_of_garbage_fails_and_leaves_no_image_or_staging() {
    let root = DockRoot::new();
    let junk = root.path().join("junk.tar");
    std::fs::write(&junk, vec![0x5a; 10_000]).unwrap();
    let out = root.run(&["import", junk.to_str().unwrap(), "junk"]);
    assert!(!out.status.success());
    assert!(stderr(&out).starts_with("Error: "), "{}", stderr(&out));
    assert!(image_ids(&root).is_empty());
    assert!(staging_is_empty(&root));
    assert!(!root.ok(&["images"]).contains("junk"));
}

#[test]
fn import_with_an_invalid_repository_name_reads_nothing_and_leaves_no_image() {
    let root = DockRoot::new();
    let out = root.run(&["import", busybox_tar().to_str().unwrap(), "Bad Name"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Bad Name"), "{}", stderr(&out));
    assert!(image_ids(&root).is_empty());
}

#[test]
fn a_killed_import_leaves_no_image_and_no_staging() {
    let root = DockRoot::new();
    let mut child = root
        .cmd()
        .args(["import", "-", "half"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Send part of the archive, make sure it is being extracted, then kill -9.
    let tar = std::fs::read(busybox_tar()).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&tar[..tar.len() / 2]).unwrap();
    stdin.flush().unwrap();
    let staging = root.path().join("graph/_tmp");
    for _ in 0..500 {
        if std::fs::read_dir(&staging)
            .map(|d| d.count() > 0)
            .unwrap_or(false)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    // The next command cleans what the killed one staged.
    assert!(image_ids(&root).is_empty());
    assert!(root.ok(&["images", "-q"]).is_empty());
    assert!(
        staging_is_empty(&root),
        "staging left after the next command"
    );
}

#[test]
fn tag_forms_force_and_invalid_names() {
    let root = DockRoot::new();
    let first = root.import_busybox("base");
    let second = root.import_busybox("other");
    root.ok(&["tag", "base", "repo:one"]);
    root.ok(&["tag", &first[..8], "repo", "two"]);
    let listing = root.ok(&["images", "repo"]);
    assert!(
        listing.contains("one") && listing.contains("two"),
        "{listing}"
    );
    // An existing tag moves to another image, as in Docker 28; -f is still accepted.
    root.ok(&["tag", "other", "repo:one"]);
    root.ok(&["tag", "-f", "other", "repo:one"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&root.ok(&["inspect", "repo:one"])).unwrap();
    assert_eq!(inspect[0]["Id"], format!("sha256:{second}"));
    let out = root.run(&["tag", "base", "UPPER:case"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("UPPER"), "{}", stderr(&out));
    let out = root.run(&["tag", "nosuch", "repo:x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no such image: nosuch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn twenty_concurrent_tag_processes_all_land() {
    let root = DockRoot::new();
    root.import_busybox("base");
    let children: Vec<_> = (0..20)
        .map(|i| {
            root.cmd()
                .args(["tag", "base", &format!("many:t{i}")])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let listing = root.ok(&["images", "many"]);
    for i in 0..20 {
        assert!(
            listing.contains(&format!(" t{i} ")),
            "t{i} missing from\n{listing}"
        );
    }
    assert_eq!(listing.lines().count(), 21);
}

#[test]
fn history_shows_the_image_and_its_columns() {
    let root = DockRoot::new();
    let id = root.import_busybox("base:1");
    let out = root.ok(&["history", "base:1"]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("CREATED") && header.contains("CREATED BY"),
        "{header}"
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with("base:1"), "{row}");
    assert!(row.contains("ago"), "{row}");
    assert_eq!(lines.next(), None);
    assert!(root.ok(&["history", "--no-trunc", &id]).contains("base:1"));
    let out = root.run(&["history", "nosuch"]);
    assert!(!out.status.success());
}

#[test]
fn rmi_by_name_untags_then_deletes_and_leaves_no_dangling_tag() {
    let root = DockRoot::new();
    let id = root.import_busybox("base");
    root.ok(&["tag", "base", "alias:v1"]);
    // The image keeps another name: only this one goes.
    let out = root.ok(&["rmi", "alias:v1"]);
    assert_eq!(out, "Untagged: alias:v1\n");
    assert_eq!(image_ids(&root), vec![id.clone()]);
    let out = root.ok(&["rmi", "base"]);
    assert_eq!(out, format!("Untagged: base:latest\nDeleted: {id}\n"));
    assert!(image_ids(&root).is_empty());
    assert!(!root.path().join("graph").join(&id).exists());
    let repos = std::fs::read_to_string(root.path().join("repositories")).unwrap_or_default();
    assert!(!repos.contains(&id), "dangling tag left: {repos}");
}

#[test]
fn rmi_by_id_removes_every_tag_and_errors_go_on() {
    let root = DockRoot::new();
    let id = root.import_busybox("a:1");
    root.ok(&["tag", "a:1", "b:2"]);
    let out = root.run(&["rmi", "nosuch", &id[..12]]);
    assert!(!out.status.success(), "a missing image is an error");
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("Untagged: a:1\nUntagged: b:2\nDeleted: {id}\n")
    );
    assert!(image_ids(&root).is_empty());
    assert!(root.ok(&["images"]).lines().count() == 1);
}

#[test]
fn rmi_refuses_an_image_with_children_naming_them() {
    let root = DockRoot::new();
    let parent = root.import_busybox("parent");
    // A child image, as commit makes one, through the graph library.
    let graph = graph::Graph::open(root.path().join("graph")).unwrap();
    let child = graph
        .create(
            std::io::empty(),
            graph::NewImage {
                parent: Some(parent.clone()),
                comment: "child".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let out = root.run(&["rmi", &parent]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&child.id[..12]), "{}", stderr(&out));
    assert!(image_ids(&root).contains(&parent));
    // The untagged child lists as <none>, with its size (the whole chain's).
    let listing = root.ok(&["images"]);
    let row = listing.lines().find(|l| l.starts_with("<none>")).unwrap();
    assert!(
        row.contains(&child.id[..12]) && row.ends_with("MB"),
        "{listing}"
    );
}

#[test]
fn images_lists_untagged_heads_and_all_with_a() {
    let root = DockRoot::new();
    let base = root.import_busybox("base");
    let graph = graph::Graph::open(root.path().join("graph")).unwrap();
    let mid = graph
        .create(
            std::io::empty(),
            graph::NewImage {
                parent: Some(base.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let top = graph
        .create(
            std::io::empty(),
            graph::NewImage {
                parent: Some(mid.id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    // Newest first, as Docker lists them.
    let listing = root.ok(&["images", "-q"]);
    assert_eq!(listing, format!("{}\n{}\n", &top.id[..12], &base[..12]));
    let all = root.ok(&["images", "-a", "-q"]);
    assert_eq!(all.lines().count(), 3, "{all}");
    assert!(all.contains(&mid.id[..12]));
}

#[test]
fn inspect_prints_the_image_json_and_fails_on_unknown_names() {
    let root = DockRoot::new();
    let id = root.import_busybox("base");
    let out = root.ok(&["inspect", &id[..6]]);
    assert!(out.starts_with("[\n    {\n"), "{out}");
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value[0]["Id"], format!("sha256:{id}"));
    assert!(value[0]["Created"].as_str().unwrap().contains('T'));
    assert!(value[0]["Size"].as_u64().unwrap() > 0);
    let out = root.run(&["inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("No such object: nosuch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn version_and_info_answer() {
    let root = DockRoot::new();
    assert!(root.ok(&["version"]).contains("Version: "));
    root.import_busybox("base");
    let info = root.ok(&["info"]);
    assert!(info.contains("Images: 1"), "{info}");
}

#[test]
fn rmi_by_name_refuses_the_last_tag_of_an_image_a_container_uses() {
    let root = DockRoot::new();
    let id = root.import_busybox("base");
    let container = root.ok(&["run", "--network", "none", "base", "true"]);
    assert!(container.is_empty());
    let out = root.run(&["rmi", "base"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("\"base\"") && err.contains(&id[..12]), "{err}");
    // Nothing changed: the tag still names the image.
    assert!(root.ok(&["images"]).contains("base"));
    // With a second name the first one can go; the image stays.
    root.ok(&["tag", "base", "other"]);
    assert_eq!(root.ok(&["rmi", "base"]), "Untagged: base:latest\n");
    assert_eq!(image_ids(&root), vec![id]);
    let ids = root.ok(&["ps", "-aq"]);
    for container in ids.lines() {
        root.ok(&["rm", container]);
    }
}

/// `dock images | head -1`: a listing whose reader has gone ends as Docker's does, killed by
/// SIGPIPE with nothing on stderr, not with an error or a panic.
#[test]
fn a_listing_into_a_closed_pipe_ends_by_sigpipe_and_says_nothing() {
    use std::os::unix::process::ExitStatusExt;
    let root = DockRoot::with_busybox();
    root.ok(&["create", "--network", "none", "busybox", "true"]);
    for args in [&["images"][..], &["ps", "-a"], &["ps", "-aq"], &["version"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = root.cmd().args(args).stdout(writer).output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {out:?}"
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}
