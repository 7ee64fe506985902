//! Issue 14, acceptance 5: a damaged `config.json`, image `json` or `repositories` is
//! reported, not fatal to unrelated work. The damaged object is listed as broken with its
//! file named, other commands work, and `rm -f` / `rmi -f` remove it with everything it held
//! (processes, mount, cgroups, veth, published port, directory). A damaged `repositories` is
//! never overwritten: tags are refused until it is repaired.
//!
//! Every root is a `DockRoot`, whose drop kills, unmounts and tears down whatever is left.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn damage(path: &Path, with: &[u8]) {
    fs::write(path, with).unwrap();
}

fn truncate(path: &Path) {
    let bytes = fs::read(path).unwrap();
    damage(path, &bytes[..bytes.len() / 3]);
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The row of a table naming `needle`.
fn row<'a>(table: &'a str, needle: &str) -> Option<&'a str> {
    table.lines().find(|l| l.contains(needle))
}

#[test]
fn damaged_container_configs_are_listed_and_removed_with_all_they_held() {
    let root = DockRoot::with_busybox();
    root.import_busybox("other");
    // Running, with a veth and a published port; stopped; and one nobody damages.
    let victim = root
        .ok(&[
            "run",
            "-d",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let stopped = root
        .ok(&["create", "--network", "none", "busybox", "true"])
        .trim()
        .to_string();
    let bystander = root
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "bystander",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let settings = root.inspect(&victim)["NetworkSettings"].clone();
    let port: u16 = settings["Ports"]["80/tcp"][0]["HostPort"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let veth = Path::new("/sys/class/net").join(netmgr::host_veth_name(&victim));
    assert!(veth.exists(), "the victim has its veth");
    let monitors_before = root.monitors();
    assert_eq!(monitors_before.len(), 2);
    let net_state = || {
        let cfg = runtime::Runtime::open(root.path())
            .unwrap()
            .net_config()
            .unwrap();
        fs::read_to_string(cfg.state_dir.join("net.json")).unwrap_or_default()
    };
    assert!(net_state().contains(&victim));
    let holds = |id: &str| {
        root.mounts().iter().any(|m| m.contains(id))
            || root
                .container_cgroups()
                .iter()
                .any(|c| c.to_string_lossy().contains(id))
    };
    assert!(holds(&victim));

    let config = |id: &str| root.path().join("containers").join(id).join("config.json");
    truncate(&config(&victim));
    damage(
        &config(&stopped),
        br#"{"Id": 5, "State": [], "Config": "x"}"#,
    );

    // Listed, each with its file named; the rest as before.
    let ps = root.ok(&["ps", "-a"]);
    let victim_row = row(&ps, &victim[..12]).unwrap_or_else(|| panic!("{ps}"));
    assert!(victim_row.contains("Broken: config.json: "), "{ps}");
    assert!(row(&ps, &stopped[..12])
        .unwrap_or_else(|| panic!("{ps}"))
        .contains("Broken: config.json: "));
    assert!(row(&ps, "bystander").unwrap().contains("Up "), "{ps}");
    // Without -a: the broken one that still runs, not the stopped one.
    let ps = root.ok(&["ps"]);
    assert!(
        ps.contains(&victim[..12]) && !ps.contains(&stopped[..12]),
        "{ps}"
    );
    let quiet = root.ok(&["ps", "-aq"]);
    assert_eq!(lines(&quiet).len(), 3, "{quiet}");

    // Unrelated commands work.
    root.ok(&["images"]);
    assert!(root.ok(&["info"]).contains("Containers: 1"));
    assert_eq!(root.inspect("bystander")["Id"], bystander.as_str());
    let out = root.run(&["run", "--rm", "--network", "none", "other", "echo", "fine"]);
    assert_eq!(stdout(&out), "fine\n", "{}", stderr(&out));
    // The broken one, asked for itself, says what is wrong.
    let out = root.run(&["inspect", &victim[..12]]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("config.json"), "{}", stderr(&out));

    // rm -f by prefix: processes, mount, cgroups, veth, port, directory.
    let out = root.run(&["rm", "-f", &victim[..12]]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let monitors = root.monitors();
    assert_eq!(monitors.len(), 1, "the victim's monitor is gone");
    for pid in monitors_before.iter().filter(|p| !monitors.contains(p)) {
        assert!(!alive(*pid), "monitor {pid} still runs");
    }
    assert!(!holds(&victim), "mount or cgroup left");
    assert!(!veth.exists(), "veth left");
    assert!(!net_state().contains(&victim), "network state left");
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the published port is free again");
    assert!(!root.container_dirs().contains(&victim));

    // A stopped broken one goes with a plain rm.
    let out = root.run(&["rm", &stopped[..12]]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(root.container_dirs(), vec![bystander.clone()]);
    assert!(root.ok(&["ps"]).contains("bystander"));
    root.ok(&["rm", "-f", "bystander"]);
    assert!(root.monitors().is_empty());
}

#[test]
fn a_damaged_image_json_is_listed_and_rmi_f_removes_it() {
    let root = DockRoot::with_busybox();
    let victim = root.import_busybox("victim:1");
    root.import_busybox("spare");
    // An image listing (and its index) from before the damage.
    root.ok(&["images"]);
    std::thread::sleep(std::time::Duration::from_millis(150));
    root.ok(&["images"]);
    let json = root.path().join("graph").join(&victim).join("json");
    truncate(&json);

    // The first command that reads the image names the file...
    let out = root.run(&["run", "--rm", "--network", "none", "victim:1", "true"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains(&json.display().to_string()),
        "{}",
        stderr(&out)
    );
    // ...and from then on the listing shows it broken, and everything else.
    let out = root.run(&["images"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let images = stdout(&out);
    let victim_row = row(&images, &victim[..12]).unwrap_or_else(|| panic!("{images}"));
    assert!(victim_row.starts_with("victim "), "{images}");
    assert!(victim_row.contains("Broken: json: "), "{images}");
    assert!(row(&images, "busybox").is_some() && row(&images, "spare").is_some());
    assert!(stderr(&out).contains(&json.display().to_string()));
    assert!(lines(&root.ok(&["images", "-q"])).contains(&victim[..12].to_string()));

    // Unrelated work: info, run, rmi of another image.
    assert!(root.ok(&["info"]).contains("Images: 2"));
    let out = root.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "echo",
        "fine",
    ]);
    assert_eq!(stdout(&out), "fine\n", "{}", stderr(&out));
    root.ok(&["rmi", "spare"]);

    // rmi without -f says how; with -f its tags and directory go.
    let out = root.run(&["rmi", "victim:1"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("rmi -f"), "{}", stderr(&out));
    let out = root.ok(&["rmi", "-f", &victim[..12]]);
    assert!(out.contains("Untagged: victim:1"), "{out}");
    assert!(out.contains(&format!("Deleted: {victim}")), "{out}");
    assert!(!json.parent().unwrap().exists());
    let images = root.ok(&["images"]);
    assert!(
        !images.contains(&victim[..12]) && !images.contains("victim"),
        "{images}"
    );
    let repositories = fs::read_to_string(root.path().join("repositories")).unwrap();
    assert!(!repositories.contains(&victim), "{repositories}");
}

#[test]
fn a_damaged_repositories_file_is_kept_and_the_rest_works() {
    let root = DockRoot::with_busybox();
    let id = root.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    root.ok(&["tag", "busybox", "app:1"]);
    root.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "done",
        "busybox",
        "true",
    ]);
    let file = root.path().join("repositories");
    let damaged = b"{\"Repositories\": {\"busybox\": {\"lat";
    damage(&file, damaged);

    // Listings and container inspect work; images are listed by id with a warning.
    assert!(root.ok(&["ps", "-a"]).contains("done"));
    assert_eq!(root.inspect("done")["Name"], "done");
    let out = root.run(&["images"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains(&id[..12]), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&file.display().to_string()),
        "{}",
        stderr(&out)
    );
    assert!(root.ok(&["info"]).contains("Images: 1"));
    // An image by id still runs.
    let out = root.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        &id[..12],
        "echo",
        "fine",
    ]);
    assert_eq!(stdout(&out), "fine\n", "{}", stderr(&out));

    // Tags cannot change: refused naming the file, which stays as it was.
    for args in [
        vec!["tag", &id[..12], "new:1"],
        vec!["rmi", "app:1"],
        vec!["run", "--rm", "--network", "none", "busybox", "true"],
    ] {
        let out = root.run(&args);
        assert_ne!(code(&out), 0, "{args:?}");
        assert!(
            stderr(&out).contains(&file.display().to_string()),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read(&file).unwrap(), damaged);

    // Moved aside (the repair the error suggests), tags work again from an empty store.
    fs::rename(&file, root.path().join("repositories.damaged")).unwrap();
    root.ok(&["tag", &id[..12], "busybox"]);
    root.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
}
