"""Boxcar's GPU 0 series against pynvml and nvidia-smi read in the same seconds.

For each reference second, the Boxcar point nearest in wallclock (within 0.6 s) is paired with it.
Prints a markdown table: the median of each source over the paired seconds, and the median and
largest |Boxcar − pynvml|. Energy compares the increase over the paired seconds."""
import json
import statistics
import sys

host = json.load(open(sys.argv[1]))
reference = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]

# Boxcar series of GPU 0 → (metric, scale to the reference unit)
SERIES = {
    "hw.gpu.utilization{": ("utilization.gpu", 100),
    "hw.gpu.memory.usage{": ("memory.used", 1 / 2**20),
    "hw.temperature{": ("temperature.gpu", 1),
    "hw.power{": ("power.draw", 1),
    "hw.power.limit{": ("power.limit", 1),
    'hw.gpu.clock{clock="sm"': ("clocks.sm", 1e-6),
    'hw.gpu.clock{clock="memory"': ("clocks.mem", 1e-6),
    "hw.energy{": ("energy", 1),
}

boxcar = {}
for point in host:
    key = point["key"]
    if 'index="0"' not in key:
        continue
    for prefix, (metric, scale) in SERIES.items():
        if key.startswith("system/" + prefix):
            boxcar.setdefault(metric, []).append((point["wallclock"] / 1e9, point["value"] * scale))

def nearest(series, t):
    best = min(series, key=lambda p: abs(p[0] - t), default=None)
    return best[1] if best and abs(best[0] - t) <= 0.6 else None

print("| metric | boxcar median | pynvml median | nvidia-smi median | median abs(boxcar-pynvml) | max abs(boxcar-pynvml) | paired seconds |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for metric in ["utilization.gpu", "memory.used", "temperature.gpu", "power.draw", "power.limit", "clocks.sm", "clocks.mem", "energy"]:
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
    smi = [s for _, _, s in pairs if s is not None]
    fmt = lambda v: f"{v:.1f}"
    print(f"| {metric} | {fmt(statistics.median(b for b, _, _ in pairs))} | "
          f"{fmt(statistics.median(p for _, p, _ in pairs if p is not None))} | "
          f"{fmt(statistics.median(smi)) if smi else 'n/a'} | {fmt(statistics.median(diffs))} | {fmt(max(diffs))} | {len(pairs)} |")

keys = sorted({p["key"] for p in host if "hw." in p["key"]})
print(f"\nBoxcar GPU series ({len(keys)}):")
for key in keys:
    print(" ", key)
