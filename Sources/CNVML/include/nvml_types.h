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

static inline unsigned int boxcar_nvmlMemory_v2_version(void) {
    return (unsigned int)(sizeof(boxcar_nvmlMemory_v2_t) | (2u << 24));
}
