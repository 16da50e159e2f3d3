"""Reads GPU 0 through pynvml and nvidia-smi once a second, printing one JSON line per second
with the wall time, for compare.py. The first line describes the GPU (its NVLink links, GPM)."""
import json
import subprocess
import sys
import time

import pynvml

QUERY = "utilization.gpu,memory.used,temperature.gpu,power.draw,enforced.power.limit,clocks.sm,clocks.mem"

# NVML_GPM_METRIC_* ids, by the names compare.py pairs with Boxcar's series.
GPM = {"gpm.sm.activity": 2, "gpm.sm.occupancy": 3, "gpm.tensor.activity": 5, "gpm.dram.activity": 10,
       "gpm.fp64.activity": 11, "gpm.fp32.activity": 12, "gpm.fp16.activity": 13,
       "pcie.tx": 20, "pcie.rx": 21}  # PCIe in MiB/s

pynvml.nvmlInit()
handle = pynvml.nvmlDeviceGetHandleByIndex(0)
seconds = int(sys.argv[1])


def attempt(read):
    """What a GPU (or this pynvml) may not support: ("error", the words) where the read fails."""
    try:
        return read()
    except (pynvml.NVMLError, AttributeError) as error:
        return ("error", str(error) or type(error).__name__)


def link_state(link):
    try:
        return pynvml.nvmlDeviceGetNvLinkState(handle, link)
    except pynvml.NVMLError as error:
        return str(error)


links = {}
for link in range(18):  # NVML_NVLINK_MAX_LINKS on Hopper
    state = link_state(link)
    links[link] = state
    if not isinstance(state, int):
        break
active = [link for link, state in links.items() if state == 1]
gpm_support = attempt(lambda: pynvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice)
print(json.dumps({"describe": {
    "name": pynvml.nvmlDeviceGetName(handle), "driver": pynvml.nvmlSystemGetDriverVersion(),
    "nvml": pynvml.nvmlSystemGetNVMLVersion(), "nvlink_states": links, "gpm_supported": gpm_support,
}}), flush=True)

gpm_samples = None
if gpm_support == 1:
    gpm_samples = [pynvml.nvmlGpmSampleGet(handle, pynvml.nvmlGpmSampleAlloc()), pynvml.nvmlGpmSampleAlloc()]


def gpm_metrics():
    """The GPM metrics between last second's sample and this one's, in percent."""
    previous, current = gpm_samples
    pynvml.nvmlGpmSampleGet(handle, current)
    gpm_samples.reverse()
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(GPM)
    request.sample1 = previous
    request.sample2 = current
    for index, metric in enumerate(GPM.values()):
        request.metrics[index].metricId = metric
    pynvml.nvmlGpmMetricsGet(request)
    return {name: request.metrics[index].value for index, name in enumerate(GPM) if request.metrics[index].nvmlReturn == 0}


next_tick = time.time()
for _ in range(seconds):
    now = time.time()
    utilization = pynvml.nvmlDeviceGetUtilizationRates(handle)
    # Version 2, as the agent and nvidia-smi read it: used without what the driver reserves.
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
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
    optional = {
        "utilization.encoder": lambda: pynvml.nvmlDeviceGetEncoderUtilization(handle)[0],
        "utilization.decoder": lambda: pynvml.nvmlDeviceGetDecoderUtilization(handle)[0],
        "pcie.replays": lambda: pynvml.nvmlDeviceGetPcieReplayCounter(handle),
        "remapped.corrected": lambda: pynvml.nvmlDeviceGetRemappedRows(handle)[0],
        "remapped.uncorrected": lambda: pynvml.nvmlDeviceGetRemappedRows(handle)[1],
        "retired.single_bit": lambda: len(pynvml.nvmlDeviceGetRetiredPages(
            handle, pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS)),
        "violation.power": lambda: pynvml.nvmlDeviceGetViolationStatus(handle, pynvml.NVML_PERF_POLICY_POWER).violationTime / 1e9,
        "violation.thermal": lambda: pynvml.nvmlDeviceGetViolationStatus(handle, pynvml.NVML_PERF_POLICY_THERMAL).violationTime / 1e9,
        # The driver's 20 ms sample, KB/s, in MiB/s.
        "pcie.tx.sampled": lambda: pynvml.nvmlDeviceGetPcieThroughput(handle, pynvml.NVML_PCIE_UTIL_TX_BYTES) / 1024,
        "pcie.rx.sampled": lambda: pynvml.nvmlDeviceGetPcieThroughput(handle, pynvml.NVML_PCIE_UTIL_RX_BYTES) / 1024,
    }
    for name, read in optional.items():
        value = attempt(read)
        if isinstance(value, tuple):
            sample.setdefault("errors", {})[name] = value[1]
        else:
            sample["pynvml"][name] = value
    # NVLink: each active link's KiB sent and received (field values 138 and 139, by link).
    if active:
        fields = attempt(lambda: pynvml.nvmlDeviceGetFieldValues(handle, [(f, link) for link in active for f in (138, 139)]))
        if isinstance(fields, tuple):
            sample.setdefault("errors", {})["nvlink"] = fields[1]
        else:
            for value in fields:
                if value.nvmlReturn == 0:
                    direction = "transmit" if value.fieldId == 138 else "receive"
                    sample["pynvml"][f"nvlink.{value.scopeId}.{direction}.kib"] = value.value.ullVal
    # The processes using the GPU, by pid: MiB each.
    processes = attempt(lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
    if isinstance(processes, list):
        for process in processes:
            if process.usedGpuMemory is not None:
                sample["pynvml"][f"process.{process.pid}"] = process.usedGpuMemory / 2**20
    if gpm_samples is not None:
        metrics = attempt(gpm_metrics)
        if isinstance(metrics, tuple):
            sample.setdefault("errors", {})["gpm"] = metrics[1]
        else:
            sample["pynvml"].update(metrics)
    smi = subprocess.run(
        ["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits", "-i", "0"],
        capture_output=True, text=True).stdout.strip().split(", ")
    keys = ["utilization.gpu", "memory.used", "temperature.gpu", "power.draw", "power.limit", "clocks.sm", "clocks.mem"]
    sample["smi"] = {k: (float(v) if v.replace(".", "", 1).isdigit() else None) for k, v in zip(keys, smi)}
    print(json.dumps(sample), flush=True)
    next_tick += 1
    time.sleep(max(0, next_tick - time.time()))
