//! `top`: the host's `ps` with the user's options, keeping the rows of the container's
//! processes (moby's `ContainerTop`), and `pause`/`unpause` through the cgroup freezer.

use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::container::{self, Lock};
use crate::{Error, Result, Runtime};

/// Docker's `ContainerTopOKBody`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// The options `top` passes to `ps` when none are given.
pub const DEFAULT_PS_ARGS: &str = "-ef";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopError {
    /// moby's validatePSArgs: only `pid=PID...` may rename the PID column.
    #[error("specifying \"{key}={value}\" is not allowed")]
    RenamedPid { key: String, value: String },
    #[error("Couldn't find PID field in ps output")]
    NoPidColumn,
    #[error("Unexpected pid '{0}'")]
    BadPid(String),
    /// `ps` failed: the first line of what it said.
    #[error("ps: {0}")]
    Ps(String),
}

/// Refuses options that would rename the PID column (`-o user=PID`), whose rows could then
/// not be told apart.
pub fn validate_ps_args(args: &str) -> Result<(), TopError> {
    // moby: `\s+([^\s]*)=\s*(PID[^\s]*)`
    let words: Vec<&str> = args.split_ascii_whitespace().collect();
    for (i, word) in words.iter().enumerate() {
        // Only a word after whitespace counts (not the first one).
        if i == 0 && !args.starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let value = if value.is_empty() {
            words.get(i + 1).copied().unwrap_or("")
        } else {
            value
        };
        if value.starts_with("PID") && key != "pid" {
            let value = value.split_ascii_whitespace().next().unwrap_or(value);
            return Err(TopError::RenamedPid {
                key: key.to_string(),
                value: value.to_string(),
            });
        }
    }
    Ok(())
}

/// `ps` output, keeping the rows whose PID is one of `pids` (and the thread rows, PID `-`,
/// that follow one of them); the last column takes what is left of a row (moby's
/// parsePSOutput).
pub fn parse_ps_output(output: &str, pids: &[i32]) -> Result<Top, TopError> {
    let mut lines = output.split('\n');
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect();
    let pid_index = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or(TopError::NoPidColumn)?;
    let mut top = Top {
        titles,
        processes: Vec::new(),
    };
    let mut previous_was_ours = false;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(pid) = fields.get(pid_index) else {
            continue;
        };
        if *pid == "-" {
            if previous_was_ours {
                top.push(&fields);
            }
            continue;
        }
        let pid: i32 = pid.parse().map_err(|_| TopError::BadPid(pid.to_string()))?;
        previous_was_ours = pids.contains(&pid);
        if previous_was_ours {
            top.push(&fields);
        }
    }
    Ok(top)
}

impl Top {
    fn push(&mut self, fields: &[&str]) {
        let last = self.titles.len().saturating_sub(1).min(fields.len());
        let mut row: Vec<String> = fields[..last].iter().map(|f| f.to_string()).collect();
        row.push(fields[last..].join(" "));
        self.processes.push(row);
    }
}

/// Runs `ps ARGS -qPIDS` (without `-q` again when `ps` refuses the mix, as dockerd does).
fn run_ps(args: &str, pids: &[i32]) -> Result<String, TopError> {
    let args: Vec<&str> = args.split(' ').filter(|a| !a.is_empty()).collect();
    let only = format!(
        "-q{}",
        pids.iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    tracing::debug!(?args, %only, "running ps");
    if let Ok(out) = Command::new("ps").args(&args).arg(&only).output() {
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| TopError::Ps(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("").to_string();
        return Err(TopError::Ps(if first.is_empty() {
            out.status.to_string()
        } else {
            first
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Runtime {
    fn running_cgroup(&self, name: &str) -> Result<(container::Container, Cgroup)> {
        let c = self.get(name)?;
        if !c.state.running || c.state.restarting {
            return Err(Error::NotRunning(c.id));
        }
        let cg = Cgroup::open(&self.cgroup_parent(), &c.id);
        Ok((c, cg))
    }

    /// `top`: the container's processes as `ps ps_args` (default `-ef`) shows them.
    pub fn top(&self, name: &str, ps_args: &str) -> Result<Top> {
        let ps_args = if ps_args.trim().is_empty() {
            DEFAULT_PS_ARGS
        } else {
            ps_args
        };
        validate_ps_args(ps_args)?;
        let (_, cg) = self.running_cgroup(name)?;
        let pids = cg.pids().map_err(|e| Error::Cgroup(e.to_string()))?;
        let output = run_ps(ps_args, &pids)?;
        Ok(parse_ps_output(&output, &pids)?)
    }

    /// Freezes every process of running container `name`; records `State.Paused`.
    pub fn pause(&self, name: &str) -> Result<()> {
        let (c, cg) = self.running_cgroup(name)?;
        let paths = self.paths(&c.id);
        let _lock = Lock::acquire(&paths.lock())?;
        let mut c = container::load(&paths.config())?;
        if !c.state.running {
            return Err(Error::NotRunning(c.id));
        }
        if c.state.paused {
            return Err(Error::AlreadyPaused(c.id));
        }
        let freezer = cg
            .freezer()
            .ok_or_else(|| Error::Cgroup("no freezer for this container".into()))?;
        tracing::debug!(id = %c.id, ?freezer, "pausing");
        if let Err(e) = freezer.freeze() {
            let _ = freezer.thaw();
            return Err(Error::Cgroup(e.to_string()));
        }
        c.state.paused = true;
        if let Err(e) = container::save(&paths.config(), &c) {
            let _ = freezer.thaw();
            return Err(e);
        }
        Ok(())
    }

    /// Thaws paused container `name`.
    pub fn unpause(&self, name: &str) -> Result<()> {
        let c = self.get(name)?;
        if !c.state.paused || !c.state.running {
            return Err(Error::NotPaused(c.id));
        }
        self.thaw(&c.id)
    }

    /// Thaws the container when it is paused (kill, stop and rm -f do this first, as dockerd
    /// does, so the signal is acted on).
    pub(crate) fn thaw_if_paused(&self, c: &container::Container) -> Result<()> {
        if c.state.paused {
            self.thaw(&c.id)?;
        }
        Ok(())
    }

    fn thaw(&self, id: &str) -> Result<()> {
        let paths = self.paths(id);
        let _lock = Lock::acquire(&paths.lock())?;
        let mut c = container::load(&paths.config())?;
        let cg = Cgroup::open(&self.cgroup_parent(), id);
        if let Some(freezer) = cg.freezer() {
            tracing::debug!(%id, ?freezer, "unpausing");
            freezer.thaw().map_err(|e| Error::Cgroup(e.to_string()))?;
        }
        if c.state.paused {
            c.state.paused = false;
            container::save(&paths.config(), &c)?;
        }
        Ok(())
    }

    /// One stats sample of running container `name` (`precpu_stats` empty).
    pub fn stats_sample(&self, c: &container::Container) -> Result<crate::stats::Stats> {
        let cg = Cgroup::open(&self.cgroup_parent(), &c.id);
        // The host's network is not the container's to count.
        let pid = (c.host_config.network_mode != "host")
            .then_some(c.state.pid)
            .filter(|pid| *pid > 0);
        let mut stats = crate::stats::Sources::of(&cg, pid).sample()?;
        stats.id = c.id.clone();
        stats.name = format!("/{}", c.name);
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS_EF: &str = "UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init splash
root         420       1  0 10:01 ?        00:00:00 sh -c while :; do sleep 1; done
root         421     420  0 10:01 ?        00:00:00 sleep 1
";

    #[test]
    fn rows_of_the_containers_pids_with_the_command_whole() {
        let top = parse_ps_output(PS_EF, &[420, 421]).unwrap();
        assert_eq!(
            top.titles,
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        );
        assert_eq!(top.processes.len(), 2);
        assert_eq!(top.processes[0][1], "420");
        assert_eq!(top.processes[0][7], "sh -c while :; do sleep 1; done");
        assert_eq!(top.processes[1][7], "sleep 1");
        let json = serde_json::to_string(&top).unwrap();
        assert!(json.starts_with("{\"Titles\":[\"UID\""), "{json}");
    }

    #[test]
    fn thread_rows_follow_their_process() {
        let out = "USER PID TID CMD\nroot 420 - sh\nroot - 420 -\nroot - 422 -\nroot 7 - other\nroot - 7 -\n";
        let top = parse_ps_output(out, &[420]).unwrap();
        assert_eq!(top.processes.len(), 3, "{top:?}");
        assert_eq!(top.processes[2], ["root", "-", "422", "-"]);
    }

    #[test]
    fn ps_output_without_pid_or_with_garbage_is_an_error() {
        assert_eq!(
            parse_ps_output("USER CMD\nroot sh\n", &[1]),
            Err(TopError::NoPidColumn)
        );
        assert_eq!(
            parse_ps_output("PID CMD\nabc sh\n", &[1]),
            Err(TopError::BadPid("abc".into()))
        );
    }

    #[test]
    fn ps_args_may_not_rename_pid() {
        assert_eq!(validate_ps_args("-ef"), Ok(()));
        assert_eq!(validate_ps_args("aux"), Ok(()));
        assert_eq!(validate_ps_args("-o pid=PID,comm"), Ok(()));
        assert_eq!(
            validate_ps_args("-o user=PID"),
            Err(TopError::RenamedPid {
                key: "user".into(),
                value: "PID".into()
            })
        );
        assert_eq!(
            validate_ps_args("-o user= PIDX"),
            Err(TopError::RenamedPid {
                key: "user".into(),
                value: "PIDX".into()
            })
        );
    }
}
