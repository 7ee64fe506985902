#!/usr/bin/env bash
# Time layer extraction against GNU tar: a tree of FILES small files (default 50,000, ~100 MB)
# in one tar, extracted by `tar -x` and by archive::extract (crates/archive/examples/extract.rs)
# into the same freshly made ext4 filesystem on a loop device, each followed by `sync`.
# Prints both times (best of ROUNDS) and the ratio. Needs root (loop device, mount).
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-50000}
ROUNDS=${ROUNDS:-3}
IMAGE_SIZE=${IMAGE_SIZE:-2G}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

work=$(mktemp -d /var/tmp/dock-bench-import.XXXXXX)
mnt="$work/mnt"
loop=""
cleanup() {
    set +e
    if mountpoint -q "$mnt"; then umount "$mnt"; fi
    if [ -n "$loop" ]; then losetup -d "$loop"; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building the extract example (release)" >&2
cargo build --quiet --release -p archive --example extract
extract_bin="$CARGO_TARGET_DIR/release/examples/extract"

echo "generating $FILES files into a tar" >&2
python3 - "$work/tree.tar" "$FILES" <<'PY'
import io, random, sys, tarfile
path, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
blob = rng.randbytes(1 << 20)
per_dir = 100
with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
    for d in range((count + per_dir - 1) // per_dir):
        top = f"usr/share/d{d // 50:03d}"
        if d % 50 == 0:
            info = tarfile.TarInfo(top); info.type = tarfile.DIRTYPE; info.mode = 0o755; info.mtime = 1_600_000_000
            tar.addfile(info)
        name = f"{top}/sub{d:04d}"
        info = tarfile.TarInfo(name); info.type = tarfile.DIRTYPE; info.mode = 0o755; info.mtime = 1_600_000_000
        tar.addfile(info)
        for f in range(min(per_dir, count - d * per_dir)):
            size = rng.randint(0, 4096)
            start = rng.randint(0, len(blob) - size)
            info = tarfile.TarInfo(f"{name}/file{f:03d}.dat")
            info.size = size; info.mode = 0o644; info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(blob[start:start + size]))
PY
echo "tar: $(du -h "$work/tree.tar" | cut -f1)" >&2

truncate -s "$IMAGE_SIZE" "$work/fs.img"
# nodiscard: discarding on a loop file punches holes in the host fs, which stalls after big deletes.
mkfs.ext4 -q -F -E nodiscard "$work/fs.img"
loop=$(losetup --find --show "$work/fs.img")
mkdir "$mnt"
mount "$loop" "$mnt"

now() { date +%s.%N; }
# Run "$@" into a fresh directory $mnt/out, then sync; print the seconds it took.
timed() {
    rm -rf "$mnt/out"
    sync
    mkdir "$mnt/out"
    local start end
    start=$(now)
    "$@" >/dev/null
    sync
    end=$(now)
    echo "$end - $start" | bc
}

best_tar=""
best_ours=""
for round in $(seq "$ROUNDS"); do
    t_tar=$(timed tar -C "$mnt/out" -xf "$work/tree.tar")
    t_ours=$(timed "$extract_bin" "$work/tree.tar" "$mnt/out")
    echo "round $round: tar -x ${t_tar}s, archive::extract ${t_ours}s" >&2
    if [ -z "$best_tar" ] || [ "$(echo "$t_tar < $best_tar" | bc)" = 1 ]; then best_tar=$t_tar; fi
    if [ -z "$best_ours" ] || [ "$(echo "$t_ours < $best_ours" | bc)" = 1 ]; then best_ours=$t_ours; fi
done

# The two trees must be the same.
mkdir -p "$mnt/ref"
tar -C "$mnt/ref" -xf "$work/tree.tar"
diff -r "$mnt/ref" "$mnt/out" >/dev/null || { echo "extracted trees differ" >&2; exit 1; }

printf 'files:            %s\n' "$FILES"
printf 'tar -x + sync:    %.3f s\n' "$best_tar"
printf 'extract + sync:   %.3f s\n' "$best_ours"
printf 'ratio:            %.3f\n' "$(echo "$best_ours / $best_tar" | bc -l)"
