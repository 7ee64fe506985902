#!/usr/bin/env bash
# What publishing a port costs a container start: `dock run --rm -p 80 IMG true` against
# `dock run --rm IMG true`, median of RUNS rounds (each runs both, in turn), first with no
# other container and then with BUSY (100) containers publishing a port each, started at
# once: connect and release must stay flat (the difference does not grow with the number of
# published ports). Also the wall time of starting and of removing the BUSY containers.
# Both on a fresh ext4 with nodiscard on a loop device, as bench/start.sh (needs root).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-30}
busy=${BUSY:-100}
build_dock
bench_root ports
ms() { python3 -c "print(f'{($1) * 1000:.2f}')"; }

measure() {
    local label=$1 plain published
    { read -r plain; read -r published; } < <(median "$runs" \
        "$dock" --root "$root" run --rm bench true ::: \
        "$dock" --root "$root" run --rm -p 80 bench true)
    printf '%-34s run --rm %7s ms   -p 80 %7s ms   -p adds %6s ms (target <= 3)\n' \
        "$label" "$(ms "$plain")" "$(ms "$published")" "$(ms "$published-$plain")"
}

measure "no other container:"

start=$(date +%s.%N)
for _ in $(seq "$busy"); do
    "$dock" --root "$root" run -d -p 80 bench sleep 600 >/dev/null &
done
wait
started=$(date +%s.%N)
printf '%s containers with -p 80 started at once: %s ms wall\n' "$busy" "$(ms "$started-$start")"
published=$(nft -j list map ip "dock-$tag" dnat_any 2>/dev/null | python3 -c 'import json,sys; print(sum(len(i["map"].get("elem", [])) for i in json.load(sys.stdin)["nftables"] if "map" in i))' 2>/dev/null || echo "n/a (no port map)")
printf 'published ports in the table: %s\n' "$published"

measure "with $busy containers publishing:"

start=$(date +%s.%N)
"$dock" --root "$root" ps -aq | xargs -r -P 8 -n 10 "$dock" --root "$root" rm -f >/dev/null
removed=$(date +%s.%N)
printf '%s containers removed (8 rm -f at a time): %s ms wall\n' "$busy" "$(ms "$removed-$start")"
