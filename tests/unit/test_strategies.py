"""placement() with deployment strategies and formula shards: the groups (one per SmartWatts)."""

import random

import pytest

from energy_core import names
from energy_core.placement import placement, shards
from energy_core.schema import PlanError

ROLES = {"mongos": ["db2", "db1"], "formulas": ["f2", "f1", "f3"], "influxdbs": ["i1", "i2"], "grafana": ["g"]}
CPUS = {"n1": "Xeon", "n2": "EPYC", "n3": "Xeon", "n4": "Altra", "n5": "Xeon"}


def test_per_cpu_is_the_default_and_keeps_todays_result_with_one_group_per_cpu_name():
    result = placement(CPUS, ROLES)
    assert placement(CPUS, ROLES, "per_cpu") == result
    assert result["cpus"]["Xeon"] == {"sensors": ["n1", "n3", "n5"], "mongo": "db1", "formula": "f3",
                                      "influxdb": "i1", "slots": {"mongo": 1, "formula": 0, "influxdb": 1}}
    slugs = names.cpu_slugs(["Altra", "EPYC", "Xeon"])
    assert result["groups"] == [
        {"name": slugs["Altra"], "cpu": "Altra", "sensors": ["n4"], "mongo": "db1", "formula": "f1", "influxdb": "i1"},
        {"name": slugs["EPYC"], "cpu": "EPYC", "sensors": ["n2"], "mongo": "db2", "formula": "f2", "influxdb": "i2"},
        {"name": slugs["Xeon"], "cpu": "Xeon", "sensors": ["n1", "n3", "n5"], "mongo": "db1", "formula": "f3",
         "influxdb": "i1"},
    ]


def test_shards_cut_a_cpu_name_into_contiguous_chunks_the_first_ones_larger():
    assert shards(["c", "a", "b"], None) == [["a", "b", "c"]]
    assert shards([f"m{i}" for i in range(7)], 3) == [["m0", "m1", "m2"], ["m3", "m4"], ["m5", "m6"]]
    assert shards(["a", "b"], 1) == [["a"], ["b"]]
    sizes = [len(c) for c in shards([f"m{i:03d}" for i in range(100)], 7)]
    assert len(sizes) == 15 and max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_a_sharded_cpu_name_gets_one_smartwatts_per_shard_round_robin_over_the_formula_hosts():
    result = placement(CPUS, ROLES, max_sensors=1)
    xeon = [g for g in result["groups"] if g["cpu"] == "Xeon"]
    slug = names.cpu_slug("Xeon")
    assert [(g["name"], g["sensors"]) for g in xeon] == [(f"{slug}-1", ["n1"]), (f"{slug}-2", ["n3"]),
                                                         (f"{slug}-3", ["n5"])]
    # every shard reads the CPU name's MongoDB and writes to its InfluxDB
    assert {(g["mongo"], g["influxdb"]) for g in xeon} == {("db1", "i1")}
    # the j-th group overall gets formulas[j % F]: Altra, EPYC, Xeon-1, Xeon-2, Xeon-3
    assert [g["formula"] for g in result["groups"]] == ["f1", "f2", "f3", "f1", "f2"]
    two = placement({"a": "X", "b": "X"}, ROLES, max_sensors=1)["groups"]
    assert [g["sensors"] for g in two] == [["a"], ["b"]]  # 2 SmartWatts cover both machines


def test_shared_puts_every_cpu_name_on_the_first_mongo_and_influxdb():
    result = placement(CPUS, ROLES, "shared")
    assert {(g["mongo"], g["influxdb"]) for g in result["groups"]} == {("db1", "i1")}
    assert [g["formula"] for g in result["groups"]] == ["f1", "f2", "f3"]
    assert {e["slots"]["mongo"] for e in result["cpus"].values()} == {0}  # one container holds them all


def test_dedicated_gives_each_sensor_machine_its_own_stack():
    result = placement(CPUS, {}, "dedicated", max_sensors=1)
    assert result["groups"] == [
        {"name": m, "cpu": CPUS[m], "sensors": [m], "mongo": m, "formula": m, "influxdb": m}
        for m in ("n4", "n2", "n1", "n3", "n5")]  # by CPU name, then minion


@pytest.mark.parametrize("strategy", ["per_cpu", "shared", "dedicated"])
def test_the_same_input_in_any_order_gives_the_same_groups(strategy):
    rng = random.Random(3)
    cpus = {f"node{i:03d}": f"cpu{rng.randrange(6)}" for i in range(60)}
    expected = placement(cpus, ROLES, strategy, max_sensors=4)
    for _ in range(10):
        items = list(cpus.items())
        rng.shuffle(items)
        roles = {k: rng.sample(v, len(v)) for k, v in ROLES.items()}
        assert placement(dict(items), roles, strategy, max_sensors=4) == expected
    assert all(g["sensors"] == sorted(g["sensors"]) for g in expected["groups"])
    assert sorted(m for g in expected["groups"] for m in g["sensors"]) == sorted(cpus)


@pytest.mark.parametrize("args, key", [(("spread",), "energy:strategy"), (("per_cpu", 0), "energy:formula:max_sensors"),
                                       (("per_cpu", "2"), "energy:formula:max_sensors")])
def test_bad_strategy_or_shard_size_names_the_key(args, key):
    with pytest.raises(PlanError, match=f"{key}: bad value .*Fix:"):
        placement(CPUS, ROLES, *args)
