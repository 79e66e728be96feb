"""placement(current=...): what is deployed stays put; only what must move moves, to the least loaded."""

import random

import pytest

from energy_core import placement, plan
from energy_core.schema import PlanError

ROLES = {"mongos": ["db1", "db2"], "formulas": ["f1", "f2"], "influxdbs": ["i1", "i2"], "grafana": ["g"]}


def where(result):
    return {cpu: (e["mongo"], e["slots"]["mongo"], e["influxdb"], e["slots"]["influxdb"], e["formula"])
            for cpu, e in result["cpus"].items()}


def formulas(result):
    return {g["name"]: g["formula"] for g in result["groups"]}


@pytest.mark.parametrize("current", [None, {}, {"cpus": {}, "groups": []}])
def test_an_empty_current_is_the_round_robin_of_a_fresh_deploy(current):
    cpus = {f"n{i}": f"cpu{i % 5}" for i in range(10)}
    roles = {"mongos": ["a", "b"], "formulas": ["f"], "influxdbs": ["i", "j", "k"]}
    result = placement.placement(cpus, roles, current=current)
    assert [(e["mongo"], e["slots"]["mongo"]) for e in result["cpus"].values()] == [
        ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]
    assert [e["influxdb"] for e in result["cpus"].values()] == ["i", "j", "k", "i", "j"]
    assert result == placement.placement(cpus, roles)


def test_a_new_cpu_name_sorting_first_moves_nothing_else():
    cpus = {"n1": "Milan", "n2": "Rome", "n3": "Xeon"}
    before = placement.placement(cpus, ROLES)
    after = placement.placement(dict(cpus, n0="Altra"), ROLES, current=before)
    assert {c: w for c, w in where(after).items() if c != "Altra"} == where(before)
    assert {n: f for n, f in formulas(after).items() if n != "altra"} == formulas(before)
    assert placement.moves(before, after) == []
    # round-robin would have shifted every CPU name: the reason for current
    assert where(placement.placement(dict(cpus, n0="Altra"), ROLES))["Milan"] != where(before)["Milan"]
    # the newcomer goes to the least loaded hosts (db2 and i2 hold one, db1 and i1 two)
    assert where(after)["Altra"] == ("db2", 1, "i2", 1, "f2")


def test_a_new_host_moves_nothing_and_takes_the_next_new_cpu_name():
    cpus = {"n1": "A", "n2": "B", "n3": "C"}
    before = placement.placement(cpus, ROLES)
    roles = dict(ROLES, mongos=["db0", "db1", "db2"], influxdbs=["i0", "i1", "i2"])
    same = placement.placement(cpus, roles, current=before)
    assert where(same) == where(before)
    grown = placement.placement(dict(cpus, n4="D"), roles, current=same)
    assert (grown["cpus"]["D"]["mongo"], grown["cpus"]["D"]["slots"]["mongo"]) == ("db0", 0)
    assert grown["cpus"]["D"]["influxdb"] == "i0"
    assert {c: w for c, w in where(grown).items() if c != "D"} == where(before)


def test_a_host_leaving_moves_only_its_cpu_names_to_the_least_loaded():
    cpus = {f"n{i}": f"cpu{i}" for i in range(6)}
    roles = dict(ROLES, mongos=["db1", "db2", "db3"])
    before = placement.placement(cpus, roles)
    assert [e["mongo"] for e in before["cpus"].values()] == ["db1", "db2", "db3"] * 2
    after = placement.placement(cpus, dict(roles, mongos=["db1", "db3"]), current=before)
    moved = placement.moves(before, after)
    assert [(m["cpu"], m["from"]) for m in moved] == [("cpu1", "db2"), ("cpu4", "db2")]
    # the others keep host and slot; the two that move fill the lowest free slots, one per host
    assert {c: after["cpus"][c]["mongo"] for c in ("cpu0", "cpu2", "cpu3", "cpu5")} == {
        "cpu0": "db1", "cpu2": "db3", "cpu3": "db1", "cpu5": "db3"}
    assert [(after["cpus"][c]["mongo"], after["cpus"][c]["slots"]["mongo"]) for c in ("cpu1", "cpu4")] == [
        ("db1", 2), ("db3", 2)]
    assert all(m["component"] == "mongo" and m["to"] in ("db1", "db3") for m in moved)


def test_a_freed_slot_is_taken_again_by_the_next_cpu_name():
    before = placement.placement({"a": "A", "b": "B", "c": "C"}, {"mongos": ["m"], "formulas": ["f"],
                                                                  "influxdbs": ["i"]})
    after = placement.placement({"a": "A", "c": "C", "d": "D"}, {"mongos": ["m"], "formulas": ["f"],
                                                                 "influxdbs": ["i"]}, current=before)
    assert [(c, e["slots"]["mongo"]) for c, e in after["cpus"].items()] == [("A", 0), ("C", 2), ("D", 1)]


def test_shards_growing_keep_every_other_group_on_its_formula_host():
    cpus = {"a1": "A", "b1": "B", "b2": "B", "c1": "C"}
    before = placement.placement(cpus, ROLES, max_sensors=2)
    assert formulas(before) == {"a": "f1", "b": "f2", "c": "f1"}
    after = placement.placement(dict(cpus, b3="B", b4="B"), ROLES, max_sensors=2, current=before)
    assert [g["name"] for g in after["groups"]] == ["a", "b-1", "b-2", "c"]
    assert formulas(after)["a"] == "f1" and formulas(after)["c"] == "f1"
    assert {formulas(after)["b-1"], formulas(after)["b-2"]} == {"f2"}  # f2 had one group, f1 two
    assert where(after)["B"][:4] == where(before)["B"][:4]  # the databases of a CPU name do not shard
    assert placement.moves(before, after) == []


@pytest.mark.parametrize("strategy", ["per_cpu", "shared"])
def test_same_inputs_in_any_order_give_the_same_result(strategy):
    rng = random.Random(11)
    cpus = {f"node{i:03d}": f"cpu{rng.randrange(9)}" for i in range(60)}
    roles = {"mongos": ["m1", "m2", "m3"], "formulas": ["f1", "f2"], "influxdbs": ["i1", "i2"], "grafana": ["g"]}
    current = placement.placement({m: c for m, c in cpus.items() if c not in ("cpu2", "cpu7")}, roles, strategy,
                                  max_sensors=5)
    roles = dict(roles, mongos=["m1", "m3", "m4"])
    expected = placement.placement(cpus, roles, strategy, max_sensors=5, current=current)
    for _ in range(10):
        items = list(cpus.items())
        rng.shuffle(items)
        shuffled = {k: rng.sample(v, len(v)) for k, v in roles.items()}
        kept = dict(current, cpus=dict(rng.sample(list(current["cpus"].items()), len(current["cpus"]))),
                    groups=rng.sample(current["groups"], len(current["groups"])))
        assert placement.placement(dict(items), shuffled, strategy, max_sensors=5, current=kept) == expected


def test_shared_keeps_its_one_database_host_while_it_is_in_the_role():
    before = placement.placement({"a": "A", "b": "B"}, ROLES, "shared")
    assert {e["mongo"] for e in before["cpus"].values()} == {"db1"}
    after = placement.placement({"a": "A", "b": "B"}, dict(ROLES, mongos=["db0", "db1"]), "shared", current=before)
    assert {e["mongo"] for e in after["cpus"].values()} == {"db1"}


@pytest.mark.parametrize("current", [{"cpus": "x"}, {"cpus": {"A": {"mongo": "db1", "slots": {"mongo": "9"}}}},
                                     {"cpus": {"A": {"mongo": "db1", "slots": {"mongo": True}}}}, [1], "s"])
def test_a_malformed_current_is_read_as_far_as_it_is_sound(current):
    result = placement.placement({"a": "A"}, ROLES, current=current)
    assert where(result) == where(placement.placement({"a": "A"}, ROLES))


def test_two_cpu_names_claiming_one_slot_do_not_share_a_port():
    current = {"cpus": {"A": {"mongo": "db2", "slots": {"mongo": 0}}, "B": {"mongo": "db2", "slots": {"mongo": 0}}}}
    result = placement.placement({"a": "A", "b": "B"}, ROLES, current=current)
    assert (result["cpus"]["A"]["mongo"], result["cpus"]["A"]["slots"]["mongo"]) == ("db2", 0)
    assert (result["cpus"]["B"]["mongo"], result["cpus"]["B"]["slots"]["mongo"]) == ("db1", 0)


EVENTS = ["CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS", "RETIRED_UOPS"]


def facts(sensors, mongos, influxdbs):
    return {"sensors": {m: {"cpu_name": c, "address": f"10.0.0.{i}", "pmu_events": EVENTS}
                        for i, (m, c) in enumerate(sorted(sensors.items()), start=10)},
            "mongos": {m: {"address": f"10.0.1.{i}"} for i, m in enumerate(mongos, start=1)},
            "formulas": {"ctl": {"address": "10.0.2.1"}},
            "influxdbs": {m: {"address": f"10.0.3.{i}"} for i, m in enumerate(influxdbs, start=1)},
            "grafana": {"ctl": {"address": "10.0.2.1"}}}


def test_the_plan_keeps_ports_and_refuses_a_database_move_with_the_exact_commands(defaults):
    conf = dict(defaults, control="ctl")
    first = plan.build(conf, facts({"a": "Milan", "b": "Xeon"}, ["m1", "m2"], ["i1"]))
    second = plan.build(conf, facts({"a": "Milan", "b": "Xeon", "c": "Altra"}, ["m1", "m2"], ["i1"]),
                        current=first["placement"])
    for cpu in ("Milan", "Xeon"):
        assert second["cpus"][cpu]["mongo_uri"] == first["cpus"][cpu]["mongo_uri"]
        assert second["cpus"][cpu]["influxdb_url"] == first["cpus"][cpu]["influxdb_url"]
    assert second["cpus"]["Altra"]["influxdb_url"].endswith(":8088")  # the third InfluxDB slot on i1
    with pytest.raises(PlanError) as refused:
        plan.build(conf, facts({"a": "Milan", "b": "Xeon", "c": "Altra"}, ["m1"], ["i1"]), current=second["placement"])
    text = str(refused.value)
    assert "energy:strategy_change: bad value 'refuse'" in text and "m2 left energy:roles:mongos" in text
    assert "salt-run energy.backup cpus=Xeon" in text and "salt-run energy.restore src=<that directory> cpus=Xeon" in text
    moved = plan.build(dict(conf, strategy_change="allow"), facts({"a": "Milan", "b": "Xeon"}, ["m1"], ["i1"]),
                       current=second["placement"])
    assert moved["placement"]["moves"] == [{"cpu": "Xeon", "component": "mongo", "from": "m2", "to": "m1"}]
    assert moved["cpus"]["Milan"]["mongo_uri"] == first["cpus"]["Milan"]["mongo_uri"]
