#!/usr/bin/env bash
# Container start: `dock run --rm IMG true` against the floor
# `unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot ROOTFS /bin/true`
# on the same root filesystem, median of RUNS runs each; then the idle monitor's memory.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-30}
build_dock
work=$(mktemp -d /tmp/dock-bench-start.XXXXXX)
root="$work/root"
# The root's bridge and nftables table: named after a hash of the root (NetConfig::for_root).
tag=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:6])' "$root")
cleanup() {
    "$dock" --root "$root" ps -aq 2>/dev/null | xargs -r "$dock" --root "$root" rm -f >/dev/null 2>&1 || true
    nft delete table ip "dock-$tag" 2>/dev/null || true
    ip link delete "dock$tag" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

make_busybox_rootfs "$work/rootfs"
tar -C "$work/rootfs" -c . | "$dock" --root "$root" import - bench >/dev/null

floor=$(median "$runs" unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot "$work/rootfs" /bin/true)
nonet=$(median "$runs" "$dock" --root "$root" run --rm --network none bench true)
withnet=$(median "$runs" "$dock" --root "$root" run --rm bench true)
printf 'floor (unshare + chroot)        %8.2f ms\n' "$(python3 -c "print($floor*1000)")"
printf 'dock run --rm --network none    %8.2f ms   ratio %s (target <= 3)\n' \
    "$(python3 -c "print($nonet*1000)")" "$(ratio "$nonet" "$floor")"
printf 'dock run --rm (bridge network)  %8.2f ms   network adds %.2f ms (target <= 5)\n' \
    "$(python3 -c "print($withnet*1000)")" "$(python3 -c "print(($withnet-$nonet)*1000)")"

# The resident memory of one idle monitor.
id=$("$dock" --root "$root" run -d --network none bench sleep 60)
monitor=$(pgrep -f "__monitor.*$id" | head -1)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$monitor/status")
printf 'idle monitor RSS                %8d KiB (target <= 2048)\n' "$rss"
"$dock" --root "$root" rm -f "$id" >/dev/null
