"""Boxcar's GPU 0 series against pynvml and nvidia-smi read in the same seconds.

For each reference second, the Boxcar point nearest in wallclock (within 0.6 s) is paired with it.
Prints a markdown table: the median of each source over the paired seconds, and the median and
largest |Boxcar − pynvml|. Energy compares the increase over the paired seconds."""
import json
import statistics
import sys

host = json.load(open(sys.argv[1]))
reference = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]

# Boxcar series of GPU 0: (the key's start, a text it must not hold) → (metric, scale to the
# reference unit). The video engines are hw.gpu.utilization with hw.gpu.task.
SERIES = {
    ("hw.gpu.utilization{hw.id", None): ("utilization.gpu", 100),
    ('hw.gpu.utilization{hw.gpu.task="encoder"', None): ("utilization.encoder", 100),
    ('hw.gpu.utilization{hw.gpu.task="decoder"', None): ("utilization.decoder", 100),
    ("hw.gpu.memory.usage{", None): ("memory.used", 1 / 2**20),
    ("hw.temperature{", None): ("temperature.gpu", 1),
    ("hw.power{", None): ("power.draw", 1),
    ("hw.power.limit{", None): ("power.limit", 1),
    ('hw.gpu.clock{clock="sm"', None): ("clocks.sm", 1e-6),
    ('hw.gpu.clock{clock="memory"', None): ("clocks.mem", 1e-6),
    ("hw.energy{", None): ("energy", 1),
    ("hw.gpu.pcie.replays{", None): ("pcie.replays", 1),
    ('hw.gpu.memory.remapped_rows{error.type="corrected"', None): ("remapped.corrected", 1),
}

boxcar = {}
for point in host:
    key = point["key"]
    if 'index="0"' not in key:
        continue
    for (prefix, excluded), (metric, scale) in SERIES.items():
        if key.startswith("system/" + prefix) and (excluded is None or excluded not in key):
            boxcar.setdefault(metric, []).append((point["wallclock"] / 1e9, point["value"] * scale))
    # The share of time held down by power, against pynvml's violation counter's rise a second.
    if key.startswith("system/hw.gpu.violation_time.rate{") and 'reason="power"' in key:
        boxcar.setdefault("violation.power.rate", []).append((point["wallclock"] / 1e9, point["value"]))

for previous, sample in zip(reference, reference[1:]):
    before, now = previous["pynvml"].get("violation.power"), sample["pynvml"].get("violation.power")
    if before is not None and now is not None and sample["t"] > previous["t"]:
        sample["pynvml"]["violation.power.rate"] = (now - before) / (sample["t"] - previous["t"])

def nearest(series, t):
    best = min(series, key=lambda p: abs(p[0] - t), default=None)
    return best[1] if best and abs(best[0] - t) <= 0.6 else None

print("| metric | boxcar median | pynvml median | nvidia-smi median | median abs(boxcar-pynvml) | max abs(boxcar-pynvml) | paired seconds |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for metric in ["utilization.gpu", "memory.used", "temperature.gpu", "power.draw", "power.limit", "clocks.sm", "clocks.mem",
               "energy", "utilization.encoder", "utilization.decoder", "pcie.replays", "remapped.corrected", "violation.power.rate"]:
    series = boxcar.get(metric, [])
    pairs = []
    for sample in reference:
        b = nearest(series, sample["t"])
        if b is not None:
            pairs.append((b, sample["pynvml"].get(metric), sample.get("smi", {}).get(metric)))
    if not pairs:
        print(f"| {metric} | (no Boxcar series) | | | | | 0 |")
        continue
    if metric == "energy":
        b = pairs[-1][0] - pairs[0][0]
        p = pairs[-1][1] - pairs[0][1]
        print(f"| energy increase (J) | {b:.1f} | {p:.1f} | n/a | {abs(b - p):.1f} | | {len(pairs)} |")
        continue
    diffs = [abs(b - p) for b, p, _ in pairs if p is not None]
    if not diffs:
        print(f"| {metric} | {statistics.median(b for b, _, _ in pairs):.1f} | (pynvml: not supported) | | | | {len(pairs)} |")
        continue
    smi = [s for _, _, s in pairs if s is not None]
    fmt = lambda v: f"{v:.3f}" if metric == "violation.power.rate" else f"{v:.1f}"
    print(f"| {metric} | {fmt(statistics.median(b for b, _, _ in pairs))} | "
          f"{fmt(statistics.median(p for _, p, _ in pairs if p is not None))} | "
          f"{fmt(statistics.median(smi)) if smi else 'n/a'} | {fmt(statistics.median(diffs))} | {fmt(max(diffs))} | {len(pairs)} |")

keys = sorted({p["key"] for p in host if "hw." in p["key"]})
print(f"\nBoxcar GPU series ({len(keys)}):")
for key in keys:
    print(" ", key)
