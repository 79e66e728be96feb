"""Facts per host where the hosts of one CPU name differ: each sensor its own cgroup path and
events; SmartWatts' base frequency and TDP from the CPU name's facts, with a warning naming the
hosts that disagree."""

import pytest

from energy_core import events, plan

SKYLAKE = {"cpu_name": "Xeon Gold 6130", "cpu_vendor": "intel", "pmu_family": "intel_skylake",
           "rapl_domains": ["dram", "package"], "cgroup_version": 2, "cpu_base_freq_mhz": 2100, "tdp_w": 125}


def build(conf, sensors, **extra):
    sensors = {m: {k: v for k, v in f.items() if v is not None} for m, f in sensors.items()}  # unknown: no key
    facts = {"sensors": {m: dict(f, address=f"10.0.0.{i}") for i, (m, f) in enumerate(sorted(sensors.items()), 1)},
             "mongos": {"ctl": {"address": "10.0.1.1"}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}},
             "grafana": {"ctl": {}}}
    return plan.build(dict(conf, control="ctl", **extra), facts)


def sensor_of(result, minion):
    (container,) = [c for c in result["hosts"][minion]["containers"] if c["component"] == "sensor"]
    (config,) = container["files"].values()
    return container, config["data"]


def formula_args(result):
    (container,) = [c for c in result["hosts"]["ctl"]["containers"] if c["component"] == "formula"]
    return container["run"]["command"]


def test_each_sensor_reads_its_own_hosts_cgroup_hierarchy(defaults):
    result = build(defaults, {"a": SKYLAKE, "b": dict(SKYLAKE, cgroup_version=1)})
    container_a, config_a = sensor_of(result, "a")
    container_b, config_b = sensor_of(result, "b")
    assert config_a["cgroup_basepath"] == "/sys/fs/cgroup"
    assert config_b["cgroup_basepath"] == "/sys/fs/cgroup/perf_event"
    assert "/sys/fs/cgroup:/sys/fs/cgroup:ro" in container_a["run"]["binds"]
    assert "/sys/fs/cgroup:/sys/fs/cgroup:ro" not in container_b["run"]["binds"]


def test_best_mode_gives_each_host_the_events_its_own_pmu_counts(defaults):
    table = events.EVENTS_BY_ROLE["intel_skylake"]
    fewer = [table[r] for r in list(table)[:2]]
    result = build(defaults, {"a": SKYLAKE, "b": dict(SKYLAKE, pmu_events=fewer, rapl_domains=["package"])})
    _, config_a = sensor_of(result, "a")
    _, config_b = sensor_of(result, "b")
    assert config_b["container"]["core"]["events"] == fewer
    assert set(fewer) < set(config_a["container"]["core"]["events"])
    assert "RAPL_ENERGY_DRAM" in config_a["system"]["rapl"]["events"]
    assert "RAPL_ENERGY_DRAM" not in config_b["system"]["rapl"]["events"]
    # one SmartWatts reads both: no DRAM formula when one of its sensors has no DRAM domain
    assert "--disable-dram-formula" in formula_args(result)


def test_common_mode_gives_every_host_what_all_of_them_count(defaults):
    table = events.EVENTS_BY_ROLE["intel_skylake"]
    fewer = [table[r] for r in list(table)[:2]]
    conf = dict(defaults, sensor=dict(defaults["sensor"], mode="common"))
    result = build(conf, {"a": SKYLAKE, "b": dict(SKYLAKE, pmu_events=fewer), "c": dict(SKYLAKE, cpu_name="Other")})
    assert {tuple(sensor_of(result, m)[1]["container"]["core"]["events"]) for m in "abc"} == {tuple(fewer)}


def test_formula_parameters_come_from_most_hosts_and_the_odd_host_is_named(defaults):
    result = build(defaults, {"a": SKYLAKE, "b": SKYLAKE, "c": dict(SKYLAKE, cpu_base_freq_mhz=2300, tdp_w=None)})
    args = formula_args(result)
    assert args[args.index("--cpu-base-freq") + 1] == "2100"
    assert args[args.index("--cpu-tdp") + 1] == "125"
    (warning,) = [w for w in result["warnings"] if "disagree" in w]
    assert "base frequency: 2100 MHz on a, b, but 2300 MHz on c" in warning
    assert "energy:facts:cpu_base_freq_mhz" in warning


def test_hosts_that_agree_give_no_warning_and_a_tdp_known_to_one_host_is_used(defaults):
    result = build(defaults, {"a": dict(SKYLAKE, tdp_w=None), "b": SKYLAKE})
    assert not [w for w in result["warnings"] if "disagree" in w]
    args = formula_args(result)
    assert args[args.index("--cpu-tdp") + 1] == "125"


def test_a_tie_takes_the_first_hosts_value(defaults):
    result = build(defaults, {"b": dict(SKYLAKE, cpu_base_freq_mhz=2300), "a": SKYLAKE})
    args = formula_args(result)
    assert args[args.index("--cpu-base-freq") + 1] == "2100"  # a sorts first


@pytest.mark.parametrize("mode", ["best", "common"])
def test_an_extra_event_one_host_cannot_count_names_the_host(defaults, mode):
    conf = dict(defaults, sensor=dict(defaults["sensor"], mode=mode, extra_events={"Xeon Gold 6130": ["NOPE_EVENT"]}))
    with pytest.raises(plan.PlanError, match=r"NOPE_EVENT.*Xeon Gold 6130 \(a\)"):
        build(conf, {"a": SKYLAKE})

