#!/usr/bin/env bash
# The real-GPU check of the NVML sensor (issues "Machine sensors" and 17), for a machine with an
# NVIDIA GPU, PyTorch, nvidia-ml-py and nvidia-smi. Usage: run.sh BOXCAR_BINARY [SECONDS]
# Runs `boxcar agent` (sampling every second) beside a PyTorch bf16 matrix-multiply load, while
# reference.py reads pynvml and nvidia-smi (and `nvidia-smi dmon` its GPM metrics) in the same
# seconds, then prints compare.py's table, `boxcar doctor`, and the agent's CPU over the run.
# With boxcar-bench beside the binary, it also times a sensor tick with the real driver.
# Writes everything under $OUT (or ./gpu-check-out).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$1"
seconds="${2:-30}"
out="${OUT:-./gpu-check-out}"
mkdir -p "$out"
work="$(mktemp -d)"
chmod 700 "$work"

nvidia-smi -L
"$bin" agent --db "$work/boxcar.db" --socket "$work/agent.sock" --sample-interval 1 \
  > "$out/agent.log" 2>&1 &
agent=$!
for _ in $(seq 100); do [ -S "$work/agent.sock" ] && break; sleep 0.1; done
# Each of the agent's threads: id, name, utime + stime (clock ticks); the diff of two says which
# thread the CPU went to.
threads() {
  for task in /proc/$agent/task/*; do
    printf '%s\t%s\t%s\n' "${task##*/}" "$(cat "$task/comm")" "$(sed 's/.*) //' "$task/stat" | awk '{print $12 + $13}')"
  done > "$1"
}
spent() {
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys
read = lambda path: {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open(path)}
before, after, seconds = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
tick = os.sysconf("SC_CLK_TCK")
rows = sorted(((int(v[1]) - int(before.get(t, [v[0], 0])[1])) / tick, v[0]) for t, v in after.items())
print(f"{sum(r[0] for r in rows) * 1000:.0f} ms over {seconds:.0f} s ({sum(r[0] for r in rows) / seconds * 100:.2f} % of a core):",
      ", ".join(f"{name} {ms * 1000:.0f} ms" for ms, name in reversed(rows) if ms > 0))
PY
}
sleep 2  # two idle samples, then 20 seconds idle measured, before the load
threads "$work/idle-start"; sleep 20; threads "$work/idle-end"
threads "$work/load-start"

python3 "$here/reference.py" $((seconds + 4)) > "$out/reference.jsonl" 2> "$out/reference.err" &
reference=$!
# GPM through nvidia-smi too: SM activity, occupancy, tensor activity, DRAM bandwidth (percent).
nvidia-smi dmon -i 0 -s u -o T --gpm-metrics 2,3,5,10 -c $((seconds + 2)) > "$out/dmon.txt" 2>&1 &
dmon=$!
PYTHONPATH="$here/../../Clients/python:${PYTHONPATH:-}" BOXCAR_SOCKET="$work/agent.sock" \
  python3 "$here/load.py" "$seconds" > "$out/load.txt" 2>&1
wait "$reference" "$dmon"
sleep 1
threads "$work/load-end"

kill -TERM "$agent"
wait "$agent"
echo "agent exit status: $?" >> "$out/agent.log"
"$bin" metrics host --json --db "$work/boxcar.db" > "$out/boxcar-host.json"
# The trainer's experiment (load.py's, named gpu-check in boxcar): its process's GPU memory.
experiment="$(python3 -c 'import hashlib; print(hashlib.sha1(b"gpu-check" + b"boxcar").hexdigest())')"
"$bin" metrics "$experiment" --json --db "$work/boxcar.db" > "$out/boxcar-experiment.json"
# What each of its steps cost (`boxcar steps`): their energy against pynvml's counter.
"$bin" steps "$experiment" --json --db "$work/boxcar.db" > "$out/steps.json"
python3 "$here/compare.py" "$out/boxcar-host.json" "$out/reference.jsonl" "$out/boxcar-experiment.json" "$out/steps.json" \
  | tee "$out/table.md"
echo "--- the machine's events"; "$bin" events host --db "$work/boxcar.db" 2>&1 | head -20
echo "--- the agent's CPU, idle: $(spent "$work/idle-start" "$work/idle-end" 20)"
echo "--- the agent's CPU while the load ran: $(spent "$work/load-start" "$work/load-end" $((seconds + 5)))"
echo "--- nvidia-smi dmon (GPM metrics)"; cat "$out/dmon.txt"
echo "--- reference.py's errors"; cat "$out/reference.err"; rm -f "$out/reference.err"
echo "--- boxcar doctor"; "$bin" doctor --db "$work/boxcar.db" 2>&1
echo "--- agent log"; cat "$out/agent.log"
echo "--- load"; cat "$out/load.txt"
bench="$(dirname "$bin")/boxcar-bench"
if [ -x "$bench" ]; then
  echo "--- a sensor tick with the real driver (boxcar-bench sensors)"
  "$bench" sensors --sensor-ticks 300 --nvml-library libnvidia-ml.so.1 2>&1 | tail -3
fi
rm -rf "$work"
