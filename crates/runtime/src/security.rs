//! A container's confinement from its [`HostConfig`]: `--privileged`, `--cap-add`/`--cap-drop`
//! and `--security-opt` (`seccomp=unconfined|builtin|<profile JSON>`, `no-new-privileges[=bool]`)
//! as Docker 28 reads them, checked at create and turned into [`sysinit::Security`] at start.
//!
//! Compiling a seccomp profile with libseccomp takes milliseconds (Docker's default: 11 to 14 ms
//! on the development machine, see `bench/start.sh`), so compiled programs are kept under the
//! root in `seccomp/<key>.bpf`, keyed by the profile, the capability set (which decides the
//! conditional rules), the architecture, the kernel version and boot, and the libseccomp version; a start
//! then only hashes the profile and reads the program. What remains is the kernel's: installing
//! the default program for x86_64 and x86 takes about 0.1 ms now that its dispatch on the
//! system call number is a search (239 instructions, see `sysinit::seccomp`), against 0.7 ms
//! for the 702 that libseccomp writes and Docker's containers install.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::Digest;
use sysinit::seccomp::{self, Program, Target};
use sysinit::{caps, Security};

use crate::container::HostConfig;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid --security-opt: {0:?}")]
    Option(String),
    #[error("--security-opt {0:?} is not supported by dock")]
    Unsupported(String),
    #[error(transparent)]
    Capability(#[from] caps::CapError),
    #[error("opening seccomp profile ({}) failed: {}", path.display(), sysinit::os_error_text(source))]
    ReadProfile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("seccomp profile {}: {source}", path.display())]
    ProfileFile {
        path: PathBuf,
        #[source]
        source: seccomp::SeccompError,
    },
    #[error(transparent)]
    Profile(#[from] seccomp::SeccompError),
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// What `seccomp=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seccomp {
    /// Docker's default profile (no `seccomp=`, or `seccomp=builtin`).
    Default,
    /// `seccomp=unconfined`.
    Unconfined,
    /// The profile's JSON, as the client sent it (Docker's CLI reads the file it names).
    Profile(String),
}

/// `--security-opt` values, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOpts {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `KEY=VALUE`, or the old `KEY:VALUE`.
fn split_opt(opt: &str) -> Option<(&str, &str)> {
    opt.split_once('=').or_else(|| opt.split_once(':'))
}

/// Parses `--security-opt` values as dockerd does. AppArmor and SELinux are not part of dock:
/// `apparmor=unconfined` and `label=disable` (which ask for nothing) are accepted, any other
/// profile or label is refused.
pub fn parse_opts(opts: &[String]) -> Result<SecurityOpts> {
    let mut parsed = SecurityOpts {
        seccomp: Seccomp::Default,
        no_new_privileges: false,
    };
    for opt in opts {
        if opt == "no-new-privileges" {
            parsed.no_new_privileges = true;
            continue;
        }
        if opt == "disable" {
            continue;
        }
        let (key, value) = split_opt(opt).ok_or_else(|| Error::Option(opt.clone()))?;
        match key {
            "seccomp" => {
                parsed.seccomp = match value {
                    "unconfined" => Seccomp::Unconfined,
                    "builtin" | "" => Seccomp::Default,
                    json => Seccomp::Profile(json.to_string()),
                }
            }
            "no-new-privileges" => {
                parsed.no_new_privileges =
                    parse_bool(value).ok_or_else(|| Error::Option(opt.clone()))?
            }
            "apparmor" if value == "unconfined" => {}
            "label" if value == "disable" => {}
            "apparmor" | "label" => return Err(Error::Unsupported(opt.clone())),
            _ => return Err(Error::Option(opt.clone())),
        }
    }
    Ok(parsed)
}

/// What Docker's CLI does before it sends `--security-opt`: `seccomp=PATH` becomes
/// `seccomp=<the file's JSON, compacted>`, so the container keeps the profile even when the
/// file goes away. A file that cannot be read or is no seccomp profile is an error naming it.
pub fn inline_profile_files(opts: &[String]) -> Result<Vec<String>> {
    opts.iter()
        .map(|opt| {
            let Some(("seccomp", value)) = split_opt(opt) else {
                return Ok(opt.clone());
            };
            if matches!(value, "unconfined" | "builtin") {
                return Ok(opt.clone());
            }
            if value.is_empty() {
                return Err(Error::Option(opt.clone()));
            }
            let path = PathBuf::from(value);
            let text = fs::read_to_string(&path).map_err(|source| Error::ReadProfile {
                path: path.clone(),
                source,
            })?;
            let file_err = |source| Error::ProfileFile {
                path: path.clone(),
                source,
            };
            // Evaluated once here so that a bad profile is refused naming its file.
            seccomp::Profile::parse(&text)
                .and_then(|p| p.resolve(&Target::host(caps::DEFAULT)))
                .map_err(file_err)?;
            let compact: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| file_err(seccomp::SeccompError::Json(e)))?;
            Ok(format!("seccomp={compact}"))
        })
        .collect()
}

/// The container's capability set (the bounding set; root's effective and permitted sets).
pub fn capabilities(hc: &HostConfig) -> Result<u64> {
    Ok(caps::tweak(
        caps::DEFAULT,
        &hc.cap_add,
        &hc.cap_drop,
        hc.privileged,
        caps::available(),
    )?)
}

/// Checks a host config at create, before anything exists: options, capability names, and a
/// custom seccomp profile (parsed, evaluated and compiled into the root's cache, so a bad one
/// is refused now and a good one costs nothing at start).
pub fn validate(root: &Path, hc: &HostConfig) -> Result<()> {
    let opts = parse_opts(&hc.security_opt)?;
    let capabilities = capabilities(hc)?;
    if let Seccomp::Profile(json) = &opts.seccomp {
        if !hc.privileged {
            program(root, json, capabilities)?;
        }
    }
    Ok(())
}

/// The confinement sysinit applies: Docker's default (its seccomp profile compiled for the
/// container's capability set), or everything open for a privileged container.
pub fn for_container(root: &Path, hc: &HostConfig) -> Result<Security> {
    let opts = parse_opts(&hc.security_opt)?;
    if hc.privileged {
        return Ok(Security {
            no_new_privileges: opts.no_new_privileges,
            ..Security::privileged()
        });
    }
    let capabilities = capabilities(hc)?;
    let seccomp = match &opts.seccomp {
        Seccomp::Unconfined => None,
        Seccomp::Default => program(root, seccomp::DEFAULT_PROFILE, capabilities)?,
        Seccomp::Profile(json) => program(root, json, capabilities)?,
    };
    Ok(Security {
        capabilities,
        seccomp,
        no_new_privileges: opts.no_new_privileges,
        ..Security::default()
    })
}

/// The compiled program of `profile` for a container with `capabilities`, from the root's cache
/// when it is there; compiled and cached (write-temp + rename) otherwise. A cache that cannot be
/// written only costs the compile next time.
fn program(root: &Path, profile: &str, capabilities: u64) -> Result<Option<Program>> {
    let target = Target::host(capabilities);
    let dir = root.join("seccomp");
    let path = dir.join(format!("{}.bpf", cache_key(profile, &target)));
    if let Ok(bytes) = fs::read(&path) {
        match Program::from_bytes(&bytes) {
            Ok(program) => return Ok(Some(program)),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "ignoring bad cached seccomp program")
            }
        }
    }
    let Some(program) = seccomp::compile(profile, &target)? else {
        return Ok(None);
    };
    if let Err(e) = store(&dir, &path, &program.to_bytes()) {
        tracing::debug!(path = %path.display(), error = %e, "could not cache the seccomp program");
    }
    Ok(Some(program))
}

/// The cache file name: everything the compiled program depends on, hashed.
fn cache_key(profile: &str, target: &Target) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(b"dock-seccomp-v3\0");
    // Whether the kernel runs x32 (see seccomp::kernel_runs_x32) can change at a reboot.
    hash.update(fs::read("/proc/sys/kernel/random/boot_id").unwrap_or_default());
    hash.update(seccomp::library_version().as_bytes());
    hash.update(b"\0");
    hash.update(target.scmp_arch.as_bytes());
    hash.update(b"\0");
    hash.update(target.capabilities.to_le_bytes());
    hash.update(target.kernel.0.to_le_bytes());
    hash.update(target.kernel.1.to_le_bytes());
    hash.update(profile.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A name beside `path` for writing it, unique to this call: the API server compiles in
/// several threads of one process, and two writers of one temporary file could rename the
/// other's half-written program into the cache.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_extension(format!("tmp-{}-{n}", std::process::id()))
}

fn store(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = temp_path(path);
    let write = || -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_cache_write_has_its_own_temporary_file() {
        let path = Path::new("/root/seccomp/key.bpf");
        let (a, b) = (temp_path(path), temp_path(path));
        assert_ne!(a, b);
        assert_eq!(a.parent(), path.parent());
    }

    #[test]
    fn security_opts_as_dockerd_reads_them() {
        let parse = |v: &[&str]| parse_opts(&strings(v));
        assert_eq!(
            parse(&[]).unwrap(),
            SecurityOpts {
                seccomp: Seccomp::Default,
                no_new_privileges: false
            }
        );
        let o = parse(&["seccomp=unconfined", "no-new-privileges"]).unwrap();
        assert_eq!(o.seccomp, Seccomp::Unconfined);
        assert!(o.no_new_privileges);
        assert!(
            parse(&["no-new-privileges=true"])
                .unwrap()
                .no_new_privileges
        );
        assert!(
            !parse(&["no-new-privileges", "no-new-privileges=false"])
                .unwrap()
                .no_new_privileges
        );
        assert!(parse(&["no-new-privileges:1"]).unwrap().no_new_privileges);
        assert_eq!(
            parse(&[r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#])
                .unwrap()
                .seccomp,
            Seccomp::Profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#.into())
        );
        assert_eq!(
            parse(&["seccomp=builtin"]).unwrap().seccomp,
            Seccomp::Default
        );
        parse(&["apparmor=unconfined", "label=disable"]).unwrap();
        for bad in ["bogus", "no-new-privileges=maybe", "foo=bar"] {
            let err = parse(&[bad]).unwrap_err().to_string();
            assert_eq!(err, format!("invalid --security-opt: {bad:?}"));
        }
        assert!(parse(&["apparmor=docker-default"])
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }

    #[test]
    fn profile_files_are_inlined_and_checked_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("deny-mkdir.json");
        fs::write(
            &good,
            "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\"}]\n}\n",
        )
        .unwrap();
        let opts = inline_profile_files(&strings(&[
            "no-new-privileges",
            &format!("seccomp={}", good.display()),
            "seccomp=unconfined",
        ]))
        .unwrap();
        assert_eq!(opts[0], "no-new-privileges");
        assert_eq!(
            opts[1],
            r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO","names":["mkdir"]}]}"#
        );
        assert_eq!(opts[2], "seccomp=unconfined");

        let missing = dir.path().join("missing.json");
        let err = inline_profile_files(&[format!("seccomp={}", missing.display())]).unwrap_err();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        let bad = dir.path().join("bad.json");
        fs::write(&bad, "{\"defaultAction\": 3}").unwrap();
        let err = inline_profile_files(&[format!("seccomp={}", bad.display())]).unwrap_err();
        assert!(
            err.to_string().contains(&bad.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn programs_are_cached_per_profile_and_capability_set() {
        let root = tempfile::tempdir().unwrap();
        let hc = HostConfig::default();
        let first = for_container(root.path(), &hc).unwrap();
        assert_eq!(first.capabilities, caps::DEFAULT);
        assert!(first.seccomp.is_some());
        let cached: Vec<_> = fs::read_dir(root.path().join("seccomp"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(cached.len(), 1);
        // The second start reads the same program back.
        assert_eq!(
            for_container(root.path(), &hc).unwrap().seccomp,
            first.seccomp
        );
        // Another capability set opens other rules: another program.
        let admin = HostConfig {
            cap_add: strings(&["sys_admin"]),
            ..HostConfig::default()
        };
        let with_admin = for_container(root.path(), &admin).unwrap();
        assert_ne!(with_admin.seccomp, first.seccomp);
        assert_eq!(
            fs::read_dir(root.path().join("seccomp")).unwrap().count(),
            2
        );
        // A damaged cache entry is compiled again.
        fs::write(cached[0].path(), b"junk").unwrap();
        assert_eq!(
            for_container(root.path(), &hc).unwrap().seccomp,
            first.seccomp
        );

        let unconfined = HostConfig {
            security_opt: strings(&["seccomp=unconfined", "no-new-privileges"]),
            ..HostConfig::default()
        };
        let s = for_container(root.path(), &unconfined).unwrap();
        assert!(s.seccomp.is_none() && s.no_new_privileges);
        let privileged = HostConfig {
            privileged: true,
            ..HostConfig::default()
        };
        let s = for_container(root.path(), &privileged).unwrap();
        assert!(s.seccomp.is_none() && s.masked_paths.is_empty() && s.writable_sys);
        assert_eq!(s.capabilities, caps::available());
    }

    #[test]
    fn create_refuses_bad_names_and_profiles() {
        let root = tempfile::tempdir().unwrap();
        let bad_cap = HostConfig {
            cap_add: strings(&["NET_ADMIN", "CAP_BOGUS"]),
            ..HostConfig::default()
        };
        assert_eq!(
            validate(root.path(), &bad_cap).unwrap_err().to_string(),
            "unknown capability: \"CAP_BOGUS\""
        );
        let bad_profile = HostConfig {
            security_opt: strings(&[r#"seccomp={"defaultAction":"SCMP_ACT_WHATEVER"}"#]),
            ..HostConfig::default()
        };
        assert!(validate(root.path(), &bad_profile)
            .unwrap_err()
            .to_string()
            .contains("SCMP_ACT_WHATEVER"));
        validate(root.path(), &HostConfig::default()).unwrap();
    }
}
