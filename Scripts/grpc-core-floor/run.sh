#!/usr/bin/env bash
# What the gRPC C core (Debian's libgrpc, the stack grpcio wraps) costs a unary call, against the
# agent, with the same grpcio client in the same run: the "another maintained gRPC server stack"
# of issue 19, measured rather than guessed. Not part of the tests: a probe for a decision.
#
#   Scripts/grpc-core-floor/run.sh [ROUNDS]     (needs Scripts/build-release.sh first)
#
# Prints, for each round, the agent's and the C server's calls/s, p50, p99 and server CPU a call
# with 1 and 16 calls in flight, then each server's resident memory while idle.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-3}
agent=../../.build-release/release/boxcar
[ -x "$agent" ] || { echo "build the release first: Scripts/build-release.sh" >&2; exit 1; }
if ! pkg-config --exists grpc 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq libgrpc-dev pkg-config > /dev/null
fi
python3 -c "import grpc" 2>/dev/null || python3 -m pip install -q grpcio protobuf
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
gcc -O2 -o "$work/server" server.c $(pkg-config --cflags --libs grpc)
"$work/server" "unix:$work/core.sock" 2> "$work/server.log" &
core=$!
"$agent" agent --db "$work/agent.db" --socket "$work/agent.sock" --sample-interval 0 2> "$work/agent.log" &
boxcar=$!
for _ in $(seq 100); do [ -S "$work/core.sock" ] && [ -S "$work/agent.sock" ] && break; sleep 0.1; done
for round in $(seq "$rounds"); do
  for in_flight in 1 16; do
    calls=$([ "$in_flight" = 1 ] && echo 4000 || echo 12000)
    echo "round $round agent  $(python3 client.py "unix:$work/agent.sock" "$boxcar" "$in_flight" "$calls")"
    echo "round $round c-core $(python3 client.py "unix:$work/core.sock" "$core" "$in_flight" "$calls")"
  done
done
# Resident memory a fresh server holds idle: the agent's includes its store and sensors' pages.
kill "$core" "$boxcar"; wait "$core" "$boxcar" 2>/dev/null || true
"$work/server" "unix:$work/idle.sock" 2> /dev/null &
idle=$!
sleep 2
echo "c-core server idle: $(grep -E 'VmRSS|RssFile' /proc/$idle/status | tr -s ' \t' ' ' | paste -sd ';')"
echo "  its largest mappings (KiB): $(awk '/^[0-9a-f]+-/{f=$6} /^Rss:/{r[f]+=$2} END{for(k in r) if(r[k]>200) print r[k], k}' /proc/$idle/smaps | sort -rn | head -4 | paste -sd ';')"
