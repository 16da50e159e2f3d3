#!/usr/bin/env bash
# Packs what a GPU machine without Swift needs for the check into .gpu/ (ignored by git: add
# "/.gpu/" to .git/info/exclude), under 64 MB: the release boxcar and boxcar-bench, stripped and
# xz-compressed (88 and 78 MB as they are), SQLite and zlib in case that machine lacks them, and
# wheels of the grpcio and protobuf the SDK needs for Python 3.12 (the load logs through it). Run
# after Scripts/build-release.sh. There, `bash Scripts/gpu-check/unpack-and-run.sh [SECONDS]`.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/bin .gpu/lib .gpu/whl
xz -T2 -6 -c .build-release/dist/boxcar > .gpu/bin/boxcar.xz
objcopy --strip-all .build-release/release/boxcar-bench .gpu/bin/boxcar-bench
xz -T2 -6 -f .gpu/bin/boxcar-bench
cp -L /lib/x86_64-linux-gnu/libsqlite3.so.0 /lib/x86_64-linux-gnu/libz.so.1 .gpu/lib/
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl "grpcio==$(python3 -c 'import grpc; print(grpc.__version__)')" \
  "protobuf==$(python3 -c 'import google.protobuf as p; print(p.__version__)')" typing-extensions
du -sh .gpu
