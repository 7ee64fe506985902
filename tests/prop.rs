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
    let id = root
        .ok(&["images", "-q", "--no-trunc"])
        .trim()
        .trim_start_matches("sha256:")
        .to_string();
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
    assert_eq!(root.inspect("done")["Name"], "/done");
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

    // `system check` names it; its repair moves it aside (kept, not emptied in place), and
    // tags work again from an empty store.
    let out = root.run(&["system", "check"]);
    assert!(stdout(&out).contains("repositories"), "{}", stdout(&out));
    root.ok(&["system", "check", "--repair"]);
    assert_eq!(
        fs::read(root.path().join("repositories.broken")).unwrap(),
        damaged
    );
    root.ok(&["tag", &id[..12], "busybox"]);
    root.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
}

/// `dock daemon` on a private socket of `root`, killed (and reaped) on drop.
struct Daemon {
    socket: std::path::PathBuf,
    child: std::process::Child,
}

impl Daemon {
    fn start(root: &DockRoot) -> Daemon {
        let socket = root.path().join("api.sock");
        let log = fs::File::create(root.path().join("daemon.log")).unwrap();
        let child = root
            .cmd()
            .arg("daemon")
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Daemon { socket, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(&daemon.socket).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        daemon
    }

    /// One request on a fresh connection; (status, body).
    fn request(&self, method: &str, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: dock\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{method} {path}: {answer:?}"));
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_string())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Through the Engine API: the lists answer (a broken container shows as `dead` with its
/// reason, a broken image is left out and logged) and force-removal takes both.
#[test]
fn the_api_lists_around_broken_objects_and_removes_them() {
    let root = DockRoot::with_busybox();
    let image = root.import_busybox("victim");
    let container = root
        .ok(&["create", "--network", "none", "busybox", "true"])
        .trim()
        .to_string();
    root.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "fine",
        "busybox",
        "true",
    ]);
    truncate(
        &root
            .path()
            .join("containers")
            .join(&container)
            .join("config.json"),
    );
    damage(&root.path().join("graph").join(&image).join("json"), b"[");
    let daemon = Daemon::start(&root);

    let (status, body) = daemon.request("GET", "/containers/json?all=1");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"/fine\""), "{body}");
    assert!(
        body.contains("\"dead\"") && body.contains("Broken: config.json: "),
        "{body}"
    );
    let (status, body) = daemon.request("GET", "/containers/json");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(&container), "{body}");
    let (status, body) = daemon.request("GET", "/images/json");
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains(&image) && body.contains("busybox:latest"),
        "{body}"
    );
    let (status, _) = daemon.request("GET", "/info");
    assert_eq!(status, 200);
    let (status, body) = daemon.request("GET", "/containers/fine/json");
    assert_eq!(status, 200, "{body}");

    // The docker CLI lists around them too.
    let docker_config = tempfile::tempdir().unwrap();
    let docker = |args: &[&str]| {
        std::process::Command::new("timeout")
            .args(["-k", "5", "60", "docker"])
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", daemon.socket.display()))
            .env("DOCKER_CONFIG", docker_config.path())
            .output()
            .unwrap()
    };
    let out = docker(&["ps", "-a", "--no-trunc"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        row(&table, &container)
            .unwrap_or_else(|| panic!("{table}"))
            .contains("Broken: config.json"),
        "{table}"
    );
    let out = docker(&["images"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("busybox"), "{}", stdout(&out));

    let (status, body) = daemon.request("DELETE", &format!("/images/{}", &image[..12]));
    assert_eq!(status, 409, "{body}");
    let (status, body) = daemon.request("DELETE", &format!("/images/{}?force=1", &image[..12]));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("victim:latest") && body.contains(&image),
        "{body}"
    );
    let out = docker(&["rm", "-f", &container[..12]]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!root.container_dirs().contains(&container));
    assert!(!root.path().join("graph").join(&image).exists());
    let log = fs::read_to_string(root.path().join("daemon.log")).unwrap();
    assert!(log.contains("broken"), "{log}");
}

/// A broken container whose monitor is gone too (kill -9): `rm -f` finds its processes by
/// its cgroup, and releases its mount and cgroups.
#[test]
fn a_broken_container_without_its_monitor_is_removed_with_its_processes() {
    let root = DockRoot::with_busybox();
    let id = root
        .ok(&["run", "-d", "--network", "none", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let init = root.inspect(&id)["State"]["Pid"].as_i64().unwrap() as i32;
    assert!(alive(init));
    for pid in root.monitors() {
        kill9(pid);
        wait_for_exit(pid);
    }
    damage(
        &root.path().join("containers").join(&id).join("config.json"),
        b"not json",
    );
    let ps = root.ok(&["ps", "-a"]);
    assert!(
        row(&ps, &id[..12])
            .unwrap_or_else(|| panic!("{ps}"))
            .contains("Broken: config.json: "),
        "{ps}"
    );
    let out = root.run(&["rm", "-f", &id[..12]]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!alive(init), "the container's process still runs");
    assert!(root.mounts().iter().all(|m| !m.contains(&id)));
    assert!(root
        .container_cgroups()
        .iter()
        .all(|c| !c.to_string_lossy().contains(&id)));
    assert!(root.container_dirs().is_empty());
}

/// `rmi -f` of a sound image's last name while a container uses it: the name goes (Docker's
/// -f), the image stays for the container.
#[test]
fn rmi_f_untags_an_image_a_container_uses_and_keeps_it() {
    let root = DockRoot::with_busybox();
    let id = root.import_busybox("used");
    root.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "user",
        "used",
        "true",
    ]);
    let out = root.run(&["rmi", "used"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("conflict"), "{}", stderr(&out));
    assert!(root
        .ok(&["rmi", "-f", "used"])
        .contains("Untagged: used:latest"));
    assert!(
        lines(&root.ok(&["images", "-a", "-q", "--no-trunc"])).contains(&format!("sha256:{id}"))
    );
    assert_eq!(root.inspect("user")["Image"], format!("sha256:{id}"));
    root.ok(&["rm", "user"]);
    assert!(root
        .ok(&["rmi", &id[..12]])
        .contains(&format!("Deleted: {id}")));
}

/// `ps` shows the image as the user named it while that name still names the container's
/// image (a tag, or an id prefix), as Docker does; a full id, or a name moved to another
/// image, shows the image's first name instead, and an image with no name its short id.
#[test]
fn ps_shows_the_image_as_given_while_that_name_names_it() {
    let root = DockRoot::new();
    let first = root.import_busybox("base");
    root.ok(&["tag", "base", "zz:1"]);
    for (name, image) in [
        ("by-tag", "base"),
        ("by-prefix", &first[..12]),
        ("by-id", first.as_str()),
    ] {
        root.ok(&["create", "--network", "none", "--name", name, image, "true"]);
    }
    let second = root.import_busybox("base");
    assert_ne!(first, second);
    root.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "second",
        "base",
        "true",
    ]);
    let image_of = |table: &str, name: &str| -> String {
        let row = table
            .lines()
            .find(|row| row.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("no {name} in {table}"));
        row.split_whitespace().nth(1).unwrap().to_string()
    };
    let table = root.ok(&["ps", "-a"]);
    assert_eq!(image_of(&table, "by-tag"), "zz:1", "{table}");
    assert_eq!(image_of(&table, "by-prefix"), &first[..12], "{table}");
    assert_eq!(image_of(&table, "by-id"), "zz:1", "{table}");
    assert_eq!(image_of(&table, "second"), "base", "{table}");
    // No name left for the first image: its short id.
    root.ok(&["rmi", "-f", "zz:1"]);
    let table = root.ok(&["ps", "-a"]);
    assert_eq!(image_of(&table, "by-tag"), &first[..12], "{table}");
    assert_eq!(image_of(&table, "by-id"), &first[..12], "{table}");
}
