# Shared by the benchmarks: a release build and a busybox root filesystem.
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")

# DOCK=/path/to/dock uses that binary instead (to measure another build, e.g. a before).
build_dock() {
    if [ -n "${DOCK:-}" ]; then
        dock=$DOCK
        return
    fi
    dock=$(bash "$repo_dir/scripts/release-build.sh" -q)
}

# make_busybox_rootfs DIR: one static busybox and its applet links, plus passwd and group.
make_busybox_rootfs() {
    local rootfs=$1
    mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev}
    cp /bin/busybox "$rootfs/bin/busybox"
    local applet
    for applet in $("$rootfs/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\ndaemon:x:1:\n' >"$rootfs/etc/group"
}

median() { python3 "$bench_dir/timeit.py" "$@"; }

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }

# remove_cgroup_parent ROOT: the cgroup parent a dock root's containers live under stays while
# the root exists (runtime::cgroup_parent_for names it); remove it with the root.
remove_cgroup_parent() {
    local parent
    parent=$(python3 -c 'import hashlib,os,sys; print("dock-" + hashlib.sha256(os.path.realpath(sys.argv[1]).encode()).hexdigest()[:8])' "$1")
    local dir
    for dir in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
        if [ -d "$dir" ]; then rmdir "$dir" 2>/dev/null; fi
    done
    return 0
}

# bench_root NAME: a scratch dock root for start-path benchmarks. Containers create and delete
# files on every run and this machine's root filesystem discards online (each delete waits for
# the device), so it lives on a fresh ext4 made with nodiscard on a loop device. Sets work,
# mnt, loop, root and tag (the root's bridge and nftables table: NetConfig::for_root), mounts
# it, imports a busybox image `bench` (its rootfs stays at $mnt/rootfs) and installs an EXIT
# trap that removes all of it again, whatever the root's containers left (needs root).
bench_root() {
    work=$(mktemp -d "/var/tmp/dock-bench-$1.XXXXXX")
    mnt="$work/mnt"
    loop=""
    root="$mnt/root"
    tag=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:6])' "$root")
    trap remove_bench_root EXIT
    truncate -s 1G "$work/fs.img"
    mkfs.ext4 -q -F -E nodiscard "$work/fs.img"
    loop=$(losetup --find --show "$work/fs.img")
    mkdir "$mnt"
    mount "$loop" "$mnt"
    make_busybox_rootfs "$mnt/rootfs"
    tar -C "$mnt/rootfs" -c . | "$dock" --root "$root" import - bench >/dev/null
    # What the build and this setup wrote goes to disk now, not while the rounds run: writeback
    # takes CPU from runs that use both of this machine's two, and the floor uses one. (Twice:
    # the loop device's own writeback dirties its backing file during the first.)
    sync
    sync
}

remove_bench_root() {
    set +e
    "$dock" --root "$root" ps -aq 2>/dev/null | xargs -r "$dock" --root "$root" rm -f >/dev/null 2>&1
    remove_cgroup_parent "$root"
    nft delete table ip "dock-$tag" 2>/dev/null
    ip link delete "dock$tag" 2>/dev/null
    if mountpoint -q "$mnt"; then umount "$mnt"; fi
    if [ -n "$loop" ]; then losetup -d "$loop"; fi
    rm -rf "$work"
}
