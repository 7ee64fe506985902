//! Which devices a container may create (mknod) and open: Docker's default allow list, written
//! to the v1 devices controller or compiled into a `BPF_PROG_TYPE_CGROUP_DEVICE` program for
//! cgroup v2 (as runc and youki do, since v2 has no devices controller).
//!
//! Everything else is refused, so neither container root (mknod of the host's disk) nor any
//! user through a node an image layer carries can open a host device.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Which devices a container may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceAccess {
    /// Docker's default allow list, [`DEFAULT_ALLOWED`].
    #[default]
    Default,
    /// Every device (`--privileged`).
    All,
}

/// A character device the container may create, read and write; `minor: None` is any minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CharDevice {
    pub name: &'static str,
    pub major: u32,
    pub minor: Option<u32>,
}

/// Docker's default allow list: the devices sysinit creates in /dev and the terminals.
pub const DEFAULT_ALLOWED: &[CharDevice] = &[
    CharDevice {
        name: "null",
        major: 1,
        minor: Some(3),
    },
    CharDevice {
        name: "zero",
        major: 1,
        minor: Some(5),
    },
    CharDevice {
        name: "full",
        major: 1,
        minor: Some(7),
    },
    CharDevice {
        name: "random",
        major: 1,
        minor: Some(8),
    },
    CharDevice {
        name: "urandom",
        major: 1,
        minor: Some(9),
    },
    CharDevice {
        name: "tty",
        major: 5,
        minor: Some(0),
    },
    CharDevice {
        name: "ptmx",
        major: 5,
        minor: Some(2),
    },
    CharDevice {
        name: "pts/*",
        major: 136,
        minor: None,
    },
];

/// The writes that set `access` in a v1 devices cgroup, in order: each file with the rules
/// written to it, one rule per write.
pub fn v1_rules(access: DeviceAccess) -> Vec<(&'static str, Vec<String>)> {
    match access {
        DeviceAccess::All => vec![("devices.allow", vec!["a".into()])],
        DeviceAccess::Default => vec![
            ("devices.deny", vec!["a".into()]),
            (
                "devices.allow",
                DEFAULT_ALLOWED
                    .iter()
                    .map(|d| {
                        let minor = d.minor.map_or("*".to_string(), |m| m.to_string());
                        format!("c {}:{minor} rwm", d.major)
                    })
                    .collect(),
            ),
        ],
    }
}

// The program's context, struct bpf_cgroup_dev_ctx: access_type (device type in the low 16
// bits, access in the high 16), major, minor.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

/// One eBPF instruction: opcode, registers (source high nibble, destination low), offset,
/// immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Instruction {
    code: u8,
    registers: u8,
    offset: i16,
    immediate: i32,
}

impl Instruction {
    const fn new(code: u8, dst: u8, src: u8, offset: i16, immediate: i32) -> Instruction {
        Instruction {
            code,
            registers: (src << 4) | dst,
            offset,
            immediate,
        }
    }
}

/// `wDST = *(u32 *)(rSRC + offset)`
const fn load_word(dst: u8, src: u8, offset: i16) -> Instruction {
    Instruction::new(0x61, dst, src, offset, 0)
}
/// `wDST &= immediate`
const fn and_word(dst: u8, immediate: i32) -> Instruction {
    Instruction::new(0x54, dst, 0, 0, immediate)
}
/// `if wDST != immediate goto +offset`
const fn skip_unless_equal(dst: u8, immediate: i32, offset: i16) -> Instruction {
    Instruction::new(0x56, dst, 0, offset, immediate)
}
/// `r0 = verdict; exit`
const fn verdict(allow: bool) -> [Instruction; 2] {
    [
        Instruction::new(0xb7, 0, 0, 0, allow as i32),
        Instruction::new(0x95, 0, 0, 0, 0),
    ]
}

/// The filter: 1 (allow) for a character device on `allowed` (any access), 0 otherwise.
pub fn filter_program(allowed: &[CharDevice]) -> Vec<Instruction> {
    const CTX: u8 = 1;
    const TYPE: u8 = 2;
    const MAJOR: u8 = 4;
    const MINOR: u8 = 5;
    let mut program = vec![
        load_word(TYPE, CTX, CTX_ACCESS_TYPE),
        and_word(TYPE, 0xffff),
        load_word(MAJOR, CTX, CTX_MAJOR),
        load_word(MINOR, CTX, CTX_MINOR),
    ];
    for device in allowed {
        let mut checks = vec![(TYPE, BPF_DEVCG_DEV_CHAR), (MAJOR, device.major as i32)];
        if let Some(minor) = device.minor {
            checks.push((MINOR, minor as i32));
        }
        // Each failed check jumps past the rest of its checks and the rule's verdict.
        let block = checks.len() + 2;
        for (at, (register, value)) in checks.iter().enumerate() {
            let past_block = (block - at - 1) as i16;
            program.push(skip_unless_equal(*register, *value, past_block));
        }
        program.extend(verdict(true));
    }
    program.extend(verdict(false));
    program
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// Loads the default filter and attaches it to the cgroup2 directory `dir`. The attachment
/// belongs to the cgroup, not to a descriptor: it holds as long as the cgroup exists, whatever
/// happens to the monitor, and its descendants cannot replace it.
pub fn attach_filter(dir: &Path) -> io::Result<()> {
    let program = filter_program(DEFAULT_ALLOWED);
    let license = CString::new("Apache-2.0").expect("no nul byte");
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE);
    put_u32(&mut attr, 4, program.len() as u32);
    put_u64(&mut attr, 8, program.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    attr[48..48 + 11].copy_from_slice(b"dock_device");
    let prog = bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| context(e, "load"))?;
    // SAFETY: PROG_LOAD returned a new descriptor nobody else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(prog) };
    let cgroup = File::open(dir)?;
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, cgroup.as_raw_fd() as u32);
    put_u32(&mut attr, 4, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 8, BPF_CGROUP_DEVICE);
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| context(e, "attach"))?;
    Ok(())
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what} device program: {e}"))
}

/// The bpf(2) system call: its non-negative result.
fn bpf(command: libc::c_long, attr: &mut [u8; 128]) -> io::Result<i32> {
    // SAFETY: `attr` is a zero-padded bpf_attr of the size we pass; the pointers in it (the
    // program and the license) outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret as i32)
}

fn put_u32(attr: &mut [u8], at: usize, value: u32) {
    attr[at..at + 4].copy_from_slice(&value.to_ne_bytes());
}

fn put_u64(attr: &mut [u8], at: usize, value: u64) {
    attr[at..at + 8].copy_from_slice(&value.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_rules_are_dockers_default_list() {
        let rules = v1_rules(DeviceAccess::Default);
        assert_eq!(rules[0], ("devices.deny", vec!["a".to_string()]));
        assert_eq!(rules[1].0, "devices.allow");
        assert_eq!(
            rules[1].1,
            [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:2 rwm",
                "c 136:* rwm"
            ]
        );
        assert_eq!(
            v1_rules(DeviceAccess::All),
            [("devices.allow", vec!["a".to_string()])]
        );
    }

    /// Runs the filter the way the kernel would, for one device.
    fn run(program: &[Instruction], kind: u32, major: u32, minor: u32) -> i32 {
        let mut regs = [0i64; 11];
        let ctx = [kind | (2 << 16), major, minor];
        let mut pc = 0usize;
        loop {
            let insn = program[pc];
            let (dst, src) = (
                (insn.registers & 0xf) as usize,
                (insn.registers >> 4) as usize,
            );
            pc += 1;
            match insn.code {
                0x61 => {
                    assert_eq!(src, 1, "loads only from the context");
                    regs[dst] = ctx[(insn.offset / 4) as usize] as i64;
                }
                0x54 => regs[dst] = ((regs[dst] as u32) & (insn.immediate as u32)) as i64,
                0x56 => {
                    if regs[dst] as u32 != insn.immediate as u32 {
                        pc = (pc as i64 + insn.offset as i64) as usize;
                    }
                }
                0xb7 => regs[dst] = insn.immediate as i64,
                0x95 => return regs[0] as i32,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_filter_allows_exactly_the_list() {
        let program = filter_program(DEFAULT_ALLOWED);
        let char_dev = BPF_DEVCG_DEV_CHAR as u32;
        for d in DEFAULT_ALLOWED {
            let minor = d.minor.unwrap_or(17);
            assert_eq!(run(&program, char_dev, d.major, minor), 1, "{}", d.name);
        }
        for (kind, major, minor) in [
            (char_dev, 4, 0),    // tty0
            (char_dev, 4, 1),    // tty1
            (char_dev, 5, 1),    // console
            (char_dev, 1, 1),    // mem
            (char_dev, 10, 200), // tun
            (1, 8, 0),           // a disk
            (1, 1, 3),           // a block device with null's numbers
        ] {
            assert_eq!(
                run(&program, kind, major, minor),
                0,
                "{kind} {major}:{minor}"
            );
        }
    }
}
