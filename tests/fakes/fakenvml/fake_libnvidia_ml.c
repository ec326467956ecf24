/* A fake libnvidia-ml.so.1 for gpuwatchd's integration tests (written for gpuwatchd).
 *
 * It exports the NVML symbols that nvidia-ml-py (pynvml) 13.615.71 looks up for every call the
 * GPU collector makes, with the struct layouts of pynvml's ctypes declarations. The values come
 * from a text file named by $FAKE_NVML_STATE. The file is re-read whenever its inode, size or
 * mtime changes, so a test can change a reading while the library stays loaded. The file has
 * one "key value" pair per line ('#' starts a comment line):
 *
 *   init_rc 9                            nvmlInit* returns 9 (DRIVER_NOT_LOADED)
 *   driver_version 550.54.15             also: cuda_version 12040, count 2
 *   event_wait_cap_ms 50                 nvmlEventSetWait_v2 waits at most this long
 *   gpu.0.rc 15                          every call on GPU 0 returns 15 (GPU_IS_LOST)
 *   gpu.0.temperature.0 45               a reading; one that is absent is NOT_SUPPORTED (3)
 *   call.nvmlDeviceGetPowerUsage.rc 3    that call returns 3 on every GPU;
 *   gpu.1.call.nvmlDeviceGetPowerUsage.rc 3   ... or on GPU 1 only (wins over gpu.1.rc)
 *   call.nvmlDeviceGetPowerUsage.sleep_ms 5000   that call hangs, until the time is up or
 *                                        the key leaves the file
 *   event.1 0 8 79                       queued event 1: GPU 0, type 8 (XID), data 79;
 *                                        each event is returned once, in id order
 *   gpu.1.fan_speed.min 30               nvmlDeviceGetMinMaxFanSpeed (also .max); a
 *                                        nvmlDeviceSetFanSpeed_v2 outside it is
 *                                        INVALID_ARGUMENT, as the driver answers (RTX 2070)
 *
 * Fan speeds set (nvmlDeviceSetFanSpeed_v2) are kept in memory: nvmlDeviceGetTargetFanSpeed
 * returns them, nvmlDeviceSetDefaultFanSpeed_v2 hands the fan back to the driver's curve, and
 * the test hook fakeNvmlFanTarget(gpu, fan) says which (-1: the driver's own curve).
 *
 * Keys are the NVML symbol names (nvmlDeviceGetCount_v2, nvmlEventSetWait_v2, ...). Built with
 * -DFAKE_NVML_OLD_DRIVER it leaves out symbols that older drivers lack, so pynvml raises
 * NVMLError_FunctionNotFound for them. fakeNvmlReset() is a test hook (not an NVML symbol).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef int nvmlReturn_t;
enum {
    OK = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, INSUFFICIENT_SIZE = 7,
    TIMEOUT = 10, MEMORY = 20, ARGUMENT_VERSION_MISMATCH = 25, UNKNOWN = 999
};
#define MAX_GPUS 16
#define MAX_KV 1024
#define MAX_SETS 8

struct fake_device { int unused; };
struct fake_event_set { int in_use; unsigned long long types; unsigned int gpus; };
typedef struct fake_device *nvmlDevice_t;
typedef struct fake_event_set *nvmlEventSet_t;

typedef struct { /* c_nvmlPciInfo_t (nvmlPciInfo_t, v3) */
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct { unsigned long long referenceTime, violationTime; } nvmlViolationTime_t;
typedef struct { unsigned int version; int marginTemperature; } nvmlMarginTemperature_v1_t;
typedef union {
    double dVal; unsigned int uiVal; unsigned long ulVal; unsigned long long ullVal;
    long long sllVal; int siVal; unsigned short usVal;
} nvmlValue_t;
typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    unsigned int valueType; nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;
typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType, eventData;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

#define MARGIN_V1 0x1000008u         /* nvmlMarginTemperature_v1 */
#define MEMORY_V2 0x2000028u         /* nvmlMemory_v2 */
#define VALUE_TYPE_ULL 3u            /* NVML_VALUE_TYPE_UNSIGNED_LONG_LONG */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct { char key[96]; char val[128]; } kv[MAX_KV];
static int nkv;
static int have_state;
static struct stat last_st;
static char last_path[4096];
static int init_count;
static unsigned long long delivered; /* highest event id returned */
static struct fake_device devices[MAX_GPUS];
static struct fake_event_set sets[MAX_SETS];
#define MAX_FANS 8
static int fan_target[MAX_GPUS][MAX_FANS]; /* percent set; -1: the driver's automatic curve */
static int fans_touched;                   /* fan_target holds values (else all -1) */

/* ---- state file -------------------------------------------------------------------------- */

static void parse_locked(FILE *f)
{
    char line[512];
    nkv = 0;
    while (nkv < MAX_KV && fgets(line, sizeof line, f)) {
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        char *key = p;
        p += strcspn(p, " \t\r\n");
        if (*p != ' ' && *p != '\t')
            continue; /* a key with no value */
        *p++ = '\0';
        p += strspn(p, " \t");
        p[strcspn(p, "\r\n")] = '\0';
        snprintf(kv[nkv].key, sizeof kv[nkv].key, "%s", key);
        snprintf(kv[nkv].val, sizeof kv[nkv].val, "%s", p);
        nkv++;
    }
}

static void reload_locked(void)
{
    const char *path = getenv("FAKE_NVML_STATE");
    struct stat st;
    if (path == NULL || stat(path, &st) != 0) {
        nkv = 0;
        have_state = 0;
        return;
    }
    if (have_state && st.st_ino == last_st.st_ino && st.st_dev == last_st.st_dev
        && st.st_size == last_st.st_size && st.st_mtim.tv_sec == last_st.st_mtim.tv_sec
        && st.st_mtim.tv_nsec == last_st.st_mtim.tv_nsec && strcmp(path, last_path) == 0)
        return;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        nkv = 0;
        have_state = 0;
        return;
    }
    parse_locked(f);
    fclose(f);
    last_st = st;
    snprintf(last_path, sizeof last_path, "%s", path);
    have_state = 1;
}

static const char *lookup_locked(const char *key)
{
    for (int i = 0; i < nkv; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].val;
    return NULL;
}

static const char *gpu_lookup_locked(int gpu, const char *key)
{
    char full[160];
    snprintf(full, sizeof full, "gpu.%d.%s", gpu, key);
    return lookup_locked(full);
}

/* A per-call setting ("rc", "sleep_ms"): for this GPU first, then for every GPU. */
static int setting_locked(const char *call, int gpu, const char *what, long long *out)
{
    char key[192];
    const char *v = NULL;
    if (gpu >= 0) {
        snprintf(key, sizeof key, "call.%s.%s", call, what);
        v = gpu_lookup_locked(gpu, key);
    }
    if (v == NULL) {
        snprintf(key, sizeof key, "call.%s.%s", call, what);
        v = lookup_locked(key);
    }
    if (v == NULL)
        return 0;
    *out = strtoll(v, NULL, 0);
    return 1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- call prologue: hang, return-code overrides, lost GPUs; returns with `mu` held ------- */

static nvmlReturn_t begin(const char *call, int gpu, int need_init)
{
    long long value = 0;
    pthread_mutex_lock(&mu);
    reload_locked();
    if (setting_locked(call, gpu, "sleep_ms", &value) && value > 0) {
        double until = now_seconds() + (double)value / 1000.0;
        for (;;) {
            pthread_mutex_unlock(&mu);
            nap_ms(10);
            pthread_mutex_lock(&mu);
            reload_locked();
            long long still = 0;
            if (now_seconds() >= until || !setting_locked(call, gpu, "sleep_ms", &still)
                || still <= 0)
                break;
        }
    }
    if (need_init && init_count == 0)
        return UNINITIALIZED;
    if (setting_locked(call, gpu, "rc", &value))
        return (nvmlReturn_t)value;
    if (gpu >= 0) {
        const char *rc = gpu_lookup_locked(gpu, "rc");
        if (rc != NULL)
            return (nvmlReturn_t)strtol(rc, NULL, 0);
    }
    return OK;
}

static nvmlReturn_t end(nvmlReturn_t rc)
{
    pthread_mutex_unlock(&mu);
    return rc;
}

static int gpu_of(nvmlDevice_t dev)
{
    uintptr_t p = (uintptr_t)dev, first = (uintptr_t)&devices[0];
    if (p < first || p >= (uintptr_t)&devices[MAX_GPUS] || (p - first) % sizeof devices[0])
        return -1;
    return (int)((p - first) / sizeof devices[0]);
}

static nvmlReturn_t begin_dev(const char *call, nvmlDevice_t dev, int *gpu)
{
    *gpu = gpu_of(dev);
    if (*gpu < 0) {
        pthread_mutex_lock(&mu);
        return INVALID_ARGUMENT;
    }
    return begin(call, *gpu, 1);
}

/* ---- value readers (called with `mu` held) ----------------------------------------------- */

static nvmlReturn_t ull_locked(int gpu, const char *key, unsigned long long *out)
{
    const char *v = gpu_lookup_locked(gpu, key);
    if (v == NULL)
        return NOT_SUPPORTED;
    *out = strtoull(v, NULL, 0);
    return OK;
}

static nvmlReturn_t uint_locked(int gpu, const char *key, unsigned int *out)
{
    unsigned long long v = 0;
    nvmlReturn_t rc = ull_locked(gpu, key, &v);
    if (rc == OK)
        *out = (unsigned int)v;
    return rc;
}

static nvmlReturn_t str_locked(const char *v, char *buf, unsigned int len)
{
    if (v == NULL)
        return NOT_SUPPORTED;
    if (buf == NULL || strlen(v) + 1 > len)
        return INSUFFICIENT_SIZE;
    memcpy(buf, v, strlen(v) + 1);
    return OK;
}

static nvmlReturn_t dev_uint(const char *call, nvmlDevice_t dev, const char *key,
                             unsigned int *out)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(call, dev, &gpu);
    if (rc == OK)
        rc = out ? uint_locked(gpu, key, out) : INVALID_ARGUMENT;
    return end(rc);
}

static nvmlReturn_t dev_ull(const char *call, nvmlDevice_t dev, const char *key,
                            unsigned long long *out)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(call, dev, &gpu);
    if (rc == OK)
        rc = out ? ull_locked(gpu, key, out) : INVALID_ARGUMENT;
    return end(rc);
}

static nvmlReturn_t dev_uint_by(const char *call, nvmlDevice_t dev, const char *prefix,
                                unsigned int which, unsigned int *out)
{
    char key[64];
    snprintf(key, sizeof key, "%s.%u", prefix, which);
    return dev_uint(call, dev, key, out);
}

static nvmlReturn_t dev_str(const char *call, nvmlDevice_t dev, const char *key, char *buf,
                            unsigned int len)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(call, dev, &gpu);
    if (rc == OK)
        rc = str_locked(gpu_lookup_locked(gpu, key), buf, len);
    return end(rc);
}

/* Several keys at once: all present, or NOT_SUPPORTED. */
static nvmlReturn_t many_locked(int gpu, const char *const *keys, int n, unsigned long long *out)
{
    for (int i = 0; i < n; i++)
        if (ull_locked(gpu, keys[i], &out[i]) != OK)
            return NOT_SUPPORTED;
    return OK;
}

#define DEV_UINT(sym, key) \
    nvmlReturn_t sym(nvmlDevice_t dev, unsigned int *out) { return dev_uint(#sym, dev, key, out); }
#define DEV_ULL(sym, key) \
    nvmlReturn_t sym(nvmlDevice_t dev, unsigned long long *out) \
    { return dev_ull(#sym, dev, key, out); }
#define DEV_UINT_BY(sym, prefix) \
    nvmlReturn_t sym(nvmlDevice_t dev, unsigned int which, unsigned int *out) \
    { return dev_uint_by(#sym, dev, prefix, which, out); }
#define DEV_STR(sym, key) \
    nvmlReturn_t sym(nvmlDevice_t dev, char *buf, unsigned int len) \
    { return dev_str(#sym, dev, key, buf, len); }

/* ---- library lifecycle ------------------------------------------------------------------- */

static nvmlReturn_t do_init(const char *call)
{
    long long rc = 0;
    nvmlReturn_t out = begin(call, -1, 0);
    if (out == OK) {
        const char *v = lookup_locked("init_rc");
        rc = v ? strtoll(v, NULL, 0) : 0;
        if (rc != 0)
            out = (nvmlReturn_t)rc;
        else
            init_count++;
    }
    return end(out);
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return do_init(__func__); }
nvmlReturn_t nvmlInit_v2(void) { return do_init(__func__); }

nvmlReturn_t nvmlShutdown(void)
{
    nvmlReturn_t rc = begin(__func__, -1, 1);
    if (rc == OK)
        init_count--;
    return end(rc);
}

const char *nvmlErrorString(nvmlReturn_t rc)
{
    switch (rc) {
    case OK: return "Success";
    case UNINITIALIZED: return "Uninitialized";
    case INVALID_ARGUMENT: return "Invalid Argument";
    case NOT_SUPPORTED: return "Not Supported";
    case 9: return "Driver Not Loaded";
    case TIMEOUT: return "Timeout";
    case 15: return "GPU is lost";
    case 28: return "GPU not found";
    default: return "Unknown Error";
    }
}

/* Test hook: forget initialisations, event sets and delivered events. */
void fakeNvmlReset(void)
{
    pthread_mutex_lock(&mu);
    init_count = 0;
    delivered = 0;
    have_state = 0;
    memset(sets, 0, sizeof sets);
    fans_touched = 0;
    pthread_mutex_unlock(&mu);
}

/* ---- system ------------------------------------------------------------------------------ */

nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len)
{
    nvmlReturn_t rc = begin(__func__, -1, 1);
    if (rc == OK)
        rc = str_locked(lookup_locked("driver_version"), buf, len);
    return end(rc);
}

#ifndef FAKE_NVML_OLD_DRIVER
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *out)
{
    nvmlReturn_t rc = begin(__func__, -1, 1);
    if (rc == OK) {
        const char *v = lookup_locked("cuda_version");
        if (v == NULL)
            rc = NOT_SUPPORTED;
        else
            *out = (int)strtol(v, NULL, 0);
    }
    return end(rc);
}
#endif

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *out)
{
    nvmlReturn_t rc = begin(__func__, -1, 1);
    if (rc == OK) {
        const char *v = lookup_locked("count");
        *out = v ? (unsigned int)strtoul(v, NULL, 0) : 0;
        if (*out > MAX_GPUS)
            *out = MAX_GPUS;
    }
    return end(rc);
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *out)
{
    if (index >= MAX_GPUS)
        return INVALID_ARGUMENT;
    nvmlReturn_t rc = begin(__func__, (int)index, 1);
    if (rc == OK) {
        const char *count = lookup_locked("count");
        if (count == NULL || index >= strtoul(count, NULL, 0))
            rc = INVALID_ARGUMENT;
        else
            *out = &devices[index];
    }
    return end(rc);
}

/* ---- identity and static values ---------------------------------------------------------- */

DEV_STR(nvmlDeviceGetName, "name")
DEV_STR(nvmlDeviceGetSerial, "serial")
DEV_STR(nvmlDeviceGetVbiosVersion, "vbios")

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t dev, nvmlPciInfo_t *out)
{
    static const char *const keys[] = {
        "pci.domain", "pci.bus", "pci.device", "pci.device_id", "pci.subsystem_id"
    };
    unsigned long long v[5];
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK)
        rc = many_locked(gpu, keys, 5, v);
    if (rc == OK) {
        const char *bus_id = gpu_lookup_locked(gpu, "pci.bus_id");
        memset(out, 0, sizeof *out);
        snprintf(out->busId, sizeof out->busId, "%s", bus_id ? bus_id : "");
        snprintf(out->busIdLegacy, sizeof out->busIdLegacy, "%s", bus_id ? bus_id + 4 : "");
        out->domain = (unsigned int)v[0];
        out->bus = (unsigned int)v[1];
        out->device = (unsigned int)v[2];
        out->pciDeviceId = (unsigned int)v[3];
        out->pciSubSystemId = (unsigned int)v[4];
    }
    return end(rc);
}

DEV_UINT_BY(nvmlDeviceGetTemperatureThreshold, "threshold")
DEV_UINT_BY(nvmlDeviceGetMaxClockInfo, "max_clock")
DEV_UINT(nvmlDeviceGetMaxPcieLinkGeneration, "pcie.max_gen")
DEV_UINT(nvmlDeviceGetMaxPcieLinkWidth, "pcie.max_width")
DEV_UINT(nvmlDeviceGetNumFans, "fans")
DEV_ULL(nvmlDeviceGetSupportedClocksThrottleReasons, "supported_clock_events")
#ifndef FAKE_NVML_OLD_DRIVER
DEV_ULL(nvmlDeviceGetSupportedClocksEventReasons, "supported_clock_events")
#endif

/* ---- fast tier --------------------------------------------------------------------------- */

DEV_UINT_BY(nvmlDeviceGetTemperature, "temperature")
DEV_UINT_BY(nvmlDeviceGetClockInfo, "clock")
DEV_UINT_BY(nvmlDeviceGetFanSpeed_v2, "fan")
DEV_UINT(nvmlDeviceGetPowerUsage, "power_mw")
DEV_ULL(nvmlDeviceGetTotalEnergyConsumption, "energy_mj")
DEV_UINT(nvmlDeviceGetPerformanceState, "pstate")
DEV_ULL(nvmlDeviceGetCurrentClocksThrottleReasons, "clock_events")
#ifndef FAKE_NVML_OLD_DRIVER
DEV_ULL(nvmlDeviceGetCurrentClocksEventReasons, "clock_events")

nvmlReturn_t nvmlDeviceGetMarginTemperature(nvmlDevice_t dev, nvmlMarginTemperature_v1_t *out)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && out->version != MARGIN_V1)
        rc = ARGUMENT_VERSION_MISMATCH;
    if (rc == OK) {
        const char *v = gpu_lookup_locked(gpu, "margin");
        if (v == NULL)
            rc = NOT_SUPPORTED;
        else
            out->marginTemperature = (int)strtol(v, NULL, 0);
    }
    return end(rc);
}
#endif

/* Field values: gpu.N.field.<id>; a field not in the file gets NOT_SUPPORTED in its slot. */
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t dev, int count, nvmlFieldValue_t *values)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    for (int i = 0; rc == OK && i < count; i++) {
        char key[32];
        unsigned long long v = 0;
        snprintf(key, sizeof key, "field.%u", values[i].fieldId);
        values[i].latencyUsec = 0;
        values[i].timestamp = (long long)(now_seconds() * 1e6);
        values[i].nvmlReturn = ull_locked(gpu, key, &v);
        values[i].valueType = VALUE_TYPE_ULL;
        memset(&values[i].value, 0, sizeof values[i].value);
        values[i].value.ullVal = v;
    }
    return end(rc);
}

/* ---- slow tier --------------------------------------------------------------------------- */

DEV_UINT(nvmlDeviceGetEnforcedPowerLimit, "limit.enforced_mw")
DEV_UINT(nvmlDeviceGetPowerManagementLimit, "limit.current_mw")
DEV_UINT(nvmlDeviceGetPowerManagementDefaultLimit, "limit.default_mw")
DEV_UINT(nvmlDeviceGetCurrPcieLinkGeneration, "pcie.gen")
DEV_UINT(nvmlDeviceGetCurrPcieLinkWidth, "pcie.width")
DEV_UINT(nvmlDeviceGetPcieReplayCounter, "pcie.replays")
DEV_UINT(nvmlDeviceGetPersistenceMode, "persistence")

nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t dev, unsigned int *lo,
                                                          unsigned int *hi)
{
    static const char *const keys[] = {"limit.min_mw", "limit.max_mw"};
    unsigned long long v[2];
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && (rc = many_locked(gpu, keys, 2, v)) == OK) {
        *lo = (unsigned int)v[0];
        *hi = (unsigned int)v[1];
    }
    return end(rc);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t dev, nvmlUtilization_t *out)
{
    static const char *const keys[] = {"util.gpu", "util.memory"};
    unsigned long long v[2];
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && (rc = many_locked(gpu, keys, 2, v)) == OK) {
        out->gpu = (unsigned int)v[0];
        out->memory = (unsigned int)v[1];
    }
    return end(rc);
}

static nvmlReturn_t codec(const char *call, nvmlDevice_t dev, const char *key,
                          unsigned int *util, unsigned int *period_us)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(call, dev, &gpu);
    if (rc == OK && (rc = uint_locked(gpu, key, util)) == OK)
        *period_us = 167000;
    return end(rc);
}

nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t dev, unsigned int *u, unsigned int *p)
{
    return codec(__func__, dev, "util.encoder", u, p);
}

nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t dev, unsigned int *u, unsigned int *p)
{
    return codec(__func__, dev, "util.decoder", u, p);
}

/* nvmlDeviceGetMemoryInfo (v1) and nvmlDeviceGetUUID also answer MIG handles: see the MIG
 * section at the end. */

#ifndef FAKE_NVML_OLD_DRIVER
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *out)
{
    static const char *const keys[] = {"mem.total", "mem.reserved", "mem.free", "mem.used"};
    unsigned long long v[4];
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && out->version != MEMORY_V2)
        rc = ARGUMENT_VERSION_MISMATCH;
    if (rc == OK && (rc = many_locked(gpu, keys, 4, v)) == OK) {
        out->total = v[0];
        out->reserved = v[1];
        out->free = v[2];
        out->used = v[3];
    }
    return end(rc);
}
#endif

/* ECC: gpu.N.ecc.<error type>.<counter type>, e.g. ecc.1.0 = uncorrected, volatile. */
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t dev, unsigned int type,
                                         unsigned int counter, unsigned long long *out)
{
    char key[48];
    snprintf(key, sizeof key, "ecc.%u.%u", type, counter);
    return dev_ull(__func__, dev, key, out);
}

#ifndef FAKE_NVML_OLD_DRIVER
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t dev, unsigned int *corr, unsigned int *unc,
                                       unsigned int *pending, unsigned int *failure)
{
    static const char *const keys[] = {
        "remap.correctable", "remap.uncorrectable", "remap.pending", "remap.failed"
    };
    unsigned long long v[4];
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && (rc = many_locked(gpu, keys, 4, v)) == OK) {
        *corr = (unsigned int)v[0];
        *unc = (unsigned int)v[1];
        *pending = (unsigned int)v[2];
        *failure = (unsigned int)v[3];
    }
    return end(rc);
}
#endif

/* Violation time: gpu.N.violation.<NVML_PERF_POLICY_*> in nanoseconds. */
nvmlReturn_t nvmlDeviceGetViolationStatus(nvmlDevice_t dev, unsigned int policy,
                                          nvmlViolationTime_t *out)
{
    char key[48];
    int gpu;
    snprintf(key, sizeof key, "violation.%u", policy);
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && (rc = ull_locked(gpu, key, &out->violationTime)) == OK)
        out->referenceTime = (unsigned long long)(now_seconds() * 1e6);
    return end(rc);
}

/* ---- events ------------------------------------------------------------------------------ */

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *out)
{
    nvmlReturn_t rc = begin(__func__, -1, 1);
    if (rc == OK) {
        rc = MEMORY;
        for (int i = 0; i < MAX_SETS; i++) {
            if (!sets[i].in_use) {
                memset(&sets[i], 0, sizeof sets[i]);
                sets[i].in_use = 1;
                *out = &sets[i];
                rc = OK;
                break;
            }
        }
    }
    return end(rc);
}

static int valid_set(nvmlEventSet_t set)
{
    for (int i = 0; i < MAX_SETS; i++)
        if (set == &sets[i] && sets[i].in_use)
            return 1;
    return 0;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t dev, unsigned long long types,
                                      nvmlEventSet_t set)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && !valid_set(set))
        rc = INVALID_ARGUMENT;
    if (rc == OK) {
        set->types |= types;
        set->gpus |= 1u << gpu;
    }
    return end(rc);
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set)
{
    nvmlReturn_t rc = begin(__func__, -1, 1);
    if (rc == OK && !valid_set(set))
        rc = INVALID_ARGUMENT;
    if (rc == OK)
        set->in_use = 0;
    return end(rc);
}

/* The oldest queued event (id > delivered) for a GPU in the set; 1 if one was taken. */
static int take_event_locked(nvmlEventSet_t set, nvmlEventData_t *out)
{
    unsigned long long best = 0, type = 0, data = 0;
    unsigned int best_gpu = 0;
    for (int i = 0; i < nkv; i++) {
        unsigned long long id, t, d;
        unsigned int gpu;
        if (strncmp(kv[i].key, "event.", 6) != 0)
            continue;
        id = strtoull(kv[i].key + 6, NULL, 10);
        if (sscanf(kv[i].val, "%u %llu %llu", &gpu, &t, &d) != 3 || gpu >= MAX_GPUS)
            continue;
        if (id <= delivered || !(set->gpus & (1u << gpu)) || !(set->types & t))
            continue;
        if (best == 0 || id < best) {
            best = id;
            best_gpu = gpu;
            type = t;
            data = d;
        }
    }
    if (best == 0)
        return 0;
    delivered = best;
    memset(out, 0, sizeof *out);
    out->device = &devices[best_gpu];
    out->eventType = type;
    out->eventData = data;
    return 1;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *out, unsigned int ms)
{
    double start = now_seconds(), limit = (double)ms / 1000.0;
    nvmlReturn_t rc = begin(__func__, -1, 1);
    if (rc == OK && !valid_set(set))
        rc = INVALID_ARGUMENT;
    if (rc == OK) {
        const char *cap = lookup_locked("event_wait_cap_ms");
        if (cap != NULL && strtod(cap, NULL) / 1000.0 < limit)
            limit = strtod(cap, NULL) / 1000.0;
    }
    while (rc == OK && !take_event_locked(set, out)) {
        if (now_seconds() - start >= limit) {
            rc = TIMEOUT;
            break;
        }
        pthread_mutex_unlock(&mu);
        nap_ms(5);
        pthread_mutex_lock(&mu);
        reload_locked();
        if (!valid_set(set))
            rc = INVALID_ARGUMENT; /* freed while waiting */
    }
    return end(rc);
}

/* ---- vGPU licensing (the licence collector; added for issue 5) ----------------------------
 *
 *   gpu.0.virt_mode 2                    nvmlDeviceGetVirtualizationMode (2 = VGPU guest)
 *   gpu.0.grid.supported 1               isGridLicenseSupported; absent: NOT_SUPPORTED
 *   gpu.0.grid.count 1                   licensableFeaturesCount (at most 3)
 *   gpu.0.grid.0.code 4                  feature 0: featureCode, featureState, featureEnabled,
 *   gpu.0.grid.0.state 1                 productName (the rest of the line, spaces allowed),
 *   gpu.0.grid.0.enabled 1               licenseExpiry.status and the expiry as epoch seconds
 *   gpu.0.grid.0.product NVIDIA Virtual Compute Server      (written as GMT fields)
 *   gpu.0.grid.0.expiry_status 2
 *   gpu.0.grid.0.expiry 1750265340
 *
 * Layouts: pynvml's c_nvmlGridLicensableFeatures_v4_t (natural alignment, as nvml.h).
 */
typedef struct {
    unsigned int year;
    unsigned short month, day, hour, min, sec;
    unsigned char status;
} nvmlGridLicenseExpiry_t;
typedef struct {
    unsigned int featureCode, featureState;
    char licenseInfo[128], productName[128];
    unsigned int featureEnabled;
    nvmlGridLicenseExpiry_t licenseExpiry;
} nvmlGridLicensableFeature_t;
typedef struct {
    int isGridLicenseSupported;
    unsigned int licensableFeaturesCount;
    nvmlGridLicensableFeature_t gridLicensableFeatures[3];
} nvmlGridLicensableFeatures_t;

DEV_UINT(nvmlDeviceGetVirtualizationMode, "virt_mode")

static unsigned long long grid_ull_locked(int gpu, int feature, const char *what)
{
    char key[64];
    unsigned long long v = 0;
    snprintf(key, sizeof key, "grid.%d.%s", feature, what);
    ull_locked(gpu, key, &v);
    return v;
}

static void grid_feature_locked(int gpu, int i, nvmlGridLicensableFeature_t *f)
{
    char key[64];
    time_t expiry = (time_t)grid_ull_locked(gpu, i, "expiry");
    struct tm tm;
    f->featureCode = (unsigned int)grid_ull_locked(gpu, i, "code");
    f->featureState = (unsigned int)grid_ull_locked(gpu, i, "state");
    f->featureEnabled = (unsigned int)grid_ull_locked(gpu, i, "enabled");
    snprintf(key, sizeof key, "grid.%d.product", i);
    const char *product = gpu_lookup_locked(gpu, key);
    snprintf(f->productName, sizeof f->productName, "%s", product ? product : "");
    f->licenseExpiry.status = (unsigned char)grid_ull_locked(gpu, i, "expiry_status");
    if (expiry > 0 && gmtime_r(&expiry, &tm) != NULL) {
        f->licenseExpiry.year = (unsigned int)tm.tm_year + 1900;
        f->licenseExpiry.month = (unsigned short)(tm.tm_mon + 1);
        f->licenseExpiry.day = (unsigned short)tm.tm_mday;
        f->licenseExpiry.hour = (unsigned short)tm.tm_hour;
        f->licenseExpiry.min = (unsigned short)tm.tm_min;
        f->licenseExpiry.sec = (unsigned short)tm.tm_sec;
    }
}

nvmlReturn_t nvmlDeviceGetGridLicensableFeatures_v4(nvmlDevice_t dev,
                                                    nvmlGridLicensableFeatures_t *out)
{
    int gpu;
    unsigned long long supported = 0, count = 0;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && out == NULL)
        rc = INVALID_ARGUMENT;
    if (rc == OK)
        rc = ull_locked(gpu, "grid.supported", &supported);
    if (rc == OK) {
        memset(out, 0, sizeof *out);
        ull_locked(gpu, "grid.count", &count);
        out->isGridLicenseSupported = (int)supported;
        out->licensableFeaturesCount = (unsigned int)(count > 3 ? 3 : count);
        for (unsigned int i = 0; i < out->licensableFeaturesCount; i++)
            grid_feature_locked(gpu, (int)i, &out->gridLicensableFeatures[i]);
    }
    return end(rc);
}

/* ---- MIG (added for issue 15) ---------------------------------------------------------------
 *
 *   gpu.0.mig.current 1                  nvmlDeviceGetMigMode; absent: NOT_SUPPORTED (no MIG)
 *   gpu.0.mig.pending 1
 *   gpu.0.mig.max 7                      nvmlDeviceGetMaxMigDeviceCount
 *   gpu.0.mig.2.gi 5                     MIG device slot 2 exists (GPU instance 5); a slot
 *   gpu.0.mig.2.ci 0                     without ".gi" answers NOT_FOUND (6)
 *   gpu.0.mig.2.uuid MIG-...             nvmlDeviceGetUUID on the MIG handle
 *   gpu.0.mig.2.mem.total / .free / .used    nvmlDeviceGetMemoryInfo on the MIG handle
 *   gpu.0.mig.2.slices 2 / .ci_slices 2 / .sms 28 / .mem_mb 19968   nvmlDeviceGetAttributes_v2
 *   gpu.0.mig.2.placement.start 4 / .size 2  nvmlGpuInstanceGetInfo (profile id: .profile_id)
 *   gpu.0.mig.privileged 1               nvmlDeviceGetGpuInstanceById answers; absent:
 *                                        NO_PERMISSION (4), as NVML for an unprivileged user
 *
 * Layouts: pynvml's c_nvmlDeviceAttributes and c_nvmlGpuInstanceInfo_t.
 */
#define MAX_MIG 8
#define NOT_FOUND 6
#define NO_PERMISSION 4

typedef struct {
    unsigned int multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount,
        sharedEncoderCount, sharedJpegCount, sharedOfaCount, gpuInstanceSliceCount,
        computeInstanceSliceCount;
    unsigned long long memorySizeMB;
} nvmlDeviceAttributes_t;
typedef struct { unsigned int start, size; } nvmlGpuInstancePlacement_t;
struct fake_gpu_instance { int gpu, slot; };
typedef struct fake_gpu_instance *nvmlGpuInstance_t;
typedef struct {
    nvmlDevice_t device;
    unsigned int id, profileId;
    nvmlGpuInstancePlacement_t placement;
} nvmlGpuInstanceInfo_t;

static struct fake_device mig_devices[MAX_GPUS][MAX_MIG];
static struct fake_gpu_instance gpu_instances[MAX_GPUS][MAX_MIG];

/* A MIG handle's GPU and slot; 0 if `dev` is not one. */
static int mig_of(nvmlDevice_t dev, int *gpu, int *slot)
{
    uintptr_t p = (uintptr_t)dev, first = (uintptr_t)&mig_devices[0][0];
    if (p < first || p >= (uintptr_t)&mig_devices[MAX_GPUS][0] || (p - first) % sizeof devices[0])
        return 0;
    int n = (int)((p - first) / sizeof devices[0]);
    *gpu = n / MAX_MIG;
    *slot = n % MAX_MIG;
    return 1;
}

static const char *mig_lookup_locked(int gpu, int slot, const char *key)
{
    char full[96];
    snprintf(full, sizeof full, "mig.%d.%s", slot, key);
    return gpu_lookup_locked(gpu, full);
}

static nvmlReturn_t mig_ull_locked(int gpu, int slot, const char *key, unsigned long long *out)
{
    const char *v = mig_lookup_locked(gpu, slot, key);
    if (v == NULL)
        return NOT_SUPPORTED;
    *out = strtoull(v, NULL, 0);
    return OK;
}

/* Prologue for a call that takes a MIG handle (slot >= 0) or, if `parent_ok`, a GPU. */
static nvmlReturn_t begin_any(const char *call, nvmlDevice_t dev, int parent_ok, int *gpu,
                              int *slot)
{
    *slot = -1;
    if (mig_of(dev, gpu, slot)) {
        nvmlReturn_t rc = begin(call, *gpu, 1);
        if (rc == OK && mig_lookup_locked(*gpu, *slot, "gi") == NULL)
            rc = INVALID_ARGUMENT; /* destroyed since its handle was taken */
        return rc;
    }
    nvmlReturn_t rc = begin_dev(call, dev, gpu);
    if (rc == OK && !parent_ok)
        rc = INVALID_ARGUMENT; /* a parent handle where a MIG device is required */
    return rc;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char *buf, unsigned int len)
{
    int gpu, slot;
    nvmlReturn_t rc = begin_any(__func__, dev, 1, &gpu, &slot);
    if (rc == OK)
        rc = str_locked(slot >= 0 ? mig_lookup_locked(gpu, slot, "uuid")
                                  : gpu_lookup_locked(gpu, "uuid"), buf, len);
    return end(rc);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *out)
{
    static const char *const keys[] = {"mem.total", "mem.free", "mem.used"};
    unsigned long long v[3];
    int gpu, slot;
    nvmlReturn_t rc = begin_any(__func__, dev, 1, &gpu, &slot);
    for (int i = 0; rc == OK && i < 3; i++)
        rc = slot >= 0 ? mig_ull_locked(gpu, slot, keys[i], &v[i]) : ull_locked(gpu, keys[i], &v[i]);
    if (rc == OK) {
        out->total = v[0];
        out->free = v[1];
        out->used = v[2];
    }
    return end(rc);
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t dev, unsigned int *current, unsigned int *pending)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && (rc = uint_locked(gpu, "mig.current", current)) == OK)
        rc = uint_locked(gpu, "mig.pending", pending);
    return end(rc);
}

DEV_UINT(nvmlDeviceGetMaxMigDeviceCount, "mig.max")

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t dev, unsigned int index,
                                                 nvmlDevice_t *out)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && gpu_lookup_locked(gpu, "mig.current") == NULL)
        rc = NOT_SUPPORTED;
    if (rc == OK && (index >= MAX_MIG || mig_lookup_locked(gpu, (int)index, "gi") == NULL))
        rc = NOT_FOUND;
    if (rc == OK)
        *out = &mig_devices[gpu][index];
    return end(rc);
}

static nvmlReturn_t mig_uint(const char *call, nvmlDevice_t dev, const char *key,
                             unsigned int *out)
{
    int gpu, slot;
    unsigned long long v = 0;
    nvmlReturn_t rc = begin_any(call, dev, 0, &gpu, &slot);
    if (rc == OK && (rc = mig_ull_locked(gpu, slot, key, &v)) == OK)
        *out = (unsigned int)v;
    return end(rc);
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t dev, unsigned int *out)
{
    return mig_uint(__func__, dev, "gi", out);
}

nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t dev, unsigned int *out)
{
    return mig_uint(__func__, dev, "ci", out);
}

nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t dev, unsigned int *out)
{
    int gpu, slot;
    nvmlReturn_t rc = begin_any(__func__, dev, 1, &gpu, &slot);
    if (rc == OK)
        *out = slot >= 0;
    return end(rc);
}

nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t dev, nvmlDeviceAttributes_t *out)
{
    static const char *const keys[] = {"sms", "slices", "ci_slices", "mem_mb"};
    unsigned long long v[4];
    int gpu, slot;
    nvmlReturn_t rc = begin_any(__func__, dev, 0, &gpu, &slot);
    for (int i = 0; rc == OK && i < 4; i++)
        rc = mig_ull_locked(gpu, slot, keys[i], &v[i]);
    if (rc == OK) {
        memset(out, 0, sizeof *out);
        out->multiprocessorCount = (unsigned int)v[0];
        out->gpuInstanceSliceCount = (unsigned int)v[1];
        out->computeInstanceSliceCount = (unsigned int)v[2];
        out->memorySizeMB = v[3];
    }
    return end(rc);
}

nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t dev, unsigned int id,
                                          nvmlGpuInstance_t *out)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && gpu_lookup_locked(gpu, "mig.current") == NULL)
        rc = NOT_SUPPORTED;
    if (rc == OK && gpu_lookup_locked(gpu, "mig.privileged") == NULL)
        rc = NO_PERMISSION;
    if (rc == OK) {
        rc = NOT_FOUND;
        for (int slot = 0; slot < MAX_MIG; slot++) {
            unsigned long long gi = 0;
            if (mig_ull_locked(gpu, slot, "gi", &gi) == OK && gi == id) {
                gpu_instances[gpu][slot].gpu = gpu;
                gpu_instances[gpu][slot].slot = slot;
                *out = &gpu_instances[gpu][slot];
                rc = OK;
                break;
            }
        }
    }
    return end(rc);
}

nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t gi, nvmlGpuInstanceInfo_t *out)
{
    uintptr_t p = (uintptr_t)gi, first = (uintptr_t)&gpu_instances[0][0];
    if (p < first || p >= (uintptr_t)&gpu_instances[MAX_GPUS][0]
        || (p - first) % sizeof gpu_instances[0][0])
        return INVALID_ARGUMENT;
    static const char *const keys[] = {"gi", "profile_id", "placement.start", "placement.size"};
    unsigned long long v[4];
    nvmlReturn_t rc = begin(__func__, gi->gpu, 1);
    for (int i = 0; rc == OK && i < 4; i++)
        rc = mig_ull_locked(gi->gpu, gi->slot, keys[i], &v[i]);
    if (rc == OK) {
        memset(out, 0, sizeof *out);
        out->device = &devices[gi->gpu];
        out->id = (unsigned int)v[0];
        out->profileId = (unsigned int)v[1];
        out->placement.start = (unsigned int)v[2];
        out->placement.size = (unsigned int)v[3];
    }
    return end(rc);
}

/* ---- fan control (nvml fan driver) ------------------------------------------------------- */

static int target_locked(int gpu, unsigned int fan)
{
    return fans_touched ? fan_target[gpu][fan] : -1;
}

static void touch_fans_locked(void)
{
    if (!fans_touched) {
        for (int g = 0; g < MAX_GPUS; g++)
            for (int f = 0; f < MAX_FANS; f++)
                fan_target[g][f] = -1;
        fans_touched = 1;
    }
}

static nvmlReturn_t fan_index_locked(int gpu, unsigned int fan)
{
    unsigned int count = 0;
    if (uint_locked(gpu, "fans", &count) != OK || count == 0)
        return NOT_SUPPORTED;
    return fan < count && fan < MAX_FANS ? OK : INVALID_ARGUMENT;
}

nvmlReturn_t nvmlDeviceGetMinMaxFanSpeed(nvmlDevice_t dev, unsigned int *lo, unsigned int *hi)
{
    static const char *const keys[] = {"fan_speed.min", "fan_speed.max"};
    unsigned long long v[2];
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK && (lo == NULL || hi == NULL))
        rc = INVALID_ARGUMENT;
    if (rc == OK && (rc = many_locked(gpu, keys, 2, v)) == OK) {
        *lo = (unsigned int)v[0];
        *hi = (unsigned int)v[1];
    }
    return end(rc);
}

nvmlReturn_t nvmlDeviceSetFanSpeed_v2(nvmlDevice_t dev, unsigned int fan, unsigned int speed)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK)
        rc = fan_index_locked(gpu, fan);
    if (rc == OK) {
        unsigned int lo = 0, hi = 100;
        uint_locked(gpu, "fan_speed.min", &lo);
        uint_locked(gpu, "fan_speed.max", &hi);
        if (speed < lo || speed > hi) {
            rc = INVALID_ARGUMENT;
        } else {
            touch_fans_locked();
            fan_target[gpu][fan] = (int)speed;
        }
    }
    return end(rc);
}

nvmlReturn_t nvmlDeviceSetDefaultFanSpeed_v2(nvmlDevice_t dev, unsigned int fan)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK)
        rc = fan_index_locked(gpu, fan);
    if (rc == OK) {
        touch_fans_locked();
        fan_target[gpu][fan] = -1;
    }
    return end(rc);
}

nvmlReturn_t nvmlDeviceGetTargetFanSpeed(nvmlDevice_t dev, unsigned int fan, unsigned int *out)
{
    int gpu;
    nvmlReturn_t rc = begin_dev(__func__, dev, &gpu);
    if (rc == OK)
        rc = out ? fan_index_locked(gpu, fan) : INVALID_ARGUMENT;
    if (rc == OK) {
        int t = target_locked(gpu, fan);
        char key[32];
        snprintf(key, sizeof key, "fan.%u", fan); /* the driver's own curve: the speed now */
        if (t >= 0)
            *out = (unsigned int)t;
        else
            rc = uint_locked(gpu, key, out);
    }
    return end(rc);
}

/* Test hook (not an NVML symbol): the speed set on a fan, -1 for the driver's own curve. */
int fakeNvmlFanTarget(int gpu, int fan)
{
    int t = -1;
    pthread_mutex_lock(&mu);
    if (gpu >= 0 && gpu < MAX_GPUS && fan >= 0 && fan < MAX_FANS)
        t = target_locked(gpu, (unsigned int)fan);
    pthread_mutex_unlock(&mu);
    return t;
}
