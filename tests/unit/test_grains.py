"""The energy grain on real /proc/cpuinfo samples (Intel, AMD, ARM, VMs) and fake sysfs trees."""

import importlib.util
import pathlib

import pytest

from energy_core import events
from tests.conftest import ROOT

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "cpuinfo"
spec = importlib.util.spec_from_file_location("energy_grains", ROOT / "_grains" / "energy.py")
grains = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grains)


def sample(name):
    return (DATA / name).read_text()


@pytest.fixture
def sysfs(tmp_path):
    """A Skylake server's tree: perf RAPL and powercap with package + dram, its core PMU, a cgroup v2
    root and cpufreq."""
    pkg = tmp_path / "sys/class/powercap/intel-rapl:0"
    pkg.mkdir(parents=True)
    (pkg / "name").write_text("package-0\n")
    (pkg / "constraint_0_power_limit_uw").write_text("125000000\n")
    dram = tmp_path / "sys/class/powercap/intel-rapl:0:0"
    dram.mkdir()
    (dram / "name").write_text("dram\n")
    events_dir = tmp_path / "sys/bus/event_source/devices/power/events"
    events_dir.mkdir(parents=True)
    for event in ("energy-pkg", "energy-ram"):
        (events_dir / event).write_text("event=0x02\n")
    (tmp_path / "sys/bus/event_source/devices/cpu/caps").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/cgroup.controllers").write_text("cpu io memory\n")
    cpufreq = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
    cpufreq.mkdir(parents=True)
    (cpufreq / "base_frequency").write_text("2350000\n")
    return tmp_path


def collect(text, root, **kwargs):
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(text)
    return grains._collect(str(root), **kwargs)


def test_intel_server(sysfs):
    facts = collect(sample("intel-xeon-gold-6130.txt"), sysfs)
    assert facts["cpu_name"] == "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"
    assert facts["cpu_vendor"] == "intel"
    assert facts["cpu_base_freq_mhz"] == 2100  # from the model string, not cpufreq
    assert facts["rapl_domains"] == ["dram", "package"]
    assert facts["tdp_w"] == 125
    assert facts["cgroup_version"] == 2
    assert facts["cpu_count"] == 2
    assert facts["virtual"] is False
    assert facts["pmu_events"] == list(events.INTEL_SKYLAKE)


def test_amd_takes_base_frequency_from_cpufreq(sysfs):
    facts = collect(sample("amd-epyc-7452.txt"), sysfs)
    assert facts["cpu_name"] == "AMD EPYC 7452 32-Core Processor"
    assert facts["cpu_vendor"] == "amd"
    assert facts["cpu_base_freq_mhz"] == 2350
    assert facts["pmu_events"] == list(events.AMD_ZEN2)


def test_arm_has_no_model_name_line(tmp_path):
    facts = collect(sample("arm-neoverse-n1.txt"), tmp_path)
    assert facts["cpu_name"] == "ARM Neoverse-N1"
    assert facts["cpu_vendor"] == "arm"
    assert "cpu_base_freq_mhz" not in facts  # nothing to read it from: absent, not guessed
    assert facts["rapl_domains"] == []
    assert facts["cgroup_version"] == 1
    assert facts["pmu_events"] == []


def test_kvm_guest_has_no_pmu_events_nor_rapl(tmp_path):
    facts = collect(sample("vm-kvm-xeon-e5.txt"), tmp_path)
    assert facts["cpu_name"] == "Intel(R) Xeon(R) CPU E5-2630 v3 @ 2.40GHz"
    assert facts["virtual"] is True
    assert facts["pmu_events"] == []
    assert facts["rapl_domains"] == []
    assert "tdp_w" not in facts


def test_this_machines_vm_sample(tmp_path):
    facts = collect(sample("vm-this-machine.txt"), tmp_path)
    assert facts["cpu_vendor"] == "amd"
    assert facts["cpu_name"].startswith("AMD EPYC")
    assert facts["virtual"] is True


def test_empty_or_garbage_cpuinfo_does_not_crash(tmp_path):
    for text in ("", "garbage without colons\n", "processor : 0\n"):
        facts = collect(text, tmp_path)
        assert facts["cpu_name"] == "unknown"
        assert facts["cpu_count"] >= 1


def test_minion_config_overrides_each_field(tmp_path):
    facts = collect(sample("arm-neoverse-n1.txt"), tmp_path,
                    overrides={"cpu_name": "Ampere Altra", "cpu_base_freq_mhz": 3000, "address": "10.0.0.5",
                               "not_a_fact": 1})
    assert facts["cpu_name"] == "Ampere Altra"
    assert facts["cpu_base_freq_mhz"] == 3000
    assert facts["address"] == "10.0.0.5"
    assert "not_a_fact" not in facts


@pytest.mark.parametrize("name,mhz", [("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", 1900),
                                      ("Intel(R) Xeon(R) CPU E5-2660 0 @ 2.20GHz", 2200),
                                      ("Some CPU @ 800MHz", 800), ("AMD EPYC 7452 32-Core Processor", None)])
def test_base_frequency_from_model_string(name, mhz):
    assert grains._base_freq_from_name(name) == mhz
