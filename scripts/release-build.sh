#!/usr/bin/env bash
# Builds the release dock and prints its path: a static-pie executable, glibc and libseccomp
# linked in and still position-independent (ASLR as before). With no loader and no shared
# libraries to map, relocate and look symbols up in, each dock process (a command, a
# container's monitor) starts about half a millisecond sooner than a dynamically linked one.
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
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release -p cli --target "$target" "$@" >&2
dir=${CARGO_TARGET_DIR:-target}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
echo "$dir/$target/release/dock"
