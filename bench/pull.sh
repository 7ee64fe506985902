#!/usr/bin/env bash
# Time `dock pull` of a 3-layer image of about 130 MB (uncompressed; random and compressible
# data, gzip layers) from a local docker-registry on 127.0.0.1, against the floor: the same
# blobs fetched with curl and extracted with tar, on the same freshly made ext4 filesystem on
# a loop device, each followed by `sync`. The floor is the faster of two ways: `curl | tar -xz`
# per layer in order, and the three blobs fetched at once to files, then `tar -xzf` in order.
# Prints the times (best of ROUNDS) and the ratio (target <= 1.2), then what a second pull of
# the same image costs: its time and the registry requests it made (manifest and config only).
# Needs root (loop device, mount), docker-registry, curl, gzip.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
IMAGE_SIZE=${IMAGE_SIZE:-2G}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

work=$(mktemp -d /var/tmp/dock-bench-pull.XXXXXX)
mnt="$work/mnt"
loop=""
registry_pid=""
cleanup() {
    set +e
    if [ -n "$registry_pid" ]; then kill "$registry_pid"; wait "$registry_pid" 2>/dev/null; fi
    if mountpoint -q "$mnt"; then umount "$mnt"; fi
    if [ -n "$loop" ]; then losetup -d "$loop"; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building dock (release)" >&2
build_dock

echo "generating three layers" >&2
mkdir -p "$work/layers"
python3 - "$work/layers" <<'PY'
import io, random, sys, tarfile
out = sys.argv[1]
rng = random.Random(8)
words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".split()
def text(n):
    parts, size = [], 0
    while size < n:
        w = rng.choice(words) + (b"\n" if rng.random() < 0.1 else b" ")
        parts.append(w); size += len(w)
    return b"".join(parts)[:n]
text_pool = text(8 << 20)
rand_pool = rng.randbytes(8 << 20)
def data(n):
    # Half random, half text: gzip gets about 2:1.
    start = rng.randint(0, (8 << 20) - n // 2 - 1)
    return rand_pool[start:start + n // 2] + text_pool[start:start + n - n // 2]
def layer(name, total, big):
    with tarfile.open(f"{out}/{name}.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        size, i = 0, 0
        for b in range(big):
            n = 6 << 20
            info = tarfile.TarInfo(f"{name}/big{b}.bin"); info.size = n; info.mode = 0o644; info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data(n))); size += n
        while size < total:
            n = rng.randint(1000, 300_000)
            info = tarfile.TarInfo(f"{name}/d{i // 100:03d}/f{i:05d}"); info.size = n; info.mode = 0o644; info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data(n))); size += n; i += 1
layer("base", 60 << 20, 4)
layer("mid", 40 << 20, 2)
layer("top", 30 << 20, 1)
PY
for l in base mid top; do gzip -6 -n -c "$work/layers/$l.tar" >"$work/layers/$l.tar.gz"; done
du -ch "$work"/layers/*.tar | tail -1 | sed 's/total/uncompressed/' >&2
du -ch "$work"/layers/*.tar.gz | tail -1 | sed 's/total/compressed/' >&2

echo "starting docker-registry on 127.0.0.1" >&2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry/storage
http:
  addr: 127.0.0.1:$port
  secret: dock-bench
EOF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
base_url="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$base_url/v2/" >/dev/null && break; sleep 0.1; done

sha() { sha256sum "$1" | cut -d' ' -f1; }
push_blob() {
    local file=$1 digest location
    digest="sha256:$(sha "$file")"
    location=$(curl -fsS -o /dev/null -D - -X POST "$base_url/v2/bench/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    case $location in /*) location="$base_url$location" ;; esac
    curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" \
        "$location&digest=$digest" >/dev/null
    echo "$digest"
}
diff_ids=()
layers_json=""
blobs=()
for l in base mid top; do
    digest=$(push_blob "$work/layers/$l.tar.gz")
    blobs+=("$digest")
    diff_ids+=("\"sha256:$(sha "$work/layers/$l.tar")\"")
    size=$(stat -c %s "$work/layers/$l.tar.gz")
    layers_json+="${layers_json:+,}{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"digest\":\"$digest\",\"size\":$size}"
done
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$(IFS=,; echo "${diff_ids[*]}")" >"$work/config.json"
config_digest=$(push_blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
    "$config_digest" "$(stat -c %s "$work/config.json")" "$layers_json" >"$work/manifest.json"
curl -fsS -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' \
    --data-binary "@$work/manifest.json" "$base_url/v2/bench/manifests/1" >/dev/null
image="127.0.0.1:$port/bench:1"

truncate -s "$IMAGE_SIZE" "$work/fs.img"
# nodiscard: discarding on a loop file punches holes in the host fs, which stalls after big deletes.
mkfs.ext4 -q -F -E nodiscard "$work/fs.img"
loop=$(losetup --find --show "$work/fs.img")
mkdir "$mnt"
mount "$loop" "$mnt"

now() { date +%s.%N; }
# Clear the targets, sync, then run "$@" and sync; print the seconds it took.
timed() {
    rm -rf "$mnt/out" "$mnt/blobs" "$mnt/root"
    mkdir "$mnt/out" "$mnt/blobs"
    sync
    local start end
    start=$(now)
    "$@" >/dev/null
    sync
    end=$(now)
    echo "$end - $start" | bc
}

floor_stream() {
    local d
    for d in "${blobs[@]}"; do
        curl -fsS "$base_url/v2/bench/blobs/$d" | tar -C "$mnt/out" -xzf -
    done
}
floor_files() {
    local d i=0
    for d in "${blobs[@]}"; do
        curl -fsS -o "$mnt/blobs/$i" "$base_url/v2/bench/blobs/$d" &
        i=$((i + 1))
    done
    wait
    for i in 0 1 2; do tar -C "$mnt/out" -xzf "$mnt/blobs/$i"; done
}
dock_pull() { "$dock" --root "$mnt/root" pull "$image"; }

min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
best_floor=""
best_dock=""
for round in $(seq "$ROUNDS"); do
    t_stream=$(timed floor_stream)
    t_files=$(timed floor_files)
    t_dock=$(timed dock_pull)
    echo "round $round: curl|tar ${t_stream}s, curl x3 then tar ${t_files}s, dock pull ${t_dock}s" >&2
    best_floor=$(min "$(min "$best_floor" "$t_stream")" "$t_files")
    best_dock=$(min "$best_dock" "$t_dock")
done

# What dock stored is what tar extracted.
rm -rf "$mnt/out"
mkdir "$mnt/out"
for l in base mid top; do tar -C "$mnt/out" -xf "$work/layers/$l.tar"; done
for l in base mid top; do
    diff -r "$mnt/out/$l" "$(ls -d "$mnt"/root/graph/*/layer/"$l")" >/dev/null ||
        { echo "pulled layer $l differs" >&2; exit 1; }
done

# A second pull: every layer present, so only the manifest and the config are fetched.
sed -i 's/^log:/log:\n  accesslog:\n    disabled: false/' "$work/registry/config.yml"
kill "$registry_pid"; wait "$registry_pid" 2>/dev/null || true
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fs "$base_url/v2/" >/dev/null && break; sleep 0.1; done
: >"$work/registry/log"
start=$(now)
"$dock" --root "$mnt/root" pull "$image" >"$work/second.out"
t_second=$(echo "$(now) - $start" | bc)
sleep 0.2
requests=$(grep -ao '"\(GET\|HEAD\) /v2/[^ ]*' "$work/registry/log" | tr -d '"' || true)

printf 'image:                        3 layers, %s uncompressed, %s gzip\n' \
    "$(du -ch "$work"/layers/*.tar | tail -1 | cut -f1)" "$(du -ch "$work"/layers/*.tar.gz | tail -1 | cut -f1)"
printf 'floor (curl + tar -x + sync): %.3f s\n' "$best_floor"
printf 'dock pull + sync:             %.3f s   ratio %s (target <= 1.2)\n' "$best_dock" "$(ratio "$best_dock" "$best_floor")"
printf 'second pull (layers present): %.3f s, %s\n' "$t_second" "$(grep -c 'Already exists' "$work/second.out") layers already there"
echo "its registry requests:"
echo "$requests" | sed 's/^/  /'
