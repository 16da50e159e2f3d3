#!/usr/bin/env bash
# The real-GPU check of the NVML sensor (issue "Machine sensors"), for a machine with an NVIDIA
# GPU, PyTorch, nvidia-ml-py and nvidia-smi. Usage: run.sh BOXCAR_BINARY [SECONDS]
# Runs `boxcar agent` (sampling every second) beside a PyTorch bf16 matrix-multiply load, while
# reference.py reads pynvml and nvidia-smi in the same seconds, then prints compare.py's table.
# Writes everything under $OUT (or ./gpu-check-out).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$1"
seconds="${2:-30}"
out="${OUT:-./gpu-check-out}"
mkdir -p "$out"
work="$(mktemp -d)"
chmod 700 "$work"

nvidia-smi -L | tee "$out/nvidia-smi-L.txt"
"$bin" agent --db "$work/boxcar.db" --socket "$work/agent.sock" --sample-interval 1 \
  > "$out/agent.log" 2>&1 &
agent=$!
for _ in $(seq 100); do [ -S "$work/agent.sock" ] && break; sleep 0.1; done
sleep 2  # two idle samples before the load

python3 "$here/reference.py" $((seconds + 4)) > "$out/reference.jsonl" &
reference=$!
python3 "$here/load.py" "$seconds" > "$out/load.txt" 2>&1
wait "$reference"
sleep 1

kill -TERM "$agent"
wait "$agent"
echo "agent exit status: $?" >> "$out/agent.log"
"$bin" metrics host --json --db "$work/boxcar.db" > "$out/boxcar-host.json"
"$bin" events host --json --db "$work/boxcar.db" > "$out/boxcar-events.json"
python3 "$here/compare.py" "$out/boxcar-host.json" "$out/reference.jsonl" | tee "$out/table.md"
echo "--- agent log"; cat "$out/agent.log"
echo "--- load"; cat "$out/load.txt"
