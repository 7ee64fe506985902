#!/usr/bin/env bash
# Listings over many objects: `dock images` with IMAGES (10,000) images, half of them tagged,
# and `dock ps -a` with CONTAINERS (2,000) exited containers; median of RUNS (21) each, taken
# in turn, after one warm-up listing (the first listing after a change rebuilds the graph's
# listing index). A listing takes tens of milliseconds, and a median of five moved by a
# millisecond from one run to the next.
# The objects are written directly (image json and an empty layer dir each; copies of one
# created container's config.json), as bench/import.sh does for images.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-21}
images=${IMAGES:-10000}
containers=${CONTAINERS:-2000}
build_dock
work=$(mktemp -d /var/tmp/dock-bench-list.XXXXXX)
root="$work/root"
cleanup() {
    remove_cgroup_parent "$root"
    rm -rf "$work"
}
trap cleanup EXIT

make_busybox_rootfs "$work/rootfs"
tar -C "$work/rootfs" -c . | "$dock" --root "$root" import - bench >/dev/null
template=$("$dock" --root "$root" create --network none bench true)

python3 - "$root" "$images" "$containers" "$template" <<'PY'
import json, os, secrets, sys
root, images, containers, template = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
graph = os.path.join(root, "graph")
repos = json.load(open(os.path.join(root, "repositories")))["Repositories"]
for i in range(images - 1):
    image_id = secrets.token_hex(32)
    os.makedirs(os.path.join(graph, image_id, "layer"))
    with open(os.path.join(graph, image_id, "json"), "w") as f:
        json.dump({"id": image_id, "created": "2026-11-01T00:00:00.000000000Z",
                   "container_config": None, "size": 0}, f)
    if i % 2 == 0:
        repos.setdefault(f"repo{i % 100}", {})[f"t{i}"] = image_id
# As the tag store writes it (from maps): keys sorted, no spaces.
with open(os.path.join(root, "repositories"), "w") as f:
    json.dump({"Repositories": repos}, f, sort_keys=True, separators=(",", ":"))
config = json.load(open(os.path.join(root, "containers", template, "config.json")))
for i in range(containers - 1):
    cid = secrets.token_hex(32)
    os.makedirs(os.path.join(root, "containers", cid), mode=0o700)
    c = dict(config, Id=cid, ID=cid) if "ID" in config else dict(config, Id=cid)
    for key in ("Name", "name"):
        if key in c:
            c[key] = f"/c{i}" if str(c[key]).startswith("/") else f"c{i}"
    with open(os.path.join(root, "containers", cid, "config.json"), "w") as f:
        json.dump(c, f)
PY
sync
n_images=$("$dock" --root "$root" images -a -q | wc -l)
n_containers=$("$dock" --root "$root" ps -a -q | wc -l)
{ read -r t_images; read -r t_ps; } < <(median "$runs" \
    "$dock" --root "$root" images ::: \
    "$dock" --root "$root" ps -a)
printf 'dock images, %5s images:      %6.1f ms (target < 20)\n' "$n_images" "$(python3 -c "print($t_images*1000)")"
printf 'dock ps -a, %5s containers:   %6.1f ms (target < 20)\n' "$n_containers" "$(python3 -c "print($t_ps*1000)")"
