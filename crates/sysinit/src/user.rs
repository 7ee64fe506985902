//! `-u USER[:GROUP]` resolution against the container's own `/etc/passwd` and `/etc/group`,
//! following runc's `GetExecUser` (what Docker users see): a name must exist, a number need not
//! (an unknown uid gets gid 0), and a matched user name brings the supplementary groups it is
//! listed in, unless a group was given explicitly.

/// The ids the container's first process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, passed to setgroups (empty clears the monitor's groups).
    pub groups: Vec<u32>,
}

/// Largest uid/gid accepted, as in runc (ids are signed 32-bit in several places).
const MAX_ID: u32 = i32::MAX as u32;

/// Resolves `spec` ("" = root). `passwd` / `group` are the files' contents, `None` when absent.
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ExecUser, String> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // Docker's default user is uid 0, looked up like any other so root gets its groups.
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    let user_num = parse_id(user_arg, "user")?;

    let matched = passwd.and_then(|text| {
        passwd_entries(text).find(|e| e.name == user_arg || user_num.is_some_and(|n| e.uid == n))
    });
    let (uid, mut gid, matched_name) = match (matched, user_num) {
        (Some(entry), _) => (entry.uid, entry.gid, Some(entry.name)),
        (None, Some(n)) => (n, 0, None),
        (None, None) => {
            let reason = if passwd.is_some() {
                "no matching entries in passwd file"
            } else {
                "no /etc/passwd file in the container"
            };
            return Err(format!("unable to find user {user_arg}: {reason}"));
        }
    };

    let mut groups = Vec::new();
    match group_arg.filter(|g| !g.is_empty()) {
        Some(group_arg) => {
            let group_num = parse_id(group_arg, "group")?;
            let found = group.and_then(|text| {
                group_entries(text)
                    .find(|e| e.name == group_arg || group_num.is_some_and(|n| e.gid == n))
            });
            gid = match (found, group_num) {
                (Some(entry), _) => entry.gid,
                (None, Some(n)) => n,
                (None, None) => {
                    return Err(format!(
                        "unable to find group {group_arg}: no matching entries in group file"
                    ))
                }
            };
        }
        None => {
            if let (Some(name), Some(text)) = (matched_name, group) {
                for entry in group_entries(text) {
                    if entry.members.split(',').any(|m| m.trim() == name)
                        && !groups.contains(&entry.gid)
                    {
                        groups.push(entry.gid);
                    }
                }
            }
        }
    }
    Ok(ExecUser { uid, gid, groups })
}

/// `Some(n)` for a decimal id, `None` for a name, an error for a number out of range.
fn parse_id(arg: &str, what: &str) -> Result<Option<u32>, String> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match arg.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_ID) => Ok(Some(n as u32)),
        _ => Err(format!("{what} id {arg} is out of range 0-{MAX_ID}")),
    }
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

/// Entries of a passwd file; comments, blank and malformed lines are skipped like libc does.
fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    records(text).filter_map(|fields| {
        Some(PasswdEntry {
            name: fields.first()?,
            uid: fields.get(2)?.parse().ok()?,
            gid: fields.get(3)?.parse().ok()?,
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    records(text).filter_map(|fields| {
        Some(GroupEntry {
            name: fields.first()?,
            gid: fields.get(2)?.parse().ok()?,
            members: fields.get(3).copied().unwrap_or(""),
        })
    })
}

fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split(':').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
        broken line\n\
        app:x:1000:1000::/home/app:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\n\
        daemon:x:1:\n\
        wheel:x:10:root,app\n\
        audio:x:29:app\n\
        app:x:1000:\n\
        nogroup:x:65534:\n";

    fn user(spec: &str) -> ExecUser {
        resolve(spec, Some(PASSWD), Some(GROUP)).unwrap()
    }

    fn ids(uid: u32, gid: u32, groups: &[u32]) -> ExecUser {
        ExecUser {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn default_is_root_with_its_groups() {
        assert_eq!(user(""), ids(0, 0, &[10]));
        assert_eq!(user("root"), ids(0, 0, &[10]));
        assert_eq!(user("0"), ids(0, 0, &[10]));
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(user("daemon"), ids(1, 1, &[]));
        assert_eq!(user("1"), ids(1, 1, &[]));
        assert_eq!(user("app"), ids(1000, 1000, &[10, 29]));
        assert_eq!(user("nobody"), ids(65534, 65534, &[]));
    }

    #[test]
    fn explicit_group_replaces_primary_and_drops_supplementary() {
        assert_eq!(user("daemon:daemon"), ids(1, 1, &[]));
        assert_eq!(user("app:audio"), ids(1000, 29, &[]));
        assert_eq!(user("app:4242"), ids(1000, 4242, &[]));
        assert_eq!(user("0:1"), ids(0, 1, &[]));
    }

    #[test]
    fn unknown_number_is_fine_unknown_name_is_not() {
        assert_eq!(user("4321"), ids(4321, 0, &[]));
        assert_eq!(resolve("77", None, None).unwrap(), ids(77, 0, &[]));
        let err = resolve("ghost", Some(PASSWD), Some(GROUP)).unwrap_err();
        assert_eq!(
            err,
            "unable to find user ghost: no matching entries in passwd file"
        );
        let err = resolve("ghost", None, None).unwrap_err();
        assert!(err.contains("ghost"), "{err}");
        let err = resolve("app:nogrp", Some(PASSWD), Some(GROUP)).unwrap_err();
        assert_eq!(
            err,
            "unable to find group nogrp: no matching entries in group file"
        );
        let err = resolve("99999999999", Some(PASSWD), Some(GROUP)).unwrap_err();
        assert!(err.contains("99999999999"), "{err}");
    }
}
