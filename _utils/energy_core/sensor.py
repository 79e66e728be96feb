"""Which events each CPU name's sensors read: "best" (each CPU gets every role its PMU has) or
"common" (every CPU of a comparison gets the same roles and RAPL domains), plus the events users add.

``sensor_events(cpu_facts, mode, extra)`` is the rule; the plan calls it with the mine's facts.
"""

import re

from . import events
from .schema import PlanError

MODES = ("best", "common")


def family_of(facts):
    """The event family (a key of ``events.FAMILIES``) of a CPU's energy facts, or None: the
    grain's ``pmu_family`` when it has one, else the vendor, family, model and PMU name; but when
    ``pmu_events`` are listed (an override) and that family's table lacks some of them, the one
    family whose table holds them all."""
    found = facts["pmu_family"] if facts.get("pmu_family") in events.FAMILIES else events.family(
        facts.get("cpu_vendor"), facts.get("cpu_family"), facts.get("cpu_model"), facts.get("pmu_name"))
    given = set(facts.get("pmu_events") or [])
    if given and (found is None or not given <= set(events.FAMILIES[found])):
        matches = [name for name, table in events.FAMILIES.items() if given <= set(table)]
        return matches[0] if len(matches) == 1 else found
    return found


def roles_of(facts):
    """{role: event} this CPU can count. The grain's ``pmu_events`` decide when they are listed (an
    override on a VM included); without the key, the family's whole table; an empty list, nothing."""
    family = family_of(facts)
    table = events.EVENTS_BY_ROLE.get(family, {})
    listed = facts.get("pmu_events")
    if isinstance(listed, list) and listed:
        return {role: event for role, event in table.items() if event in listed}
    if listed is None and not facts.get("virtual"):
        return dict(table)
    return {}


def offered(facts):
    """Every core event name this CPU's PMU accepts, as far as the formula knows: its family's
    table, the grain's ``pmu_events``, and the names libpfm4 gave the grain (``pmu_event_names``)."""
    family = family_of(facts)
    names = set(events.FAMILIES.get(family, ())) if not facts.get("virtual") else set()
    names |= set(facts.get("pmu_events") or []) | set(facts.get("pmu_event_names") or [])
    return names


def _ordered(roles, table):
    return [table[role] for role in events.ROLES if role in roles]


def resolve(cpu_facts, mode="best", extra=None, compared=None, labels=None):
    """``(events by CPU name, roles dropped by CPU name)``; see ``sensor_events``. ``compared``: the
    CPU names of the comparison in ``common`` mode (default: all). The plan resolves per sensor
    host: its keys are then minion ids, which ``labels`` names in errors (``CPU name (minion)``)."""
    labels = labels or {}
    if mode not in MODES:
        raise PlanError(f"energy:sensor:mode: bad value {mode!r}. Fix: one of {', '.join(MODES)}.")
    extra = extra or {}
    roles = {cpu: roles_of(facts) for cpu, facts in cpu_facts.items()}
    dram = {cpu: events.has_dram(facts) for cpu, facts in cpu_facts.items()}
    group = sorted(cpu_facts if compared is None else set(compared) & set(cpu_facts))
    common_roles = set(events.ROLES)
    if mode == "common":
        for cpu in group:
            common_roles &= set(roles[cpu])
        if group and not common_roles:
            each = "; ".join(f"{labels.get(cpu, cpu)}: {', '.join(sorted(roles[cpu])) or 'none'}" for cpu in group)
            raise PlanError(
                "energy:sensor:mode: bad value 'common': the CPU names compared have no core event role in common "
                f"({each}). Fix: leave the CPUs without usable PMU events out of the comparison "
                "(energy:sensor:compare), or use mode best.")
        common_dram = all(dram[cpu] for cpu in group)
    result, dropped = {}, {}
    for cpu, facts in sorted(cpu_facts.items()):
        in_common = mode == "common" and cpu in group
        table = events.EVENTS_BY_ROLE.get(family_of(facts), {})
        kept = {r for r in roles[cpu] if r in common_roles} if in_common else set(roles[cpu])
        core = _ordered(kept, table) if table else list(facts.get("pmu_events") or [])
        dropped[cpu] = [r for r in events.ROLES if r in roles[cpu] and r not in kept]
        has_dram = common_dram if in_common else dram[cpu]
        known = offered(facts)
        for event in list(extra.get("*") or []) + list(extra.get(cpu) or []):
            # libpfm4 lists events without their unit masks: EVENT:UMASK is known when EVENT is
            if event not in known and event.split(":")[0] not in known:
                raise PlanError(
                    f"energy:sensor:extra_events: bad value {event!r}: CPU {labels.get(cpu, cpu)!r} cannot count it "
                    f"(PMU {family_of(facts) or facts.get('pmu_name') or 'unknown'}). It offers: "
                    f"{', '.join(sorted(known)) or 'no core event'}. Fix: remove it, or add it for the CPU "
                    "names that have it only (energy:sensor:extra_events:<cpu name>).")
            if event not in core:
                core.append(event)
        result[cpu] = {"core": core, "rapl": events.rapl_events(["dram"] if has_dram else []),
                       "msr": list(events.MSR), "dram": has_dram}
    return result, dropped


def sensor_events(cpu_facts, mode="best", extra=None):
    """
    The events of each CPU name's sensors.

    ``cpu_facts`` is ``{cpu_name: energy grain}``; ``mode`` ``best`` (each CPU name gets every
    role its PMU has and every RAPL domain it has) or ``common`` (every CPU name gets the roles all
    of them have, and DRAM only if all have it); ``extra`` is ``{cpu_name or "*": [event, ...]}``,
    added after the roles' events. Returns ``{cpu_name: {"core": [...], "rapl": [...], "msr": [...],
    "dram": bool}}``, core events in the role order (``events.ROLES``), without duplicates.

    Raises PlanError (a ValueError) naming the CPU and the event when an extra event is unknown
    for that CPU's PMU, or when ``common`` leaves no core role in common.
    """
    return resolve(cpu_facts, mode, extra)[0]


def _kernel_at_least(release, major, minor):
    match = re.match(r"([0-9]+)\.([0-9]+)", release or "")
    return match is None or (int(match.group(1)), int(match.group(2))) >= (major, minor)


def support(facts, has_core_pmu=True):
    """``"ok"`` when hwpc-sensor can measure containers on a machine with these energy facts, else
    the reasons it cannot, each a sentence a user can act on."""
    reasons = []
    vendor = facts.get("cpu_vendor")
    if facts.get("virtual"):
        reasons.append("this is a virtual machine (hypervisor flag in /proc/cpuinfo): it has neither the hardware's "
                       "PMU counters nor RAPL; monitor the bare-metal host instead")
    elif not has_core_pmu:
        reasons.append("the kernel exposes no core PMU (/sys/bus/event_source/devices/cpu is missing): boot a kernel "
                       "with perf events (CONFIG_PERF_EVENTS) on bare metal")
    elif facts.get("pmu_family") is None:
        what = f"PMU {facts['pmu_name']}" if facts.get("pmu_name") else f"family {facts.get('cpu_family')} model " \
            f"{facts.get('cpu_model')}"
        why = events.refused(vendor, facts.get("cpu_family"), facts.get("cpu_model"))
        reasons.append(f"hwpc-sensor has no core events for this CPU ({facts.get('cpu_name')}, {what}"
                       f"{': ' + why if why else ''}): PowerAPI supports Intel Sandy Bridge to Comet Lake, "
                       "Skylake-SP to Sapphire Rapids servers, AMD Zen 2 and Zen 3, not Intel Tiger/Alder/Raptor Lake "
                       "clients nor ARM; if you know its events, name them in energy:sensor:events")
    msr = facts.get("msr_events")
    if isinstance(msr, list) and not facts.get("virtual") and set(events.MSR_KERNEL_EVENTS) - set(msr):
        reasons.append(f"the kernel's msr PMU offers {', '.join(sorted(msr)) or 'no event'} but not "
                       f"{', '.join(sorted(set(events.MSR_KERNEL_EVENTS) - set(msr)))} "
                       "(/sys/bus/event_source/devices/msr/events), which hwpc-sensor reads for SmartWatts' "
                       "frequency: a kernel with the x86 msr perf driver on bare metal")
    if not facts.get("virtual"):
        perf, powercap = set(facts.get("rapl_domains") or []), set(facts.get("powercap_domains") or [])
        if vendor == "amd" and not _kernel_at_least(facts.get("kernel"), 5, 8):
            reasons.append(f"AMD RAPL through perf needs Linux 5.8 or later (this kernel: {facts.get('kernel')}): "
                           "upgrade the kernel")
        elif "package" not in perf and powercap - perf:
            reasons.append(f"powercap has RAPL domains ({', '.join(sorted(powercap - perf))}) that perf does not "
                           "offer: the kernel's perf RAPL driver is not loaded (modprobe intel_rapl_perf, or rapl "
                           "on kernels 5.x and later); hwpc-sensor reads RAPL through perf")
        elif "package" not in perf:
            reasons.append("perf offers no RAPL package energy (no /sys/bus/event_source/devices/power/events/"
                           "energy-pkg): this CPU or kernel has no RAPL the sensor can read")
    if facts.get("cgroup_perf_event") is False:
        # enabled but not mounted (cgroup v1) is no reason: the sensor SLS mounts it
        reasons.append("per-cgroup perf counting is not available: the perf_event cgroup controller is not enabled "
                       "in /proc/cgroups (a kernel without CONFIG_CGROUP_PERF, or cgroup_disable=perf_event on its "
                       "command line): boot a kernel that has it")
    return reasons or "ok"
