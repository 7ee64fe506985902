#!/usr/bin/env bash
# Builds the release dock and prints its path: one static executable, glibc and libseccomp
# linked in, at a fixed address (not PIE). Each dock process (a command, a container's
# monitor) then starts with nothing to map, relocate or look up: no loader, no shared
# libraries, and none of a static-pie's 30,000 self-relocations, whose writes copy 127 pages
# of .data.rel.ro at every start. That is about 0.7 ms per process, a third of `dock version`,
# and two of them (the command and the monitor) are on every `dock run`.
# The price is ASLR for dock's own code and data (stack, heap and mmaps stay randomised).
# It is Go's default for linux/amd64 and what runc's and containerd's static builds ship
# with, and dock is memory-safe Rust the same way they are memory-safe Go.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(rustc -vV | sed -n 's/^host: //p')
seccomp=$(gcc -print-file-name=libseccomp.a)
if [ "$seccomp" = libseccomp.a ]; then
    echo "libseccomp.a not found: run scripts/setup.sh (libseccomp-dev)" >&2
    exit 1
fi
# An explicit --target keeps the flag off build scripts and proc macros, which cannot be static.
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$(dirname "$seccomp") \
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release -p cli --target "$target" "$@" >&2
dir=${CARGO_TARGET_DIR:-target}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
echo "$dir/$target/release/dock"
