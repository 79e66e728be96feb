/*
 * perfshim: an LD_PRELOAD library that lets the real hwpc-sensor run on a machine without a core
 * PMU or RAPL (a VM, CI). Written for the energy formula's tests; no upstream code.
 *
 * - perf_event_open (the sensor calls it through libc's syscall()): with PERFSHIM_COUNTERS unset,
 *   only the sensor's start-up probe (a disabled PERF_COUNT_HW_INSTRUCTIONS on cpu 0, no group) is
 *   answered; every other call goes to the kernel. With PERFSHIM_COUNTERS=1 every call returns a
 *   fake fd whose read() gives the PERF_FORMAT_GROUP layout (nr, time_enabled, time_running,
 *   values) with synthetic values that grow with time: RAPL package 10 W + 30 W x the activity of
 *   the cgroups listed in PERFSHIM_CGROUPS (path-suffix:share,...), DRAM 5 W, TSC 2.1 GHz,
 *   APERF == MPERF 1.8 GHz, the core events of a cgroup its share of the activity.
 * - pfm_get_os_event_encoding (libpfm4): when the sensor's own libpfm4 (LIBPFM_FORCE_PMU: one PMU
 *   only) does not know an event, each PMU of PERFSHIM_PFM_PMUS is asked in turn, each in a child
 *   process (`pfmcheck <pmu> <event>`: libpfm4 forced onto that PMU), as on a real machine where
 *   the core, architectural, RAPL and MSR PMUs are active together. RAPL_ENERGY_DRAM is answered
 *   by PERFSHIM_RAPL_DRAM=1: libpfm4 picks its RAPL table from CPUID, which no variable can force.
 * - capset: see PERFSHIM_CAPSET below.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <math.h>
#include <perfmon/pfmlib_perf_event.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 65536
#define MAXMEMBERS 16
#define POWER_TYPE 0x7e01 /* the type this shim gives the RAPL events it encodes */
#define MSR_TYPE 0x7e02   /* and the MSR events (the sensor may read /sys/devices/msr/type) */

struct fake {
    int used, leader, nmembers, members[MAXMEMBERS];
    uint32_t type;
    uint64_t config;
    double share, phase, t_enabled, base[MAXMEMBERS];
};
static struct fake *fakes;
static double t0 = -1;
static uint32_t msr_type = MSR_TYPE;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = ts.tv_sec + ts.tv_nsec / 1e9;
    if (t0 < 0)
        t0 = t - 1.0;
    return t - t0;
}

static void init(void)
{
    if (fakes)
        return;
    fakes = calloc(MAXFD, sizeof(struct fake));
    FILE *f = fopen("/sys/devices/msr/type", "r");
    if (f) {
        unsigned v;
        if (fscanf(f, "%u", &v) == 1)
            msr_type = v;
        fclose(f);
    }
    now();
}

/* integral from 0 to t of share x (1 + 0.3 sin(t / 7 + phase)): a cgroup's busy cpu-seconds */
static double activity(double share, double phase, double t)
{
    return share * (t - 0.3 * 7 * (cos(t / 7 + phase) - cos(phase)));
}

/* share and phase of the cgroup PERFSHIM_CGROUPS gives for path (-1: sum of them all) */
static double cgroups(const char *path, double t, double *share, double *phase)
{
    const char *env = getenv("PERFSHIM_CGROUPS");
    char *list = strdup(env ? env : ""), *item, *save = NULL;
    double sum = 0;
    for (int i = 0; (item = strtok_r(i ? NULL : list, ",", &save)); i++) {
        char *colon = strrchr(item, ':');
        if (!colon)
            continue;
        *colon = 0;
        double s = atof(colon + 1);
        sum += activity(s, i * 1.7, t);
        size_t l = path ? strlen(path) : 0, k = strlen(item);
        if (path && l >= k && !strcmp(path + l - k, item)) {
            *share = s;
            *phase = i * 1.7;
        }
    }
    free(list);
    return sum;
}

static double value_of(const struct fake *e, double t)
{
    if (e->type == POWER_TYPE) /* Joules x 2^32 of one package */
        return ldexp(e->config == 3 ? 5.0 * t : 10.0 * t + 30.0 * cgroups(NULL, t, NULL, NULL), 32);
    if (e->type == msr_type)
        return e->config == 0 ? 2.1e9 * t : 1.8e9 * t;
    /* a core event: the cycles of this cgroup on this cpu (2 cpus share its work), per event */
    return 0.9e9 * (1.0 + (double) (e->config & 0xff) / 512.0) * activity(e->share, e->phase, t);
}

static long real_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
    static long (*real)(long, ...);
    if (!real)
        real = (long (*)(long, ...)) dlsym(RTLD_NEXT, "syscall");
    return real(n, a, b, c, d, e, f);
}

static long fake_perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group_fd, unsigned long flags)
{
    int counters = getenv("PERFSHIM_COUNTERS") && !strcmp(getenv("PERFSHIM_COUNTERS"), "1");
    int probe = attr->type == PERF_TYPE_HARDWARE && attr->config == PERF_COUNT_HW_INSTRUCTIONS && pid == -1
                && cpu == 0 && group_fd == -1;
    if (!counters && !probe)
        return real_syscall6(SYS_perf_event_open, (long) attr, pid, cpu, group_fd, (long) flags, 0);
    init();
    int fd = eventfd(0, EFD_CLOEXEC);
    if (fd < 0 || fd >= MAXFD)
        return -1;
    struct fake *e = &fakes[fd];
    memset(e, 0, sizeof *e);
    e->used = 1;
    e->type = attr->type;
    e->config = attr->config;
    e->share = 1.0;
    if (flags & PERF_FLAG_PID_CGROUP) {
        char link[64], path[512];
        snprintf(link, sizeof link, "/proc/self/fd/%d", pid);
        ssize_t n = readlink(link, path, sizeof path - 1);
        path[n > 0 ? n : 0] = 0;
        e->share = 0.02; /* a cgroup the test did not list */
        cgroups(path, 0, &e->share, &e->phase);
    }
    e->leader = fd;
    if (group_fd >= 0 && group_fd < MAXFD && fakes[group_fd].used) {
        struct fake *l = &fakes[group_fd];
        e->leader = group_fd;
        e->share = l->share;
        e->phase = l->phase;
        if (l->nmembers < MAXMEMBERS)
            l->members[l->nmembers++] = fd;
    } else {
        e->members[e->nmembers++] = fd;
    }
    return fd;
}

long syscall(long n, ...)
{
    va_list ap;
    long a[6];
    va_start(ap, n);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    /* the engine here cannot grant CAP_PERFMON, which 1.7.0 asks for (capset) before anything:
     * PERFSHIM_CAPSET=1 answers that call (the counters are fake anyway) */
    if (n == SYS_capset && getenv("PERFSHIM_CAPSET") && !strcmp(getenv("PERFSHIM_CAPSET"), "1"))
        return 0;
    if (n == SYS_perf_event_open)
        return fake_perf_event_open((struct perf_event_attr *) a[0], (pid_t) a[1], (int) a[2], (int) a[3],
                                    (unsigned long) a[4]);
    return real_syscall6(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static int is_fake(int fd)
{
    return fakes && fd >= 0 && fd < MAXFD && fakes[fd].used;
}

ssize_t read(int fd, void *buf, size_t count)
{
    static ssize_t (*real)(int, void *, size_t);
    if (!real)
        real = (ssize_t (*)(int, void *, size_t)) dlsym(RTLD_NEXT, "read");
    if (!is_fake(fd))
        return real(fd, buf, count);
    struct fake *l = &fakes[fd];
    size_t need = (3 + (size_t) l->nmembers) * sizeof(uint64_t);
    if (count < need) {
        errno = ENOSPC;
        return -1;
    }
    double t = now();
    uint64_t *out = buf;
    uint64_t elapsed = (uint64_t) ((t - l->t_enabled) * 1e9);
    out[0] = (uint64_t) l->nmembers;
    out[1] = elapsed; /* time_enabled */
    out[2] = elapsed; /* time_running */
    for (int i = 0; i < l->nmembers; i++)
        out[3 + i] = (uint64_t) (value_of(&fakes[l->members[i]], t) - l->base[i]);
    return (ssize_t) need;
}

int ioctl(int fd, unsigned long request, ...)
{
    static int (*real)(int, unsigned long, ...);
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (!real)
        real = (int (*)(int, unsigned long, ...)) dlsym(RTLD_NEXT, "ioctl");
    if (!is_fake(fd))
        return real(fd, request, arg);
    struct fake *l = &fakes[fakes[fd].leader];
    double t = now();
    if (request == PERF_EVENT_IOC_RESET || request == PERF_EVENT_IOC_ENABLE) {
        if (request == PERF_EVENT_IOC_ENABLE || l->t_enabled == 0)
            l->t_enabled = t;
        for (int i = 0; i < l->nmembers; i++)
            l->base[i] = value_of(&fakes[l->members[i]], t);
    }
    return 0;
}

int close(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int)) dlsym(RTLD_NEXT, "close");
    if (is_fake(fd))
        fakes[fd].used = 0;
    return real(fd);
}

/* ---------------------------------------------------------------- libpfm4: the other PMUs */
static int pfmcheck(const char *pmu, const char *event)
{
    pid_t child = fork();
    if (child == 0) {
        execl("/usr/local/bin/pfmcheck", "pfmcheck", pmu, event, (char *) NULL);
        _exit(127);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) < 0)
        return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

pfm_err_t pfm_get_os_event_encoding(const char *str, int dfl_plm, pfm_os_t os, void *args)
{
    static pfm_err_t (*real)(const char *, int, pfm_os_t, void *);
    if (!real)
        real = (pfm_err_t (*)(const char *, int, pfm_os_t, void *)) dlsym(RTLD_NEXT, "pfm_get_os_event_encoding");
    pfm_err_t ret = real(str, dfl_plm, os, args);
    const char *list = getenv("PERFSHIM_PFM_PMUS");
    if (ret == PFM_SUCCESS || !list || !*list || os < PFM_OS_PERF_EVENT)
        return ret;
    char *pmus = strdup(list), *pmu, *save = NULL;
    int found = 0, rapl = 0;
    for (int i = 0; !found && (pmu = strtok_r(i ? NULL : pmus, ",", &save)); i++) {
        rapl = strstr(pmu, "rapl") != NULL;
        if (rapl && !strcasecmp(str, "RAPL_ENERGY_DRAM"))
            found = getenv("PERFSHIM_RAPL_DRAM") && !strcmp(getenv("PERFSHIM_RAPL_DRAM"), "1");
        else
            found = pfmcheck(pmu, str);
        if (found) {
            struct perf_event_attr *attr = ((pfm_perf_encode_arg_t *) args)->attr;
            int msr = strstr(pmu, "msr") != NULL;
            attr->type = rapl ? POWER_TYPE : msr ? msr_type : PERF_TYPE_RAW;
            attr->config = rapl ? (strcasestr(str, "DRAM") ? 3 : 2)
                           : msr ? (!strcasecmp(str, "TSC") ? 0 : !strcasecmp(str, "APERF") ? 1 : 2) : 0x3c;
        }
    }
    free(pmus);
    return found ? PFM_SUCCESS : ret;
}
