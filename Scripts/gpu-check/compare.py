"""Boxcar's GPU 0 series against pynvml and nvidia-smi read in the same seconds.

For each reference second, the Boxcar point nearest in wallclock (within 0.6 s) is paired with it.
Prints a markdown table: the median of each source over the paired seconds, and the median and
largest |Boxcar − pynvml|. Counters (energy, NVLink) compare their rise between Boxcar's first
and last reads."""
import json
import statistics
import sys

# The machine's points, and the trainer's experiment's (its processes' GPU memory) where given.
host = json.load(open(sys.argv[1])) + (json.load(open(sys.argv[3])) if len(sys.argv) > 3 else [])
lines = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
describe = next((line["describe"] for line in lines if "describe" in line), {})
reference = [line for line in lines if "t" in line]

# Boxcar series of GPU 0: metric → (series name, a label text the key must hold, one it must not,
# scale to the reference unit). The video engines are hw.gpu.utilization with hw.gpu.task; GPM's
# shares are fractions where pynvml gives percent.
SERIES = {
    "utilization.gpu": ("hw.gpu.utilization", None, "hw.gpu.task", 100),
    "utilization.encoder": ("hw.gpu.utilization", 'hw.gpu.task="encoder"', None, 100),
    "utilization.decoder": ("hw.gpu.utilization", 'hw.gpu.task="decoder"', None, 100),
    "memory.used": ("hw.gpu.memory.usage", None, None, 1 / 2**20),
    "temperature.gpu": ("hw.temperature", None, None, 1),
    "power.draw": ("hw.power", None, None, 1),
    "power.limit": ("hw.power.limit", None, None, 1),
    "clocks.sm": ("hw.gpu.clock", 'clock="sm"', None, 1e-6),
    "clocks.mem": ("hw.gpu.clock", 'clock="memory"', None, 1e-6),
    "energy": ("hw.energy", None, None, 1),
    "pcie.replays": ("hw.gpu.pcie.replays", None, None, 1),
    "remapped.corrected": ("hw.gpu.memory.remapped_rows", 'error.type="corrected"', None, 1),
    "remapped.uncorrected": ("hw.gpu.memory.remapped_rows", 'error.type="uncorrected"', None, 1),
    "retired.single_bit": ("hw.gpu.memory.retired_pages", 'cause="single_bit_ecc"', None, 1),
    # The share of time held down by power or heat, against pynvml's violation counter's rise a second.
    "violation.power.rate": ("hw.gpu.violation_time.rate", 'reason="power"', None, 1),
    "violation.thermal.rate": ("hw.gpu.violation_time.rate", 'reason="thermal"', None, 1),
    "gpm.sm.activity": ("hw.gpu.sm.activity", None, None, 100),
    "gpm.sm.occupancy": ("hw.gpu.sm.occupancy", None, None, 100),
    "gpm.tensor.activity": ("hw.gpu.tensor.activity", None, None, 100),
    "gpm.dram.activity": ("hw.gpu.dram.activity", None, None, 100),
    "gpm.fp64.activity": ("hw.gpu.pipe.activity", 'pipe="fp64"', None, 100),
    "gpm.fp32.activity": ("hw.gpu.pipe.activity", 'pipe="fp32"', None, 100),
    "gpm.fp16.activity": ("hw.gpu.pipe.activity", 'pipe="fp16"', None, 100),
    # PCIe in MiB/s: against GPM's over the second, and the driver's 20 ms sample.
    "pcie.tx": ("hw.gpu.io.rate", 'network.io.direction="transmit"', None, 1 / 2**20),
    "pcie.rx": ("hw.gpu.io.rate", 'network.io.direction="receive"', None, 1 / 2**20),
    "pcie.tx.sampled": ("hw.gpu.io.rate", 'network.io.direction="transmit"', None, 1 / 2**20),
    "pcie.rx.sampled": ("hw.gpu.io.rate", 'network.io.direction="receive"', None, 1 / 2**20),
}

# Each process pynvml saw on the GPU, against Boxcar's series for its pid (MiB).
pids = sorted({name.split(".")[1] for sample in reference for name in sample["pynvml"] if name.startswith("process.")})
for pid in pids:
    SERIES[f"process.{pid}"] = ("hw.gpu.process.memory.usage", f'process.pid="{pid}"', None, 1 / 2**20)
# Each NVLink counter pynvml read, against Boxcar's cumulative series (KiB).
for name in sorted({n for sample in reference for n in sample["pynvml"] if n.startswith("nvlink.")}):
    _, link, direction, _ = name.split(".")
    SERIES[name] = ("hw.gpu.nvlink.io", f'network.io.direction="{direction}"', None, 1 / 1024)

boxcar = {}
for point in host:
    key = point["key"]
    if 'index="0"' not in key:
        continue
    for metric, (name, required, excluded, scale) in SERIES.items():
        if metric.startswith("nvlink.") and f'nvlink="{metric.split(".")[1]}"' not in key:
            continue
        if (key.startswith(f"system/{name}{{") and (required is None or required in key)
                and (excluded is None or excluded not in key)):
            boxcar.setdefault(metric, []).append((point["wallclock"] / 1e9, point["value"] * scale))

for previous, sample in zip(reference, reference[1:]):
    for reason in ("power", "thermal"):
        before, now = previous["pynvml"].get(f"violation.{reason}"), sample["pynvml"].get(f"violation.{reason}")
        if before is not None and now is not None and sample["t"] > previous["t"]:
            sample["pynvml"][f"violation.{reason}.rate"] = (now - before) / (sample["t"] - previous["t"])

def interpolate(points, t):
    """A counter read at the times of `points` (sorted), at time t between two of them."""
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t0 <= t <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return float("nan")

def nearest(series, t):
    best = min(series, key=lambda p: abs(p[0] - t), default=None)
    return best[1] if best and abs(best[0] - t) <= 0.6 else None

print("| metric | boxcar median | pynvml median | nvidia-smi median | median abs(boxcar-pynvml) | max abs(boxcar-pynvml) | paired seconds |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for metric in SERIES:
    series = boxcar.get(metric, [])
    pairs = []
    for sample in reference:
        b = nearest(series, sample["t"])
        if b is not None:
            pairs.append((b, sample["pynvml"].get(metric), sample.get("smi", {}).get(metric)))
    if not pairs:
        print(f"| {metric} | (no Boxcar series) | | | | | 0 |")
        continue
    if metric == "energy" or metric.startswith("nvlink."):
        # A counter's rise between Boxcar's first and last reads in the reference's span, against
        # pynvml's over the same instants (interpolated between its reads a second apart): the
        # slow counters are read every 10 s, so the nearest second would be up to 0.6 s off.
        counted = [(sample["t"], sample["pynvml"][metric]) for sample in reference if metric in sample["pynvml"]]
        inside = sorted({point for point in series if counted and counted[0][0] <= point[0] <= counted[-1][0]})
        if len(inside) < 2:
            print(f"| {metric} increase | (too few reads) | | | | | {len(inside)} |")
            continue
        (t0, b0), (t1, b1) = inside[0], inside[-1]
        p = interpolate(counted, t1) - interpolate(counted, t0)
        print(f"| {metric} increase over {t1 - t0:.1f} s | {b1 - b0:.1f} | {p:.1f} | n/a | {abs(b1 - b0 - p):.1f} | | {len(inside)} reads |")
        continue
    diffs = [abs(b - p) for b, p, _ in pairs if p is not None]
    if not diffs:
        print(f"| {metric} | {statistics.median(b for b, _, _ in pairs):.1f} | (pynvml: not supported) | | | | {len(pairs)} |")
        continue
    smi = [s for _, _, s in pairs if s is not None]
    fmt = lambda v: f"{v:.3f}" if metric.startswith("violation.") else f"{v:.1f}"
    print(f"| {metric} | {fmt(statistics.median(b for b, _, _ in pairs))} | "
          f"{fmt(statistics.median(p for _, p, _ in pairs if p is not None))} | "
          f"{fmt(statistics.median(smi)) if smi else 'n/a'} | {fmt(statistics.median(diffs))} | {fmt(max(diffs))} | {len(pairs)} |")

# The trainer's steps (`boxcar steps --json`, where given): their energy added up against pynvml's
# counter's rise over the same time, for the steps inside the reference's span and for those
# between two marks (the counter's reads as steps began) once the load has settled, where their sum
# is the counters' own; and the
# same steps' energy from the ticks' power alone (the power over each tick's second before it).
def tick_energy(begin, end):
    power = sorted(boxcar.get("power.draw", []))
    return sum(watts * (min(end, t1) - max(begin, t0)) for (t0, _), (t1, watts) in zip(power, power[1:]) if min(end, t1) > max(begin, t0))

# A step's energy is every GPU's; pynvml's counter here is GPU 0's.
gpus = {key.split('index="')[1].split('"')[0] for key in {point["key"] for point in host}
        if key.startswith("system/hw.power{") and 'index="' in key}
if len(sys.argv) > 4 and len(gpus) > 1:
    print(f"steps' energy: not compared ({len(gpus)} GPUs; the reference reads GPU 0)")
elif len(sys.argv) > 4:
    costs = json.load(open(sys.argv[4]))
    counted = [(sample["t"], sample["pynvml"]["energy"]) for sample in reference if "energy" in sample["pynvml"]]
    known = [step for step in costs["steps"] if step.get("energy_joules") is not None and counted
             and counted[0][0] <= step["start"] / 1e9 and step["end"] / 1e9 <= counted[-1][0]]
    # The marks from 3 s into the load: as it starts, the power climbs from idle within a second,
    # and pynvml's reads a second apart, taken as a straight line between, are off by 100 J there.
    settled = (costs["steps"][0]["start"] / 1e9 + 3) if costs["steps"] else 0
    marks = sorted({point["step"] for point in host
                    if point["key"].startswith("system/step/hw.energy{") and point["wallclock"] / 1e9 >= settled})
    spanned = [step for step in known if len(marks) > 1 and marks[0] < step["step"] <= marks[-1]]
    for label, inside in [("steps' energy", known), ("steps' energy between marks", spanned)]:
        if not inside:
            continue
        begin, end = inside[0]["start"] / 1e9, inside[-1]["end"] / 1e9
        b = sum(step["energy_joules"] for step in inside)
        p = interpolate(counted, end) - interpolate(counted, begin)
        t = tick_energy(begin, end)
        print(f"| {label}, {len(inside)} steps over {end - begin:.1f} s | {b:.1f} | {p:.1f} | n/a | {abs(b - p):.1f} | | {len(marks)} marks |")
        print(f"| the same from the ticks' power | {t:.1f} | {p:.1f} | n/a | {abs(t - p):.1f} | | |")
    print(f"steps: {len(costs['steps'])}, joules a step {costs.get('joules_per_step')}, interpolated {costs.get('interpolated')}")

print(f"\nThe GPU: {json.dumps(describe)}")
errors = {}
for sample in reference:
    for name, text in sample.get("errors", {}).items():
        errors.setdefault(name, text)
print(f"pynvml's errors (the first of each): {json.dumps(errors)}")

keys = sorted({p["key"] for p in host if "hw." in p["key"]})
print(f"\nBoxcar GPU series ({len(keys)}):")
for key in keys:
    print(" ", key)
