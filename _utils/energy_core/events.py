"""The hardware events the hwpc-sensor reads, per CPU family.

From PowerAPI's hwpc-sensor documentation: SmartWatts needs the global target's ``rapl`` group
(``RAPL_ENERGY_PKG``, plus ``RAPL_ENERGY_DRAM`` where the DRAM domain exists; RAPL energy comes in
Joules x 2^32) and ``msr`` group (``TSC``, ``APERF``, ``MPERF``), and a ``core`` group per container,
whose events depend on the core PMU:

- Intel Skylake and later servers: CPU_CLK_THREAD_UNHALTED:REF_P, CPU_CLK_THREAD_UNHALTED:THREAD_P,
  LLC_MISSES, INSTRUCTIONS_RETIRED;
- Intel Sandy Bridge to Comet Lake: CPU_CLK_UNHALTED:REF_P, CPU_CLK_UNHALTED:THREAD_P, LLC_MISSES,
  INSTRUCTIONS_RETIRED;
- AMD Zen 2: CYCLES_NOT_IN_HALT, RETIRED_INSTRUCTIONS, RETIRED_UOPS; Zen 3: the same with RETIRED_OPS.

The sensor does not support Tiger, Alder and Raptor Lake clients, nor virtual machines (no PMU).
"""

# What each core event means, so that CPUs of different families can be compared like with like.
# The role order is the order of the events in the sensor's config.
ROLES = ("ref_cycles", "cycles", "instructions", "llc_misses", "uops")
EVENTS_BY_ROLE = {
    "intel_skylake": {"ref_cycles": "CPU_CLK_THREAD_UNHALTED:REF_P", "cycles": "CPU_CLK_THREAD_UNHALTED:THREAD_P",
                      "instructions": "INSTRUCTIONS_RETIRED", "llc_misses": "LLC_MISSES"},
    "intel_sandy": {"ref_cycles": "CPU_CLK_UNHALTED:REF_P", "cycles": "CPU_CLK_UNHALTED:THREAD_P",
                    "instructions": "INSTRUCTIONS_RETIRED", "llc_misses": "LLC_MISSES"},
    "amd_zen2": {"cycles": "CYCLES_NOT_IN_HALT", "instructions": "RETIRED_INSTRUCTIONS", "uops": "RETIRED_UOPS"},
    "amd_zen3": {"cycles": "CYCLES_NOT_IN_HALT", "instructions": "RETIRED_INSTRUCTIONS", "uops": "RETIRED_OPS"},
}
FAMILIES = {name: tuple(table[role] for role in ROLES if role in table) for name, table in EVENTS_BY_ROLE.items()}
INTEL_SKYLAKE = FAMILIES["intel_skylake"]
INTEL_SANDY = FAMILIES["intel_sandy"]
AMD_ZEN2 = FAMILIES["amd_zen2"]
AMD_ZEN3 = FAMILIES["amd_zen3"]

# the core PMU name the kernel gives Intel CPUs (/sys/bus/event_source/devices/cpu/caps/pmu_name)
INTEL_PMU_FAMILIES = {
    "sandybridge": "intel_sandy", "ivybridge": "intel_sandy", "haswell": "intel_sandy", "broadwell": "intel_sandy",
    "skylake": "intel_skylake", "icelake": "intel_skylake", "sapphire_rapids": "intel_skylake",
}
RAPL_PKG = "RAPL_ENERGY_PKG"
RAPL_DRAM = "RAPL_ENERGY_DRAM"
MSR = ("TSC", "APERF", "MPERF")

# Intel family 6 model numbers
INTEL_SANDY_TO_COMET = {0x2A, 0x2D, 0x3A, 0x3E, 0x3C, 0x3F, 0x45, 0x46, 0x3D, 0x47, 0x4F, 0x56,
                        0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6}
INTEL_SKYLAKE_SERVER_AND_LATER = {0x55, 0x6A, 0x6C, 0x8F, 0xCF, 0xAD, 0xAE}
INTEL_UNSUPPORTED_CLIENTS = {0x8C, 0x8D, 0x97, 0x9A, 0xB7, 0xBA, 0xBF}  # Tiger/Alder/Raptor Lake


def family(vendor, cpu_family, model, pmu_name=None):
    """The event family of a CPU (a key of FAMILIES), or None when the sensor has no events for it.
    On Intel the kernel's PMU name decides when it is known; else the family and model numbers."""
    if vendor == "intel" and pmu_name:
        return INTEL_PMU_FAMILIES.get(pmu_name)
    if vendor == "intel" and cpu_family == 6 and model is not None:
        if model in INTEL_UNSUPPORTED_CLIENTS:
            return None
        if model in INTEL_SANDY_TO_COMET:
            return "intel_sandy"
        if model in INTEL_SKYLAKE_SERVER_AND_LATER:
            return "intel_skylake"
        return None
    if vendor == "amd" and cpu_family is not None:
        if cpu_family == 0x17 and model is not None and model >= 0x30:
            return "amd_zen2"
        if cpu_family == 0x19:
            return "amd_zen3"
    return None


def pmu_events(vendor, cpu_family, model, virtual, pmu_name=None):
    """The core events the sensor can count on this CPU; [] when unknown or in a VM."""
    if virtual:
        return []
    return list(FAMILIES.get(family(vendor, cpu_family, model, pmu_name), ()))


def rapl_events(rapl_domains):
    """The sensor's rapl group: the package, and DRAM where the machine has that domain."""
    return [RAPL_PKG] + ([RAPL_DRAM] if "dram" in (rapl_domains or []) else [])
