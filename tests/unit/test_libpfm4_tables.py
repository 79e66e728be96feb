"""The event tables checked against libpfm4, the library hwpc-sensor encodes events with (4.13,
Debian's package ``libpfm4``: ``make deps`` installs it).

Every event of every family table is encoded as the sensor does (``pfm_get_os_event_encoding``,
PFM_PLM0|PFM_PLM3, PFM_OS_PERF_EVENT_EXT) with libpfm4 forced onto each core PMU the model table
(``events.INTEL_MODELS``, ``events.AMD_MODELS``) claims, or onto ``ix86arch`` on Intel (on a real
machine the architectural PMU is active beside the model's). libpfm4 reads ``LIBPFM_FORCE_PMU`` once,
at ``pfm_initialize``: one subprocess per PMU. The grain's verdict and the plan's events are then
derived from the same models and must be among what libpfm4 accepted.

What forcing cannot show: libpfm4 picks a model's RAPL table (whether it has DRAM) and whether RAPL
exists at all from CPUID, so the RAPL domains per model are read from libpfm4 4.13's source
(pfmlib_intel_rapl.c, pfmlib_amd64_rapl.c) and only the event names are checked here. The ``msr``
group (TSC, APERF, MPERF) is not libpfm4's: Debian's libpfm4 has no msr PMU (the libpfm4 fork
hwpc-sensor 1.3.0 needed had one); 1.4 and later read the kernel's msr PMU instead, so this test
checks that libpfm4 does NOT resolve them and the grain checks the kernel's ``msr_events``.
"""

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

from energy_core import events, sensor

PROBE = r"""
import ctypes, json, sys
lib = ctypes.CDLL("libpfm.so.4")
class Arg(ctypes.Structure):  # pfm_perf_encode_arg_t
    _fields_ = [("attr", ctypes.c_void_p), ("fstr", ctypes.c_void_p), ("size", ctypes.c_size_t),
                ("idx", ctypes.c_int), ("cpu", ctypes.c_int), ("flags", ctypes.c_int), ("pad0", ctypes.c_int)]
class PmuInfo(ctypes.Structure):  # pfm_pmu_info_t
    _fields_ = [("name", ctypes.c_char_p), ("desc", ctypes.c_char_p), ("size", ctypes.c_size_t),
                ("pmu", ctypes.c_int), ("type", ctypes.c_int), ("nevents", ctypes.c_int),
                ("first_event", ctypes.c_int), ("max_encoding", ctypes.c_int), ("num_cntrs", ctypes.c_int),
                ("num_fixed_cntrs", ctypes.c_int), ("flags", ctypes.c_uint)]
assert lib.pfm_initialize() == 0
class EventInfo(ctypes.Structure):  # pfm_event_info_t
    _fields_ = [("name", ctypes.c_char_p), ("desc", ctypes.c_char_p), ("equiv", ctypes.c_char_p),
                ("size", ctypes.c_size_t), ("code", ctypes.c_uint64), ("pmu", ctypes.c_int),
                ("dtype", ctypes.c_int), ("idx", ctypes.c_int), ("nattrs", ctypes.c_int),
                ("reserved", ctypes.c_int), ("flags", ctypes.c_uint)]
names, table = set(), []
forced = __import__("os").environ.get("LIBPFM_FORCE_PMU")
for pmu in range(1024):
    info = PmuInfo(size=ctypes.sizeof(PmuInfo))
    if lib.pfm_get_pmu_info(pmu, ctypes.byref(info)) == 0 and info.name:
        names.add(info.name.decode())
        idx = info.first_event if info.name.decode() == forced else -1
        while idx != -1:  # the forced PMU's table, even when this kernel does not export that PMU
            event = EventInfo(size=ctypes.sizeof(EventInfo))
            if lib.pfm_get_event_info(idx, 0, ctypes.byref(event)) == 0:
                table.append(event.name.decode())
            idx = lib.pfm_get_event_next(idx)
PERF_EVENT_EXT, OS_NONE = 2, 0
out = {"pmus": sorted(names), "table": table, "events": {}}
for event in sys.argv[2:]:
    attr = ctypes.create_string_buffer(256)
    arg = Arg(attr=ctypes.cast(attr, ctypes.c_void_p), size=ctypes.sizeof(Arg))
    os = OS_NONE if sys.argv[1] == "none" else PERF_EVENT_EXT
    out["events"][event] = lib.pfm_get_os_event_encoding(event.encode(), 0x1 | 0x8, os, ctypes.byref(arg))
print(json.dumps(out))
"""

pytestmark = pytest.mark.skipif(ctypes.util.find_library("pfm") is None,
                                reason="libpfm4 is not installed here (apt-get install libpfm4; `make deps` does)")


def encode(pmu, names, os_layer="perf"):
    """With libpfm4 forced onto ``pmu``: ``{"pmus": every PMU libpfm4 knows, "table": the events of
    ``pmu``'s table (listed even when this kernel does not export that PMU, as RAPL on a VM),
    "events": {event: libpfm4's return code (0: accepted)}}``."""
    env = dict(os.environ, LIBPFM_FORCE_PMU=pmu)
    done = subprocess.run([sys.executable, "-c", PROBE, os_layer, *names], env=env, capture_output=True,
                          text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def all_events():
    return sorted({e for table in events.FAMILIES.values() for e in table})


CACHE = {}


def accepted(pmu, vendor):
    """The events of every table libpfm4 forced onto ``pmu`` (or, on Intel, onto ix86arch) accepts."""
    if pmu not in CACHE:
        own = encode(pmu, all_events())
        assert pmu in own["pmus"], f"libpfm4 has no PMU named {pmu!r} (it has {own['pmus'][:8]}...)"
        ok = {e for e, code in own["events"].items() if code == 0}
        if vendor == "intel":
            ok |= {e for e, code in encode("ix86arch", all_events())["events"].items() if code == 0}
        CACHE[pmu] = ok
    return CACHE[pmu]


def models():
    for model, (family, pmus, rapl) in sorted(events.INTEL_MODELS.items()):
        yield pytest.param("intel", 6, model, family, pmus, rapl, id=f"intel-6-{model:#x}")
    for fam, first, last, family, pmus, rapl in events.AMD_MODELS:
        for model in sorted({first, last}):
            yield pytest.param("amd", fam, model, family, pmus, rapl, id=f"amd-{fam:#x}-{model:#x}")


def facts_of(vendor, fam, model, **more):
    facts = {"cpu_name": f"{vendor} {fam} {model}", "cpu_vendor": vendor, "cpu_family": fam, "cpu_model": model,
             "virtual": False, "rapl_domains": ["dram", "package"], "powercap_domains": [], "kernel": "6.1.0",
             "cgroup_version": 2, "cgroup_perf_event": True, "msr_events": ["aperf", "mperf", "tsc"]}
    facts["pmu_family"] = events.family(vendor, fam, model)
    facts.update(more)
    return facts


@pytest.mark.parametrize("vendor, fam, model, family, pmus, rapl", models())
def test_every_event_of_a_model_s_table_is_one_libpfm4_encodes_for_its_pmu(vendor, fam, model, family, pmus, rapl):
    for pmu in pmus:
        refused = [e for e in events.FAMILIES[family] if e not in accepted(pmu, vendor)]
        assert not refused, f"libpfm4 ({pmu}) refuses {refused}: the sensor would exit on model {model:#x}"


@pytest.mark.parametrize("vendor, fam, model, family, pmus, rapl", models())
def test_the_grain_and_the_plan_give_only_what_libpfm4_accepts(vendor, fam, model, family, pmus, rapl):
    facts = facts_of(vendor, fam, model)
    assert facts["pmu_family"] == family
    assert sensor.support(facts) == "ok"
    for mode in sensor.MODES:
        plan = sensor.sensor_events({"cpu": facts}, mode)["cpu"]
        for pmu in pmus:
            assert set(plan["core"]) <= accepted(pmu, vendor), (pmu, plan["core"])
        assert plan["rapl"] == events.rapl_events(list(rapl))  # DRAM only where libpfm4's table has it
        assert plan["msr"] == list(events.MSR)
    # an added event libpfm4 refuses for that PMU is a plan error, not a sensor that exits
    foreign = next(e for e in all_events() if not any(e in accepted(p, vendor) for p in pmus))
    with pytest.raises(ValueError, match=foreign):
        sensor.sensor_events({"cpu": facts}, "best", {"cpu": [foreign]})


def test_the_old_skylake_events_are_refused_on_ice_lake_sp_and_sapphire_rapids():
    for pmu in ("icx", "spr"):
        assert "CPU_CLK_THREAD_UNHALTED:REF_P" not in accepted(pmu, "intel")
        assert "CPU_CLK_UNHALTED:REF_TSC" in accepted(pmu, "intel")


def test_the_rapl_event_names_are_libpfm4_s():
    # forced, libpfm4 lists the default Intel table (the one of client parts: no DRAM); the server
    # table with DRAM is chosen from CPUID, out of reach here
    assert events.RAPL_PKG in encode("rapl", [])["table"]
    assert encode("amd64_rapl", [])["table"] == [events.RAPL_PKG]  # AMD: the package only
    assert all(rapl == ("package",) for *_, rapl in events.AMD_MODELS)


@pytest.mark.parametrize("pmu", ["emr", "gnr", "adl_glc", "tgl"])
def test_the_refused_intel_models_have_no_pmu_in_libpfm4(pmu):
    assert pmu not in encode("ix86arch", [])["pmus"]


@pytest.mark.parametrize("model", sorted(events.INTEL_REFUSED))
def test_refused_intel_models_are_refused_whatever_their_pmu_name(model):
    for pmu_name in ("icelake", "sapphire_rapids", "skylake", "alderlake_hybrid", None):
        facts = facts_of("intel", 6, model, pmu_name=pmu_name)
        assert facts["pmu_family"] is None
        verdict = sensor.support(facts)
        assert verdict != "ok" and events.INTEL_REFUSED[model] in " ".join(verdict)


@pytest.mark.parametrize("model", [0x11, 0x61])
def test_zen4_is_refused(model):
    verdict = sensor.support(facts_of("amd", 0x19, model))
    assert verdict != "ok" and "Zen 4" in " ".join(verdict)


def test_the_msr_events_are_not_libpfm4_s_but_the_kernel_s():
    for pmu in ("ix86arch", "skx", "amd64_fam19h_zen3", "rapl", "amd64_rapl"):
        found = encode(pmu, list(events.MSR), "none")
        assert all(code != 0 for code in found["events"].values()), (pmu, found["events"])
        assert not set(events.MSR) & set(found["table"])
    verdict = sensor.support(facts_of("intel", 6, 0x55, msr_events=["smi", "tsc"]))
    assert verdict != "ok" and "aperf, mperf" in " ".join(verdict)
