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
bench_root start

# One round runs each of the three once, so drift on the machine weighs on all alike.
{ read -r floor; read -r nonet; read -r withnet; } < <(median "$runs" \
    unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot "$mnt/rootfs" /bin/true ::: \
    "$dock" --root "$root" run --rm --network none bench true ::: \
    "$dock" --root "$root" run --rm bench true)
printf 'floor (unshare + chroot)        %8.2f ms\n' "$(python3 -c "print($floor*1000)")"
printf 'dock run --rm --network none    %8.2f ms   ratio %s (target <= 2.5)\n' \
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
