//! A running container's resource usage in Docker's stats document (`docker stats`,
//! `GET /containers/{id}/stats`), read from its cgroup (v1 controllers or cgroup2 files), the
//! host's /proc/stat and the container's network namespace (/proc/PID/net/dev).
//!
//! Every reader takes the directory or text it reads, so the parsing is tested on fixtures.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cgroup::{Cgroup, Version};

/// Linux's USER_HZ: what cpuacct.stat and /proc/stat count in.
const CLOCK_TICKS: u64 = 100;
const NANOS_PER_TICK: u64 = 1_000_000_000 / CLOCK_TICKS;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("failed to read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("unexpected content in {}: {text:?}", path.display())]
    Parse { path: PathBuf, text: String },
}

pub type Result<T, E = StatsError> = std::result::Result<T, E>;

/// Docker's `container.StatsResponse` (JSON names as the Engine API sends them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub name: String,
    pub id: String,
    pub read: DateTime<Utc>,
    pub preread: DateTime<Utc>,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    pub num_procs: u32,
    pub storage_stats: BTreeMap<String, u64>,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<BTreeMap<String, NetworkStats>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PidsStats {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<BlkioEntry>>,
    pub io_serviced_recursive: Option<Vec<BlkioEntry>>,
    pub io_queue_recursive: Option<Vec<BlkioEntry>>,
    pub io_service_time_recursive: Option<Vec<BlkioEntry>>,
    pub io_wait_time_recursive: Option<Vec<BlkioEntry>>,
    pub io_merged_recursive: Option<Vec<BlkioEntry>>,
    pub io_time_recursive: Option<Vec<BlkioEntry>>,
    pub sectors_recursive: Option<Vec<BlkioEntry>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub system_cpu_usage: u64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub online_cpus: u32,
    pub throttling_data: ThrottlingData,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    pub total_usage: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_usage: Vec<u64>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottlingData {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_usage: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Where one sample is read from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub version: Version,
    /// v1: controller -> the container's cgroup there; v2: `""` -> its cgroup2 dir.
    pub dirs: BTreeMap<String, PathBuf>,
    /// The host's /proc/stat and /proc/meminfo.
    pub proc_stat: PathBuf,
    pub meminfo: PathBuf,
    /// The container's /proc/PID/net/dev; `None`: no network of its own (host network).
    pub net_dev: Option<PathBuf>,
}

impl Sources {
    /// The container's cgroup, the host's /proc, and the network of `pid` (its init).
    pub fn of(cgroup: &Cgroup, pid: Option<i32>) -> Sources {
        let mut dirs = BTreeMap::new();
        match cgroup.version() {
            Version::V1 => {
                for controller in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
                    if let Some(dir) = cgroup.v1_dir(controller) {
                        dirs.insert(controller.to_string(), dir.to_path_buf());
                    }
                }
            }
            Version::V2 => {
                if let Some(dir) = cgroup.v2_dir() {
                    dirs.insert(String::new(), dir.to_path_buf());
                }
            }
        }
        Sources {
            version: cgroup.version(),
            dirs,
            proc_stat: PathBuf::from("/proc/stat"),
            meminfo: PathBuf::from("/proc/meminfo"),
            net_dev: pid.map(|pid| PathBuf::from(format!("/proc/{pid}/net/dev"))),
        }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        let key = match self.version {
            Version::V1 => controller,
            Version::V2 => "",
        };
        self.dirs.get(key).map(PathBuf::as_path)
    }

    /// One sample; `precpu_stats` and `preread` are left for the caller.
    pub fn sample(&self) -> Result<Stats> {
        let mut stats = Stats {
            read: Utc::now(),
            ..Stats::default()
        };
        let (system, online) = system_cpu(&read(&self.proc_stat)?);
        stats.cpu_stats = match self.version {
            Version::V1 => self.cpu_v1()?,
            Version::V2 => self.cpu_v2()?,
        };
        stats.cpu_stats.system_cpu_usage = system;
        stats.cpu_stats.online_cpus = online;
        let machine = read(&self.meminfo)
            .ok()
            .and_then(|text| mem_total(&text))
            .unwrap_or(0);
        stats.memory_stats = match self.version {
            Version::V1 => self.memory_v1()?,
            Version::V2 => self.memory_v2()?,
        };
        // No limit of its own: the machine's memory, as dockerd reports it.
        if machine > 0 && (stats.memory_stats.limit == 0 || stats.memory_stats.limit > machine) {
            stats.memory_stats.limit = machine;
        }
        stats.blkio_stats = match self.version {
            Version::V1 => self.blkio_v1()?,
            Version::V2 => self.blkio_v2()?,
        };
        if let Some(dir) = self.dir("pids") {
            stats.pids_stats = PidsStats {
                current: read_u64_or_zero(&dir.join("pids.current"))?,
                limit: read_u64_or_zero(&dir.join("pids.max"))?,
            };
        }
        if let Some(path) = &self.net_dev {
            stats.networks = Some(net_dev(&read(path)?));
        }
        Ok(stats)
    }

    fn cpu_v1(&self) -> Result<CpuStats> {
        let mut cpu = CpuStats::default();
        if let Some(dir) = self.dir("cpuacct") {
            cpu.cpu_usage.total_usage = read_u64_or_zero(&dir.join("cpuacct.usage"))?;
            let percpu = dir.join("cpuacct.usage_percpu");
            if percpu.exists() {
                cpu.cpu_usage.percpu_usage = read(&percpu)?
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect();
            }
            let stat = dir.join("cpuacct.stat");
            if stat.exists() {
                let map = flat_keyed(&read(&stat)?);
                cpu.cpu_usage.usage_in_usermode =
                    map.get("user").copied().unwrap_or(0) * NANOS_PER_TICK;
                cpu.cpu_usage.usage_in_kernelmode =
                    map.get("system").copied().unwrap_or(0) * NANOS_PER_TICK;
            }
        }
        if let Some(dir) = self.dir("cpu") {
            let stat = dir.join("cpu.stat");
            if stat.exists() {
                let map = flat_keyed(&read(&stat)?);
                cpu.throttling_data = ThrottlingData {
                    periods: map.get("nr_periods").copied().unwrap_or(0),
                    throttled_periods: map.get("nr_throttled").copied().unwrap_or(0),
                    throttled_time: map.get("throttled_time").copied().unwrap_or(0),
                };
            }
        }
        Ok(cpu)
    }

    fn cpu_v2(&self) -> Result<CpuStats> {
        let mut cpu = CpuStats::default();
        let Some(dir) = self.dir("cpu") else {
            return Ok(cpu);
        };
        let stat = dir.join("cpu.stat");
        if !stat.exists() {
            return Ok(cpu);
        }
        let map = flat_keyed(&read(&stat)?);
        let usec = |key: &str| map.get(key).copied().unwrap_or(0) * 1000;
        cpu.cpu_usage.total_usage = usec("usage_usec");
        cpu.cpu_usage.usage_in_usermode = usec("user_usec");
        cpu.cpu_usage.usage_in_kernelmode = usec("system_usec");
        cpu.throttling_data = ThrottlingData {
            periods: map.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: map.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: usec("throttled_usec"),
        };
        Ok(cpu)
    }

    fn memory_v1(&self) -> Result<MemoryStats> {
        let Some(dir) = self.dir("memory") else {
            return Ok(MemoryStats::default());
        };
        let stat = dir.join("memory.stat");
        Ok(MemoryStats {
            usage: read_u64_or_zero(&dir.join("memory.usage_in_bytes"))?,
            max_usage: read_u64_or_zero(&dir.join("memory.max_usage_in_bytes"))?,
            stats: if stat.exists() {
                flat_keyed(&read(&stat)?)
            } else {
                BTreeMap::new()
            },
            limit: read_u64_or_zero(&dir.join("memory.limit_in_bytes"))?,
        })
    }

    fn memory_v2(&self) -> Result<MemoryStats> {
        let Some(dir) = self.dir("memory") else {
            return Ok(MemoryStats::default());
        };
        let stat = dir.join("memory.stat");
        Ok(MemoryStats {
            usage: read_u64_or_zero(&dir.join("memory.current"))?,
            max_usage: 0,
            stats: if stat.exists() {
                flat_keyed(&read(&stat)?)
            } else {
                BTreeMap::new()
            },
            limit: read_u64_or_zero(&dir.join("memory.max"))?,
        })
    }

    fn blkio_v1(&self) -> Result<BlkioStats> {
        let Some(dir) = self.dir("blkio") else {
            return Ok(BlkioStats::default());
        };
        // The CFQ scheduler's files, else BFQ's, else the throttle layer's (runc's order).
        let pick = |name: &str| -> Result<Option<Vec<BlkioEntry>>> {
            for file in [
                format!("blkio.{name}"),
                format!("blkio.bfq.{name}"),
                format!("blkio.throttle.{name}"),
            ] {
                let path = dir.join(&file);
                if path.exists() {
                    let entries = blkio_v1_entries(&read(&path)?);
                    if !entries.is_empty() || file.starts_with("blkio.throttle") {
                        return Ok(Some(entries));
                    }
                }
            }
            Ok(Some(Vec::new()))
        };
        Ok(BlkioStats {
            io_service_bytes_recursive: pick("io_service_bytes_recursive")?,
            io_serviced_recursive: pick("io_serviced_recursive")?,
            ..BlkioStats::default()
        })
    }

    fn blkio_v2(&self) -> Result<BlkioStats> {
        let Some(dir) = self.dir("io") else {
            return Ok(BlkioStats::default());
        };
        let path = dir.join("io.stat");
        if !path.exists() {
            return Ok(BlkioStats::default());
        }
        let (bytes, ios) = io_stat_v2(&read(&path)?);
        Ok(BlkioStats {
            io_service_bytes_recursive: Some(bytes),
            io_serviced_recursive: Some(ios),
            ..BlkioStats::default()
        })
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| StatsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A single number; `max` (no limit) and a missing file are 0.
fn read_u64_or_zero(path: &Path) -> Result<u64> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(StatsError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match text.trim() {
        "max" => Ok(0),
        value => value.parse().map_err(|_| StatsError::Parse {
            path: path.to_path_buf(),
            text: text.clone(),
        }),
    }
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
pub fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The host's CPU time in nanoseconds (the `cpu` line of /proc/stat: user, nice, system,
/// idle, iowait, irq, softirq, steal, as dockerd sums it) and the number of CPUs listed.
pub fn system_cpu(proc_stat: &str) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for line in proc_stat.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                total = fields
                    .take(8)
                    .filter_map(|n| n.parse::<u64>().ok())
                    .sum::<u64>()
                    * NANOS_PER_TICK;
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

/// MemTotal of /proc/meminfo, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// v1 blkio lines `MAJ:MIN Op value` (the `Total` lines left out).
pub fn blkio_v1_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let op = fields.next()?;
            let value = fields.next()?.parse().ok()?;
            let (major, minor) = device.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value,
            })
        })
        .collect()
}

/// cgroup2 io.stat (`MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...`): bytes and operations as
/// v1's Read/Write entries, as runc converts them.
pub fn io_stat_v2(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse() else {
                continue;
            };
            let (list, op) = match key {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    (bytes, ios)
}

/// /proc/net/dev of the container's namespace: each interface but `lo`.
pub fn net_dev(text: &str) -> BTreeMap<String, NetworkStats> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let n: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if n.len() < 12 {
                return None;
            }
            Some((
                name.to_string(),
                NetworkStats {
                    rx_bytes: n[0],
                    rx_packets: n[1],
                    rx_errors: n[2],
                    rx_dropped: n[3],
                    tx_bytes: n[8],
                    tx_packets: n[9],
                    tx_errors: n[10],
                    tx_dropped: n[11],
                },
            ))
        })
        .collect()
}

/// What `docker stats` shows of a sample, computed as the docker CLI does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub cpu_percent: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percent: f64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: u64,
}

impl Stats {
    /// The docker CLI's numbers (cli/command/container/stats_helpers.go).
    pub fn summary(&self) -> Summary {
        let cpu_delta = self.cpu_stats.cpu_usage.total_usage as f64
            - self.precpu_stats.cpu_usage.total_usage as f64;
        let system_delta =
            self.cpu_stats.system_cpu_usage as f64 - self.precpu_stats.system_cpu_usage as f64;
        let mut online = f64::from(self.cpu_stats.online_cpus);
        if online == 0.0 {
            online = self.cpu_stats.cpu_usage.percpu_usage.len() as f64;
        }
        let cpu_percent = if system_delta > 0.0 && cpu_delta > 0.0 {
            cpu_delta / system_delta * online * 100.0
        } else {
            0.0
        };
        // Usage without the page cache: v1's total_inactive_file, v2's inactive_file.
        let usage = self.memory_stats.usage;
        let cache = ["total_inactive_file", "inactive_file"]
            .iter()
            .find_map(|k| self.memory_stats.stats.get(*k).copied())
            .filter(|c| *c < usage)
            .unwrap_or(0);
        let memory = (usage - cache) as f64;
        let memory_limit = self.memory_stats.limit as f64;
        let memory_percent = if memory_limit != 0.0 {
            memory / memory_limit * 100.0
        } else {
            0.0
        };
        let (mut net_rx, mut net_tx) = (0.0, 0.0);
        for net in self.networks.iter().flat_map(|n| n.values()) {
            net_rx += net.rx_bytes as f64;
            net_tx += net.tx_bytes as f64;
        }
        let (mut block_read, mut block_write) = (0.0, 0.0);
        for entry in self.blkio_stats.io_service_bytes_recursive.iter().flatten() {
            match entry.op.to_ascii_lowercase().as_str() {
                "read" => block_read += entry.value as f64,
                "write" => block_write += entry.value as f64,
                _ => {}
            }
        }
        Summary {
            cpu_percent,
            memory,
            memory_limit,
            memory_percent,
            net_rx,
            net_tx,
            block_read,
            block_write,
            pids: self.pids_stats.current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(name), text).unwrap();
    }

    const PROC_STAT: &str = "cpu  100 0 50 800 10 0 0 0 0 0\ncpu0 50 0 25 400 5 0 0 0 0 0\ncpu1 50 0 25 400 5 0 0 0 0 0\nintr 1\n";
    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    1500      10    1    2    0     0          0         0      700       5    3    4    0     0       0          0\n";

    #[test]
    fn v1_files_make_dockers_document() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |c: &str| tmp.path().join(c);
        write(&dir("cpuacct"), "cpuacct.usage", "5000000000\n");
        write(
            &dir("cpuacct"),
            "cpuacct.usage_percpu",
            "3000000000 2000000000 \n",
        );
        write(&dir("cpuacct"), "cpuacct.stat", "user 300\nsystem 200\n");
        write(
            &dir("cpu"),
            "cpu.stat",
            "nr_periods 4\nnr_throttled 1\nthrottled_time 99\n",
        );
        write(&dir("memory"), "memory.usage_in_bytes", "10485760\n");
        write(&dir("memory"), "memory.max_usage_in_bytes", "20971520\n");
        write(
            &dir("memory"),
            "memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(
            &dir("memory"),
            "memory.stat",
            "cache 4096\ntotal_inactive_file 2097152\n",
        );
        write(
            &dir("blkio"),
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n",
        );
        write(&dir("pids"), "pids.current", "3\n");
        write(&dir("pids"), "pids.max", "max\n");
        write(tmp.path(), "stat", PROC_STAT);
        write(
            tmp.path(),
            "meminfo",
            "MemTotal:       2048000 kB\nMemFree: 1 kB\n",
        );
        write(tmp.path(), "dev", NET_DEV);
        let sources = Sources {
            version: Version::V1,
            dirs: ["cpu", "cpuacct", "memory", "blkio", "pids"]
                .into_iter()
                .map(|c| (c.to_string(), dir(c)))
                .collect(),
            proc_stat: tmp.path().join("stat"),
            meminfo: tmp.path().join("meminfo"),
            net_dev: Some(tmp.path().join("dev")),
        };
        let s = sources.sample().unwrap();
        assert_eq!(s.cpu_stats.cpu_usage.total_usage, 5_000_000_000);
        assert_eq!(
            s.cpu_stats.cpu_usage.percpu_usage,
            [3_000_000_000, 2_000_000_000]
        );
        assert_eq!(s.cpu_stats.cpu_usage.usage_in_usermode, 3_000_000_000);
        assert_eq!(s.cpu_stats.cpu_usage.usage_in_kernelmode, 2_000_000_000);
        assert_eq!(s.cpu_stats.system_cpu_usage, 960 * NANOS_PER_TICK);
        assert_eq!(s.cpu_stats.online_cpus, 2);
        assert_eq!(s.cpu_stats.throttling_data.throttled_periods, 1);
        assert_eq!(s.memory_stats.usage, 10_485_760);
        // Unlimited: the machine's memory.
        assert_eq!(s.memory_stats.limit, 2_048_000 * 1024);
        assert_eq!(s.memory_stats.stats["cache"], 4096);
        assert_eq!(
            s.pids_stats,
            PidsStats {
                current: 3,
                limit: 0
            }
        );
        let nets = s.networks.as_ref().unwrap();
        assert_eq!(nets.keys().collect::<Vec<_>>(), ["eth0"]);
        assert_eq!(nets["eth0"].rx_bytes, 1500);
        assert_eq!(nets["eth0"].tx_dropped, 4);

        // The CLI's numbers: a second sample 1 s of one CPU later, half of it the container's.
        let mut next = s.clone();
        next.precpu_stats = s.cpu_stats.clone();
        next.cpu_stats.cpu_usage.total_usage += 500_000_000;
        next.cpu_stats.system_cpu_usage += 2_000_000_000;
        let sum = next.summary();
        assert!((sum.cpu_percent - 50.0).abs() < 1e-9, "{sum:?}");
        assert_eq!(sum.memory, 8_388_608.0);
        assert_eq!((sum.block_read, sum.block_write), (4096.0, 8192.0));
        assert_eq!((sum.net_rx, sum.net_tx), (1500.0, 700.0));
        assert_eq!(sum.pids, 3);
        // The JSON names docker reads.
        let json = serde_json::to_value(&next).unwrap();
        for key in [
            "read",
            "preread",
            "pids_stats",
            "blkio_stats",
            "cpu_stats",
            "precpu_stats",
            "memory_stats",
            "networks",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert!(json["cpu_stats"]["cpu_usage"]["percpu_usage"].is_array());
        assert!(json["cpu_stats"]["throttling_data"]["throttled_time"].is_u64());
    }

    #[test]
    fn v2_files_make_the_same_document() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cg");
        write(&dir, "cpu.stat", "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n");
        write(&dir, "memory.current", "4096\n");
        write(&dir, "memory.max", "1048576\n");
        write(&dir, "memory.stat", "anon 1024\ninactive_file 1024\n");
        write(
            &dir,
            "io.stat",
            "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
        );
        write(&dir, "pids.current", "2\n");
        write(&dir, "pids.max", "50\n");
        write(tmp.path(), "stat", PROC_STAT);
        write(tmp.path(), "meminfo", "MemTotal: 2048000 kB\n");
        let sources = Sources {
            version: Version::V2,
            dirs: [(String::new(), dir)].into_iter().collect(),
            proc_stat: tmp.path().join("stat"),
            meminfo: tmp.path().join("meminfo"),
            net_dev: None,
        };
        let s = sources.sample().unwrap();
        assert_eq!(s.cpu_stats.cpu_usage.total_usage, 2_000_000);
        assert_eq!(s.cpu_stats.cpu_usage.usage_in_usermode, 1_500_000);
        assert_eq!(s.memory_stats.limit, 1_048_576);
        assert_eq!(
            s.pids_stats,
            PidsStats {
                current: 2,
                limit: 50
            }
        );
        let sum = s.summary();
        assert_eq!(sum.memory, 3072.0);
        assert_eq!((sum.block_read, sum.block_write), (100.0, 200.0));
        assert_eq!(s.networks, None);
        assert_eq!(s.blkio_stats.io_serviced_recursive.unwrap()[1].value, 2);
    }
}
