#!/usr/bin/env bash
# exec: `dock exec C true` against the floor `nsenter -t PID -a true` (every namespace of the
# container's init, then exec), on the same running container, median of RUNS rounds (each
# runs both once, in turn). dock exec also joins the container's cgroups, switches to its
# user and capability set, installs its seccomp filter and waits for the exit code.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-50}
build_dock
work=$(mktemp -d /var/tmp/dock-bench-exec.XXXXXX)
root="$work/root"
cleanup() {
    set +e
    "$dock" --root "$root" ps -aq 2>/dev/null | xargs -r "$dock" --root "$root" rm -f >/dev/null 2>&1
    remove_cgroup_parent "$root"
    rm -rf "$work"
}
trap cleanup EXIT

make_busybox_rootfs "$work/rootfs"
tar -C "$work/rootfs" -c . | "$dock" --root "$root" import - bench >/dev/null
id=$("$dock" --root "$root" run -d --network none bench sleep 1000)
pid=$("$dock" --root "$root" inspect "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["Pid"])')
# Warm both (page cache, the seccomp program cache).
"$dock" --root "$root" exec "$id" true
nsenter -t "$pid" -a true

{ read -r floor; read -r execd; } < <(median "$runs" \
    nsenter -t "$pid" -a true ::: \
    "$dock" --root "$root" exec "$id" true)
printf 'floor (nsenter -t PID -a true)  %8.2f ms\n' "$(python3 -c "print($floor*1000)")"
printf 'dock exec C true                %8.2f ms   ratio %s (target <= 3)\n' \
    "$(python3 -c "print($execd*1000)")" "$(ratio "$execd" "$floor")"
