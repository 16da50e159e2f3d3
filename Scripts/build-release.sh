#!/usr/bin/env bash
# Builds boxcar and boxcar-bench for release into .build-release/release, laid out for a small
# resident size (the README's "The release build" has the figures):
# - the Swift libraries and libstdc++ are linked in, and every function and constant gets its own section;
# - Scripts/release/idle-order.txt names the functions an idle agent runs, which lld puts first,
#   side by side, so that the pages the kernel maps around each one it touches hold more of the
#   same (Scripts/release/profile-layout.py writes it from a run of the agent under callgrind);
# - its segments are aligned to 64 KB (-z max-page-size=65536), so Linux loads it at a 64 KB
#   boundary: the 64 KB the kernel maps around each page touched always holds the same code, where
#   a base chosen to the 4 KB page made an idle agent's resident size vary by a megabyte a start;
# - the executable exports no symbols (nothing dlopens it), so the dynamic loader does not read
#   a 4.7 MB table of every symbol linked in;
# - relative relocations are packed (-z pack-relative-relocs) where glibc reads them (2.36 on),
#   so the loader reads 46 KB of relocations instead of 3.2 MB.
# Arguments are passed on to `swift build`. BOXCAR_LAYOUT=none leaves the order out, BOXCAR_LAYOUT=FILE
# takes another. After the build, Scripts/release/check-layout.py says how much of the list the
# binary still has: lld is told to pass over names it does not find (a warning each would bury the
# build's output), so a list the code has moved away from is reported there.
set -euo pipefail
layout=${BOXCAR_LAYOUT:-$(dirname "$0")/release/idle-order.txt}
[ "$layout" = none ] || layout=$(realpath "$layout")
cd "$(dirname "$0")/.."

flags=(
  -c release --scratch-path .build-release --static-swift-stdlib
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections
  -Xswiftc -use-ld=lld -Xlinker --no-export-dynamic -Xlinker -z -Xlinker max-page-size=65536
)
if [ "$layout" != none ]; then
  # SwiftPM does not know the list is an input of the link: a copy named by its content makes a
  # changed list a changed link command, which relinks.
  copy=".build-release/idle-order-$(sha256sum "$layout" | cut -c1-16).txt"
  mkdir -p .build-release
  find .build-release -maxdepth 1 -name 'idle-order-*.txt' ! -name "${copy#.build-release/}" -delete
  cp "$layout" "$copy"
  flags+=(-Xlinker "--symbol-ordering-file=$PWD/$copy" -Xlinker --no-warn-symbol-ordering
          -Xlinker -T -Xlinker "$PWD/Scripts/release/local-helpers.ld")
fi

# libstdc++ is linked in too. The Swift runtime calls a few dozen of its functions (strings, hash
# tables, condition variables); loaded as a shared library, the loader reads its 600 KB of symbols
# and it sets up iostreams, 1 MB resident in an idle agent. The runtime's link asks for -lstdc++
# itself, twice, and a shared library named first would win over an archive named later: SwiftPM's
# link searches its own build folder before the compiler's, so a linker script called libstdc++.so
# there turns every -lstdc++ into the archive. Without the archive (no libstdc++-dev), it stays shared.
archive=$("$(dirname "$(readlink -f "$(command -v swift)")")/clang" -print-file-name=libstdc++.a 2>/dev/null || true)
products=".build-release/$(uname -m)-unknown-linux-gnu/release"
mkdir -p "$products"
if [ -f "$archive" ]; then
  echo "INPUT($archive)" > "$products/libstdc++.so"
else
  rm -f "$products/libstdc++.so"
  echo "build-release: no libstdc++.a; libstdc++ stays a shared library (about 1 MB more resident)" >&2
fi

glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}' || true)
if [ -n "$glibc" ] && [ "$(printf '%s\n2.36\n' "$glibc" | sort -V | head -1)" = 2.36 ]; then
  flags+=(-Xlinker -z -Xlinker pack-relative-relocs)
fi

swift build "${flags[@]}" "$@"

# What is installed (Config/boxcar.service): the agent without its debug info and symbols (88 MB
# instead of 212 MB), which go beside it in dist/boxcar.debug, where gdb finds them through the
# debug link. The build's own binary keeps them: stripped in place, it would be relinked by every
# later build.
if [ -f .build-release/release/boxcar ] && [ .build-release/release/boxcar -nt .build-release/dist/boxcar ]; then
  mkdir -p .build-release/dist
  objcopy --only-keep-debug .build-release/release/boxcar .build-release/dist/boxcar.debug
  objcopy --strip-all --add-gnu-debuglink=.build-release/dist/boxcar.debug .build-release/release/boxcar .build-release/dist/boxcar
fi
if [ "$layout" != none ]; then
  Scripts/release/check-layout.py --order "$layout" || true  # a stale list still links: say so, go on
fi
