//! Linux capabilities as Docker names and combines them: `CAP_`-prefixed names, Docker's default
//! set, and `--cap-add`/`--cap-drop`/`--privileged` (moby's `caps.TweakCapabilities`).
//!
//! A set is a bit mask: bit N is capability N of `linux/capability.h`.

/// Capability names by number, as `linux/capability.h` has them.
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set (moby's `caps.DefaultCapabilities`).
pub const DEFAULT: u64 = bit(0) // CHOWN
    | bit(1) // DAC_OVERRIDE
    | bit(3) // FOWNER
    | bit(4) // FSETID
    | bit(5) // KILL
    | bit(6) // SETGID
    | bit(7) // SETUID
    | bit(8) // SETPCAP
    | bit(10) // NET_BIND_SERVICE
    | bit(13) // NET_RAW
    | bit(18) // SYS_CHROOT
    | bit(27) // MKNOD
    | bit(29) // AUDIT_WRITE
    | bit(31); // SETFCAP

const fn bit(n: u32) -> u64 {
    1 << n
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapError {
    /// A name that is no capability.
    #[error("unknown capability: {0:?}")]
    Unknown(String),
}

/// The number of capability `name` (`CAP_SYS_ADMIN`, exactly so).
pub fn number(name: &str) -> Option<u32> {
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// The names in `set`, in number order.
pub fn names(set: u64) -> Vec<&'static str> {
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| set & bit(*i as u32) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
        .min(NAMES.len() as u32 - 1)
}

/// Every capability of a kernel whose last capability is `last`.
pub fn all(last: u32) -> u64 {
    if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

/// What "all capabilities" can mean here: every capability of this kernel that our own
/// bounding set still has (a dock running in a confined environment cannot give more).
pub fn available() -> u64 {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                let hex = l.strip_prefix("CapBnd:")?.trim();
                u64::from_str_radix(hex, 16).ok()
            })
        })
        .unwrap_or(u64::MAX);
    all(last_cap()) & bounding
}

/// A capability as the user wrote it: `chown`, `CAP_CHOWN`, `Cap_Chown`, or `ALL` (`None`).
fn normalize(name: &str) -> Result<Option<u32>, CapError> {
    let upper = name.to_uppercase();
    if upper == "ALL" {
        return Ok(None);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    number(&full).map(Some).ok_or(CapError::Unknown(full))
}

/// Checks `--cap-add`/`--cap-drop` names; the first unknown one is the error.
pub fn validate(names: &[String]) -> Result<(), CapError> {
    names.iter().try_for_each(|n| normalize(n).map(drop))
}

/// The container's capability set from `basics` (normally [`DEFAULT`]), as Docker computes it:
/// privileged gets all of `all`; `--cap-add ALL` gives all but the dropped ones; `--cap-drop ALL`
/// gives only the added ones; otherwise the basics less the dropped plus the added.
pub fn tweak(
    basics: u64,
    add: &[String],
    drop: &[String],
    privileged: bool,
    all: u64,
) -> Result<u64, CapError> {
    let parse = |names: &[String]| -> Result<(bool, u64), CapError> {
        let mut has_all = false;
        let mut set = 0;
        for name in names {
            match normalize(name)? {
                None => has_all = true,
                Some(n) => set |= bit(n),
            }
        }
        Ok((has_all, set))
    };
    let (add_all, add_set) = parse(add)?;
    let (drop_all, drop_set) = parse(drop)?;
    if privileged {
        return Ok(all);
    }
    let set = if add_all {
        all & !drop_set
    } else if drop_all {
        add_set
    } else {
        (basics & !drop_set) | add_set
    };
    Ok(set & all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_set_is_dockers() {
        assert_eq!(
            names(DEFAULT),
            [
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FOWNER",
                "CAP_FSETID",
                "CAP_KILL",
                "CAP_SETGID",
                "CAP_SETUID",
                "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW",
                "CAP_SYS_CHROOT",
                "CAP_MKNOD",
                "CAP_AUDIT_WRITE",
                "CAP_SETFCAP",
            ]
        );
        // What /proc/self/status shows as CapEff for a default Docker container.
        assert_eq!(DEFAULT, 0x00000000a80425fb);
    }

    #[test]
    fn names_in_any_case_with_or_without_prefix() {
        let set = tweak(
            DEFAULT,
            &strings(&["sys_admin", "CAP_NET_ADMIN"]),
            &strings(&["Chown"]),
            false,
            all(40),
        )
        .unwrap();
        assert_eq!(set, (DEFAULT & !1) | bit(21) | bit(12));
    }

    #[test]
    fn all_privileged_and_unknown() {
        let every = all(40);
        let tweaked = |add: &[&str], drop: &[&str]| {
            tweak(DEFAULT, &strings(add), &strings(drop), false, every).unwrap()
        };
        assert_eq!(tweak(DEFAULT, &[], &[], true, every).unwrap(), every);
        assert_eq!(tweaked(&["ALL"], &["mknod"]), every & !bit(27));
        assert_eq!(tweaked(&["kill"], &["all"]), bit(5));
        assert_eq!(
            tweak(DEFAULT, &strings(&["CAP_NOPE"]), &[], false, every),
            Err(CapError::Unknown("CAP_NOPE".into()))
        );
        assert_eq!(
            validate(&strings(&["chown", "bogus"])),
            Err(CapError::Unknown("CAP_BOGUS".into()))
        );
        assert_eq!(
            CapError::Unknown("CAP_BOGUS".into()).to_string(),
            "unknown capability: \"CAP_BOGUS\""
        );
        // Capabilities the kernel lacks are left out.
        assert_eq!(
            tweak(0, &strings(&["CAP_BPF"]), &[], false, all(37)).unwrap(),
            0
        );
        assert_eq!(all(63), u64::MAX);
    }
}
