"""
CPU facts for the energy formula: the ``energy`` grain.

.. code-block:: bash

    salt '*' grains.get energy

Fields, what this machine's kernel really offers the sensor (``energy_core.sensor.support`` says
why a machine cannot be monitored, in ``sensor_support``):

- ``cpu_name``, ``cpu_vendor``, ``cpu_family``, ``cpu_model``, ``cpu_count``, ``virtual`` (the
  hypervisor flag), ``cpu_base_freq_mhz`` and ``tdp_w`` (absent when unknown);
- ``msr_events``: the events of the kernel's msr PMU (hwpc-sensor needs aperf and mperf);
- ``rapl_domains``: the RAPL domains perf offers (the ``power`` PMU's ``energy-*`` events: what
  hwpc-sensor reads); ``powercap_domains``: those of the powercap driver, a second source;
- ``pmu_name`` (the kernel's core PMU name on Intel), ``pmu_family`` (the event table it picks),
  ``pmu_events`` (the core events of that table; empty on VMs and unknown CPUs);
- ``perf_event_paranoid``, ``kernel``, ``cgroup_version``, ``cgroup_perf_event`` (the perf_event
  controller is enabled: per-container counting is possible), ``perf_event_mounted`` (its hierarchy
  is mounted where the sensor looks; on cgroup v1 the sensor SLS mounts it when it is not);
- ``cluster``: the host name without its trailing number (``econome-3`` -> ``econome``);
- ``sensor_support``: ``ok``, or the reasons the sensor cannot work here.

Every field can be overridden in the minion config:

.. code-block:: yaml

    energy_facts:
      cpu_name: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz

and, for what the mine publishes, in pillar under ``energy:facts`` (see ``energy.facts``).
"""

import glob
import os
import re

# ARM has no "model name" line: name the core from its implementer/part ids.
ARM_IMPLEMENTERS = {"0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu",
                    "0x48": "HiSilicon", "0x4e": "NVIDIA", "0x50": "APM", "0x51": "Qualcomm",
                    "0x61": "Apple", "0xc0": "Ampere"}
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd07": "Cortex-A57", "0xd08": "Cortex-A72",
             "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1",
             "0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2", "0xac3": "Ampere-1"}

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import events, extmods, names as names_core, sensor
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet: the grain waits for saltutil.sync_all
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, "the energy grain needs the formula's energy_core utils (saltutil.sync_all)")
    return "energy"


def _read(path, default=None):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return default


def _parse_cpuinfo(text):
    """Parse /proc/cpuinfo text into the CPU fields (pure; unit tests feed real samples)."""
    first = {}
    processors = 0
    flags = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            processors += 1
        if key in ("flags", "features") and not flags:
            flags = value
        first.setdefault(key, value)
    facts = {"cpu_count": processors or 1}
    vendor_id = first.get("vendor_id", "")
    if vendor_id == "GenuineIntel":
        facts["cpu_vendor"] = "intel"
    elif vendor_id in ("AuthenticAMD", "HygonGenuine"):
        facts["cpu_vendor"] = "amd"
    elif "cpu implementer" in first:
        facts["cpu_vendor"] = "arm"
    else:
        facts["cpu_vendor"] = vendor_id.lower() or "unknown"

    name = first.get("model name") or first.get("cpu model") or ""
    if not name and "cpu implementer" in first:
        implementer = ARM_IMPLEMENTERS.get(first["cpu implementer"].lower(), first["cpu implementer"])
        part = first.get("cpu part", "").lower()
        name = f"{implementer} {ARM_PARTS.get(part, 'part ' + part)}".strip()
    facts["cpu_name"] = " ".join(name.split()) or "unknown"

    for key, field in (("cpu family", "cpu_family"), ("model", "cpu_model")):
        if first.get(key, "").isdigit():
            facts[field] = int(first[key])
    freq = _base_freq_from_name(facts["cpu_name"])
    if freq:
        facts["cpu_base_freq_mhz"] = freq
    facts["virtual"] = "hypervisor" in flags.split()
    return facts


def _base_freq_from_name(name):
    """``... CPU @ 2.10GHz`` -> 2100 (MHz); None without such a suffix."""
    match = re.search(r"@\s*([0-9]+(?:\.[0-9]+)?)\s*([GM])Hz", name, re.IGNORECASE)
    if not match:
        return None
    value = float(match.group(1))
    return int(round(value * 1000 if match.group(2).upper() == "G" else value))


def _path(root, path):
    return os.path.join(root, path.lstrip("/"))


def _powercap_facts(root):
    """RAPL domains the powercap driver has (package, core, uncore, dram, psys) and the package TDP."""
    domains = set()
    tdp_w = None
    for zone in sorted(glob.glob(_path(root, "/sys/class/powercap/intel-rapl:*"))):
        name = (_read(os.path.join(zone, "name"), "") or "").strip()
        if not name:
            continue
        domains.add(re.sub(r"-\d+$", "", name))
        if name.startswith("package") and tdp_w is None:
            # constraint 0 is the long-term limit (PL1), which defaults to the TDP
            limit = _read(os.path.join(zone, "constraint_0_power_limit_uw"))
            if limit and limit.strip().isdigit() and int(limit) > 0:
                tdp_w = int(limit) // 1_000_000
    return sorted(domains), tdp_w


# the perf events of the kernel's `power` PMU (what hwpc-sensor reads) -> RAPL domain
PERF_RAPL = {"energy-pkg": "package", "energy-ram": "dram", "energy-cores": "core", "energy-gpu": "uncore",
             "energy-psys": "psys"}


def _perf_rapl_domains(root):
    events_dir = _path(root, "/sys/bus/event_source/devices/power/events")
    found = {os.path.basename(p) for p in glob.glob(os.path.join(events_dir, "energy-*"))}
    return sorted(PERF_RAPL[e] for e in found if e in PERF_RAPL)


def _msr_events(root):
    """The events of the kernel's msr PMU (tsc, aperf, mperf, ...), which hwpc-sensor reads for
    TSC/APERF/MPERF; None when the machine has no such PMU directory (or a record lacks it)."""
    events_dir = _path(root, "/sys/bus/event_source/devices/msr/events")
    if not os.path.isdir(events_dir):
        return None
    return sorted(e for e in os.listdir(events_dir) if "." not in e)


def _cgroup_facts(root):
    """(cgroup version, whether per-cgroup perf counting is there, whether the perf_event hierarchy
    is mounted where the sensor looks): v2 when the unified hierarchy is mounted; the perf_event
    controller must be enabled in /proc/cgroups (v2 enables it implicitly). On v1 it must also be
    mounted at /sys/fs/cgroup/perf_event; where it is enabled but not mounted, the sensor SLS
    mounts it (state energy-sensor-mount-perf_event)."""
    version = 2 if os.path.exists(_path(root, "/sys/fs/cgroup/cgroup.controllers")) else 1
    listed = None
    text = _read(_path(root, "/proc/cgroups"))
    if text is not None:
        listed = any(line.split()[:1] == ["perf_event"] and line.split()[-1] == "1" for line in text.splitlines())
    if version == 2:
        return version, listed, listed
    mounts = _read(_path(root, "/proc/mounts"))
    if mounts is None:  # a recorded machine without its mount table: the directory is the hint
        mounted = os.path.isdir(_path(root, "/sys/fs/cgroup/perf_event"))
    else:
        mounted = any(f[1:3] == ["/sys/fs/cgroup/perf_event", "cgroup"] and "perf_event" in f[3].split(",")
                      for f in (line.split() for line in mounts.splitlines()) if len(f) > 3)
    return version, listed, bool(listed) and mounted


def _cluster(hostname):
    """The cluster of a host, as testbeds name them: the short host name without its trailing number
    (``econome-3.nantes.grid5000.fr`` -> ``econome``)."""
    short = (hostname or "").strip().split(".")[0]
    return re.sub(r"[-_]?[0-9]+$", "", short) or short or "unknown"


PFM_PMU_TYPE_CORE = 1  # libpfm4's pfm_pmu_type_t
PFM_OS_NONE = 0


def _libpfm4_core_events(library="pfm"):
    """The event names libpfm4 (the library hwpc-sensor encodes events with) accepts for the core
    PMUs present here; None when libpfm4 is not installed. Read through ctypes with the structures
    of perfmon/pfmlib.h (libpfm 4.x)."""
    import ctypes  # pylint: disable=import-outside-toplevel
    import ctypes.util  # pylint: disable=import-outside-toplevel

    path = ctypes.util.find_library(library)
    if not path:
        return None

    class PmuInfo(ctypes.Structure):  # pfm_pmu_info_t
        _fields_ = [("name", ctypes.c_char_p), ("desc", ctypes.c_char_p), ("size", ctypes.c_size_t),
                    ("pmu", ctypes.c_int), ("type", ctypes.c_int), ("nevents", ctypes.c_int),
                    ("first_event", ctypes.c_int), ("max_encoding", ctypes.c_int), ("num_cntrs", ctypes.c_int),
                    ("num_fixed_cntrs", ctypes.c_int), ("flags", ctypes.c_uint)]

    class EventInfo(ctypes.Structure):  # pfm_event_info_t
        _fields_ = [("name", ctypes.c_char_p), ("desc", ctypes.c_char_p), ("equiv", ctypes.c_char_p),
                    ("size", ctypes.c_size_t), ("code", ctypes.c_uint64), ("pmu", ctypes.c_int),
                    ("dtype", ctypes.c_int), ("idx", ctypes.c_int), ("nattrs", ctypes.c_int),
                    ("reserved", ctypes.c_int), ("flags", ctypes.c_uint)]

    try:
        lib = ctypes.CDLL(path)
        if lib.pfm_initialize() != 0:
            return None
    except OSError:
        return None
    found = set()
    for pmu in range(1024):  # pfm_pmu_t ids; unknown ones return an error
        info = PmuInfo(size=ctypes.sizeof(PmuInfo))
        if lib.pfm_get_pmu_info(pmu, ctypes.byref(info)) != 0 or not info.flags & 1 or info.type != PFM_PMU_TYPE_CORE:
            continue
        idx = info.first_event
        while idx != -1 and len(found) < 5000:
            event = EventInfo(size=ctypes.sizeof(EventInfo))
            if lib.pfm_get_event_info(idx, PFM_OS_NONE, ctypes.byref(event)) == 0 and event.name:
                found.add(event.name.decode(errors="replace"))
            idx = lib.pfm_get_event_next(idx)
    return sorted(found)


def _cpufreq_base_mhz(cpu_dir):
    """Base frequency from cpufreq (intel_pstate: base_frequency; else the max listed state), kHz -> MHz."""
    for name in ("base_frequency", "cpuinfo_max_freq"):
        value = (_read(os.path.join(cpu_dir, name), "") or "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value) // 1000
    return None


def _collect(root="/", overrides=None, hostname=None):
    """All the facts of the machine whose files are under ``root`` (``/``, or a recorded tree)."""
    facts = _parse_cpuinfo(_read(_path(root, "/proc/cpuinfo"), "") or "")
    if "cpu_base_freq_mhz" not in facts:
        freq = _cpufreq_base_mhz(_path(root, "/sys/devices/system/cpu/cpu0/cpufreq"))
        if freq:
            facts["cpu_base_freq_mhz"] = freq
    facts["powercap_domains"], tdp_w = _powercap_facts(root)
    if tdp_w:
        facts["tdp_w"] = tdp_w
    facts["rapl_domains"] = _perf_rapl_domains(root)
    facts["msr_events"] = _msr_events(root)
    pmu_dir = _path(root, "/sys/bus/event_source/devices/cpu")
    facts["pmu_name"] = (_read(os.path.join(pmu_dir, "caps", "pmu_name"), "") or "").strip() or None
    has_core_pmu = os.path.isdir(pmu_dir)
    family = events.family(facts["cpu_vendor"], facts.get("cpu_family"), facts.get("cpu_model"),
                                facts["pmu_name"])
    facts["pmu_family"] = family if has_core_pmu and not facts["virtual"] else None
    facts["pmu_events"] = list(events.FAMILIES.get(facts["pmu_family"], ()))
    paranoid = (_read(_path(root, "/proc/sys/kernel/perf_event_paranoid"), "") or "").strip()
    facts["perf_event_paranoid"] = int(paranoid) if re.fullmatch(r"-?[0-9]+", paranoid) else None
    facts["kernel"] = (_read(_path(root, "/proc/sys/kernel/osrelease"), "") or "").strip()
    facts["cgroup_version"], facts["cgroup_perf_event"], facts["perf_event_mounted"] = _cgroup_facts(root)
    if hostname is None:
        hostname = _read(_path(root, "/proc/sys/kernel/hostname"), "") or ""
    facts["cluster"] = _cluster(hostname)
    facts["sensor_support"] = sensor.support(facts, has_core_pmu)
    if root == "/":  # what libpfm4 says of this machine, not of a recorded one
        names = _libpfm4_core_events()
        if names:
            facts["pmu_event_names"] = names
    for key, value in (overrides or {}).items():
        if key in names_core.FACT_KEYS:
            facts[key] = value
    return facts


def energy():
    """The ``energy`` grain (Salt calls every public function of a grains module)."""
    overrides = __opts__.get("energy_facts") or {}  # pylint: disable=undefined-variable
    return {"energy": _collect("/", overrides=overrides)}


def energy_extmods():
    """The ``energy_extmods`` grain: the digest of the formula's modules this minion has synced
    (``energy_core.extmods``). The orch syncs only the minions whose digest is not the master's.
    Salt loads grains at start and at each module refresh, which every sync the orch makes ends
    with."""
    root = __opts__.get("extension_modules")  # pylint: disable=undefined-variable
    found = extmods.digest(extmods.local_files(root)) if root else None
    return {extmods.GRAIN: found} if found else {}
