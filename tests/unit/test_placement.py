"""placement(): one formula per CPU name, round-robin over role hosts, deterministic."""

import importlib.util
import random

import pytest

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("energy_module", ROOT / "_modules" / "energy.py")
energy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(energy)

EVENTS = ["CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS", "RETIRED_UOPS"]
ROLES = {"mongos": ["db2", "db1"], "formulas": ["f1"], "influxdbs": ["i1", "i2", "i3"], "grafana": ["g"]}


def test_round_robin_over_sorted_cpu_names_and_hosts():
    cpus = {"n1": "Xeon", "n2": "EPYC", "n3": "Xeon", "n4": "Altra"}
    result = energy.placement(cpus, ROLES)
    assert list(result["cpus"]) == ["Altra", "EPYC", "Xeon"]
    assert result["cpus"]["Altra"]["mongo"] == "db1"
    assert result["cpus"]["EPYC"]["mongo"] == "db2"
    assert result["cpus"]["Xeon"]["mongo"] == "db1"  # wrapped around
    assert [result["cpus"][c]["influxdb"] for c in ("Altra", "EPYC", "Xeon")] == ["i1", "i2", "i3"]
    assert result["cpus"]["Xeon"]["sensors"] == ["n1", "n3"]
    assert result["grafana"] == "g"


def test_wrap_around_gives_distinct_slots_on_one_host():
    cpus = {f"n{i}": f"cpu{i}" for i in range(5)}
    result = energy.placement(cpus, {"mongos": ["a", "b"], "formulas": ["f"], "influxdbs": ["i"]})
    slots = [(e["mongo"], e["slots"]["mongo"]) for e in result["cpus"].values()]
    assert slots == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]
    assert [e["slots"]["formula"] for e in result["cpus"].values()] == [0, 1, 2, 3, 4]


def test_same_input_in_any_order_gives_identical_output():
    rng = random.Random(7)
    cpus = {f"node{i:03d}": f"cpu{rng.randrange(12)}" for i in range(200)}
    expected = energy.placement(cpus, ROLES)
    for _ in range(20):
        items = list(cpus.items())
        rng.shuffle(items)
        roles = {k: rng.sample(v, len(v)) for k, v in ROLES.items()}
        assert energy.placement(dict(items), roles) == expected


@pytest.mark.parametrize("role", ["mongos", "formulas", "influxdbs"])
def test_empty_role_names_the_role(role):
    roles = dict(ROLES, **{role: []})
    with pytest.raises(energy.PlanError, match=f"energy:roles:{role}"):
        energy.placement({"n1": "Xeon"}, roles)


def test_no_cpu_names_needs_no_hosts():
    assert energy.placement({}, {})["cpus"] == {}


def test_cpu_slugs_are_short_and_unique():
    names = ["Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "AMD EPYC 7452 32-Core Processor",
             "Intel(R) Xeon(R) Gold 6130 CPU @ 2.30GHz"]
    slugs = energy.cpu_slugs(names)
    assert slugs[names[1]] == "amd_epyc_7452"
    assert len(set(slugs.values())) == 3  # the two Gold 6130 differ only by frequency: hashed apart
    assert all(slug.startswith("intel_xeon_gold_6130_") for slug in (slugs[names[0]], slugs[names[2]]))


def test_build_plan_gives_each_wrapped_container_its_own_port_and_volume(defaults):
    conf = dict(defaults, control="ctl")
    facts = {"sensors": {"a": {"cpu_name": "X", "address": "10.0.0.1", "pmu_events": EVENTS},
                         "b": {"cpu_name": "Y", "address": "10.0.0.2", "pmu_events": EVENTS}},
             "mongos": {"ctl": {"address": "10.0.0.9"}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}},
             "grafana": {"ctl": {}}}
    plan = energy.build_plan(conf, facts)
    mongos = [c for c in plan["hosts"]["ctl"]["containers"] if c["component"] == "mongo"]
    assert [c["run"]["port_bindings"] for c in mongos] == [["10.0.0.9:27017:27017"], ["10.0.0.9:27018:27017"]]
    assert len({c["volume"] for c in mongos}) == 2
    assert plan["cpus"]["Y"]["mongo_uri"] == "mongodb://10.0.0.9:27018"
    assert plan["hosts"]["a"]["sensor_configs"]  # sensors write their config on their own host
    assert [c["component"] for c in plan["hosts"]["ctl"]["containers"]].count("grafana") == 1


def test_pillar_options_override_container_arguments(defaults):
    conf = dict(defaults, control="ctl", sensor=dict(defaults["sensor"], options={"privileged": False}))
    facts = {"sensors": {"a": {"cpu_name": "X", "pmu_events": EVENTS}}, "mongos": {"ctl": {}},
             "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}}}
    plan = energy.build_plan(conf, facts)
    (sensor,) = plan["hosts"]["a"]["containers"]
    assert sensor["run"]["privileged"] is False
    assert sensor["run"]["labels"] == {"energy.component": "sensor", "energy.minion": "a", "energy.cpu": "X"}


def test_cpu_without_pmu_events_is_refused_with_the_fix(defaults):
    conf = dict(defaults, control="ctl")
    facts = {"sensors": {"vm1": {"cpu_name": "AMD EPYC", "pmu_events": [], "virtual": True}},
             "mongos": {"ctl": {}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}}}
    with pytest.raises(energy.PlanError, match=r"'AMD EPYC' \(minions vm1\) has no usable PMU events.*Fix:"):
        energy.build_plan(conf, facts)
    conf["sensor"] = dict(defaults["sensor"], events=EVENTS)  # the user names them: accepted
    (sensor,) = energy.build_plan(conf, facts)["hosts"]["vm1"]["sensor_configs"].values()
    assert sensor["container"]["core"]["events"] == EVENTS
