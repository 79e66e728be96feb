"""placement(): one formula per CPU name, round-robin over role hosts, deterministic."""

import random

import pytest

from energy_core import components, names, placement, plan
from energy_core.schema import PlanError

EVENTS = ["CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS", "RETIRED_UOPS"]
ROLES = {"mongos": ["db2", "db1"], "formulas": ["f1"], "influxdbs": ["i1", "i2", "i3"], "grafana": ["g"]}


def test_round_robin_over_sorted_cpu_names_and_hosts():
    cpus = {"n1": "Xeon", "n2": "EPYC", "n3": "Xeon", "n4": "Altra"}
    result = placement.placement(cpus, ROLES)
    assert list(result["cpus"]) == ["Altra", "EPYC", "Xeon"]
    assert result["cpus"]["Altra"]["mongo"] == "db1"
    assert result["cpus"]["EPYC"]["mongo"] == "db2"
    assert result["cpus"]["Xeon"]["mongo"] == "db1"  # wrapped around
    assert [result["cpus"][c]["influxdb"] for c in ("Altra", "EPYC", "Xeon")] == ["i1", "i2", "i3"]
    assert result["cpus"]["Xeon"]["sensors"] == ["n1", "n3"]
    assert result["grafana"] == "g"


def test_wrap_around_gives_distinct_slots_on_one_host():
    cpus = {f"n{i}": f"cpu{i}" for i in range(5)}
    result = placement.placement(cpus, {"mongos": ["a", "b"], "formulas": ["f"], "influxdbs": ["i"]})
    slots = [(e["mongo"], e["slots"]["mongo"]) for e in result["cpus"].values()]
    assert slots == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]
    assert [e["slots"]["formula"] for e in result["cpus"].values()] == [0, 1, 2, 3, 4]


def test_same_input_in_any_order_gives_identical_output():
    rng = random.Random(7)
    cpus = {f"node{i:03d}": f"cpu{rng.randrange(12)}" for i in range(200)}
    expected = placement.placement(cpus, ROLES)
    for _ in range(20):
        items = list(cpus.items())
        rng.shuffle(items)
        roles = {k: rng.sample(v, len(v)) for k, v in ROLES.items()}
        assert placement.placement(dict(items), roles) == expected


@pytest.mark.parametrize("role", ["mongos", "formulas", "influxdbs"])
def test_empty_role_names_the_role(role):
    roles = dict(ROLES, **{role: []})
    with pytest.raises(PlanError, match=f"energy:roles:{role}"):
        placement.placement({"n1": "Xeon"}, roles)


def test_no_cpu_names_needs_no_hosts():
    assert placement.placement({}, {})["cpus"] == {}


def test_cpu_slugs_are_short_and_unique():
    cpu_names = ["Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", "AMD EPYC 7452 32-Core Processor",
                 "Intel(R) Xeon(R) Gold 6130 CPU @ 2.30GHz"]
    slugs = names.cpu_slugs(cpu_names)
    assert slugs[cpu_names[1]] == "amd_epyc_7452"
    assert len(set(slugs.values())) == 3  # the two Gold 6130 differ only by frequency: hashed apart
    assert all(slugs[cpu_names[i]].startswith("intel_xeon_gold_6130_") for i in (0, 2))


def test_build_plan_gives_each_wrapped_container_its_own_port_and_volume(defaults):
    conf = dict(defaults, control="ctl")
    facts = {"sensors": {"a": {"cpu_name": "X", "address": "10.0.0.1", "pmu_events": EVENTS},
                         "b": {"cpu_name": "Y", "address": "10.0.0.2", "pmu_events": EVENTS}},
             "mongos": {"ctl": {"address": "10.0.0.9"}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}},
             "grafana": {"ctl": {}}}
    result = plan.build(conf, facts)
    mongos = [c for c in result["hosts"]["ctl"]["containers"] if c["component"] == "mongo"]
    assert [c["run"]["port_bindings"] for c in mongos] == [["10.0.0.9:27017:27017"], ["10.0.0.9:27018:27017"]]
    assert len({c["volume"] for c in mongos}) == 2
    assert result["cpus"]["Y"]["mongo_uri"] == "mongodb://10.0.0.9:27018"
    (sensor_a,) = result["hosts"]["a"]["containers"]
    assert list(sensor_a["files"]) == ["/etc/energy/energy-a-sensor.json"]  # written on its own host
    assert [c["component"] for c in result["hosts"]["ctl"]["containers"]].count("grafana") == 1


def test_pillar_options_override_container_arguments(defaults):
    conf = dict(defaults, control="ctl", sensor=dict(defaults["sensor"], options={"privileged": False}))
    facts = {"sensors": {"a": {"cpu_name": "X", "pmu_events": EVENTS}}, "mongos": {"ctl": {}},
             "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}}}
    (sensor,) = plan.build(conf, facts)["hosts"]["a"]["containers"]
    assert sensor["run"]["privileged"] is False
    assert sensor["run"]["labels"] == {"energy.component": "sensor", "energy.minion": "a", "energy.cpu": "X"}


def test_cpu_without_pmu_events_is_refused_with_the_fix(defaults):
    conf = dict(defaults, control="ctl")
    facts = {"sensors": {"vm1": {"cpu_name": "AMD EPYC", "pmu_events": [], "virtual": True}},
             "mongos": {"ctl": {}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}}}
    with pytest.raises(PlanError, match=r"'AMD EPYC' \(minions vm1\) has no usable PMU events.*Fix:"):
        plan.build(conf, facts)
    conf["sensor"] = dict(defaults["sensor"], events=EVENTS)  # the user names them: accepted
    (sensor,) = plan.build(conf, facts)["hosts"]["vm1"]["containers"]
    (config,) = sensor["files"].values()
    assert config["data"]["container"]["core"]["events"] == EVENTS


def test_every_container_has_the_documented_keys_and_no_other(defaults):
    conf = dict(defaults, control="ctl")
    conf["grafana"] = dict(defaults["grafana"], admin_password="not-admin")
    facts = {"sensors": {"a": {"cpu_name": "X", "pmu_events": EVENTS}, "b": {"cpu_name": "Y", "pmu_events": EVENTS}},
             "mongos": {"ctl": {}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}}, "grafana": {"ctl": {}}}
    containers = [c for h in plan.build(conf, facts)["hosts"].values() for c in h["containers"]]
    assert {c["component"] for c in containers} == set(names.COMPONENTS)
    for container in containers:
        assert tuple(container) == components.CONTAINER_KEYS, container["name"]


def test_role_targets_resolve_lists_control_and_the_sensor_default():
    conf = {"control": "ctl", "roles": {"mongos": ["db1", "db2"], "influxdbs": "G@role:db"},
            "grafana": {"enabled": False}}
    assert placement.role_targets(conf) == {"sensors": "*", "mongos": "L@db1,db2", "formulas": "ctl",
                                            "influxdbs": "G@role:db"}
    conf["grafana"]["enabled"] = True
    assert placement.role_targets(conf)["grafana"] == "ctl"


def test_inventory_reads_the_stack_back_from_docker_in_removal_order():
    from energy_core import inventory

    ps = {"1": {"Names": ["/energy-a-mongo-x"], "Labels": {"energy.component": "mongo", "energy.cpu": "X"}},
          "2": {"Names": ["/energy-a-grafana"], "Labels": {"energy.component": "grafana"}},
          "3": {"Names": ["/energy-a-sensor"], "Labels": {"energy.component": "sensor", "energy.cpu": "X"}},
          "4": "not a container"}
    assert [c["name"] for c in inventory.containers(ps)] == ["energy-a-grafana", "energy-a-sensor", "energy-a-mongo-x"]
    volumes = ["energy-a-mongo-x", "energy-a-influxdb-x", "energy-a-grafana", "energy-ab-mongo-x", "other"]
    assert inventory.volumes("a", volumes) == ["energy-a-grafana", "energy-a-influxdb-x", "energy-a-mongo-x"]
