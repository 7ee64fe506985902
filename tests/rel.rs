//! Issue 14, acceptance 1 and 2: one ordering for the store, and crash safety.
//!
//! - Races: `run -d` against `rmi`, `tag` against `rmi`, `commit` against `rmi` of its base,
//!   `run --name X` from five processes; afterwards `system check` is clean, every container
//!   starts and every tag resolves.
//! - SIGKILL at random points of `run`, `create`, `rm`, `commit`, `import`, `tag`, `rmi`, and at
//!   chosen syscalls (`strace -e inject=…:signal=SIGKILL:when=N`): after the next command
//!   `system check` is clean and every directory under `containers/` and `graph/` is a
//!   listed container or image.
//!
//! Bounded loops, no timing asserts; every process is killed and the root torn down by drop
//! guards, passed or failed.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Far above what any step takes; reaching it means the step hangs.
const GUARD: Duration = Duration::from_secs(60);

/// A child process killed (and reaped) when dropped.
struct Guarded(Option<Child>);

impl Guarded {
    fn spawn(cmd: &mut Command) -> Guarded {
        Guarded(Some(
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ))
    }

    fn kill9(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
        }
    }

    /// Waits for the end, failing the test if it does not come within the guard.
    fn finish(mut self, what: &str) -> Output {
        let mut child = self.0.take().unwrap();
        let deadline = Instant::now() + GUARD;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} hangs");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(root: &DockRoot, args: &[&str]) -> Guarded {
    Guarded::spawn(root.cmd().args(args))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small xorshift generator; the seed is printed so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("REL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b).unwrap();
                u64::from_le_bytes(b) | 1
            });
        eprintln!("REL_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn lines(s: &str) -> HashSet<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Runs the next commands (a container listing and an image listing), then asserts that
/// `system check` is clean and that every entry under `containers/` and `graph/` is a listed
/// container or image, or the store's own bookkeeping.
fn assert_consistent(root: &DockRoot, after: &str) {
    let containers = lines(&root.ok(&["ps", "-aq", "--no-trunc"]));
    // Full ids print as sha256:HEX (Docker's form); the graph names entries by HEX.
    let images: HashSet<String> = lines(&root.ok(&["images", "-aq", "--no-trunc"]))
        .into_iter()
        .map(|id| id.trim_start_matches("sha256:").to_string())
        .collect();
    let check = root.run(&["system", "check"]);
    assert!(
        check.status.success() && check.stdout.is_empty(),
        "after {after}: system check says ({}):\n{}{}",
        check.status,
        text(&check.stdout),
        text(&check.stderr)
    );
    if let Ok(entries) = std::fs::read_dir(root.path().join("containers")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                name == ".names.lock" || name == "_index" || containers.contains(&name),
                "after {after}: containers/{name} is no listed container"
            );
        }
    }
    if let Ok(entries) = std::fs::read_dir(root.path().join("graph")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                ["_tmp", "_index", "_store.lock"].contains(&name.as_str())
                    || images.contains(&name),
                "after {after}: graph/{name} is no listed image"
            );
        }
    }
    let staging: Vec<_> = std::fs::read_dir(root.path().join("graph/_tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        staging.is_empty(),
        "after {after}: staging left: {staging:?}"
    );
}

/// Every container starts (a running one counts), and every tag resolves.
fn assert_usable(root: &DockRoot) {
    for id in lines(&root.ok(&["ps", "-aq", "--no-trunc"])) {
        let c = root.inspect(&id);
        if c["State"]["Running"] == true {
            continue;
        }
        let out = root.run(&["start", "-a", &id]);
        assert!(
            out.status.success(),
            "container {id} ({}) does not start: {}",
            c["Config"]["Image"],
            text(&out.stderr)
        );
    }
    let repos: serde_json::Value = std::fs::read(root.path().join("repositories"))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_default();
    if let Some(repos) = repos["Repositories"].as_object() {
        for (repo, tags) in repos {
            for tag in tags.as_object().unwrap().keys() {
                let reference = format!("{repo}:{tag}");
                let out = root.run(&["inspect", &reference]);
                assert!(
                    out.status.success(),
                    "tag {reference} does not resolve: {}",
                    text(&out.stderr)
                );
            }
        }
    }
}

/// A root with busybox and a created container `seed` that the operations commit.
fn seeded_root() -> DockRoot {
    let root = DockRoot::with_busybox();
    root.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "seed",
        "busybox",
        "true",
    ]);
    root
}

#[test]
fn races_of_create_tag_commit_and_rmi_leave_a_consistent_store() {
    let root = seeded_root();

    // `run -d` against `rmi`: the run fails with no such image, or rmi refuses (in use).
    for i in 0..10 {
        let image = format!("img{i}");
        root.ok(&["commit", "seed", &image]);
        let run = spawn(
            &root,
            &[
                "run",
                "-d",
                "--pull",
                "never",
                "--network",
                "none",
                &image,
                "sleep",
                "1000",
            ],
        );
        let rmi = spawn(&root, &["rmi", &image]);
        let (run, rmi) = (run.finish("run -d"), rmi.finish("rmi"));
        assert!(
            run.status.success() != rmi.status.success(),
            "round {i}: run -d ({}: {}) and rmi ({}: {}) cannot both win or both lose",
            run.status,
            text(&run.stderr),
            rmi.status,
            text(&rmi.stderr)
        );
    }

    // `tag` against `rmi`: the tag names the image, or fails because it is gone.
    for i in 0..10 {
        let (image, alias) = (format!("src{i}"), format!("alias{i}"));
        root.ok(&["commit", "seed", &image]);
        let tag = spawn(&root, &["tag", &image, &alias]);
        let rmi = spawn(&root, &["rmi", &image]);
        let (tag, rmi) = (tag.finish("tag"), rmi.finish("rmi"));
        assert!(rmi.status.success(), "round {i}: {}", text(&rmi.stderr));
        if tag.status.success() {
            root.ok(&["inspect", &alias]);
        }
    }

    // `commit` against `rm` + `rmi` of its base: the commit's image keeps its parent, or
    // the commit fails.
    for i in 0..8 {
        let (base, name, out) = (format!("base{i}"), format!("k{i}"), format!("out{i}"));
        root.ok(&["commit", "seed", &base]);
        root.ok(&[
            "create",
            "--pull",
            "never",
            "--network",
            "none",
            "--name",
            &name,
            &base,
            "true",
        ]);
        let commit = spawn(&root, &["commit", &name, &out]);
        let remover = {
            let cmd = |args: &[&str]| {
                let mut c = root.cmd();
                c.args(args);
                c
            };
            let (mut rm, mut rmi) = (cmd(&["rm", &name]), cmd(&["rmi", &base]));
            std::thread::spawn(move || {
                let rm = Guarded::spawn(&mut rm).finish("rm");
                let rmi = Guarded::spawn(&mut rmi).finish("rmi");
                (rm, rmi)
            })
        };
        let commit = commit.finish("commit");
        let (_rm, _rmi) = remover.join().unwrap();
        if commit.status.success() {
            let image = root.inspect(&out);
            // Docker's name (Parent, sha256:HEX), or 0.1.0's (parent).
            let parent = image["Parent"]
                .as_str()
                .or(image["parent"].as_str())
                .unwrap_or_default()
                .to_string();
            root.ok(&["inspect", &parent]);
        }
    }

    // `run --name X` from five processes: exactly one wins, the others get the conflict.
    for i in 0..8 {
        let name = format!("n{i}");
        let runs: Vec<Guarded> = (0..5)
            .map(|_| {
                spawn(
                    &root,
                    &[
                        "run",
                        "-d",
                        "--network",
                        "none",
                        "--name",
                        &name,
                        "busybox",
                        "sleep",
                        "1000",
                    ],
                )
            })
            .collect();
        let outs: Vec<Output> = runs.into_iter().map(|r| r.finish("run --name")).collect();
        let winners = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(winners, 1, "round {i}: {winners} runs named {name} won");
        for out in outs.iter().filter(|o| !o.status.success()) {
            let err = text(&out.stderr);
            assert!(
                err.contains(&format!("the container name \"/{name}\" is already in use")),
                "round {i}: {err}"
            );
        }
        let all = runtime::Runtime::open(root.path()).unwrap().list().unwrap();
        let named = all.iter().filter(|c| c.name == name).count();
        assert_eq!(named, 1, "round {i}: {named} containers are named {name}");
    }

    assert_consistent(&root, "the races");
    assert_usable(&root);
}

/// A command to kill and what it needs first. `i` makes names unique.
fn prepare(root: &DockRoot, op: &str, i: usize) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match op {
        "run" => s(&["run", "--network", "none", "busybox", "true"]),
        "create" => s(&["create", "--network", "none", "busybox", "true"]),
        "rm" => {
            let id = root.ok(&["create", "--network", "none", "busybox", "true"]);
            s(&["rm", id.trim()])
        }
        "commit" => s(&["commit", "seed", &format!("c{i}")]),
        "import" => s(&[
            "import",
            busybox_tar().to_str().unwrap(),
            &format!("imp{i}"),
        ]),
        "tag" => s(&["tag", "busybox", &format!("tg{i}")]),
        "rmi" => {
            root.ok(&["commit", "seed", &format!("r{i}")]);
            s(&["rmi", &format!("r{i}")])
        }
        other => unreachable!("{other}"),
    }
}

const OPS: [&str; 7] = ["run", "create", "rm", "commit", "import", "tag", "rmi"];

#[test]
fn sigkill_at_random_points_leaves_a_consistent_store() {
    let root = seeded_root();
    let mut rng = Rng::new();
    // How long each command takes, roughly: kills land anywhere from its start to its end.
    let mut took: Vec<Duration> = Vec::new();
    for op in OPS {
        let args = prepare(&root, op, 1000);
        let start = Instant::now();
        let out = root.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{op}: {}", text(&out.stderr));
        took.push(start.elapsed() + Duration::from_millis(5));
    }
    for round in 0..28 {
        let which = round % OPS.len();
        let op = OPS[which];
        let args = prepare(&root, op, round);
        let delay = Duration::from_micros(rng.below(took[which].as_micros() as u64));
        let mut child = Guarded::spawn(
            root.cmd()
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        std::thread::sleep(delay);
        child.kill9();
        drop(child);
        assert_consistent(&root, &format!("SIGKILL of {args:?} after {delay:?}"));
    }
    assert_usable(&root);
}

#[test]
fn sigkill_at_chosen_syscalls_leaves_a_consistent_store() {
    let root = seeded_root();
    // (command, syscalls to kill at, how many of them to try in turn)
    let plan: [(&str, &str, usize); 10] = [
        ("run", "rename,renameat,renameat2", 4),
        ("create", "rename,renameat,renameat2", 2),
        ("create", "mkdir,mkdirat", 6),
        ("rm", "rename,renameat,renameat2", 1),
        ("rm", "unlink,unlinkat,rmdir", 4),
        ("commit", "rename,renameat,renameat2", 4),
        ("import", "rename,renameat,renameat2", 2),
        ("tag", "rename,renameat,renameat2", 1),
        ("rmi", "rename,renameat,renameat2", 3),
        ("rmi", "unlink,unlinkat,rmdir", 3),
    ];
    let mut i = 0;
    for (op, syscalls, count) in plan {
        for when in 1..=count {
            i += 1;
            let args = prepare(&root, op, 2000 + i);
            let inject = format!("inject={syscalls}:signal=SIGKILL:when={when}");
            let out = Guarded::spawn(
                Command::new("strace")
                    .args(["-qq", "-o", "/dev/null", "-e", &inject, "--"])
                    .arg(dock_bin())
                    .arg("--root")
                    .arg(root.path())
                    .args(&args)
                    .stdin(Stdio::null()),
            )
            .finish("strace");
            // strace reports the tracee's death by SIGKILL as its own exit status.
            let what = format!("{args:?} killed at {syscalls} #{when} ({})", out.status);
            assert_consistent(&root, &what);
        }
    }
    assert_usable(&root);
}

#[test]
fn system_check_reports_and_repairs_a_damaged_store() {
    let root = DockRoot::with_busybox();
    root.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "keep",
        "busybox",
        "true",
    ]);
    let clean = root.run(&["system", "check"]);
    assert!(clean.status.success() && clean.stdout.is_empty());

    let p = root.path();
    std::fs::create_dir_all(p.join("containers/.creating-abc/upper")).unwrap();
    std::fs::create_dir_all(p.join("graph/stray")).unwrap();
    std::fs::create_dir_all(p.join("graph/_tmp/dead-1.deleted/layer")).unwrap();
    let repos = std::fs::read_to_string(p.join("repositories")).unwrap();
    let gone = "ab".repeat(32);
    let repos = repos.replacen(
        "\"Repositories\":{",
        &format!("\"Repositories\":{{\"ghost\":{{\"latest\":\"{gone}\"}},"),
        1,
    );
    std::fs::write(p.join("repositories"), repos).unwrap();

    let found = root.run(&["system", "check"]);
    assert_eq!(found.status.code(), Some(1));
    let out = text(&found.stdout);
    for needle in [
        ".creating-abc",
        "graph/stray",
        "dead-1.deleted",
        &format!("tag ghost:latest: image {gone}"),
    ] {
        assert!(out.contains(needle), "no line names {needle}:\n{out}");
    }
    assert_eq!(out.lines().count(), 4, "{out}");

    let repaired = root.run(&["system", "check", "--repair"]);
    assert!(repaired.status.success(), "{}", text(&repaired.stdout));
    assert_eq!(text(&repaired.stdout).matches("repaired").count(), 4);
    assert_consistent(&root, "repair");
    // What was valid is still there and works.
    let out = root.run(&["start", "-a", "keep"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    root.ok(&["inspect", "busybox"]);
}
