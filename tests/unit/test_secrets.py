"""Secrets: needed only where used, off command lines, in files only their reader can read."""

import copy

import pytest

from energy_core import components, names, plan, plan_checks, rules
from energy_core.masking import mask, secrets
from energy_core.schema import PlanError

EVENTS = ["CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS", "RETIRED_UOPS"]
PASSWORDS = {"admin_password": "mongo-admin-pw-1", "sensor_password": "mongo/sensor@pw:2",
             "formula_password": "mongo-formula-pw-3"}
FLEET = {"sensors": {"s1": {"cpu_name": "X", "pmu_events": EVENTS, "address": "10.0.0.1"}},
         "mongos": {"db": {"address": "10.0.0.9"}}, "formulas": {"fx": {"address": "10.0.0.8"}},
         "influxdbs": {"db": {"address": "10.0.0.9"}}, "grafana": {"gr": {"address": "10.0.0.7"}}}


@pytest.fixture
def conf(defaults):
    conf = copy.deepcopy(defaults)
    conf["roles"].update(mongos=["db"], formulas=["fx"], influxdbs=["db"], grafana=["gr"])
    conf["grafana"]["admin_password"] = "grafana-admin-pw"
    conf["mongo"].update(PASSWORDS)
    return conf


def containers(full_plan, minion, component):
    return [c for c in plan.node(full_plan, minion)["containers"] if c["component"] == component]


def test_every_minion_has_what_it_needs(conf):
    full_plan = plan.build(conf, FLEET)
    for minion in ("s1", "db", "fx", "gr"):
        plan_checks.check_secrets(conf, full_plan, minion)


@pytest.mark.parametrize("key, needed_on, not_needed_on", [
    ("mongo:sensor_password", ["s1", "db"], ["fx", "gr"]),
    ("mongo:formula_password", ["fx", "db"], ["s1", "gr"]),
    ("mongo:admin_password", ["db"], ["s1", "fx", "gr"]),
    ("grafana:admin_password", ["gr"], ["s1", "db", "fx"]),
])
def test_a_missing_secret_is_an_error_only_where_it_is_needed(conf, key, needed_on, not_needed_on):
    section, name = key.split(":")
    full_plan = plan.build(conf, FLEET)
    conf[section][name] = ""
    for minion in not_needed_on:
        plan_checks.check_secrets(conf, full_plan, minion)
    for minion in needed_on:
        with pytest.raises(PlanError, match=f"energy:{key}: missing on {minion}, which runs a .* Fix: set"):
            plan_checks.check_secrets(conf, full_plan, minion)


def test_influxdb2_token_is_needed_by_formula_grafana_and_influxdb_hosts_only(conf):
    conf["influxdb"].update(version=2, token="", password="influx-pw-1")
    conf["formula"]["tag"] = "2.4.1"
    full_plan = plan.build(conf, FLEET)
    for minion in ("fx", "gr", "db"):
        with pytest.raises(PlanError, match="energy:influxdb:token: missing on"):
            plan_checks.check_secrets(conf, full_plan, minion)
    plan_checks.check_secrets(conf, full_plan, "s1")


def test_users_carry_their_own_password_and_the_command_lines_none(conf):
    full_plan = plan.build(conf, FLEET)
    (sensor,) = containers(full_plan, "s1", "sensor")
    (formula,) = containers(full_plan, "fx", "formula")
    (mongo,) = containers(full_plan, "db", "mongo")
    (config,) = sensor["files"].values()
    assert config["mode"] == "0600" and sensor["run"]["user"] == "root"
    uri = config["data"]["output"]["uri"]
    sensor_pw = components.mongo_password(conf, "sensor", "X", "energy-sensor-x")  # derived from mongo/sensor@pw:2
    assert uri == f"mongodb://energy-sensor-x:{sensor_pw}@10.0.0.9:27017/?authSource=admin"
    assert all(v not in repr(formula["run"]["command"]) for v in PASSWORDS.values())
    assert "--uri" not in formula["run"]["command"][:formula["run"]["command"].index("--output")]
    env = formula["run"]["environment"]
    assert env["POWERAPI_INPUT_PULLER_URI"] == names.mongo_uri(
        "10.0.0.9", 27017, "energy-formula-x", components.mongo_password(conf, "formula", "X", "energy-formula-x"))
    assert formula["health"]["backlog"]["uri"] == env["POWERAPI_INPUT_PULLER_URI"]
    assert mongo["run"]["environment"]["MONGO_INITDB_ROOT_PASSWORD"] == "mongo-admin-pw-1"
    users = {u["name"]: u for u in mongo["users"]["users"]}
    assert users["energy-sensor-x"]["actions"] == ["insert"]
    assert "insert" not in users["energy-formula-x"]["actions"]
    assert users["energy-sensor-x"]["collections"] == [[full_plan["cpus"]["X"]["database"], "hwpc"]]


def test_the_influxdb2_token_reaches_smartwatts_by_its_environment(conf):
    conf["influxdb"].update(version=2, token="the-token-value", password="influx-pw-1")
    conf["formula"]["tag"] = "2.4.1"
    (formula,) = containers(plan.build(conf, FLEET), "fx", "formula")
    assert "the-token-value" not in repr(formula["run"]["command"])
    assert formula["run"]["environment"]["POWERAPI_OUTPUT_POWER_TOKEN"] == "the-token-value"
    assert formula["run"]["environment"]["POWERAPI_OUTPUT_POWER_TYPE"] == "influxdb2"
    (grafana,) = containers(plan.build(conf, FLEET), "gr", "grafana")
    datasources = next(f for p, f in grafana["files"].items() if p.endswith("datasources/energy.yaml"))
    assert datasources["mode"] == "0640"


def test_without_auth_the_uris_carry_no_credentials_and_the_plan_warns(conf):
    conf["mongo"]["auth"] = False
    full_plan = plan.build(conf, FLEET)
    (sensor,) = containers(full_plan, "s1", "sensor")
    assert next(iter(sensor["files"].values()))["data"]["output"]["uri"] == "mongodb://10.0.0.9:27017"
    (mongo,) = containers(full_plan, "db", "mongo")
    assert mongo["users"]["admin"] is None and mongo["users"]["users"] == []
    assert "MONGO_INITDB_ROOT_PASSWORD" not in mongo["run"]["environment"]
    assert mongo["users"]["expire"]["collections"] == [["sensors_x", "hwpc"]] or \
        mongo["users"]["expire"]["collections"] == [("sensors_x", "hwpc")]
    assert any(w.startswith("MongoDB for X") for w in full_plan["warnings"])
    for minion in ("s1", "db", "fx"):
        assert not [p for p in rules.secret_problems(conf, minion, ["sensor", "mongo", "formula"]) if "mongo:" in p]


def test_the_masked_plan_holds_no_secret_even_percent_encoded(conf):
    full_plan = plan.build(conf, FLEET)
    text = repr(mask(full_plan, secrets(conf)))
    for value in list(PASSWORDS.values()) + ["grafana-admin-pw", "mongo%2Fsensor%40pw%3A2"]:
        assert value not in text
    assert "energy-sensor-x:***@" in text


def test_components_need_only_their_secrets():
    needs = rules._needs({"mongo": {"auth": True}, "influxdb": {"version": 1}})  # pylint: disable=protected-access
    assert set(needs["sensor"]) == {"mongo:sensor_password"}
    assert set(needs["formula"]) == {"mongo:formula_password"}
    assert not needs["influxdb"]
    assert components.MONGO_PRIVILEGES["sensor"] == ["insert"]
