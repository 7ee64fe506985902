#!/usr/bin/env bash
# Install what dock and its tests need on a fresh Debian machine. Safe to run again.
set -euo pipefail

packages=(
    busybox-static   # the small rootfs used by the demo, tests and benchmarks
    nftables         # port publishing (nft)
    iproute2         # tests look at links with `ip`
    util-linux       # unshare, nsenter, script
    tar xz-utils zstd bzip2 gzip  # archives of every compression for the tests
    e2fsprogs        # mkfs.ext4 for the benchmark filesystem and the full-disk test
    gcc libc6-dev    # static helpers the confinement tests run inside containers
    openssl curl     # the API's TLS tests make a CA and certificates and knock without one
    docker-registry  # registry tests run their own `docker-registry serve` on 127.0.0.1
    skopeo           # an independent registry client for the registry tests
    apache2-utils    # htpasswd for the registry's Basic auth
    libseccomp-dev   # the libseccomp crate links it (Docker's seccomp profile)
    strace           # the crash tests kill dock at chosen syscalls (strace -e inject)
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# The Engine API tests drive dock with the real docker client; Debian's docker.io brings one
# where the machine has none (its daemon is not used).
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    # policy-rc.d 101: install packages without starting their services.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
