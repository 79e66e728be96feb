/* pfmcheck PMU EVENT: exit 0 when libpfm4, forced onto PMU (LIBPFM_FORCE_PMU), has EVENT in that
 * PMU's table: encoded (unit masks checked) when the kernel exports the PMU, else found by name
 * in the table libpfm4 lists for it (RAPL on a VM). For the energy formula's tests (perfshim.c);
 * no upstream code. */
#include <perfmon/pfmlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int in_table(const char *pmu_name, const char *event_name)
{
    for (int pmu = 0; pmu < 1024; pmu++) {
        pfm_pmu_info_t info;
        memset(&info, 0, sizeof info);
        info.size = sizeof info;
        if (pfm_get_pmu_info(pmu, &info) != PFM_SUCCESS || !info.name || strcasecmp(info.name, pmu_name))
            continue;
        for (int idx = info.first_event; idx != -1; idx = pfm_get_event_next(idx)) {
            pfm_event_info_t event;
            memset(&event, 0, sizeof event);
            event.size = sizeof event;
            if (pfm_get_event_info(idx, PFM_OS_NONE, &event) == PFM_SUCCESS && !strcasecmp(event.name, event_name))
                return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    pfm_pmu_encode_arg_t arg;
    pfm_event_info_t event;
    pfm_pmu_info_t pmu;

    if (argc != 3)
        return 2;
    setenv("LIBPFM_FORCE_PMU", argv[1], 1);
    if (pfm_initialize() != PFM_SUCCESS)
        return 3;
    memset(&arg, 0, sizeof arg);
    arg.size = sizeof arg;
    if (pfm_get_os_event_encoding(argv[2], PFM_PLM0 | PFM_PLM3, PFM_OS_NONE, &arg) != PFM_SUCCESS)
        return in_table(argv[1], argv[2]) ? 0 : 1;
    free(arg.codes);
    memset(&event, 0, sizeof event);
    event.size = sizeof event;
    memset(&pmu, 0, sizeof pmu);
    pmu.size = sizeof pmu;
    if (pfm_get_event_info(arg.idx, PFM_OS_NONE, &event) != PFM_SUCCESS
        || pfm_get_pmu_info(event.pmu, &pmu) != PFM_SUCCESS)
        return 1;
    return strcasecmp(pmu.name, argv[1]) == 0 ? 0 : 1;
}
