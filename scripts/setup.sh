#!/usr/bin/env bash
# Install what dock and its tests need on a fresh Debian machine. Safe to run again.
set -euo pipefail

packages=(
    busybox-static   # the small rootfs used by the demo, tests and benchmarks
    nftables         # port publishing (nft)
    iproute2         # tests look at links with `ip`
    util-linux       # unshare, nsenter, script
    tar xz-utils zstd bzip2 gzip  # archives of every compression for the tests
    e2fsprogs        # mkfs.ext4 for the benchmark filesystem
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
