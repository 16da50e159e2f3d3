"""What each NVML call the agent makes a tick costs on this GPU: CPU and wall time per call
(medians of rounds), through pynvml's ctypes (a few µs of its own). Usage: costs.py ROUNDS [LABEL]"""
import statistics
import sys
import time

import pynvml

rounds = int(sys.argv[1])
label = sys.argv[2] if len(sys.argv) > 2 else ""
pynvml.nvmlInit()
handle = pynvml.nvmlDeviceGetHandleByIndex(0)
event_set = pynvml.nvmlEventSetCreate()
pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
gpm = [pynvml.nvmlGpmSampleGet(handle, pynvml.nvmlGpmSampleAlloc()), pynvml.nvmlGpmSampleAlloc()]


def gpm_metrics():
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = 7
    request.sample1, request.sample2 = gpm
    for index, metric in enumerate([2, 3, 5, 10, 11, 12, 13]):
        request.metrics[index].metricId = metric
    pynvml.nvmlGpmMetricsGet(request)


def event_wait():
    try:
        pynvml.nvmlEventSetWait_v2(event_set, 0)
    except pynvml.NVMLError_Timeout:
        pass


BATCH = [83, 74, 75, 94, 197, 198]


def check(values):
    """Field values answer each on its own: the first field's failure is the call's."""
    for value in values:
        if value.nvmlReturn != 0:
            raise pynvml.NVMLError(value.nvmlReturn)
    return values


CALLS = {
    "utilization": lambda: pynvml.nvmlDeviceGetUtilizationRates(handle),
    "memory_v2": lambda: pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2),
    "temperature": lambda: pynvml.nvmlDeviceGetTemperature(handle, 0),
    "power": lambda: pynvml.nvmlDeviceGetPowerUsage(handle),
    "power_limit": lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle),
    "energy": lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle),
    "clock_graphics": lambda: pynvml.nvmlDeviceGetClockInfo(handle, 0),
    "clock_sm": lambda: pynvml.nvmlDeviceGetClockInfo(handle, 1),
    "clock_memory": lambda: pynvml.nvmlDeviceGetClockInfo(handle, 2),
    "pcie_throughput_tx": lambda: pynvml.nvmlDeviceGetPcieThroughput(handle, 0),
    "pcie_throughput_rx": lambda: pynvml.nvmlDeviceGetPcieThroughput(handle, 1),
    "pcie_bytes_fields_197_198": lambda: check(pynvml.nvmlDeviceGetFieldValues(handle, [197, 198])),
    "field_energy_83": lambda: check(pynvml.nvmlDeviceGetFieldValues(handle, [83])),
    "field_violations_74_75": lambda: check(pynvml.nvmlDeviceGetFieldValues(handle, [74, 75])),
    "field_pcie_replays_94": lambda: check(pynvml.nvmlDeviceGetFieldValues(handle, [94])),
    "fields_83_74_75_94_197_198": lambda: check(pynvml.nvmlDeviceGetFieldValues(handle, BATCH)),
    "clocks_event_reasons": lambda: pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle),
    "ecc_corrected": lambda: pynvml.nvmlDeviceGetTotalEccErrors(handle, 0, 1),
    "ecc_uncorrected": lambda: pynvml.nvmlDeviceGetTotalEccErrors(handle, 1, 1),
    "mig_mode": lambda: pynvml.nvmlDeviceGetMigMode(handle),
    "max_mig_device_count": lambda: pynvml.nvmlDeviceGetMaxMigDeviceCount(handle),
    "compute_processes": lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle),
    "encoder": lambda: pynvml.nvmlDeviceGetEncoderUtilization(handle),
    "decoder": lambda: pynvml.nvmlDeviceGetDecoderUtilization(handle),
    "pcie_replays": lambda: pynvml.nvmlDeviceGetPcieReplayCounter(handle),
    "remapped_rows": lambda: pynvml.nvmlDeviceGetRemappedRows(handle),
    "violation_power": lambda: pynvml.nvmlDeviceGetViolationStatus(handle, 0),
    "violation_thermal": lambda: pynvml.nvmlDeviceGetViolationStatus(handle, 1),
    "gpm_sample_get": lambda: pynvml.nvmlGpmSampleGet(handle, gpm[1]),
    "gpm_metrics_get": gpm_metrics,
    "event_wait_0": event_wait,
}

print(f"| {label} NVML call | CPU µs (median) | wall µs (median) | answer |")
print("| --- | --- | --- | --- |")
total_cpu = total_wall = 0.0
for name, call in CALLS.items():
    cpu, wall, answer = [], [], "ok"
    for _ in range(rounds):
        c, w = time.thread_time(), time.perf_counter()
        try:
            call()
        except pynvml.NVMLError as error:
            answer = str(error)
        cpu.append((time.thread_time() - c) * 1e6)
        wall.append((time.perf_counter() - w) * 1e6)
    total_cpu += statistics.median(cpu)
    total_wall += statistics.median(wall)
    print(f"| {name} | {statistics.median(cpu):.0f} | {statistics.median(wall):.0f} | {answer} |", flush=True)
print(f"| all, one each | {total_cpu:.0f} | {total_wall:.0f} | |")

# The batch's values beside the calls they would replace, read one after the other.
fields = pynvml.nvmlDeviceGetFieldValues(handle, BATCH)
print("fields:", {value.fieldId: (value.nvmlReturn, value.valueType, value.value.ullVal, value.timestamp) for value in fields})
print("calls: energy", pynvml.nvmlDeviceGetTotalEnergyConsumption(handle),
      "violation power", pynvml.nvmlDeviceGetViolationStatus(handle, 0).violationTime,
      "thermal", pynvml.nvmlDeviceGetViolationStatus(handle, 1).violationTime,
      "replays", pynvml.nvmlDeviceGetPcieReplayCounter(handle))
