# Shared by the benchmarks: a release build and a busybox root filesystem.
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")

# DOCK=/path/to/dock uses that binary instead (to measure another build, e.g. a before).
build_dock() {
    if [ -n "${DOCK:-}" ]; then
        dock=$DOCK
        return
    fi
    (cd "$repo_dir" && cargo build --release -q -p cli)
    dock="${CARGO_TARGET_DIR:-$repo_dir/target}/release/dock"
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
