"""
CPU facts for the energy formula: the ``energy`` grain.

.. code-block:: bash

    salt '*' grains.get energy

Fields: ``cpu_name``, ``cpu_vendor``, ``cpu_family``, ``cpu_model``, ``cpu_count``,
``cpu_base_freq_mhz`` (absent when unknown), ``tdp_w`` (absent when unknown), ``rapl_domains``,
``pmu_events`` (core events SmartWatts can use; empty on VMs and unknown CPUs), ``virtual`` and
``cgroup_version``. Every field can be overridden in the minion config:

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

    core = energy_core.load()
except ImportError:  # the utils are not synced yet: the grain waits for saltutil.sync_all
    core = None


def __virtual__():
    if core is None:
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
    facts["pmu_events"] = core.events.pmu_events(facts["cpu_vendor"], facts.get("cpu_family"),
                                                 facts.get("cpu_model"), facts["virtual"])
    return facts


def _base_freq_from_name(name):
    """``... CPU @ 2.10GHz`` -> 2100 (MHz); None without such a suffix."""
    match = re.search(r"@\s*([0-9]+(?:\.[0-9]+)?)\s*([GM])Hz", name, re.IGNORECASE)
    if not match:
        return None
    value = float(match.group(1))
    return int(round(value * 1000 if match.group(2).upper() == "G" else value))


def _rapl_facts(powercap="/sys/class/powercap"):
    """RAPL domains (package, core, uncore, dram, psys) and the package TDP when the kernel has it."""
    domains = set()
    tdp_w = None
    for zone in sorted(glob.glob(os.path.join(powercap, "intel-rapl:*"))):
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


def _cgroup_version(root="/sys/fs/cgroup"):
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1


def _cpufreq_base_mhz(cpu_dir="/sys/devices/system/cpu/cpu0/cpufreq"):
    """Base frequency from cpufreq (intel_pstate: base_frequency; else the max listed state), kHz -> MHz."""
    for name in ("base_frequency", "cpuinfo_max_freq"):
        value = (_read(os.path.join(cpu_dir, name), "") or "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value) // 1000
    return None


def _collect(cpuinfo_text, powercap="/sys/class/powercap", cgroup_root="/sys/fs/cgroup",
            cpufreq_dir="/sys/devices/system/cpu/cpu0/cpufreq", overrides=None):
    """All the facts, from the given paths (pure apart from reading them)."""
    facts = _parse_cpuinfo(cpuinfo_text or "")
    if "cpu_base_freq_mhz" not in facts:
        freq = _cpufreq_base_mhz(cpufreq_dir)
        if freq:
            facts["cpu_base_freq_mhz"] = freq
    facts["rapl_domains"], tdp_w = _rapl_facts(powercap)
    if tdp_w:
        facts["tdp_w"] = tdp_w
    facts["cgroup_version"] = _cgroup_version(cgroup_root)
    for key, value in (overrides or {}).items():
        if key in core.names.FACT_KEYS:
            facts[key] = value
    return facts


def energy():
    """The ``energy`` grain (the only public function: Salt calls every public one)."""
    overrides = __opts__.get("energy_facts") or {}  # pylint: disable=undefined-variable
    return {"energy": _collect(_read("/proc/cpuinfo", ""), overrides=overrides)}
