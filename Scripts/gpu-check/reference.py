"""Reads GPU 0 through pynvml and nvidia-smi once a second, printing one JSON line per second
with the wall time, for compare.py."""
import json
import subprocess
import sys
import time

import pynvml

QUERY = "utilization.gpu,memory.used,temperature.gpu,power.draw,enforced.power.limit,clocks.sm,clocks.mem"

pynvml.nvmlInit()
handle = pynvml.nvmlDeviceGetHandleByIndex(0)
seconds = int(sys.argv[1])
next_tick = time.time()
for _ in range(seconds):
    now = time.time()
    utilization = pynvml.nvmlDeviceGetUtilizationRates(handle)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    sample = {
        "t": now,
        "pynvml": {
            "utilization.gpu": utilization.gpu,
            "memory.used": memory.used / 2**20,
            "temperature.gpu": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
            "power.draw": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
            "power.limit": pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000,
            "clocks.sm": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "clocks.mem": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "energy": pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000,
        },
    }
    # What a GPU may not support: each on its own, missing where it answers an error.
    optional = {
        "utilization.encoder": lambda: pynvml.nvmlDeviceGetEncoderUtilization(handle)[0],
        "utilization.decoder": lambda: pynvml.nvmlDeviceGetDecoderUtilization(handle)[0],
        "pcie.replays": lambda: pynvml.nvmlDeviceGetPcieReplayCounter(handle),
        "remapped.corrected": lambda: pynvml.nvmlDeviceGetRemappedRows(handle)[0],
        "violation.power": lambda: pynvml.nvmlDeviceGetViolationStatus(handle, pynvml.NVML_PERF_POLICY_POWER).violationTime / 1e9,
    }
    for name, read in optional.items():
        try:
            sample["pynvml"][name] = read()
        except pynvml.NVMLError:
            pass
    smi = subprocess.run(
        ["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits", "-i", "0"],
        capture_output=True, text=True).stdout.strip().split(", ")
    keys = ["utilization.gpu", "memory.used", "temperature.gpu", "power.draw", "power.limit", "clocks.sm", "clocks.mem"]
    sample["smi"] = {k: (float(v) if v.replace(".", "", 1).isdigit() else None) for k, v in zip(keys, smi)}
    print(json.dumps(sample), flush=True)
    next_tick += 1
    time.sleep(max(0, next_tick - time.time()))
