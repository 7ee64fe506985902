#!/usr/bin/env bash
# Build dock, make a small busybox image, and run containers with it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dock=$(bash scripts/release-build.sh)
root=$(mktemp -d /tmp/dock-demo.XXXXXX)
rootfs=$(mktemp -d /tmp/dock-rootfs.XXXXXX)
# The root's bridge and nftables table are named after a hash of the root (NetConfig::for_root),
# and so is the cgroup its containers live under (runtime::cgroup_parent_for), which stays while
# the root does.
tag=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:6])' "$root")
cgroup=$(python3 -c 'import hashlib,os,sys; print("dock-" + hashlib.sha256(os.path.realpath(sys.argv[1]).encode()).hexdigest()[:8])' "$root")
cleanup() {
    set +x
    "$dock" --root "$root" ps -aq 2>/dev/null | xargs -r "$dock" --root "$root" rm -f >/dev/null 2>&1 || true
    for dir in /sys/fs/cgroup/*/"$cgroup" /sys/fs/cgroup/"$cgroup"; do
        if [ -d "$dir" ]; then rmdir "$dir" 2>/dev/null || true; fi
    done
    nft delete table ip "dock-$tag" 2>/dev/null || true
    ip link delete "dock$tag" 2>/dev/null || true
    rm -rf "$root" "$rootfs"
}
trap cleanup EXIT

# A busybox root filesystem: one static binary and its applet links.
mkdir -p "$rootfs"/{bin,etc,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

set -x
tar -C "$rootfs" -c . | "$dock" --root "$root" import - busybox:latest
"$dock" --root "$root" images
"$dock" --root "$root" run busybox echo hello from a container
"$dock" --root "$root" run busybox sh -c 'hostname; id; echo "PID $$"; ls /'
id=$("$dock" --root "$root" run -d busybox sh -c 'echo hi > /greeting; sleep 2')
"$dock" --root "$root" ps
"$dock" --root "$root" wait "$id"
"$dock" --root "$root" diff "$id"
"$dock" --root "$root" commit "$id" greeting
"$dock" --root "$root" run --rm greeting cat /greeting
# Confined as under Docker: seccomp filter on, Docker's capabilities, no mounts, no unshare.
"$dock" --root "$root" run --rm busybox sh -c 'grep -E "^(Seccomp|CapEff):" /proc/self/status; mount -t tmpfs none /mnt || echo "mount refused"; unshare -U true || echo "unshare refused"'
"$dock" --root "$root" images
