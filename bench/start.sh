#!/usr/bin/env bash
# Container start: `dock run --rm IMG true` against the floor
# `unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot ROOTFS /bin/true`
# on the same root filesystem, median of RUNS rounds (each runs all three, in turn); then the
# idle monitor's memory.
# Every run creates and deletes a container's files, so both run on a fresh ext4 made with
# nodiscard on a loop device: this machine's root filesystem discards online, and each
# delete there waits for the device (needs root).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-30}
build_dock
work=$(mktemp -d /var/tmp/dock-bench-start.XXXXXX)
mnt="$work/mnt"
loop=""
root="$mnt/root"
# The root's bridge and nftables table: named after a hash of the root (NetConfig::for_root).
tag=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:6])' "$root")
cleanup() {
    set +e
    "$dock" --root "$root" ps -aq 2>/dev/null | xargs -r "$dock" --root "$root" rm -f >/dev/null 2>&1
    remove_cgroup_parent "$root"
    nft delete table ip "dock-$tag" 2>/dev/null
    ip link delete "dock$tag" 2>/dev/null
    if mountpoint -q "$mnt"; then umount "$mnt"; fi
    if [ -n "$loop" ]; then losetup -d "$loop"; fi
    rm -rf "$work"
}
trap cleanup EXIT
truncate -s 1G "$work/fs.img"
mkfs.ext4 -q -F -E nodiscard "$work/fs.img"
loop=$(losetup --find --show "$work/fs.img")
mkdir "$mnt"
mount "$loop" "$mnt"

make_busybox_rootfs "$mnt/rootfs"
tar -C "$mnt/rootfs" -c . | "$dock" --root "$root" import - bench >/dev/null

# One round runs each of the three once, so drift on the machine weighs on all alike.
{ read -r floor; read -r nonet; read -r withnet; } < <(median "$runs" \
    unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot "$mnt/rootfs" /bin/true ::: \
    "$dock" --root "$root" run --rm --network none bench true ::: \
    "$dock" --root "$root" run --rm bench true)
printf 'floor (unshare + chroot)        %8.2f ms\n' "$(python3 -c "print($floor*1000)")"
printf 'dock run --rm --network none    %8.2f ms   ratio %s (target <= 3)\n' \
    "$(python3 -c "print($nonet*1000)")" "$(ratio "$nonet" "$floor")"
printf 'dock run --rm (bridge network)  %8.2f ms   network adds %.2f ms (target <= 5)\n' \
    "$(python3 -c "print($withnet*1000)")" "$(python3 -c "print(($withnet-$nonet)*1000)")"

# What the seccomp cache (runtime::security) saves on every start: compiling Docker's default
# profile against reading the compiled program back.
(cd "$(dirname "$0")/.." && cargo run --release -q -p sysinit --example seccomp_compile_time)

# The resident memory of one idle monitor.
id=$("$dock" --root "$root" run -d --network none bench sleep 60)
monitor=$(pgrep -f "__monitor.*$id" | head -1)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$monitor/status")
printf 'idle monitor RSS                %8d KiB (target <= 2048)\n' "$rss"
"$dock" --root "$root" rm -f "$id" >/dev/null
