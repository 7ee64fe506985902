//! Docker's seccomp profiles: the JSON format (moby/profiles' `seccomp.Seccomp`), its evaluation
//! for one container ([`Profile::resolve`]: architectures from `archMap`, rules kept or dropped by
//! `includes`/`excludes` on capabilities, architecture and kernel version), and compilation to a
//! BPF program with libseccomp ([`Filter::compile`]), as runc's `InitSeccomp` builds it.
//!
//! libseccomp's dispatch on the system call number is then replaced by a binary search
//! ([`crate::bpf::shorten`]), which the kernel installs in a third of the time.
//!
//! The program is compiled before the container init is cloned and installed by the child with
//! the raw `seccomp(2)` call, so the child never allocates.

use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

/// Docker's default profile (moby/profiles `seccomp/default.json`, Apache-2.0; see
/// `profiles/README.md`).
pub const DEFAULT_PROFILE: &str = include_str!("../profiles/seccomp-default.json");

const EPERM: u32 = libc::EPERM as u32;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("invalid seccomp profile: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid seccomp profile: {0}")]
    Invalid(String),
    #[error("compile seccomp profile: {0}")]
    Compile(#[from] libseccomp::error::SeccompError),
    #[error("compile seccomp profile: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid compiled seccomp program of {0} bytes")]
    Program(usize),
}

type Result<T, E = SeccompError> = std::result::Result<T, E>;

/// A profile as Docker's JSON has it. Unknown fields are ignored, as Go's decoder does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Profile {
    pub default_action: String,
    pub default_errno_ret: Option<u32>,
    pub architectures: Option<Vec<String>>,
    pub arch_map: Option<Vec<ArchMap>>,
    pub flags: Option<Vec<String>>,
    pub syscalls: Option<Vec<SyscallRule>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArchMap {
    pub architecture: String,
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SyscallRule {
    pub names: Option<Vec<String>>,
    /// The old single-name form.
    pub name: String,
    pub action: String,
    pub errno_ret: Option<u32>,
    pub args: Option<Vec<Arg>>,
    pub includes: Option<Condition>,
    pub excludes: Option<Condition>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    pub caps: Option<Vec<String>>,
    pub arches: Option<Vec<String>>,
    pub min_kernel: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    pub value_two: u64,
    pub op: Op,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[default]
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

/// What a matching rule (or the default) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Trace(u32),
    Log,
}

impl Action {
    fn parse(action: &str, ret: Option<u32>) -> Result<Action> {
        Ok(match action {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(ret.unwrap_or(EPERM)),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_TRACE" => Action::Trace(ret.unwrap_or(EPERM)),
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_NOTIFY" => {
                return Err(SeccompError::Invalid(
                    "SCMP_ACT_NOTIFY is not supported by dock".into(),
                ))
            }
            other => return Err(SeccompError::Invalid(format!("unknown action {other:?}"))),
        })
    }

    fn to_scmp(self) -> Result<ScmpAction> {
        let ret = |v: u32| {
            i32::try_from(v)
                .map_err(|_| SeccompError::Invalid(format!("return value {v} out of range")))
        };
        Ok(match self {
            Action::Allow => ScmpAction::Allow,
            Action::Errno(v) => ScmpAction::Errno(ret(v)?),
            Action::KillThread => ScmpAction::KillThread,
            Action::KillProcess => ScmpAction::KillProcess,
            Action::Trap => ScmpAction::Trap,
            Action::Trace(v) => ScmpAction::Trace(
                u16::try_from(v)
                    .map_err(|_| SeccompError::Invalid(format!("trace value {v} out of range")))?,
            ),
            Action::Log => ScmpAction::Log,
        })
    }
}

/// The container a profile is evaluated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The bounding set (capability bit mask).
    pub capabilities: u64,
    /// Go's name of the architecture (`amd64`, `arm64`, ...), which profiles' `arches` use.
    pub arch: &'static str,
    /// The profile's name of the architecture (`SCMP_ARCH_X86_64`), which `archMap` uses.
    pub scmp_arch: &'static str,
    /// The running kernel's version and major revision (`6.1`).
    pub kernel: (u32, u32),
}

impl Target {
    /// This machine, for a container with the bounding set `capabilities`.
    pub fn host(capabilities: u64) -> Target {
        let (arch, scmp_arch) = native_arch();
        Target {
            capabilities,
            arch,
            scmp_arch,
            kernel: kernel_version(),
        }
    }
}

/// Whether the kernel runs x32 system calls (CONFIG_X86_X32_ABI, and not disabled at boot):
/// a forked child tries one, once per process. A child killed for it (a filter of our own
/// without x32) counts as no; when the answer cannot be had (a fork that fails, a child
/// somebody else reaped) the x32 section is kept, which costs only start time.
pub fn kernel_runs_x32() -> bool {
    static RUNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *RUNS.get_or_init(probe_x32)
}

fn probe_x32() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return false;
    }
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    // SAFETY: the child only makes a system call and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: getpid through the x32 table takes no arguments.
        let ret = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
        let runs = ret >= 0;
        // SAFETY: leaving the forked child without running anything of the parent's.
        unsafe { libc::_exit(if runs { 0 } else { 1 }) };
    }
    if pid < 0 {
        return true;
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return true;
        }
    }
    !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1 || libc::WIFSIGNALED(status))
}

/// (Go's name, libseccomp's name) of the architecture this was built for.
pub fn native_arch() -> (&'static str, &'static str) {
    if cfg!(target_arch = "x86_64") {
        ("amd64", "SCMP_ARCH_X86_64")
    } else if cfg!(target_arch = "aarch64") {
        ("arm64", "SCMP_ARCH_AARCH64")
    } else if cfg!(target_arch = "x86") {
        ("x86", "SCMP_ARCH_X86")
    } else if cfg!(target_arch = "arm") {
        ("arm", "SCMP_ARCH_ARM")
    } else if cfg!(target_arch = "riscv64") {
        ("riscv64", "SCMP_ARCH_RISCV64")
    } else if cfg!(target_arch = "s390x") {
        ("s390x", "SCMP_ARCH_S390X")
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        ("ppc64le", "SCMP_ARCH_PPC64LE")
    } else if cfg!(target_arch = "loongarch64") {
        ("loongarch64", "SCMP_ARCH_LOONGARCH64")
    } else {
        ("", "SCMP_ARCH_NATIVE")
    }
}

/// The running kernel's `(version, major revision)`; minor revisions and suffixes are ignored.
pub fn kernel_version() -> (u32, u32) {
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct we own.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return (0, 0);
    }
    // SAFETY: the kernel nul-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }.to_string_lossy();
    parse_kernel(&release).unwrap_or((0, 0))
}

/// `"6.1.0-28-amd64"` -> (6, 1); `"3.12"` -> (3, 12).
fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}

/// A `minKernel` value: exactly `<kernel>.<major>`.
fn parse_min_kernel(text: &str) -> Result<(u32, u32)> {
    let invalid = || {
        SeccompError::Invalid(format!(
            "invalid kernel version {text:?}, expected \"<kernel>.<major>\""
        ))
    };
    let (a, b) = text.split_once('.').ok_or_else(invalid)?;
    let version = (
        a.parse::<u8>().map_err(|_| invalid())? as u32,
        b.parse::<u8>().map_err(|_| invalid())? as u32,
    );
    if version == (0, 0) {
        return Err(invalid());
    }
    Ok(version)
}

/// One rule of an evaluated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    pub args: Vec<Arg>,
}

/// A profile evaluated for one container: what libseccomp compiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub default_action: Action,
    /// `SCMP_ARCH_*` names besides the native one.
    pub architectures: Vec<String>,
    /// `SECCOMP_FILTER_FLAG_*` bits for seccomp(2).
    pub flags: u32,
    pub rules: Vec<Rule>,
}

impl Profile {
    pub fn parse(json: &str) -> Result<Profile> {
        Ok(serde_json::from_str(json)?)
    }

    /// The filter for `target`, as moby's `setupSeccomp` computes it; `None` when the profile
    /// has neither a default action nor rules (Docker runs such a container unconfined).
    pub fn resolve(&self, target: &Target) -> Result<Option<Filter>> {
        let syscalls = self.syscalls.as_deref().unwrap_or_default();
        if self.default_action.is_empty() && syscalls.is_empty() {
            return Ok(None);
        }
        let arch_map = self.arch_map.as_deref().unwrap_or_default();
        let mut architectures = self.architectures.clone().unwrap_or_default();
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err(SeccompError::Invalid(
                "both 'architectures' and 'archMap' are specified, use either".into(),
            ));
        }
        if let Some(entry) = arch_map.iter().find(|a| a.architecture == target.scmp_arch) {
            architectures.push(entry.architecture.clone());
            architectures.extend(entry.sub_architectures.clone().unwrap_or_default());
        }
        let mut flags = 0;
        for flag in self.flags.as_deref().unwrap_or_default() {
            flags |= match flag.as_str() {
                // All threads get the filter anyway: the init is single-threaded.
                "SECCOMP_FILTER_FLAG_TSYNC" => 0,
                "SECCOMP_FILTER_FLAG_LOG" => 1 << 1,
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 1 << 2,
                other => return Err(SeccompError::Invalid(format!("unsupported flag {other:?}"))),
            };
        }
        let default_action = Action::parse(&self.default_action, self.default_errno_ret)?;
        let has_cap = |name: &String| {
            crate::caps::number(name).is_some_and(|n| target.capabilities & (1 << n) != 0)
        };
        let mut rules = Vec::new();
        for call in syscalls {
            let names = match (&call.names, call.name.is_empty()) {
                (Some(names), false) if !names.is_empty() => {
                    return Err(SeccompError::Invalid(
                        "both 'name' and 'names' are specified, use either".into(),
                    ))
                }
                (_, false) => vec![call.name.clone()],
                (names, true) => names.clone().unwrap_or_default(),
            };
            if let Some(ex) = &call.excludes {
                if ex
                    .arches
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|a| a == target.arch)
                {
                    continue;
                }
                if ex.caps.as_deref().unwrap_or_default().iter().any(has_cap) {
                    continue;
                }
                if let Some(min) = ex.min_kernel.as_deref().filter(|m| !m.is_empty()) {
                    if target.kernel >= parse_min_kernel(min)? {
                        continue;
                    }
                }
            }
            if let Some(inc) = &call.includes {
                let arches = inc.arches.as_deref().unwrap_or_default();
                if !arches.is_empty() && !arches.iter().any(|a| a == target.arch) {
                    continue;
                }
                if !inc.caps.as_deref().unwrap_or_default().iter().all(has_cap) {
                    continue;
                }
                if let Some(min) = inc.min_kernel.as_deref().filter(|m| !m.is_empty()) {
                    if target.kernel < parse_min_kernel(min)? {
                        continue;
                    }
                }
            }
            let args = call.args.clone().unwrap_or_default();
            if let Some(arg) = args.iter().find(|a| a.index > 5) {
                return Err(SeccompError::Invalid(format!(
                    "argument index {} out of range",
                    arg.index
                )));
            }
            rules.push(Rule {
                names,
                action: Action::parse(&call.action, call.errno_ret)?,
                args,
            });
        }
        Ok(Some(Filter {
            default_action,
            architectures,
            flags,
            rules,
        }))
    }
}

/// A compiled filter: the flags for seccomp(2) and the BPF instructions (`struct sock_filter`,
/// 8 bytes each, in native byte order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub flags: u32,
    instructions: Vec<libc::sock_filter>,
}

/// The kernel's limit on one filter (BPF_MAXINSNS).
const MAX_INSTRUCTIONS: usize = 4096;

impl Program {
    /// A program from the bytes [`Program::to_bytes`] wrote (4 bytes of flags, then the
    /// instructions).
    pub fn from_bytes(bytes: &[u8]) -> Result<Program> {
        let invalid = || SeccompError::Program(bytes.len());
        let (flags, code) = bytes.split_first_chunk::<4>().ok_or_else(invalid)?;
        if code.is_empty() || code.len() % 8 != 0 || code.len() / 8 > MAX_INSTRUCTIONS {
            return Err(invalid());
        }
        let instructions = code
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Program {
            flags: u32::from_le_bytes(*flags),
            instructions,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.instructions.len() * 8);
        out.extend_from_slice(&self.flags.to_le_bytes());
        for i in &self.instructions {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.instructions
    }
}

impl Filter {
    /// Compiles the filter with libseccomp as runc does, then has the program's dispatch on
    /// system call numbers searched instead of walked ([`crate::bpf::shorten`]): Docker's
    /// default profile goes from 702 instructions to about a third, which the kernel installs
    /// in a third of the time.
    pub fn compile(&self) -> Result<Program> {
        let mut program = self.compile_with_libseccomp()?;
        // The kernel pays for every instruction when it installs the filter (see bpf).
        if let Some(shorter) = crate::bpf::shorten(&program.instructions) {
            tracing::debug!(
                libseccomp = program.instructions.len(),
                shortened = shorter.len(),
                "seccomp program shortened"
            );
            program.instructions = shorter;
        }
        Ok(program)
    }

    /// libseccomp's program, as runc has it built: extra architectures, the binary-tree
    /// optimisation asked for long rule lists, no_new_privs left alone, rules that repeat the
    /// default dropped, syscall names this libseccomp does not know skipped, and conditions on
    /// one argument given more than once split into one rule each.
    fn compile_with_libseccomp(&self) -> Result<Program> {
        let default = self.default_action.to_scmp()?;
        let mut ctx = ScmpFilterContext::new(default)?;
        for arch in &self.architectures {
            // x32 on a kernel built without it: its system calls fail with ENOSYS whatever the
            // filter says, and its section is a third of Docker's filter, which costs every
            // start while the kernel installs it. Left out, x32 calls get the same ENOSYS
            // through the filter's bad-architecture action.
            if arch == "SCMP_ARCH_X32" && !kernel_runs_x32() {
                tracing::debug!("kernel cannot run x32: its seccomp section left out");
                ctx.set_act_badarch(ScmpAction::Errno(libc::ENOSYS))?;
                continue;
            }
            let arch: ScmpArch = arch
                .parse()
                .map_err(|_| SeccompError::Invalid(format!("unknown architecture {arch:?}")))?;
            ctx.add_arch(arch)?;
        }
        if self.rules.len() > 32 {
            // Not fatal: older libseccomp has no binary tree.
            let _ = ctx.set_ctl_optimize(2);
        }
        ctx.set_ctl_nnp(false)?;
        for rule in &self.rules {
            if rule.action == self.default_action {
                continue;
            }
            let action = rule.action.to_scmp()?;
            let conditions: Vec<ScmpArgCompare> = rule
                .args
                .iter()
                .map(|a| match a.op {
                    Op::Ne => ScmpArgCompare::new(a.index, ScmpCompareOp::NotEqual, a.value),
                    Op::Lt => ScmpArgCompare::new(a.index, ScmpCompareOp::Less, a.value),
                    Op::Le => ScmpArgCompare::new(a.index, ScmpCompareOp::LessOrEqual, a.value),
                    Op::Eq => ScmpArgCompare::new(a.index, ScmpCompareOp::Equal, a.value),
                    Op::Ge => ScmpArgCompare::new(a.index, ScmpCompareOp::GreaterEqual, a.value),
                    Op::Gt => ScmpArgCompare::new(a.index, ScmpCompareOp::Greater, a.value),
                    Op::MaskedEq => ScmpArgCompare::new(
                        a.index,
                        ScmpCompareOp::MaskedEqual(a.value),
                        a.value_two,
                    ),
                })
                .collect();
            let mut per_index = [0u8; 6];
            for a in &rule.args {
                per_index[a.index as usize] += 1;
            }
            let split = per_index.iter().any(|n| *n > 1);
            for name in &rule.names {
                let Ok(syscall) = ScmpSyscall::from_name(name) else {
                    tracing::trace!(syscall = %name, "unknown syscall in seccomp profile skipped");
                    continue;
                };
                if conditions.is_empty() {
                    ctx.add_rule(action, syscall)?;
                } else if split {
                    for condition in &conditions {
                        ctx.add_rule_conditional(action, syscall, &[*condition])?;
                    }
                } else {
                    ctx.add_rule_conditional(action, syscall, &conditions)?;
                }
            }
        }
        // libseccomp 2.5 exports only to a descriptor.
        // SAFETY: memfd_create with a nul-terminated name.
        let fd = unsafe { libc::memfd_create(c"dock-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: a new descriptor nobody else owns.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        ctx.export_bpf(&file)?;
        file.rewind()?;
        let mut bytes = self.flags.to_le_bytes().to_vec();
        file.read_to_end(&mut bytes)?;
        Program::from_bytes(&bytes)
    }
}

/// The libseccomp in use, `2.5.4` (compiled programs may differ between versions).
pub fn library_version() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => String::new(),
    }
}

/// Parses, evaluates for `target` and compiles `json`; `None` when the profile confines nothing.
pub fn compile(json: &str, target: &Target) -> Result<Option<Program>> {
    Profile::parse(json)?
        .resolve(target)?
        .map(|f| f.compile())
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps;

    fn amd64(capabilities: u64) -> Target {
        Target {
            capabilities,
            arch: "amd64",
            scmp_arch: "SCMP_ARCH_X86_64",
            kernel: (6, 1),
        }
    }

    fn default_filter(capabilities: u64) -> Filter {
        Profile::parse(DEFAULT_PROFILE)
            .unwrap()
            .resolve(&amd64(capabilities))
            .unwrap()
            .unwrap()
    }

    /// Rules naming `syscall`.
    fn rules_for<'a>(filter: &'a Filter, syscall: &str) -> Vec<&'a Rule> {
        filter
            .rules
            .iter()
            .filter(|r| r.names.iter().any(|n| n == syscall))
            .collect()
    }

    const SYS_ADMIN: u64 = 1 << 21;

    #[test]
    fn default_profile_for_the_default_capabilities() {
        let f = default_filter(caps::DEFAULT);
        assert_eq!(f.default_action, Action::Errno(1));
        assert_eq!(
            f.architectures,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        // Without CAP_SYS_ADMIN: no mount, unshare or setns; clone only without namespace flags;
        // clone3 says ENOSYS so libc falls back to clone.
        for denied in [
            "mount", "unshare", "setns", "keyctl", "add_key", "bpf", "umount2",
        ] {
            assert!(rules_for(&f, denied).is_empty(), "{denied} is allowed");
        }
        let clone = rules_for(&f, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0].args,
            [Arg {
                index: 0,
                value: 0x7E02_0000,
                value_two: 0,
                op: Op::MaskedEq
            }]
        );
        let clone3 = rules_for(&f, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action, Action::Errno(libc::ENOSYS as u32));
        // CAP_SYS_CHROOT is in the default set, so chroot is allowed; minKernel 4.8 holds on 6.1.
        assert_eq!(rules_for(&f, "chroot").len(), 1);
        assert_eq!(rules_for(&f, "ptrace").len(), 1);
        // arch_prctl is for amd64, the s390 clone rule is not.
        assert_eq!(rules_for(&f, "arch_prctl").len(), 1);
        assert!(rules_for(&f, "s390_runtime_instr").is_empty());
    }

    #[test]
    fn sys_admin_opens_namespaces_and_mount() {
        let f = default_filter(caps::DEFAULT | SYS_ADMIN);
        for allowed in ["mount", "unshare", "setns", "umount2"] {
            assert_eq!(rules_for(&f, allowed).len(), 1, "{allowed}");
        }
        // The clone and clone3 restrictions are excluded with CAP_SYS_ADMIN.
        let clone = rules_for(&f, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].args.is_empty() && clone[0].action == Action::Allow);
        assert_eq!(rules_for(&f, "clone3")[0].action, Action::Allow);
        // Without CAP_SYS_CHROOT there is no chroot, and an old kernel has no ptrace.
        let f = Profile::parse(DEFAULT_PROFILE)
            .unwrap()
            .resolve(&Target {
                kernel: (4, 4),
                ..amd64(0)
            })
            .unwrap()
            .unwrap();
        assert!(rules_for(&f, "chroot").is_empty());
        assert!(rules_for(&f, "ptrace").is_empty());
    }

    #[test]
    fn profile_format_edges() {
        let target = amd64(caps::DEFAULT);
        // Nothing at all: unconfined, as Docker has it.
        assert_eq!(
            Profile::parse("{}").unwrap().resolve(&target).unwrap(),
            None
        );
        let old = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],
                "syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO"},
                            {"names":null,"action":"SCMP_ACT_LOG","args":null}]}"#,
        )
        .unwrap()
        .resolve(&target)
        .unwrap()
        .unwrap();
        assert_eq!(old.architectures, ["SCMP_ARCH_X86"]);
        assert_eq!(old.rules[0].names, ["mkdir"]);
        assert_eq!(old.rules[0].action, Action::Errno(1));
        for bad in [
            r#"{"defaultAction":"SCMP_ACT_NOPE"}"#,
            r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_LOG","includes":{"minKernel":"4"}}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_LOG","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        ] {
            assert!(
                Profile::parse(bad)
                    .and_then(|p| p.resolve(&target))
                    .is_err(),
                "{bad} was accepted"
            );
        }
        assert!(Profile::parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_BOGUS"}]}]}"#).is_err());
        assert_eq!(parse_kernel("6.1.0-28-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel("5.15-rc5"), Some((5, 15)));
    }

    #[test]
    fn compiles_and_round_trips_through_bytes() {
        let program = default_filter(caps::DEFAULT).compile().unwrap();
        assert!(program.instructions().len() > 100);
        assert!(program.instructions().len() <= MAX_INSTRUCTIONS);
        let back = Program::from_bytes(&program.to_bytes()).unwrap();
        assert_eq!(back, program);
        // Unknown syscall names are skipped, not errors.
        let custom = compile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","no_such_call"],"action":"SCMP_ACT_ERRNO"}]}"#,
            &Target::host(caps::DEFAULT),
        )
        .unwrap()
        .unwrap();
        assert!(!custom.instructions().is_empty());
        assert!(Program::from_bytes(&[0, 0, 0, 0, 1, 2, 3]).is_err());
        assert!(Program::from_bytes(&[]).is_err());
    }

    /// The shortened default programs (with and without CAP_SYS_ADMIN, whose clone rules
    /// differ) decide like libseccomp's on every x86_64 and x86 system call number and on
    /// the arguments Docker's rules look at.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_shortened_default_program_decides_like_libseccomps() {
        use crate::bpf::{run, seccomp_data};
        const X86_64: u32 = 0xc000_003e;
        const I386: u32 = 0x4000_0003;
        const ALLOW: u32 = 0x7fff_0000;
        const EPERM: u32 = 0x0005_0001;
        const ENOSYS: u32 = 0x0005_0026;
        for capabilities in [caps::DEFAULT, caps::DEFAULT | SYS_ADMIN] {
            let filter = default_filter(capabilities);
            let original = filter.compile_with_libseccomp().unwrap();
            let short = filter.compile().unwrap();
            let (a, b) = (original.instructions(), short.instructions());
            assert!(b.len() * 2 < a.len(), "{} of {}", b.len(), a.len());
            // The check that keeps a rewrite runs every architecture the program names.
            let arches = crate::bpf::compared_after_load(a, |offset| offset == 4);
            assert!(
                arches.contains(&X86_64) && arches.contains(&I386),
                "{arches:?}"
            );
            let values = [
                0,
                8,
                39,
                40,
                41,
                0x20008,
                0x7e02_0000,
                0x1000_0000,
                u32::MAX as u64,
            ];
            for arch in [X86_64, I386, 0x4000_0028, 0] {
                for nr in (0..1024).chain(0x4000_0000..0x4000_0200).chain([u32::MAX]) {
                    for v in values {
                        let data = seccomp_data(nr, arch, [v, v, v, 0, 0, 0]);
                        assert_eq!(
                            run(a, &data),
                            run(b, &data),
                            "arch {arch:#x} nr {nr} args {v:#x}"
                        );
                    }
                }
            }
            let ret = |nr: u32, arch: u32, arg0: u64| {
                run(b, &seccomp_data(nr, arch, [arg0, 0, 0, 0, 0, 0]))
                    .unwrap()
                    .ret
            };
            assert_eq!(ret(libc::SYS_read as u32, X86_64, 0), ALLOW);
            assert_eq!(ret(libc::SYS_reboot as u32, X86_64, 0), EPERM);
            // socket(AF_VSOCK) is refused, other families are not.
            assert_eq!(ret(libc::SYS_socket as u32, X86_64, 40), EPERM);
            assert_eq!(ret(libc::SYS_socket as u32, X86_64, 2), ALLOW);
            // clone with CLONE_NEWUSER only with CAP_SYS_ADMIN.
            let newuser = ret(libc::SYS_clone as u32, X86_64, libc::CLONE_NEWUSER as u64);
            let expected = if capabilities & SYS_ADMIN != 0 {
                ALLOW
            } else {
                EPERM
            };
            assert_eq!(newuser, expected);
            assert_eq!(ret(20, I386, 0), ALLOW);
            assert_eq!(
                ret(0x4000_0000 | libc::SYS_getpid as u32, X86_64, 0),
                ENOSYS
            );
        }
    }

    /// The default filter installed in a forked child: an x32 system call fails with ENOSYS
    /// (as under Docker's filter on a kernel without x32) and a 32-bit one goes through the
    /// x86 section, whether or not the x32 section was left out.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn x32_and_ia32_calls_behave_as_under_dockers_filter() {
        let program = default_filter(caps::DEFAULT).compile().unwrap();
        let runs_x32 = kernel_runs_x32();
        let insns = program.instructions();
        let fprog = libc::sock_fprog {
            len: insns.len() as u16,
            filter: insns.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: the child installs the filter, makes one system call and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if libc::syscall(libc::SYS_seccomp, 1, 0, &fprog as *const libc::sock_fprog) != 0 {
                    libc::_exit(10);
                }
                // getpid through the 32-bit entry: the x86 section allows it.
                let ia32: i64;
                std::arch::asm!("int 0x80", inlateout("rax") 20i64 => ia32);
                if ia32 != libc::getpid() as i64 {
                    libc::_exit(20);
                }
                let ret = libc::syscall(0x4000_0000 | libc::SYS_getpid);
                let errno = *libc::__errno_location();
                libc::_exit(match (ret, errno) {
                    (r, _) if r >= 0 => 0,
                    (_, libc::ENOSYS) => 1,
                    (_, libc::EPERM) => 2,
                    _ => 3,
                });
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "killed: status {status:#x}");
        let expected = if runs_x32 { 0 } else { 1 };
        assert_eq!(libc::WEXITSTATUS(status), expected);
    }
}
