//! Confinement end to end, through the `dock` binary on a busybox image: Docker's default
//! seccomp profile and capability set, `--security-opt`, `--cap-add`/`--cap-drop`,
//! `--privileged`, the masked and read-only paths, and refusals of bad options (exit 125,
//! nothing created). Each test's [`DockRoot`] cleans up on drop.

mod common;

use common::{code, stderr, stdout, DockRoot};

struct Env {
    root: DockRoot,
}

impl Env {
    fn new() -> Env {
        Env {
            root: DockRoot::with_busybox(),
        }
    }

    /// `dock run --rm --network none [options] busybox sh -c script`, which must succeed.
    fn sh(&self, options: &[&str], script: &str) -> String {
        let out = self.root.busybox_sh(options, script);
        assert_eq!(
            code(&out),
            0,
            "{options:?} {script:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// A field of the container's /proc/self/status.
    fn status(&self, options: &[&str], field: &str) -> String {
        let status = self.sh(options, "cat /proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {field} in {status}"))
            .trim()
            .to_string()
    }

    /// Asserts `dock run` with `options` is refused with 125 and `message`, leaving nothing.
    fn refused(&self, options: &[&str], message: &str) {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(options);
        args.extend_from_slice(&["busybox", "true"]);
        let out = self.root.run(&args);
        assert_eq!(code(&out), 125, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(message),
            "{args:?}: {:?} lacks {message:?}",
            stderr(&out)
        );
        assert_eq!(self.root.container_dirs(), Vec::<String>::new());
        assert_eq!(self.root.ok(&["ps", "-aq"]), "");
    }
}

#[test]
fn default_container_has_dockers_seccomp_and_capabilities() {
    let env = Env::new();
    let status = env.sh(&[], "cat /proc/self/status");
    for (field, want) in [
        ("Seccomp", "2"),
        ("NoNewPrivs", "0"),
        ("CapEff", "00000000a80425fb"),
        ("CapPrm", "00000000a80425fb"),
        ("CapBnd", "00000000a80425fb"),
        ("CapInh", "0000000000000000"),
    ] {
        let line = format!("{field}:\t{want}");
        assert!(status.lines().any(|l| l == line), "no {line:?} in {status}");
    }
    // Docker's profile refuses new namespaces and mounts to a default container.
    let out = env.sh(
        &[],
        "unshare -U true 2>&1; echo unshare=$?; mount -t tmpfs none /tmp 2>&1; echo mount=$?",
    );
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("unshare=1"), "{out}");
    assert!(!out.contains("mount=0"), "{out}");
    // The second start reads the compiled profile from the root's cache.
    assert_eq!(
        std::fs::read_dir(env.root.path().join("seccomp"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(env.status(&[], "Seccomp"), "2");
}

#[test]
fn security_opts_unconfined_profile_file_and_no_new_privileges() {
    let env = Env::new();
    assert_eq!(
        env.status(&["--security-opt", "seccomp=unconfined"], "Seccomp"),
        "0"
    );
    assert_eq!(
        env.status(&["--security-opt", "no-new-privileges"], "NoNewPrivs"),
        "1"
    );
    assert_eq!(
        env.status(&["--security-opt", "no-new-privileges=true"], "Seccomp"),
        "2"
    );
    assert_eq!(
        env.status(&["--security-opt", "no-new-privileges=false"], "NoNewPrivs"),
        "0"
    );

    // A profile file that denies mkdir: read at create and kept, so it may go away after.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let id = env.root.ok(&[
        "create",
        "--name",
        "nomkdir",
        "--network",
        "none",
        "--security-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/x; grep Seccomp: /proc/self/status",
    ]);
    std::fs::remove_file(&profile).unwrap();
    let inspect = env.root.inspect(id.trim());
    let stored = inspect["HostConfig"]["SecurityOpt"][0].as_str().unwrap();
    assert!(
        stored.starts_with("seccomp={") && stored.contains("mkdirat"),
        "{stored}"
    );
    let out = env.root.run(&["start", "-a", "nomkdir"]);
    assert!(
        stderr(&out).contains("mkdir: can't create directory '/tmp/x': Operation not permitted"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("Seccomp:\t2"), "{}", stdout(&out));
}

#[test]
fn cap_add_cap_drop_and_inspect() {
    let env = Env::new();
    assert_eq!(
        env.status(&["--cap-drop", "CHOWN"], "CapEff"),
        "00000000a80425fa"
    );
    assert_eq!(
        env.status(&["--cap-drop", "all", "--cap-add", "cap_kill"], "CapBnd"),
        "0000000000000020"
    );
    // CAP_SYS_ADMIN opens the profile's namespace and mount rules, as under Docker.
    let out = env.sh(
        &["--cap-add", "SYS_ADMIN"],
        "unshare -U true && echo unshared; mount -t tmpfs none /tmp && echo mounted",
    );
    assert_eq!(out, "unshared\nmounted\n");
    // A non-root user ends with empty sets, whatever was added.
    let out = env.sh(
        &["--cap-add", "NET_ADMIN", "-u", "nobody"],
        "grep -E '^Cap(Eff|Prm)' /proc/self/status",
    );
    assert_eq!(
        out,
        "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
    );

    let id = env.root.ok(&[
        "create",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "MKNOD",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "true",
    ]);
    let hc = &env.root.inspect(id.trim())["HostConfig"];
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["CapAdd"], serde_json::json!(["NET_ADMIN"]));
    assert_eq!(hc["CapDrop"], serde_json::json!(["MKNOD"]));
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
}

#[test]
fn privileged_has_all_capabilities_no_seccomp_writable_sys_no_masks() {
    let env = Env::new();
    let out = env.sh(
        &["--privileged"],
        "grep -E '^(Seccomp|CapEff):' /proc/self/status; grep ' /sys ' /proc/mounts; \
         wc -c < /proc/interrupts; grep -c ' /proc/keys ' /proc/self/mountinfo || true",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "CapEff:\t".to_string() + &format!("{:016x}", sysinit::caps::available())
    );
    assert_eq!(lines[1], "Seccomp:\t0");
    assert!(lines[2].contains(" rw,"), "/sys is read-only: {out}");
    assert_ne!(lines[3].trim(), "0", "/proc/interrupts is masked");
    assert_eq!(lines[4].trim(), "0", "/proc/keys is masked");
    let id = env.root.ok(&["create", "--privileged", "busybox", "true"]);
    assert_eq!(
        env.root.inspect(id.trim())["HostConfig"]["Privileged"],
        true
    );
}

#[test]
fn default_container_masks_and_protects_dockers_paths() {
    let env = Env::new();
    let mut script = String::new();
    for path in sysinit::default_masked_paths() {
        script.push_str(&format!(
            "if [ -d {path} ]; then echo \"{path} $(ls -A {path} | wc -l)\"; \
             elif [ -e {path} ]; then echo \"{path} $(cat {path} | wc -c)\"; \
             else echo \"{path} 0\"; fi; "
        ));
    }
    let out = env.sh(&[], &script);
    for line in out.lines() {
        assert!(line.ends_with(" 0"), "not masked: {line}");
    }
    assert_eq!(out.lines().count(), sysinit::default_masked_paths().len());
    let out = env.sh(&[], "grep ' /sys ' /proc/mounts");
    assert!(out.contains("sysfs /sys sysfs ro,"), "{out}");
    // Each read-only path is a read-only mount (or absent on this kernel), and files root
    // could write refuse it with EROFS.
    let mountinfo = env.sh(&[], "cat /proc/self/mountinfo");
    for path in sysinit::DEFAULT_READONLY_PATHS {
        match mountinfo
            .lines()
            .rfind(|l| l.split(' ').nth(4) == Some(path))
        {
            Some(line) => assert!(line.split(' ').nth(5).unwrap().starts_with("ro"), "{line}"),
            None => assert!(
                !std::path::Path::new(path).exists(),
                "{path} is not a mount"
            ),
        }
    }
    let out = env.root.busybox_sh(
        &[],
        "echo x > /proc/sys/kernel/domainname; echo 1 > /proc/irq/default_smp_affinity",
    );
    assert_eq!(
        stderr(&out).matches("Read-only file system").count(),
        2,
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_options_are_refused_and_leave_nothing() {
    let env = Env::new();
    env.refused(&["--cap-add", "BOGUS"], "unknown capability: \"CAP_BOGUS\"");
    env.refused(
        &["--cap-drop", "cap_nothing"],
        "unknown capability: \"CAP_NOTHING\"",
    );
    env.refused(
        &["--security-opt", "bogus"],
        "invalid --security-opt: \"bogus\"",
    );
    env.refused(
        &["--security-opt", "no-new-privileges=maybe"],
        "invalid --security-opt: \"no-new-privileges=maybe\"",
    );
    env.refused(
        &["--security-opt", "seccomp=/no/such/profile.json"],
        "opening seccomp profile (/no/such/profile.json) failed: no such file or directory",
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#).unwrap();
    env.refused(
        &["--security-opt", &format!("seccomp={}", bad.display())],
        &format!("seccomp profile {}", bad.display()),
    );
    let out = env
        .root
        .run(&["create", "--cap-add", "nope", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert_eq!(env.root.container_dirs(), Vec::<String>::new());
}
