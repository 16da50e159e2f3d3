// The NVML structs Boxcar reads, laid out as NVIDIA's nvml.h declares them. Only the types:
// the functions are looked up with dlsym at run time, so nothing links libnvidia-ml.
#pragma once

typedef struct { unsigned int gpu; unsigned int memory; } boxcar_nvmlUtilization_t;

typedef struct { unsigned long long total; unsigned long long free; unsigned long long used; } boxcar_nvmlMemory_t;

typedef struct {
    unsigned int version;  // NVML_STRUCT_VERSION(Memory, 2): sizeof | 2 << 24
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} boxcar_nvmlMemory_v2_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} boxcar_nvmlProcessInfo_t;

typedef struct {
    void *device;
    unsigned long long eventType;
    unsigned long long eventData;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} boxcar_nvmlEventData_t;

typedef struct {
    unsigned long long referenceTime;  // CPU timestamp, µs
    unsigned long long violationTime;  // ns
} boxcar_nvmlViolationTime_t;

typedef union {
    double dVal;
    int siVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    unsigned short usVal;
} boxcar_nvmlValue_t;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;   // the NVLink for the NVLink fields
    long long timestamp;    // CPU timestamp, µs since 1970
    long long latencyUsec;
    int valueType;          // nvmlValueType_t: 0 double, 1 uint, 2 ulong, 3 ull, 4 sll, 5 int, 6 ushort
    int nvmlReturn;
    boxcar_nvmlValue_t value;
} boxcar_nvmlFieldValue_t;

typedef struct {
    unsigned int version;            // NVML_GPM_SUPPORT_VERSION: 1
    unsigned int isSupportedDevice;
} boxcar_nvmlGpmSupport_t;

typedef struct {
    unsigned int metricId;           // nvmlGpmMetricId_t
    int nvmlReturn;
    double value;
    struct { char *shortName; char *longName; char *unit; } metricInfo;
} boxcar_nvmlGpmMetric_t;

typedef struct {
    unsigned int version;            // NVML_GPM_METRICS_GET_VERSION: 1
    unsigned int numMetrics;
    void *sample1;
    void *sample2;
    boxcar_nvmlGpmMetric_t metrics[477];  // NVML_GPM_METRIC_MAX of the newest nvml.h (13.615); the driver reads numMetrics
} boxcar_nvmlGpmMetricsGet_t;

static inline unsigned int boxcar_nvmlMemory_v2_version(void) {
    return (unsigned int)(sizeof(boxcar_nvmlMemory_v2_t) | (2u << 24));
}
