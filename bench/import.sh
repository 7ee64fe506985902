#!/usr/bin/env bash
# Time `dock import` against GNU tar: a tree of FILES small files (default 50,000, ~100 MB)
# in one tar, extracted by `tar -x` and imported by `dock import` (and by archive::extract
# alone, crates/archive/examples/extract.rs) into the same freshly made ext4 filesystem on a
# loop device, each followed by `sync`. Prints the times (best of ROUNDS) and the ratios, then
# how long `dock images` takes with 10,000 images in the store. Needs root (loop device, mount).
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-50000}
ROUNDS=${ROUNDS:-3}
IMAGE_SIZE=${IMAGE_SIZE:-4G}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
source bench/lib.sh

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

echo "building dock and the extract example (release)" >&2
build_dock
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

# dock's whole import: staging, extraction, metadata, fsync, rename into the graph.
import_once() {
    "$dock" --root "$mnt/root" import "$work/tree.tar" bench:latest
}

min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
best_tar=""
best_ours=""
best_dock=""
for round in $(seq "$ROUNDS"); do
    t_tar=$(timed tar -C "$mnt/out" -xf "$work/tree.tar")
    rm -rf "$mnt/root"
    t_dock=$(timed import_once)
    t_ours=$(timed "$extract_bin" "$work/tree.tar" "$mnt/out")
    echo "round $round: tar -x ${t_tar}s, archive::extract ${t_ours}s, dock import ${t_dock}s" >&2
    best_tar=$(min "$best_tar" "$t_tar")
    best_ours=$(min "$best_ours" "$t_ours")
    best_dock=$(min "$best_dock" "$t_dock")
done

# The two trees must be the same.
mkdir -p "$mnt/ref"
tar -C "$mnt/ref" -xf "$work/tree.tar"
diff -r "$mnt/ref" "$mnt/out" >/dev/null || { echo "extracted trees differ" >&2; exit 1; }

# `images -q --no-trunc` prints `sha256:<id>`, as Docker does; the graph's directory is the id.
image=$("$dock" --root "$mnt/root" images -q --no-trunc bench)
image=${image#sha256:}
diff -r "$mnt/ref" "$mnt/root/graph/$image/layer" >/dev/null || { echo "imported layer differs" >&2; exit 1; }

printf 'files:                %s\n' "$FILES"
printf 'tar -x + sync:        %.3f s\n' "$best_tar"
printf 'extract + sync:       %.3f s   ratio %.3f\n' "$best_ours" "$(echo "$best_ours / $best_tar" | bc -l)"
printf 'dock import + sync:   %.3f s   ratio %.3f (target <= 1.15)\n' "$best_dock" "$(echo "$best_dock / $best_tar" | bc -l)"

# `dock images` over 10,000 images: the graph lists from metadata alone, so the images are
# written directly (json and an empty layer dir each), half of them tagged.
python3 - "$mnt/many" <<'PY'
import json, os, secrets, sys
root = sys.argv[1]
graph = os.path.join(root, "graph")
os.makedirs(graph)
repos = {}
for i in range(10_000):
    image_id = secrets.token_hex(32)
    os.makedirs(os.path.join(graph, image_id, "layer"))
    with open(os.path.join(graph, image_id, "json"), "w") as f:
        json.dump({"id": image_id, "created": "2026-11-01T00:00:00.000000000Z",
                   "container_config": None, "size": 0}, f)
    if i % 2 == 0:
        repos.setdefault(f"repo{i % 100}", {})[f"t{i}"] = image_id
with open(os.path.join(root, "repositories"), "w") as f:
    json.dump({"Repositories": repos}, f)
PY
sync
t_images=$(python3 "$(dirname "$0")/timeit.py" 5 "$dock" --root "$mnt/many" images)
t_images_all=$(python3 "$(dirname "$0")/timeit.py" 5 "$dock" --root "$mnt/many" images -a)
printf 'dock images, 10,000 images:     %.1f ms (median of 5)\n' "$(echo "$t_images * 1000" | bc -l)"
printf 'dock images -a, 10,000 images:  %.1f ms (median of 5)\n' "$(echo "$t_images_all * 1000" | bc -l)"
