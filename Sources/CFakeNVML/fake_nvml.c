// A scripted stand-in for libnvidia-ml.so.1, built by the package for the tests.
//
// The script is the file beside the library named like it plus ".script" (so that a test can
// copy the library and script its copy alone), else the file named by $FAKE_NVML_SCRIPT. One
// setting per line:
//   init <return code>                  what nvmlInit_v2 answers (default 0, success)
//   gpus <n>                            how many devices (default 0, at most 16)
//   <index> <field> <value>             a device's value, e.g. "0 utilization.gpu 87"
//   <index> <field> unsupported         that call answers NVML_ERROR_NOT_SUPPORTED (3)
//   <index> <field> <value> <from> <until>
//                                       the value while the wall clock (Unix seconds, fractions
//                                       allowed) is in [from, until), the device's own outside:
//                                       throttling scripted for known steps of a run
//   <index> energy.integrates 1         the energy counter rises by the power scripted (windows
//                                       included) from nvmlInit_v2 on, as a real one does
//   <index> violation.integrates 1      nvmlDeviceGetViolationStatus's counters rise with the wall
//                                       clock (its reference time) while clocks_event_reasons
//                                       (windows included) holds sw_power_cap (0x4: power) or a
//                                       thermal slowdown (0x20, 0x40: thermal), from nvmlInit_v2 on
//   <index> process <pid> <bytes>       a compute process and the GPU memory it uses
//   xid <index> <code>                  one XID event, delivered by the first nvmlEventSetWait
//   <index> mig.instance <i> <used> <total>
//                                       a MIG instance in slot i (0-6) of a GPU in MIG mode
//                                       ("<index> mig 1"), its memory used and total in bytes
//   <index> nvlink <link> <tx> <rx> <replay> <recovery> <crc.flit> <crc.data>
//                                       an active NVLink: the KiB its data counters rise by at each
//                                       nvmlDeviceGetFieldValues call (a second of the device's own
//                                       clock, which each call moves on), and its error counters
// Fields: name, uuid, utilization.gpu, utilization.memory, memory.total, memory.used,
// memory.free, memory.reserved, temperature, power, power.limit, energy, clock.graphics,
// clock.sm, clock.memory, pcie.tx, pcie.rx, fan, clocks_event_reasons, ecc.corrected,
// ecc.uncorrected, mig, encoder, decoder (percent), pcie.replays, remapped.corrected,
// remapped.uncorrected, remap.pending, remap.failed (0 or 1), retired.sbe, retired.dbe (pages),
// violation.power, violation.thermal (the ns each nvmlDeviceGetViolationStatus call adds, over a
// second of its reference clock), gpm (1: the device has GPM), gpm.sm, gpm.occupancy, gpm.tensor,
// gpm.dram, gpm.fp64, gpm.fp32, gpm.fp16 (percent, what nvmlGpmMetricsGet answers for two samples),
// violation.status ("unsupported": a driver without nvmlDeviceGetViolationStatus, whose violation
// counters are then field values 74 and 75, each call of nvmlDeviceGetFieldValues adding
// violation.power and violation.thermal ns over its second). With GPM, nvmlGpmMetricsGet's PCIe
// metrics (MiB/s) are pcie.tx and pcie.rx (KB/s) divided by 1024, unless gpm.pcie is
// "unsupported".
// Every call counts itself in a counter the test can read with fake_nvml_calls(). While a test
// holds a call (fake_nvml_hold("nvmlDeviceGetUtilizationRates") or
// "nvmlDeviceGetTotalEnergyConsumption"), it waits until the test lets go (fake_nvml_hold(NULL)),
// as a driver call on a GPU that fell off the bus does; fake_nvml_held() says how many wait.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;
typedef struct FakeDevice *nvmlDevice_t;
typedef struct FakeEventSet *nvmlEventSet_t;

enum { SUCCESS = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, INSUFFICIENT_SIZE = 7, TIMEOUT = 10 };
enum { FIELDS = 44, MAX_GPUS = 16, MAX_PROCESSES = 64, MIG_SLOTS = 7, NOT_FOUND = 6, NVLINKS = 36 };

static const char *field_names[FIELDS] = {
    "name", "uuid", "utilization.gpu", "utilization.memory", "memory.total", "memory.used",
    "memory.free", "memory.reserved", "temperature", "power", "power.limit", "energy",
    "clock.graphics", "clock.sm", "clock.memory", "pcie.tx", "pcie.rx", "fan",
    "clocks_event_reasons", "ecc.corrected", "ecc.uncorrected", "mig", "encoder", "decoder",
    "pcie.replays", "remapped.corrected", "remapped.uncorrected", "remap.pending", "remap.failed",
    "retired.sbe", "retired.dbe", "violation.power", "violation.thermal", "nvlink", "gpm", "gpm.sm",
    "gpm.occupancy", "gpm.tensor", "gpm.dram", "gpm.fp64", "gpm.fp32", "gpm.fp16", "violation.status",
    "gpm.pcie",
};
enum {
    F_NAME, F_UUID, F_UTIL_GPU, F_UTIL_MEM, F_MEM_TOTAL, F_MEM_USED, F_MEM_FREE, F_MEM_RESERVED,
    F_TEMPERATURE, F_POWER, F_POWER_LIMIT, F_ENERGY, F_CLOCK_GRAPHICS, F_CLOCK_SM, F_CLOCK_MEM,
    F_PCIE_TX, F_PCIE_RX, F_FAN, F_EVENT_REASONS, F_ECC_CORRECTED, F_ECC_UNCORRECTED, F_MIG,
    F_ENCODER, F_DECODER, F_PCIE_REPLAYS, F_REMAPPED_CORRECTED, F_REMAPPED_UNCORRECTED, F_REMAP_PENDING,
    F_REMAP_FAILED, F_RETIRED_SBE, F_RETIRED_DBE, F_VIOLATION_POWER, F_VIOLATION_THERMAL, F_NVLINK, F_GPM,
    F_GPM_SM, F_GPM_OCCUPANCY, F_GPM_TENSOR, F_GPM_DRAM, F_GPM_FP64, F_GPM_FP32, F_GPM_FP16, F_VIOLATION_STATUS,
    F_GPM_PCIE,
};

struct FakeDevice {
    int index;
    unsigned long long values[FIELDS];
    int unsupported[FIELDS];
    char name[96];
    char uuid[96];
    unsigned int pids[MAX_PROCESSES];
    unsigned long long process_memory[MAX_PROCESSES];
    int processes;
    int nvlinks;  // how many links were scripted (0: NVLink not supported)
    int nvlink_active[NVLINKS];
    unsigned long long nvlink_step[NVLINKS][2];    // KiB a call: tx, rx
    unsigned long long nvlink_counter[NVLINKS][2]; // KiB so far
    unsigned long long nvlink_errors[NVLINKS][4];  // replay, recovery, crc flit, crc data
    unsigned long long clock_us;                   // the field values' clock
    unsigned long long violation_reference[2];     // µs: power, thermal
    unsigned long long violation_time[2];          // ns
    unsigned long long field_violation_time[2];    // ns: fields 74 (power) and 75 (thermal)
    int energy_integrates;                         // energy = its value + the power since init
    int violation_integrates;                      // violation times = the reasons' time held
    int windowed[FIELDS];                          // a value for a window of time is scripted
    unsigned long long window_value[FIELDS];
    double window_from[FIELDS], window_until[FIELDS];
};

struct FakeEventSet { int delivered; };

static struct FakeDevice devices[MAX_GPUS];
// MIG devices are devices too (the memory and UUID calls take their handles); used: slot filled.
static struct FakeDevice mig_devices[MAX_GPUS][MIG_SLOTS];
static int mig_used[MAX_GPUS][MIG_SLOTS];
static int gpu_count = 0;
static int init_result = SUCCESS;
static int initialized = 0;
static int xid_device = -1;
static unsigned long long xid_code = 0;
static struct FakeEventSet event_set;
static long calls = 0;

long fake_nvml_calls(void) { return calls; }

static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_changed = PTHREAD_COND_INITIALIZER;
static char holding[64];
static int held = 0;

void fake_nvml_hold(const char *function) {
    pthread_mutex_lock(&hold_lock);
    snprintf(holding, sizeof holding, "%s", function ? function : "");
    pthread_cond_broadcast(&hold_changed);
    pthread_mutex_unlock(&hold_lock);
}

int fake_nvml_held(void) {
    pthread_mutex_lock(&hold_lock);
    int count = held;
    pthread_mutex_unlock(&hold_lock);
    return count;
}

static void wait_while_held(const char *function) {
    pthread_mutex_lock(&hold_lock);
    if (strcmp(holding, function) == 0) {
        held++;
        while (strcmp(holding, function) == 0) pthread_cond_wait(&hold_changed, &hold_lock);
        held--;
    }
    pthread_mutex_unlock(&hold_lock);
}

static int field_index(const char *name) {
    for (int i = 0; i < FIELDS; i++) if (strcmp(field_names[i], name) == 0) return i;
    return -1;
}

static double wall_seconds(void);
static double started;

static void load_script(void) {
    started = wall_seconds();
    memset(devices, 0, sizeof devices);
    memset(mig_devices, 0, sizeof mig_devices);
    memset(mig_used, 0, sizeof mig_used);
    gpu_count = 0;
    init_result = SUCCESS;
    xid_device = -1;
    for (int i = 0; i < MAX_GPUS; i++) {
        devices[i].index = i;
        devices[i].clock_us = 1700000000000000ULL;
        devices[i].violation_reference[0] = devices[i].violation_reference[1] = 1700000000000000ULL;
        snprintf(devices[i].name, sizeof devices[i].name, "Fake GPU");
        snprintf(devices[i].uuid, sizeof devices[i].uuid, "GPU-fake-%d", i);
    }
    FILE *file = NULL;
    Dl_info self;
    if (dladdr((void *)&load_script, &self) && self.dli_fname) {
        char beside[4096];
        snprintf(beside, sizeof beside, "%s.script", self.dli_fname);
        file = fopen(beside, "r");
    }
    const char *path = getenv("FAKE_NVML_SCRIPT");
    if (!file && path) file = fopen(path, "r");
    if (!file) return;
    char line[512];
    while (fgets(line, sizeof line, file)) {
        line[strcspn(line, "\r\n")] = 0;
        char a[128] = {0}, b[128] = {0}, c[256] = {0}, d[64] = {0};
        int n = sscanf(line, "%127s %127s %255s %63s", a, b, c, d);
        if (n < 2) continue;
        if (strcmp(a, "init") == 0) { init_result = atoi(b); continue; }
        if (strcmp(a, "gpus") == 0) { gpu_count = atoi(b); if (gpu_count > MAX_GPUS) gpu_count = MAX_GPUS; continue; }
        if (strcmp(a, "xid") == 0 && n >= 3) { xid_device = atoi(b); xid_code = strtoull(c, NULL, 10); continue; }
        int index = atoi(a);
        if (index < 0 || index >= MAX_GPUS || n < 3) continue;
        struct FakeDevice *device = &devices[index];
        if (strcmp(b, "process") == 0 && n >= 4 && device->processes < MAX_PROCESSES) {
            device->pids[device->processes] = (unsigned int)strtoul(c, NULL, 10);
            device->process_memory[device->processes] = strtoull(d, NULL, 10);
            device->processes++;
            continue;
        }
        if (strcmp(b, "nvlink") == 0) {
            unsigned long long tx = 0, rx = 0, errors[4] = {0};
            int link = atoi(c);
            if (link < 0 || link >= NVLINKS) continue;
            sscanf(line, "%*s %*s %*s %llu %llu %llu %llu %llu %llu", &tx, &rx, &errors[0], &errors[1], &errors[2], &errors[3]);
            device->nvlink_active[link] = 1;
            device->nvlink_step[link][0] = tx;
            device->nvlink_step[link][1] = rx;
            for (int e = 0; e < 4; e++) device->nvlink_errors[link][e] = errors[e];
            device->nvlinks++;
            continue;
        }
        if (strcmp(b, "mig.instance") == 0) {
            unsigned long long used = 0, total = 0;
            int slot = atoi(c);
            if (slot < 0 || slot >= MIG_SLOTS || sscanf(line, "%*s %*s %*s %llu %llu", &used, &total) != 2) continue;
            struct FakeDevice *mig = &mig_devices[index][slot];
            mig->index = slot;
            snprintf(mig->uuid, sizeof mig->uuid, "MIG-fake-%d-%d", index, slot);
            mig->values[F_MEM_USED] = used;
            mig->values[F_MEM_TOTAL] = total;
            mig->values[F_MEM_FREE] = total - used;
            mig_used[index][slot] = 1;
            continue;
        }
        if (strcmp(b, "energy.integrates") == 0) { device->energy_integrates = 1; continue; }
        if (strcmp(b, "violation.integrates") == 0) { device->violation_integrates = 1; continue; }
        int field = field_index(b);
        if (field < 0) continue;
        if (strcmp(c, "unsupported") == 0) { device->unsupported[field] = 1; continue; }
        if (field == F_NAME) { snprintf(device->name, sizeof device->name, "%s", c); continue; }
        if (field == F_UUID) { snprintf(device->uuid, sizeof device->uuid, "%s", c); continue; }
        double from, until;
        if (sscanf(line, "%*s %*s %*s %lf %lf", &from, &until) == 2) {
            device->windowed[field] = 1;
            device->window_value[field] = strtoull(c, NULL, 10);
            device->window_from[field] = from;
            device->window_until[field] = until;
            continue;
        }
        device->values[field] = strtoull(c, NULL, 10);
    }
    fclose(file);
}

static double wall_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/// When nvmlInit_v2 loaded the script (declared above load_script): where an integrating
/// energy counter starts.

/// ∫ weight(field's value) dt from init to now, in value-seconds: the value it was scripted with
/// over the whole time, the window's over the part of it inside the window.
static double integrated(struct FakeDevice *device, int field, double (*weight)(unsigned long long)) {
    double now = wall_seconds();
    double total = weight(device->values[field]) * (now - started);
    if (device->windowed[field]) {
        double from = device->window_from[field] > started ? device->window_from[field] : started;
        double until = device->window_until[field] < now ? device->window_until[field] : now;
        if (until > from) total += (weight(device->window_value[field]) - weight(device->values[field])) * (until - from);
    }
    return total;
}

static double as_is(unsigned long long value) { return (double)value; }
static double power_capped(unsigned long long reasons) { return (reasons & 0x4) ? 1 : 0; }
static double thermal_slowdown(unsigned long long reasons) { return (reasons & 0x60) ? 1 : 0; }

/// The energy counter (mJ) of a device whose counter integrates its power (mW).
static unsigned long long integrated_energy(struct FakeDevice *device) {
    return device->values[F_ENERGY] + (unsigned long long)integrated(device, F_POWER, as_is);
}

/// A device's value now: the scripted window's while the wall clock is inside it.
static unsigned long long value_now(struct FakeDevice *device, int field) {
    if (field == F_ENERGY && device->energy_integrates) return integrated_energy(device);
    if (!device->windowed[field]) return device->values[field];
    double seconds = wall_seconds();
    int inside = seconds >= device->window_from[field] && seconds < device->window_until[field];
    return inside ? device->window_value[field] : device->values[field];
}

nvmlReturn_t nvmlInit_v2(void) {
    calls++;
    load_script();
    if (init_result != SUCCESS) return init_result;
    initialized = 1;
    return SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) { calls++; initialized = 0; return SUCCESS; }

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case SUCCESS: return "Success";
    case NOT_SUPPORTED: return "Not Supported";
    case 9: return "Driver Not Loaded";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    calls++;
    snprintf(version, length, "999.99-fake");
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    calls++;
    if (!initialized) return UNINITIALIZED;
    *count = (unsigned int)gpu_count;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    calls++;
    if (!initialized) return UNINITIALIZED;
    if ((int)index >= gpu_count) return INVALID_ARGUMENT;
    *device = &devices[index];
    return SUCCESS;
}

#define VALUE(field, type, out) \
    calls++; \
    if (!initialized) return UNINITIALIZED; \
    if (device->unsupported[field]) return NOT_SUPPORTED; \
    *(out) = (type)value_now(device, field); \
    return SUCCESS;

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    calls++;
    if (device->unsupported[F_NAME]) return NOT_SUPPORTED;
    snprintf(name, length, "%s", device->name);
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    calls++;
    snprintf(uuid, length, "%s", device->uuid);
    return SUCCESS;
}

typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    calls++;
    wait_while_held(__func__);
    if (device->unsupported[F_UTIL_GPU]) return NOT_SUPPORTED;
    utilization->gpu = (unsigned int)value_now(device, F_UTIL_GPU);
    utilization->memory = (unsigned int)device->values[F_UTIL_MEM];
    return SUCCESS;
}

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    calls++;
    if (device->unsupported[F_MEM_TOTAL]) return NOT_SUPPORTED;
    memory->total = device->values[F_MEM_TOTAL];
    memory->free = device->values[F_MEM_FREE];
    memory->used = device->values[F_MEM_USED];
    return SUCCESS;
}

typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    calls++;
    if (device->unsupported[F_MEM_RESERVED]) return NOT_SUPPORTED;
    if (memory->version != ((unsigned int)sizeof(nvmlMemory_v2_t) | (2u << 24))) return 25;
    memory->total = device->values[F_MEM_TOTAL];
    memory->reserved = device->values[F_MEM_RESERVED];
    memory->free = device->values[F_MEM_FREE];
    // As the real driver does: version 2's used leaves out what the driver reserves.
    memory->used = device->values[F_MEM_USED] - device->values[F_MEM_RESERVED];
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temperature) {
    (void)sensor;
    VALUE(F_TEMPERATURE, unsigned int, temperature)
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) { VALUE(F_POWER, unsigned int, power) }

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) { VALUE(F_POWER_LIMIT, unsigned int, limit) }

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
    wait_while_held(__func__);
    VALUE(F_ENERGY, unsigned long long, energy)
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *clock) {
    int field = type == 0 ? F_CLOCK_GRAPHICS : type == 1 ? F_CLOCK_SM : F_CLOCK_MEM;
    VALUE(field, unsigned int, clock)
}

nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t device, int counter, unsigned int *value) {
    int field = counter == 0 ? F_PCIE_TX : F_PCIE_RX;
    VALUE(field, unsigned int, value)
}

nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t device, unsigned int *speed) { VALUE(F_FAN, unsigned int, speed) }

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons) {
    VALUE(F_EVENT_REASONS, unsigned long long, reasons)
}

// The name drivers before R535 give the same function.
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons) {
    VALUE(F_EVENT_REASONS, unsigned long long, reasons)
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int errorType, int counterType, unsigned long long *count) {
    (void)counterType;
    int field = errorType == 0 ? F_ECC_CORRECTED : F_ECC_UNCORRECTED;
    VALUE(field, unsigned long long, count)
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    calls++;
    if (device->unsupported[F_MIG]) return NOT_SUPPORTED;
    *current = (unsigned int)device->values[F_MIG];
    *pending = *current;
    return SUCCESS;
}

// Zero when MIG mode is off, as the real driver answers.
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
    calls++;
    if (device->unsupported[F_MIG]) return NOT_SUPPORTED;
    *count = device->values[F_MIG] ? MIG_SLOTS : 0;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *mig) {
    calls++;
    if (!device->values[F_MIG] || index >= MIG_SLOTS) return INVALID_ARGUMENT;
    if (!mig_used[device->index][index]) return NOT_FOUND;
    *mig = &mig_devices[device->index][index];
    return SUCCESS;
}

typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; } nvmlProcessInfo_t;
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos) {
    calls++;
    if (*count < (unsigned int)device->processes) { *count = (unsigned int)device->processes; return INSUFFICIENT_SIZE; }
    for (int i = 0; i < device->processes; i++) {
        infos[i].pid = device->pids[i];
        infos[i].usedGpuMemory = device->process_memory[i];
        infos[i].gpuInstanceId = 0xFFFFFFFF;
        infos[i].computeInstanceId = 0xFFFFFFFF;
    }
    *count = (unsigned int)device->processes;
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t device, unsigned int *utilization, unsigned int *period) {
    *period = 167000;
    VALUE(F_ENCODER, unsigned int, utilization)
}

nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t device, unsigned int *utilization, unsigned int *period) {
    *period = 167000;
    VALUE(F_DECODER, unsigned int, utilization)
}

nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t device, unsigned int *value) { VALUE(F_PCIE_REPLAYS, unsigned int, value) }

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corrected, unsigned int *uncorrected,
                                       unsigned int *pending, unsigned int *failed) {
    calls++;
    if (device->unsupported[F_REMAPPED_CORRECTED]) return NOT_SUPPORTED;
    *corrected = (unsigned int)device->values[F_REMAPPED_CORRECTED];
    *uncorrected = (unsigned int)device->values[F_REMAPPED_UNCORRECTED];
    *pending = (unsigned int)device->values[F_REMAP_PENDING];
    *failed = (unsigned int)device->values[F_REMAP_FAILED];
    return SUCCESS;
}

// As the driver answers a count of 0: how many there are, INSUFFICIENT_SIZE when there are some.
nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, int cause, unsigned int *count, unsigned long long *addresses) {
    calls++;
    if (device->unsupported[F_RETIRED_SBE]) return NOT_SUPPORTED;
    unsigned int pages = (unsigned int)device->values[cause == 0 ? F_RETIRED_SBE : F_RETIRED_DBE];
    if (*count < pages) { *count = pages; return INSUFFICIENT_SIZE; }
    for (unsigned int i = 0; i < pages && addresses; i++) addresses[i] = 0x1000ULL * (i + 1);
    *count = pages;
    return SUCCESS;
}

typedef struct { unsigned long long referenceTime, violationTime; } nvmlViolationTime_t;
nvmlReturn_t nvmlDeviceGetViolationStatus(nvmlDevice_t device, int policy, nvmlViolationTime_t *time) {
    calls++;
    int field = policy == 0 ? F_VIOLATION_POWER : F_VIOLATION_THERMAL;
    if (policy > 1 || device->unsupported[field] || device->unsupported[F_VIOLATION_STATUS]) return NOT_SUPPORTED;
    if (device->violation_integrates) {
        // The wall clock's µs, and the ns the reasons held since init.
        time->referenceTime = (unsigned long long)(wall_seconds() * 1e6);
        time->violationTime = (unsigned long long)(integrated(device, F_EVENT_REASONS, policy == 0 ? power_capped : thermal_slowdown) * 1e9);
        return SUCCESS;
    }
    device->violation_reference[policy] += 1000000;
    device->violation_time[policy] += device->values[field];
    time->referenceTime = device->violation_reference[policy];
    time->violationTime = device->violation_time[policy];
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link, int *active) {
    calls++;
    if (!device->nvlinks || device->unsupported[F_NVLINK]) return NOT_SUPPORTED;
    if (link >= NVLINKS) return INVALID_ARGUMENT;
    *active = device->nvlink_active[link];
    return SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t device, unsigned int link, int counter, unsigned long long *value) {
    calls++;
    if (!device->nvlinks || link >= NVLINKS || counter < 0 || counter > 3) return NOT_SUPPORTED;
    *value = device->nvlink_errors[link][counter];
    return SUCCESS;
}

typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType, nvmlReturn;
    union { double dVal; unsigned long long ullVal; } value;
} nvmlFieldValue_t;

// The NVLink data throughput fields (138 tx, 139 rx, KiB, scopeId: the link) and the violation
// times (74 power, 75 thermal, ns). A call moves the device's clock on a second, each active
// link's counters by their step and the violation times by theirs.
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, nvmlFieldValue_t *values) {
    calls++;
    device->clock_us += 1000000;
    for (int link = 0; link < NVLINKS; link++) {
        if (!device->nvlink_active[link]) continue;
        device->nvlink_counter[link][0] += device->nvlink_step[link][0];
        device->nvlink_counter[link][1] += device->nvlink_step[link][1];
    }
    device->field_violation_time[0] += device->values[F_VIOLATION_POWER];
    device->field_violation_time[1] += device->values[F_VIOLATION_THERMAL];
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *value = &values[i];
        value->timestamp = (long long)device->clock_us;
        value->latencyUsec = 0;
        value->valueType = 3;  // unsigned long long
        if (value->fieldId == 74 || value->fieldId == 75) {
            int policy = value->fieldId - 74;
            int unsupported = device->unsupported[policy == 0 ? F_VIOLATION_POWER : F_VIOLATION_THERMAL];
            value->nvmlReturn = unsupported ? NOT_SUPPORTED : SUCCESS;
            value->value.ullVal = device->field_violation_time[policy];
            continue;
        }
        if ((value->fieldId != 138 && value->fieldId != 139) || value->scopeId >= NVLINKS || !device->nvlinks) {
            value->nvmlReturn = NOT_SUPPORTED;
            continue;
        }
        value->nvmlReturn = SUCCESS;
        value->value.ullVal = device->nvlink_counter[value->scopeId][value->fieldId - 138];
    }
    return SUCCESS;
}

typedef struct { unsigned int version, isSupportedDevice; } nvmlGpmSupport_t;
nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t device, nvmlGpmSupport_t *support) {
    calls++;
    if (support->version != 1) return 25;  // NVML_ERROR_ARGUMENT_VERSION_MISMATCH
    support->isSupportedDevice = device->values[F_GPM] ? 1 : 0;
    return SUCCESS;
}

// A sample remembers whose it is and when (a serial number) it was taken.
struct FakeGpmSample { struct FakeDevice *device; long taken; };
static long gpm_serial = 0;

nvmlReturn_t nvmlGpmSampleAlloc(struct FakeGpmSample **sample) {
    calls++;
    *sample = calloc(1, sizeof **sample);
    return *sample ? SUCCESS : 2;
}

nvmlReturn_t nvmlGpmSampleFree(struct FakeGpmSample *sample) { calls++; free(sample); return SUCCESS; }

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t device, struct FakeGpmSample *sample) {
    calls++;
    if (!device->values[F_GPM]) return NOT_SUPPORTED;
    sample->device = device;
    sample->taken = ++gpm_serial;
    return SUCCESS;
}

typedef struct {
    unsigned int metricId;
    int nvmlReturn;
    double value;
    struct { char *shortName, *longName, *unit; } metricInfo;
} nvmlGpmMetric_t;
typedef struct {
    unsigned int version, numMetrics;
    struct FakeGpmSample *sample1, *sample2;
    nvmlGpmMetric_t metrics[477];
} nvmlGpmMetricsGet_t;

// Two samples of one device, the second taken after the first, as the driver asks.
nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *get) {
    calls++;
    if (get->version != 1) return 25;
    if (!get->sample1 || !get->sample2 || get->sample1->device != get->sample2->device || get->sample2->taken <= get->sample1->taken)
        return INVALID_ARGUMENT;
    struct FakeDevice *device = get->sample1->device;
    for (unsigned int i = 0; i < get->numMetrics; i++) {
        nvmlGpmMetric_t *metric = &get->metrics[i];
        int field = metric->metricId == 2 ? F_GPM_SM : metric->metricId == 3 ? F_GPM_OCCUPANCY
            : metric->metricId == 5 ? F_GPM_TENSOR : metric->metricId == 10 ? F_GPM_DRAM
            : metric->metricId == 11 ? F_GPM_FP64 : metric->metricId == 12 ? F_GPM_FP32
            : metric->metricId == 13 ? F_GPM_FP16 : metric->metricId == 20 ? F_PCIE_TX
            : metric->metricId == 21 ? F_PCIE_RX : -1;
        int pcie = field == F_PCIE_TX || field == F_PCIE_RX;
        if (pcie && device->unsupported[F_GPM_PCIE]) field = -1;
        metric->nvmlReturn = field < 0 ? NOT_SUPPORTED : SUCCESS;
        metric->value = field < 0 ? 0 : (double)device->values[field];
        if (pcie) metric->value /= 1024;  // KB/s → MiB/s
        metric->metricInfo.shortName = metric->metricInfo.longName = metric->metricInfo.unit = NULL;
    }
    return SUCCESS;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) { calls++; event_set.delivered = 0; *set = &event_set; return SUCCESS; }

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
    (void)device; (void)types; (void)set;
    calls++;
    return SUCCESS;
}

typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType;
    unsigned long long eventData;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeout) {
    (void)timeout;
    calls++;
    if (xid_device < 0 || set->delivered) return TIMEOUT;
    set->delivered = 1;
    data->device = &devices[xid_device];
    data->eventType = 0x8;  // nvmlEventTypeXidCriticalError
    data->eventData = xid_code;
    data->gpuInstanceId = 0xFFFFFFFF;
    data->computeInstanceId = 0xFFFFFFFF;
    return SUCCESS;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) { (void)set; calls++; return SUCCESS; }
