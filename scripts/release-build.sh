#!/usr/bin/env bash
# Builds the release dock and prints its path: one static executable, glibc and libseccomp
# linked in, at a fixed address (not PIE). Each dock process (a command, a container's
# monitor) then starts with no loader, no shared libraries and none of a static-pie's 30,000
# relative relocations, whose writes copy 127 pages of .data.rel.ro at every start (glibc's
# few IRELATIVE ones remain). That is about 0.7 ms per process, a third of `dock --version`,
# and two of them (the command and the monitor) are on every `dock run`.
# The price is ASLR for dock's own code and data (stack, heap and mmaps stay randomised), in
# every dock process: commands, monitors (which carry a container's output) and the API
# server. It is a trade-off, taken because the code at a fixed address is mostly safe Rust,
# as Go takes it by default for its linux/amd64 executables; glibc, libseccomp and dock's
# own `unsafe` blocks are C and unchecked code all the same.
# Its code also comes in 2 MiB pages where the kernel can give them: every segment starts at a
# 2 MiB boundary of file and address space (lld's flags below), and the executable is installed
# so that the page cache holds it in 2 MiB folios. A process then maps its code a huge page per
# fault rather than 64 KiB (the kernel's fault-around), and unmaps a few pages at exit rather
# than thousands. Where the page cache holds smaller folios (the file read back after it was
# dropped) faults map less at a time again: the layout only costs padding.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(rustc -vV | sed -n 's/^host: //p')
seccomp=$(gcc -print-file-name=libseccomp.a)
if [ "$seccomp" = libseccomp.a ]; then
    echo "libseccomp.a not found: run scripts/setup.sh (libseccomp-dev)" >&2
    exit 1
fi
# An explicit --target keeps the flags off build scripts and proc macros, which can be neither
# static nor at a fixed address.
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$(dirname "$seccomp") \
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static \
        -C link-arg=-Wl,-z,max-page-size=0x200000 -C link-arg=-Wl,-z,separate-loadable-segments" \
    cargo build --release -p cli --target "$target" "$@" >&2
dir=${CARGO_TARGET_DIR:-target}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
# Installed by 2 MiB writes into a new file: the page cache takes each write as one 2 MiB folio
# (the linker writes its output through a mapping, in 4 KiB pages). A new file renamed into
# place, so that running monitors keep the one they were started from.
mkdir -p "$dir/bin"
new=$(mktemp "$dir/bin/.dock.XXXXXX")
trap 'rm -f "$new"' EXIT
dd if="$dir/$target/release/dock" of="$new" bs=2M status=none
chmod 755 "$new"
mv -f "$new" "$dir/bin/dock"
echo "$dir/bin/dock"
