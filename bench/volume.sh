#!/usr/bin/env bash
# What a volume costs a container start: `dock run --rm -v HOST:/d IMG true` and with a named
# volume (`-v NAME:/d`, seeded once) against plain `dock run --rm IMG true`, all with
# --network none, median of RUNS rounds (each runs all three, in turn). The bind's mount is
# made by sysinit in the container's mount namespace (open_tree + move_mount), and the three
# /etc files are bound in every container alike.
# Like bench/start.sh, on a fresh ext4 on a loop device (needs root).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
runs=${RUNS:-30}
build_dock
bench_root volume
mkdir "$mnt/host"
"$dock" --root "$root" run --rm --network none -v benchvol:/d bench true

{ read -r plain; read -r bind; read -r named; } < <(median "$runs" \
    "$dock" --root "$root" run --rm --network none bench true ::: \
    "$dock" --root "$root" run --rm --network none -v "$mnt/host:/d" bench true ::: \
    "$dock" --root "$root" run --rm --network none -v benchvol:/d bench true)
ms() { python3 -c "print(f'{float(\"$1\")*1000:8.2f}')"; }
printf 'dock run --rm                   %s ms\n' "$(ms "$plain")"
printf 'dock run --rm -v HOST:/d        %s ms   ratio %s\n' "$(ms "$bind")" "$(ratio "$bind" "$plain")"
printf 'dock run --rm -v NAME:/d        %s ms   ratio %s\n' "$(ms "$named")" "$(ratio "$named" "$plain")"
