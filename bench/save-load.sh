#!/usr/bin/env bash
# Time `dock save` and `dock load` of a debian-sized image (one layer of about 130 MB: a few
# big files and a few thousand small ones, random and text data) against GNU tar on the same
# freshly made ext4 filesystem on a loop device, each followed by `sync`:
# - save against `tar -c` of the image's layer directory into a file;
# - load (into an empty root) against `tar -x` of the same file dock saved.
# Prints the times (best of ROUNDS) and the ratios (target <= 1.2 each), and checks that the
# loaded layer is the imported one. Needs root (loop device, mount).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
IMAGE_SIZE=${IMAGE_SIZE:-2G}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

work=$(mktemp -d /var/tmp/dock-bench-save-load.XXXXXX)
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

echo "building dock (release)" >&2
build_dock

echo "generating a 130 MB layer" >&2
python3 - "$work/layer.tar" <<'PY'
import io, random, sys, tarfile
rng = random.Random(9)
words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".split()
parts, size = [], 0
while size < (8 << 20):
    w = rng.choice(words) + (b"\n" if rng.random() < 0.1 else b" ")
    parts.append(w); size += len(w)
text_pool = b"".join(parts)[:8 << 20]
rand_pool = rng.randbytes(8 << 20)
def data(n):
    start = rng.randint(0, (8 << 20) - n // 2 - 1)
    return rand_pool[start:start + n // 2] + text_pool[start:start + n - n // 2]
def add(tar, name, n):
    info = tarfile.TarInfo(name); info.size = n; info.mode = 0o644; info.mtime = 1_600_000_000
    tar.addfile(info, io.BytesIO(data(n)))
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT) as tar:
    total = 0
    for b in range(8):
        add(tar, f"usr/lib/big{b}.so", 6 << 20); total += 6 << 20
    i = 0
    while total < (130 << 20):
        n = rng.randint(100, 60_000)
        if i % 100 == 0:
            d = tarfile.TarInfo(f"usr/share/d{i // 100:03d}"); d.type = tarfile.DIRTYPE; d.mode = 0o755; d.mtime = 1_600_000_000
            tar.addfile(d)
        add(tar, f"usr/share/d{i // 100:03d}/f{i:05d}", n); total += n; i += 1
PY
echo "layer: $(du -h "$work/layer.tar" | cut -f1)" >&2

truncate -s "$IMAGE_SIZE" "$work/fs.img"
# nodiscard: discarding on a loop file punches holes in the host fs, which stalls after big deletes.
mkfs.ext4 -q -F -E nodiscard "$work/fs.img"
loop=$(losetup --find --show "$work/fs.img")
mkdir "$mnt"
mount "$loop" "$mnt"

"$dock" --root "$mnt/src" import "$work/layer.tar" bench:1 >/dev/null
id=$("$dock" --root "$mnt/src" images -q --no-trunc bench)
layer_dir="$mnt/src/graph/$id/layer"

now() { date +%s.%N; }
# Clear the targets, sync, then run "$@" and sync; print the seconds it took.
timed() {
    rm -rf "$mnt/out" "$mnt/dst"
    mkdir "$mnt/out"
    sync
    local start end
    start=$(now)
    "$@" >/dev/null
    sync
    end=$(now)
    echo "$end - $start" | bc
}

tar_c() { tar -C "$layer_dir" -cf "$mnt/out/layer.tar" .; }
dock_save() { "$dock" --root "$mnt/src" save -o "$mnt/out/image.tar" bench:1; }
# The file both loads read: what dock saved, kept outside the timed dirs.
"$dock" --root "$mnt/src" save -o "$mnt/image.tar" bench:1
tar_x() { tar -C "$mnt/out" -xf "$mnt/image.tar"; }
# For reference: the files a load creates, extracted from the layer tar itself.
cp "$work/layer.tar" "$mnt/layer.tar"
tar_x_layer() { tar -C "$mnt/out" -xf "$mnt/layer.tar"; }
dock_load() { "$dock" --root "$mnt/dst" load -q -i "$mnt/image.tar"; }

min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
best_tar_c="" best_save="" best_tar_x="" best_load="" best_tar_x_layer=""
for round in $(seq "$ROUNDS"); do
    t_tar_c=$(timed tar_c)
    t_save=$(timed dock_save)
    t_tar_x=$(timed tar_x)
    t_load=$(timed dock_load)
    t_tar_x_layer=$(timed tar_x_layer)
    echo "round $round: tar -c ${t_tar_c}s, dock save ${t_save}s, tar -x ${t_tar_x}s, dock load ${t_load}s, tar -x of the layer ${t_tar_x_layer}s" >&2
    best_tar_x_layer=$(min "$best_tar_x_layer" "$t_tar_x_layer")
    best_tar_c=$(min "$best_tar_c" "$t_tar_c")
    best_save=$(min "$best_save" "$t_save")
    best_tar_x=$(min "$best_tar_x" "$t_tar_x")
    best_load=$(min "$best_load" "$t_load")
done

# What dock loaded is what was imported.
dock_load
loaded=$(ls -d "$mnt"/dst/graph/*/layer)
diff -r "$layer_dir" "$loaded" >/dev/null || { echo "loaded layer differs" >&2; exit 1; }

printf 'image:               1 layer, %s\n' "$(du -h "$mnt/image.tar" | cut -f1)"
printf 'tar -c + sync:       %.3f s\n' "$best_tar_c"
printf 'dock save + sync:    %.3f s   ratio %s (target <= 1.2)\n' "$best_save" "$(ratio "$best_save" "$best_tar_c")"
printf 'tar -x + sync:       %.3f s\n' "$best_tar_x"
printf 'dock load + sync:    %.3f s   ratio %s (target <= 1.2)\n' "$best_load" "$(ratio "$best_load" "$best_tar_x")"
# A load must create the layer's files, which tar -x of the archive does not (it writes one
# big file): against tar -x of the layer tar itself, the same files.
printf 'tar -x of the layer: %.3f s   dock load ratio %s\n' "$best_tar_x_layer" "$(ratio "$best_load" "$best_tar_x_layer")"
