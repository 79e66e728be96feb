"""The hardware events the hwpc-sensor reads, per CPU model, as libpfm4 4.13 (which the sensor
encodes events with: Debian's and the pinned release's) accepts them.

SmartWatts needs the global target's ``rapl`` group (``RAPL_ENERGY_PKG``, plus ``RAPL_ENERGY_DRAM``
where the DRAM domain exists; RAPL energy comes in Joules x 2^32) and ``msr`` group (``TSC``,
``APERF``, ``MPERF``), and a ``core`` group per container, whose events depend on the core PMU:

- Intel Skylake-SP and Cascade Lake (libpfm4 ``skx``/``clx``): CPU_CLK_THREAD_UNHALTED:REF_P,
  CPU_CLK_THREAD_UNHALTED:THREAD_P, INSTRUCTIONS_RETIRED, LLC_MISSES;
- Intel Ice Lake-SP and Sapphire Rapids (``icx``, ``icl`` for Ice Lake-D, ``spr``): their tables have
  no CPU_CLK_THREAD_UNHALTED: CPU_CLK_UNHALTED:REF_TSC, CPU_CLK_UNHALTED:THREAD_P,
  INSTRUCTIONS_RETIRED, LLC_MISSES;
- Intel Sandy Bridge to Comet Lake: CPU_CLK_UNHALTED:REF_P, CPU_CLK_UNHALTED:THREAD_P,
  INSTRUCTIONS_RETIRED, LLC_MISSES;
- AMD Zen 2: CYCLES_NOT_IN_HALT, RETIRED_INSTRUCTIONS, RETIRED_UOPS; Zen 3: RETIRED_OPS instead.

``LLC_MISSES`` comes from libpfm4's architectural PMU (``ix86arch``), active beside the model's.
``MODELS`` says, per CPU model, the libpfm4 PMU that encodes its core events and the RAPL domains
libpfm4's RAPL table has for it; ``tests/unit/test_libpfm4_tables.py`` encodes every event with
libpfm4 forced onto each of those PMUs. Unsupported (libpfm4 4.13 lacks their core PMU or RAPL,
or PowerAPI excludes them): Emerald and Granite Rapids, AMD Zen 4 (but for RAPL), Intel Ice Lake,
Tiger, Rocket, Alder and Raptor Lake clients, whatever the kernel's PMU name says; virtual machines.
The ``msr`` events are not libpfm4's: the sensor (1.4 and later) reads the kernel's msr PMU
(``/sys/bus/event_source/devices/msr/events``), which must offer aperf and mperf.
"""

# What each core event means, so that CPUs of different families can be compared like with like.
# The role order is the order of the events in the sensor's config.
ROLES = ("ref_cycles", "cycles", "instructions", "llc_misses", "uops")
EVENTS_BY_ROLE = {
    "intel_skylake": {"ref_cycles": "CPU_CLK_THREAD_UNHALTED:REF_P", "cycles": "CPU_CLK_THREAD_UNHALTED:THREAD_P",
                      "instructions": "INSTRUCTIONS_RETIRED", "llc_misses": "LLC_MISSES"},
    "intel_icelake_sp": {"ref_cycles": "CPU_CLK_UNHALTED:REF_TSC", "cycles": "CPU_CLK_UNHALTED:THREAD_P",
                         "instructions": "INSTRUCTIONS_RETIRED", "llc_misses": "LLC_MISSES"},
    "intel_sandy": {"ref_cycles": "CPU_CLK_UNHALTED:REF_P", "cycles": "CPU_CLK_UNHALTED:THREAD_P",
                    "instructions": "INSTRUCTIONS_RETIRED", "llc_misses": "LLC_MISSES"},
    "amd_zen2": {"cycles": "CYCLES_NOT_IN_HALT", "instructions": "RETIRED_INSTRUCTIONS", "uops": "RETIRED_UOPS"},
    "amd_zen3": {"cycles": "CYCLES_NOT_IN_HALT", "instructions": "RETIRED_INSTRUCTIONS", "uops": "RETIRED_OPS"},
}
FAMILIES = {name: tuple(table[role] for role in ROLES if role in table) for name, table in EVENTS_BY_ROLE.items()}
INTEL_SKYLAKE = FAMILIES["intel_skylake"]
INTEL_ICELAKE_SP = FAMILIES["intel_icelake_sp"]
INTEL_SANDY = FAMILIES["intel_sandy"]
AMD_ZEN2 = FAMILIES["amd_zen2"]
AMD_ZEN3 = FAMILIES["amd_zen3"]

RAPL_PKG = "RAPL_ENERGY_PKG"
RAPL_DRAM = "RAPL_ENERGY_DRAM"
RAPL_EVENTS = {"package": RAPL_PKG, "dram": RAPL_DRAM}
MSR = ("TSC", "APERF", "MPERF")
MSR_KERNEL_EVENTS = ("aperf", "mperf")  # what the kernel's msr PMU must offer (tsc: every x86 kernel)

# Intel family 6 models: (event family, libpfm4 core PMUs, RAPL domains of libpfm4's table for it)
_SERVER_RAPL = ("package", "dram")
_CLIENT_RAPL = ("package",)
INTEL_MODELS = {
    0x2A: ("intel_sandy", ("snb",), _CLIENT_RAPL), 0x2D: ("intel_sandy", ("snb_ep",), _SERVER_RAPL),
    0x3A: ("intel_sandy", ("ivb",), _CLIENT_RAPL), 0x3E: ("intel_sandy", ("ivb_ep",), _SERVER_RAPL),
    0x3C: ("intel_sandy", ("hsw",), _CLIENT_RAPL), 0x45: ("intel_sandy", ("hsw",), _CLIENT_RAPL),
    0x46: ("intel_sandy", ("hsw",), _CLIENT_RAPL), 0x3F: ("intel_sandy", ("hsw_ep",), _SERVER_RAPL),
    0x3D: ("intel_sandy", ("bdw",), _CLIENT_RAPL), 0x47: ("intel_sandy", ("bdw",), _CLIENT_RAPL),
    0x4F: ("intel_sandy", ("bdw_ep",), _SERVER_RAPL), 0x56: ("intel_sandy", ("bdw_ep",), _SERVER_RAPL),
    0x4E: ("intel_sandy", ("skl",), _CLIENT_RAPL), 0x5E: ("intel_sandy", ("skl",), _CLIENT_RAPL),
    0x8E: ("intel_sandy", ("skl",), _CLIENT_RAPL), 0x9E: ("intel_sandy", ("skl",), _CLIENT_RAPL),
    0xA5: ("intel_sandy", ("skl",), _CLIENT_RAPL), 0xA6: ("intel_sandy", ("skl",), _CLIENT_RAPL),
    0x55: ("intel_skylake", ("skx", "clx"), _SERVER_RAPL),  # Skylake-SP (stepping < 5), Cascade Lake
    0x6A: ("intel_icelake_sp", ("icx",), _SERVER_RAPL),
    0x6C: ("intel_icelake_sp", ("icl",), _SERVER_RAPL),  # Ice Lake-D: libpfm4's icl table
    0x8F: ("intel_icelake_sp", ("spr",), _SERVER_RAPL),
}
# models the formula knows and refuses, with the reason (the grain's support verdict says it)
INTEL_REFUSED = {
    0xCF: "Emerald Rapids: libpfm4 4.13 has neither its core PMU (emr) nor its RAPL",
    0xAD: "Granite Rapids: libpfm4 4.13 has neither its core PMU (gnr) nor its RAPL",
    0xAE: "Granite Rapids-D: libpfm4 4.13 has neither its core PMU (gnr) nor its RAPL",
    **{m: "an Ice Lake client: PowerAPI does not support it" for m in (0x7D, 0x7E)},
    **{m: "a Tiger Lake client: PowerAPI does not support it" for m in (0x8C, 0x8D)},
    0xA7: "a Rocket Lake client: PowerAPI does not support it",
    **{m: "an Alder Lake client: PowerAPI does not support it" for m in (0x97, 0x9A)},
    **{m: "a Raptor Lake client: PowerAPI does not support it" for m in (0xB7, 0xBA, 0xBF)},
}
# AMD (family, first model, last model): event family, libpfm4 core PMU, RAPL domains (libpfm4's
# amd64_rapl: the package only, and only for Zen 2 and Zen 3 in 4.13)
AMD_MODELS = (
    (0x17, 0x30, 0xFF, "amd_zen2", ("amd64_fam17h_zen2",), ("package",)),
    (0x19, 0x00, 0x0F, "amd_zen3", ("amd64_fam19h_zen3",), ("package",)),
    (0x19, 0x20, 0x5F, "amd_zen3", ("amd64_fam19h_zen3",), ("package",)),
)
AMD_REFUSED = ((0x17, 0x00, 0x2F, "AMD Zen 1: PowerAPI has no event set for it"),
               (0x19, 0x10, 0x1F, "AMD Zen 4: libpfm4 4.13 has no RAPL for it (amd64_rapl: Zen 2 and 3)"),
               (0x19, 0x60, 0xAF, "AMD Zen 4: libpfm4 4.13 has neither its core PMU nor its RAPL"))

# the kernel's core PMU name (/sys/bus/event_source/devices/cpu/caps/pmu_name), for facts that
# carry no model number; "icelake" names Ice Lake-SP and Tiger Lake alike, so it decides nothing
INTEL_PMU_FAMILIES = {
    "sandybridge": "intel_sandy", "ivybridge": "intel_sandy", "haswell": "intel_sandy", "broadwell": "intel_sandy",
    "skylake": "intel_skylake", "sapphire_rapids": "intel_icelake_sp",
}


def model_entry(vendor, cpu_family, model):
    """``(event family, libpfm4 core PMUs, RAPL domains)`` of a CPU model, or None (unknown or
    refused: ``refused`` says why)."""
    if vendor == "intel" and cpu_family == 6 and model is not None:
        return INTEL_MODELS.get(model)
    if vendor == "amd" and cpu_family is not None and model is not None:
        for fam, first, last, name, pmus, rapl in AMD_MODELS:
            if fam == cpu_family and first <= model <= last:
                return name, pmus, rapl
    return None


def refused(vendor, cpu_family, model):
    """Why the sensor cannot count this CPU model's events, or None when the formula has no word on it."""
    if vendor == "intel" and cpu_family == 6:
        return INTEL_REFUSED.get(model)
    for fam, first, last, reason in AMD_REFUSED if vendor == "amd" and model is not None else ():
        if fam == cpu_family and first <= model <= last:
            return reason
    return None


def family(vendor, cpu_family, model, pmu_name=None):
    """The event family of a CPU (a key of FAMILIES), or None when the sensor has no events for it.
    The model number decides (``MODELS``); the kernel's PMU name only when there is no model."""
    if model is not None and cpu_family is not None:
        entry = model_entry(vendor, cpu_family, model)
        return entry[0] if entry else None
    if vendor == "intel" and pmu_name:
        return INTEL_PMU_FAMILIES.get(pmu_name)
    return None


def rapl_domains(vendor, cpu_family, model):
    """The RAPL domains libpfm4 has events for on this CPU model; None when the model is unknown
    (facts without a model: the perf domains alone decide)."""
    entry = model_entry(vendor, cpu_family, model)
    return list(entry[2]) if entry else None


def pmu_events(vendor, cpu_family, model, virtual, pmu_name=None):
    """The core events the sensor can count on this CPU; [] when unknown or in a VM."""
    if virtual:
        return []
    return list(FAMILIES.get(family(vendor, cpu_family, model, pmu_name), ()))


def rapl_events(rapl_domains):
    """The sensor's rapl group: the package, and DRAM where the machine has that domain."""
    return [RAPL_PKG] + ([RAPL_DRAM] if "dram" in (rapl_domains or []) else [])


def has_dram(facts):
    """Whether the sensor can read DRAM energy on a CPU with these facts: perf offers the domain
    and libpfm4's RAPL table for the model has it (client tables and AMD's have none)."""
    known = rapl_domains(facts.get("cpu_vendor"), facts.get("cpu_family"), facts.get("cpu_model"))
    return "dram" in (facts.get("rapl_domains") or []) and (known is None or "dram" in known)
