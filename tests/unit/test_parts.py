"""What the master hands each minion (energy_core.parts): its own containers with the secrets they
need and no other, the configuration masked, kept in 0600 files named by a digest of the id."""

import json
import os
import stat

import pytest

from energy_core import parts, plan

EVENTS = ["CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS", "RETIRED_UOPS"]
PASSWORDS = {"admin_password": "admin-Secret-123", "sensor_password": "sensor-Secret-123",
             "formula_password": "formula-Secret-12"}
GRAFANA = "grafana-Secret-12"


def facts():
    return {"sensors": {"a": {"cpu_name": "X", "address": "10.0.0.1", "pmu_events": EVENTS},
                        "b": {"cpu_name": "Y", "address": "10.0.0.2", "pmu_events": EVENTS}},
            "mongos": {"db": {"address": "10.0.0.9"}}, "formulas": {"ctl": {"address": "10.0.0.8"}},
            "influxdbs": {"ctl": {"address": "10.0.0.8"}}, "grafana": {"ctl": {"address": "10.0.0.8"}}}


@pytest.fixture
def conf(defaults):
    return dict(defaults, control="ctl", roles=dict(defaults["roles"], mongos=["db"]),
                mongo=dict(defaults["mongo"], **PASSWORDS),
                grafana=dict(defaults["grafana"], enabled=True, admin_password=GRAFANA))


def text(value):
    return json.dumps(value, sort_keys=True)


def test_each_minion_gets_its_own_containers_and_only_the_secrets_they_need(conf):
    full = plan.build(conf, facts())
    handed = parts.parts(conf, full, ["a", "b", "db", "ctl", "idle"], "t1")
    assert sorted(handed) == ["a", "b", "ctl", "db", "idle"]
    for minion, part in handed.items():
        assert part["minion"] == minion and part["stamp"] == "t1" and part["version"] == parts.VERSION
        assert [c["name"] for c in part["containers"]] == [c["name"] for c in plan.node(full, minion)["containers"]]
        assert all(c["minion"] == minion for c in part["containers"])
        # the configuration is the master's, every secret masked
        assert part["config"]["mongo"]["admin_password"] == "***"
        for secret in (*PASSWORDS.values(), GRAFANA):
            assert secret not in text(part["config"])
    assert handed["idle"]["containers"] == [] and handed["idle"]["volume_sizes"] == {}
    # the Grafana password reaches the Grafana host only; the MongoDB admin password the MongoDB host only
    assert GRAFANA in text(handed["ctl"]) and GRAFANA not in text(handed["a"]) + text(handed["db"])
    assert PASSWORDS["admin_password"] in text(handed["db"])
    assert GRAFANA in handed["ctl"]["hidden"] and GRAFANA not in handed["db"]["hidden"]
    assert PASSWORDS["admin_password"] not in text(handed["a"]) + text(handed["ctl"])
    assert handed["a"]["influx"]["sensor"] == "a" and handed["db"]["influx"] is None
    assert set(handed["db"]["volume_sizes"]) == {c["volume"] for c in handed["db"]["containers"]}


def test_a_secret_the_masters_pillar_lacks_makes_that_minions_part_local(conf):
    conf = dict(conf, grafana=dict(conf["grafana"], admin_password=""))
    full = plan.build(conf, facts())
    handed = parts.parts(conf, full, ["a", "ctl"], "t1")
    assert "energy:grafana:admin_password: missing on ctl" in handed["ctl"]["local"]
    assert "containers" not in handed["ctl"] and handed["ctl"]["placement"] == parts.compact(full["placement"])
    # the compact placement places as the whole one does
    again = plan.build(conf, facts(), handed["ctl"]["placement"])
    assert again["placement"]["cpus"] == full["placement"]["cpus"]
    assert "local" not in handed["a"]


def test_parts_are_kept_0600_by_digest_and_the_others_removed(conf, tmp_path):
    full = plan.build(conf, facts())
    parts.write(str(tmp_path), parts.parts(conf, full, ["a", "b"], "t1"))
    folder = tmp_path / parts.PARTS_DIR
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in folder.iterdir())
    assert parts.read(str(tmp_path), "a")["minion"] == "a"
    assert parts.file_name("../../etc/passwd").endswith(".json") and "/" not in parts.file_name("../x")
    parts.write(str(tmp_path), {"a": parts.part(conf, full, "a", "t2")})  # b is no longer handed one
    assert parts.read(str(tmp_path), "b") is None
    assert parts.read(str(tmp_path), "a")["stamp"] == "t2"
    assert parts.read(str(tmp_path), "nobody") is None


def test_a_part_of_another_minion_or_version_is_not_read(conf, tmp_path):
    folder = tmp_path / parts.PARTS_DIR
    os.makedirs(folder)
    (folder / parts.file_name("a")).write_text(json.dumps({"version": parts.VERSION, "minion": "b"}))
    assert parts.read(str(tmp_path), "a") is None
    (folder / parts.file_name("a")).write_text("{not json")
    assert parts.read(str(tmp_path), "a") is None
    assert parts.from_pillar({"energy_plan": {"version": parts.VERSION, "minion": "a"}}, "a")
    assert parts.from_pillar({"energy_plan": {"version": 0, "minion": "a"}}, "a") is None
    assert parts.from_pillar({}, "a") is None


def test_the_kept_placement_round_trips_and_keeps_the_plan_stable(conf, tmp_path):
    full = plan.build(conf, facts())
    parts.write_placement(str(tmp_path), full["placement"])
    kept = parts.read_placement(str(tmp_path))
    grown = dict(facts(), sensors=dict(facts()["sensors"], c={"cpu_name": "A", "address": "10.0.0.3",
                                                                "pmu_events": EVENTS}))
    again = plan.build(conf, grown, kept)
    assert again["cpus"]["X"]["mongo_uri"] == full["cpus"]["X"]["mongo_uri"]
    assert again["cpus"]["Y"]["mongo_uri"] == full["cpus"]["Y"]["mongo_uri"]
    assert parts.read_placement(str(tmp_path / "none")) is None
