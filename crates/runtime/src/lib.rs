//! Containers: config and state, overlay storage, cgroups, the per-container monitor.

pub mod cgroup;
