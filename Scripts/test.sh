#!/usr/bin/env bash
# Runs every test: the Swift suites (unit and end-to-end) and the Python interop tests against a
# real agent. Installs what a fresh machine lacks first. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s libsqlite3-dev >/dev/null 2>&1; then
  echo "== installing libsqlite3-dev"
  apt-get update -qq && apt-get install -y -qq libsqlite3-dev
fi
echo "== installing the Python test requirements"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  -r Clients/python/requirements-dev.txt

echo "== swift test"
swift test

echo "== python interop tests"
# `swift test` built the agent; this only makes sure (and is a no-op when it did).
swift build --product boxcar
BOXCAR_BIN="$(swift build --show-bin-path)/boxcar" python3 -m pytest -q Tests/interop
