#!/usr/bin/env bash
# Builds boxcar and boxcar-bench for release into .build-release/release, laid out for a small
# resident size (the README's "The release build" has the figures):
# - the Swift libraries are linked in, and every function and constant gets its own section;
# - Scripts/release/idle-layout.ld puts the sections an idle agent uses first, side by side, so
#   the pages the kernel maps around each one it touches hold more of the same
#   (Scripts/release/profile-layout.py writes it from a run of the agent);
# - the executable exports no symbols (nothing dlopens it), so the dynamic loader does not read
#   a 4.7 MB table of every symbol linked in;
# - relative relocations are packed (-z pack-relative-relocs) where glibc reads them (2.36 on),
#   so the loader reads 46 KB of relocations instead of 3.2 MB.
# Arguments are passed on to `swift build`. BOXCAR_LAYOUT=none leaves the layout out.
set -euo pipefail
layout=${BOXCAR_LAYOUT:-$(dirname "$0")/release/idle-layout.ld}
[ "$layout" = none ] || layout=$(realpath "$layout")
cd "$(dirname "$0")/.."

flags=(
  -c release --scratch-path .build-release --static-swift-stdlib
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections
  -Xswiftc -use-ld=lld -Xlinker --no-export-dynamic
)
if [ "$layout" != none ]; then
  # SwiftPM does not know the script is an input of the link: a copy named by its content makes
  # a changed layout a changed link command, which relinks.
  copy=".build-release/idle-layout-$(sha256sum "$layout" | cut -c1-16).ld"
  mkdir -p .build-release
  find .build-release -maxdepth 1 -name 'idle-layout-*.ld' ! -name "${copy#.build-release/}" -delete
  cp "$layout" "$copy"
  flags+=(-Xlinker -T -Xlinker "$PWD/$copy")
fi

glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}' || true)
if [ -n "$glibc" ] && [ "$(printf '%s\n2.36\n' "$glibc" | sort -V | head -1)" = 2.36 ]; then
  flags+=(-Xlinker -z -Xlinker pack-relative-relocs)
fi

exec swift build "${flags[@]}" "$@"
