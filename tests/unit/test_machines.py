"""What the grain detects on whole machines (tests/data/machines: cpuinfo and the sysfs files the
sensor depends on), and what sensor_events makes of fleets of them."""

import importlib.util
import pathlib

import pytest

from energy_core import events, sensor
from energy_core.schema import PlanError
from tests.conftest import ROOT

MACHINES = pathlib.Path(__file__).resolve().parent.parent / "data" / "machines"
spec = importlib.util.spec_from_file_location("energy_grains_machines", ROOT / "_grains" / "energy.py")
grains = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grains)


def machine(name):
    return grains._collect(str(MACHINES / name))


# name: (pmu_family, rapl_domains (perf), powercap_domains, cluster, words of each support reason or "ok")
EXPECTED = {
    "intel-sandybridge-e5-2660": ("intel_sandy", ["core", "dram", "package"], ["core", "dram", "package"],
                                  "graphene", "ok"),
    "intel-haswell-e5-2630v3": ("intel_sandy", ["dram", "package"], ["dram", "package"], "econome", "ok"),
    "intel-skylake-gold-6130": ("intel_skylake", ["dram", "package"], ["dram", "package"], "dahu", "ok"),
    "intel-icelake-gold-6338": ("intel_icelake_sp", ["dram", "package"], ["dram", "package"], "grappe", "ok"),
    "amd-zen2-epyc-7452": ("amd_zen2", ["package"], [], "gros", "ok"),
    "amd-zen3-epyc-7513": ("amd_zen3", ["package"], ["package"], "neowise", "ok"),
    "intel-alderlake-i7-12700": (None, ["core", "package", "psys", "uncore"], ["core", "package", "psys"], "laptop",
                                 ["no core events for this CPU", "PMU alderlake_hybrid", "energy:sensor:events"]),
    "arm-neoverse-n1": (None, [], [], "ampere", ["no core PMU"]),
    "vm-kvm-xeon-e5": (None, [], [], "vm", ["virtual machine", "bare-metal host"]),
    "intel-skylake-powercap-only": ("intel_skylake", [], ["dram", "package"], "dahu",
                                    ["powercap has RAPL domains (dram, package) that perf does not offer",
                                     "modprobe"]),
    "amd-zen2-kernel-5.4": ("amd_zen2", [], [], "gros", ["Linux 5.8 or later", "5.4.0-150-generic"]),
    # recorded here: a VM whose cgroup v1 has the perf_event controller enabled but not mounted (the
    # sensor SLS mounts it: no reason of its own)
    "vm-this-machine": (None, [], [], None, ["virtual machine"]),
}


def test_every_recorded_machine_has_an_expectation():
    assert sorted(p.name for p in MACHINES.iterdir() if p.is_dir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_detection_on_a_machine(name):
    family, perf, powercap, cluster, support = EXPECTED[name]
    facts = machine(name)
    assert facts["pmu_family"] == family
    assert facts["pmu_events"] == list(events.FAMILIES.get(family, ()))
    assert facts["rapl_domains"] == perf
    assert facts["powercap_domains"] == powercap
    if cluster is not None:
        assert facts["cluster"] == cluster
    if support == "ok":
        assert facts["sensor_support"] == "ok"
    else:
        text = " | ".join(facts["sensor_support"])
        for words in support:
            assert words in text, (words, facts["sensor_support"])
    assert facts["kernel"] and facts["perf_event_paranoid"] is not None


def test_perf_event_enabled_but_not_mounted_is_a_fact_not_a_reason():
    facts = machine("vm-this-machine")
    assert (facts["cgroup_version"], facts["cgroup_perf_event"], facts["perf_event_mounted"]) == (1, True, False)
    assert not any("perf_event" in reason for reason in facts["sensor_support"])


def test_the_package_limit_is_the_tdp():
    assert machine("intel-skylake-gold-6130")["tdp_w"] == 125
    assert "tdp_w" not in machine("amd-zen2-epyc-7452")  # no powercap before Linux 5.11 on AMD


@pytest.mark.parametrize("host, cluster", [("econome-3", "econome"), ("dahu-17.grenoble.grid5000.fr", "dahu"),
                                           ("node12", "node"), ("gros_7", "gros"), ("frontend", "frontend"),
                                           ("42", "42")])
def test_cluster_is_the_host_name_without_its_number(host, cluster):
    assert grains._cluster(host) == cluster


# --------------------------------------------------------------------------- sensor_events on fleets

FLEET = ["intel-sandybridge-e5-2660", "intel-haswell-e5-2630v3", "intel-skylake-gold-6130", "intel-icelake-gold-6338",
         "amd-zen2-epyc-7452", "amd-zen3-epyc-7513"]


def fleet(*names):
    return {machine(n)["cpu_name"]: machine(n) for n in names}


def test_best_gives_each_cpu_every_role_of_its_pmu_in_role_order():
    cpus = fleet(*FLEET)
    result = sensor.sensor_events(cpus)
    for cpu, facts in cpus.items():
        assert result[cpu]["core"] == list(events.FAMILIES[facts["pmu_family"]])
        assert result[cpu]["dram"] == ("dram" in facts["rapl_domains"])
        assert result[cpu]["rapl"] == ["RAPL_ENERGY_PKG"] + (["RAPL_ENERGY_DRAM"] if result[cpu]["dram"] else [])
        assert result[cpu]["msr"] == ["TSC", "APERF", "MPERF"]
    assert result["Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"]["core"] == [
        "CPU_CLK_THREAD_UNHALTED:REF_P", "CPU_CLK_THREAD_UNHALTED:THREAD_P", "INSTRUCTIONS_RETIRED", "LLC_MISSES"]
    assert result["AMD EPYC 7513 32-Core Processor"]["core"] == ["CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS",
                                                                 "RETIRED_OPS"]


def test_common_gives_every_cpu_the_same_roles_and_no_dram_when_one_lacks_it():
    cpus = fleet(*FLEET)
    result, dropped = sensor.resolve(cpus, "common")
    roles = {cpu: [r for r in events.ROLES if events.EVENTS_BY_ROLE[f["pmu_family"]].get(r) in result[cpu]["core"]]
             for cpu, f in cpus.items()}
    assert set(map(tuple, roles.values())) == {("cycles", "instructions")}
    assert all(r["dram"] is False and r["rapl"] == ["RAPL_ENERGY_PKG"] for r in result.values())
    assert dropped["Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"] == ["ref_cycles", "llc_misses"]
    assert dropped["AMD EPYC 7452 32-Core Processor"] == ["uops"]


def test_common_among_intel_servers_keeps_their_four_roles_and_dram():
    result = sensor.sensor_events(fleet(*FLEET[:4]), "common")
    assert all(len(r["core"]) == 4 and r["dram"] for r in result.values())


def test_common_with_a_cpu_without_roles_is_refused():
    with pytest.raises(PlanError, match=r"no core event role in common.*vm-42|no core event role in common"):
        sensor.sensor_events(fleet("intel-skylake-gold-6130", "vm-kvm-xeon-e5"), "common")


def test_extra_events_come_after_the_roles_without_duplicates():
    cpus = fleet("intel-skylake-gold-6130", "amd-zen3-epyc-7513")
    gold, epyc = "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "AMD EPYC 7513 32-Core Processor"
    result = sensor.sensor_events(cpus, extra={"*": ["CYCLES_NOT_IN_HALT"] * 0, gold: ["LLC_MISSES"],
                                               epyc: ["RETIRED_OPS", "RETIRED_OPS"]})
    assert result[gold]["core"].count("LLC_MISSES") == 1
    assert result[epyc]["core"] == ["CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS", "RETIRED_OPS"]
    # an event the grain's libpfm4 names list (pmu_event_names) offers is accepted too
    cpus[gold]["pmu_event_names"] = ["MEM_LOAD_RETIRED:L3_MISS"]
    assert sensor.sensor_events(cpus, extra={gold: ["MEM_LOAD_RETIRED:L3_MISS"]})[gold]["core"][-1] == \
        "MEM_LOAD_RETIRED:L3_MISS"


def test_an_extra_event_the_pmu_lacks_names_the_cpu_the_event_and_what_it_offers():
    cpus = fleet("intel-skylake-gold-6130", "amd-zen2-epyc-7452")
    with pytest.raises(PlanError) as exc:
        sensor.sensor_events(cpus, extra={"*": ["LLC_MISSES"]})
    message = str(exc.value)
    assert "'LLC_MISSES'" in message and "AMD EPYC 7452 32-Core Processor" in message
    assert "CYCLES_NOT_IN_HALT, RETIRED_INSTRUCTIONS, RETIRED_UOPS" in message and "Fix:" in message


def test_listed_events_of_another_family_than_the_cpuinfo_numbers_win():
    # an override (energy_facts) naming Zen 2's events on a machine whose cpuinfo says Zen 3
    facts = {"EPYC": {"cpu_vendor": "amd", "cpu_family": 25, "cpu_model": 1, "virtual": True,
                      "pmu_events": list(events.AMD_ZEN2), "rapl_domains": ["package"]}}
    assert sensor.sensor_events(facts)["EPYC"]["core"] == list(events.AMD_ZEN2)


def test_libpfm4_is_asked_through_ctypes_when_installed():
    names = grains._libpfm4_core_events()
    assert names is None or all(isinstance(n, str) and n for n in names)
    assert grains._libpfm4_core_events(library="no-such-library-here") is None
    # libpfm4 knows the core PMU from CPUID: on a CPU of a family the formula has a table for, the
    # table's events are among the names libpfm4 lists (base names, without unit masks)
    here = grains._parse_cpuinfo(pathlib.Path("/proc/cpuinfo").read_text())
    family = events.family(here["cpu_vendor"], here.get("cpu_family"), here.get("cpu_model"))
    if names and family:
        assert {e.split(":")[0] for e in events.FAMILIES[family]} <= set(names), (family, names[:20])


def test_an_extra_event_with_a_unit_mask_is_known_when_libpfm4_lists_its_event():
    facts = {"Xeon": {"cpu_vendor": "intel", "cpu_family": 6, "cpu_model": 85,
                      "pmu_event_names": ["MEM_LOAD_RETIRED", "CPU_CLK_THREAD_UNHALTED"]}}
    core = sensor.sensor_events(facts, extra={"Xeon": ["MEM_LOAD_RETIRED:L3_MISS"]})["Xeon"]["core"]
    assert core[-1] == "MEM_LOAD_RETIRED:L3_MISS"
    with pytest.raises(PlanError, match="'MEM_INST_RETIRED:ALL_LOADS'"):
        sensor.sensor_events(facts, extra={"Xeon": ["MEM_INST_RETIRED:ALL_LOADS"]})
