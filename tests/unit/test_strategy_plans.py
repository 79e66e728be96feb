"""The built plan with each deployment strategy and with formula shards: which containers each
minion runs, where sensors write and formulas read, and the volumes sized for the experiment."""

import copy

import pytest

from energy_core import names, placement, plan, plan_checks, schema, sizing
from energy_core.schema import PlanError

EVENTS = ["CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS", "RETIRED_UOPS"]
GOLD, EPYC = "Intel Gold", "AMD EPYC"


def facts(cpu, address):
    return {"cpu_name": cpu, "pmu_events": EVENTS, "address": address, "rapl_domains": ["package"]}


SENSORS = {"s1": facts(GOLD, "10.0.0.1"), "s2": facts(GOLD, "10.0.0.2"), "s3": facts(EPYC, "10.0.0.3")}
HOSTS = {"db1": {"address": "10.0.1.1"}, "db2": {"address": "10.0.1.2"}, "f1": {"address": "10.0.2.1"}}


@pytest.fixture
def conf(defaults):
    conf = copy.deepcopy(defaults)
    conf["control"] = "db1"
    conf["grafana"]["admin_password"] = "grafana-admin-pw"
    conf["mongo"].update(admin_password="mongo-admin-pw-1", sensor_password="mongo-sensor-pw-2",
                         formula_password="mongo-formula-pw-3")
    return conf


def role_facts(conf):
    pick = {m: HOSTS.get(m) or SENSORS.get(m) for m in list(HOSTS) + list(SENSORS)}
    result = {"sensors": dict(SENSORS)}
    for role in ("mongos", "formulas", "influxdbs", "grafana"):
        target = placement.role_target(conf, role)
        members = target[2:].split(",") if target.startswith("L@") else ([target] if target in pick else list(SENSORS))
        result[role] = {m: pick[m] for m in members}
    return result


def containers(full_plan, minion, component=None):
    return [c for c in plan.node(full_plan, minion)["containers"] if component in (None, c["component"])]


def names_on(full_plan, minion):
    return sorted(c["name"] for c in containers(full_plan, minion))


def sensor_output(full_plan, minion):
    (sensor,) = containers(full_plan, minion, "sensor")
    return next(iter(sensor["files"].values()))["data"]["output"]


def test_shared_runs_one_mongodb_and_one_influxdb_holding_every_cpu_name(conf):
    conf.update(strategy="shared")
    conf["roles"].update(mongos=["db2", "db1"], influxdbs=["db2"], formulas=["f1"])
    full_plan = plan.build(conf, role_facts(conf))
    (mongo,) = containers(full_plan, "db1", "mongo")
    (influx,) = containers(full_plan, "db2", "influxdb")
    assert not containers(full_plan, "db2", "mongo") and mongo["name"] == "energy-db1-mongo"
    assert mongo["cpu"] is None  # it serves several CPU names
    assert [d["name"] for d in influx["databases"]] == ["power_amd_epyc", "power_intel_gold"]
    # a sensor user and a formula user per CPU name, each on its own database's collection only
    assert {u["name"]: u["collections"] for u in mongo["users"]["users"]} == {
        f"energy-{p}-{slug}": [[f"sensors_{slug}", "hwpc"]] for p in ("formula", "sensor")
        for slug in ("amd_epyc", "intel_gold")}
    # each CPU name keeps its own databases: the dashboards and hostname_to_influx do not change
    assert sensor_output(full_plan, "s1")["database"] == "sensors_intel_gold"
    assert sensor_output(full_plan, "s3")["database"] == "sensors_amd_epyc"
    assert plan.influx_by_minion(full_plan)["s3"]["database"] == "power_amd_epyc"
    assert {s["name"] for s in full_plan["datasources"]} == {f"energy {GOLD}", f"energy {EPYC}"}
    assert names_on(full_plan, "f1") == ["energy-f1-formula-amd_epyc", "energy-f1-formula-intel_gold"]


def test_dedicated_runs_a_whole_stack_next_to_each_sensor(conf):
    conf.update(strategy="dedicated", control="db1")
    full_plan = plan.build(conf, role_facts(conf))
    for minion in SENSORS:
        assert names_on(full_plan, minion) == sorted(
            f"energy-{minion}-{c}" for c in ("formula", "influxdb", "mongo", "sensor"))
        # the sensor reaches its machine's MongoDB by container name on the stack's network
        assert sensor_output(full_plan, minion)["uri"].endswith(f"@energy-{minion}-mongo:27017/?authSource=admin")
    # no report crosses the network: every database of a machine is on its loopback
    assert all(group["local"] == {"mongo": True, "influxdb": False} for group in full_plan["groups"])
    sources = [s["name"] for s in full_plan["datasources"]]
    assert sources == [f"energy {EPYC} / s3", f"energy {GOLD} / s1", f"energy {GOLD} / s2"]  # by CPU name
    assert plan.influx_by_minion(full_plan)["s2"]["url"] == "http://10.0.0.2:8086"
    assert names_on(full_plan, "db1") == ["energy-db1-grafana"]


def test_dedicated_refuses_database_roles_naming_them(conf):
    conf.update(strategy="dedicated")
    conf["roles"]["mongos"] = ["db1"]
    (error,) = schema.validate(conf)
    assert error.startswith("energy:roles:mongos: bad value ['db1']") and "dedicated" in error
    assert placement.role_target(dict(conf, roles={}), "formulas") == "*"  # the sensors' target


def test_a_cpu_name_with_more_sensors_than_max_sensors_is_sharded(conf):
    conf["formula"]["max_sensors"] = 1
    conf["roles"].update(formulas=["f1", "db1"])
    full_plan = plan.build(conf, role_facts(conf))
    gold = [g for g in full_plan["groups"] if g["cpu"] == GOLD]
    assert [(g["name"], g["sensors"], g["collection"]) for g in gold] == [
        ("intel_gold-1", ["s1"], "hwpc_1"), ("intel_gold-2", ["s2"], "hwpc_2")]
    # one database for the CPU name, one collection per shard, each read by its own SmartWatts
    assert sensor_output(full_plan, "s1")["collection"] == "hwpc_1"
    assert sensor_output(full_plan, "s2")["collection"] == "hwpc_2"
    formulas = {c["name"]: c for h in full_plan["hosts"].values() for c in h["containers"] if c["component"] == "formula"}
    assert set(formulas) == {"energy-db1-formula-amd_epyc", "energy-f1-formula-intel_gold-1",
                             "energy-db1-formula-intel_gold-2"}
    command = formulas["energy-db1-formula-intel_gold-2"]["run"]["command"]
    assert command[command.index("--collection") + 1] == "hwpc_2"
    assert len({g["influxdb_database"] for g in gold}) == 1
    assert full_plan["cpus"][GOLD]["groups"] == ["intel_gold-1", "intel_gold-2"]


def test_the_default_max_sensors_follows_the_sensor_frequency(conf):
    at_1hz = sizing.default_max_sensors(conf)
    conf["sensor"]["frequency_ms"] = 500
    assert sizing.default_max_sensors(conf) == max(1, at_1hz // 2)
    conf["experiment"]["containers"] = 10_000
    assert sizing.default_max_sensors(conf) == 1


def test_volumes_are_sized_for_the_experiment(conf):
    full_plan = plan.build(conf, role_facts(conf))
    sizes = sizing.estimate(conf, full_plan)
    influx = sizes["db1"]["energy-db1-influxdb-intel_gold"]
    # 2 machines, 22 targets, 1 scope (no DRAM), 1 tick/s, 14d + a quarter, BYTES_PER_POINT each
    expected = sizing.FIXED_INFLUXDB_BYTES + 2 * 22 * 1 * 14 * 86400 * 1.25 * sizing.BYTES_PER_POINT
    assert influx == pytest.approx(expected, rel=0.01)
    mongo = sizes["db1"]["energy-db1-mongo-intel_gold"]
    assert mongo == int(sizing.FIXED_MONGO_BYTES + 2 * 21 * 3600 * sizing.BYTES_PER_REPORT)
    conf["experiment"].update(duration="7d")
    assert sizing.estimate(conf, full_plan)["db1"]["energy-db1-influxdb-intel_gold"] < influx


def test_the_retention_defaults_to_the_duration_plus_a_margin(conf):
    assert sizing.retention(conf) == f"{14 * 24 * 5 // 4}h"
    conf["experiment"]["duration"] = "10m"
    assert sizing.retention(conf) == "1h"  # InfluxDB's shortest
    conf["influxdb"]["retention"] = "30d"
    assert sizing.retention(conf) == "30d"
    full_plan = plan.build(conf, role_facts(conf))
    (influx, *_) = containers(full_plan, "db1", "influxdb")
    assert {d["retention"] for d in influx["databases"]} == {"30d"}


@pytest.mark.parametrize("key, value, words", [
    ("strategy", "per_machine", "one of per_cpu, shared, dedicated"),
    ("strategy_change", "yes", "refuse"),
    ("experiment:duration", "two weeks", "InfluxDB duration"),
    ("experiment:containers", 0, "1 or more"),
    ("experiment:buffer", 0, "outage"),
    ("formula:max_sensors", 0, "1 or more"),
])
def test_bad_strategy_keys_name_key_value_and_fix(conf, key, value, words):
    target = conf
    *path, last = key.split(":")
    for part in path:
        target = target[part]
    target[last] = value
    (error,) = schema.validate(conf)
    assert error.startswith(f"energy:{key}: bad value") and words in error


def test_every_strategy_gives_each_container_exactly_the_container_keys(conf):
    from energy_core import components

    for strategy in names.STRATEGIES:
        conf.update(strategy=strategy)
        built = plan.build(conf, role_facts(conf))
        for host in built["hosts"].values():
            for c in host["containers"]:
                assert tuple(c) == components.CONTAINER_KEYS
        plan_checks.check_built(conf, built)


def ps(*containers):
    return {f"id{i}": {"Names": [f"/{name}"], "Labels": {"energy.component": component, "energy.minion": "db1"}}
            for i, (name, component) in enumerate(containers)}


def test_containers_of_an_earlier_plan_are_found_and_databases_need_allow(conf):
    from energy_core import inventory

    per_cpu = plan.build(conf, role_facts(conf))
    conf.update(strategy="shared")
    shared = plan.build(conf, role_facts(conf))
    deployed = ps(*[(c["name"], c["component"]) for c in plan.node(per_cpu, "db1")["containers"]],
                  ("quirky_turing", "formula"),  # a temporary container of docker_container.running
                  )
    found = inventory.orphans(deployed, plan.node(shared, "db1"), "db1")
    assert {o["name"]: o["data"] for o in found} == {
        "energy-db1-mongo-amd_epyc": True, "energy-db1-mongo-intel_gold": True,
        "energy-db1-influxdb-amd_epyc": True, "energy-db1-influxdb-intel_gold": True}
    problem = inventory.orphan_problem(conf, "db1", found)
    assert problem.startswith("energy:strategy_change: bad value 'refuse': the plan no longer has")
    assert "energy-db1-mongo-amd_epyc" in problem and "Fix: back up and restore" in problem
    conf["strategy_change"] = "allow"
    assert inventory.orphan_problem(conf, "db1", found) is None
    # a formula or sensor of an earlier plan holds no data: it goes without asking
    assert inventory.orphan_problem(dict(conf, strategy_change="refuse"), "db1",
                                    [{"name": "energy-db1-formula-x", "component": "formula", "data": False}]) is None
    # the orch's plan check: databases energy.rebalance apply=True backed up (leave) do not count
    refuse = dict(conf, strategy_change="refuse")
    assert inventory.plan_problem(refuse, "db1", found, [o["name"] for o in found], None) is None
    assert inventory.plan_problem(refuse, "db1", found, None, "no room") == inventory.orphan_problem(
        refuse, "db1", found) + "\nno room"
    assert inventory.plan_problem(refuse, "db1", [], [], "no room") == "no room"


def test_shared_with_influxdb2_and_several_cpu_names_is_refused(conf):
    conf.update(strategy="shared")
    conf["influxdb"].update(version=2, token="a-token-value", password="influx-pw-1")
    conf["formula"]["tag"] = "2.4.1"
    with pytest.raises(PlanError, match="energy:strategy: bad value 'shared'.*single bucket"):
        plan.build(conf, role_facts(conf))


def test_a_sensor_and_a_smartwatts_name_the_databases_they_use_so_a_move_recreates_them(conf):
    per_cpu = plan.build(conf, role_facts(conf))
    conf.update(strategy="shared")
    shared = plan.build(conf, role_facts(conf))

    def labels(full_plan, minion, component):
        return [c["run"]["labels"] for c in containers(full_plan, minion, component)]

    (sensor,) = labels(per_cpu, "s3", "sensor")
    (moved,) = labels(shared, "s3", "sensor")
    assert sensor[names.LABEL_MONGO] == "energy-db1-mongo-amd_epyc" and moved[names.LABEL_MONGO] == "energy-db1-mongo"
    for formula in labels(shared, "db1", "formula"):
        assert (formula[names.LABEL_MONGO], formula[names.LABEL_INFLUXDB]) == ("energy-db1-mongo", "energy-db1-influxdb")


def test_a_rebalance_reports_what_is_placed_otherwise_and_refuses_to_move_influxdb_2():
    current = {"cpus": {"X": {"mongo": "a", "influxdb": "a", "formula": "a"},
                        "Y": {"mongo": "b", "influxdb": "b", "formula": "b"}}}
    canonical = {"cpus": {"X": {"mongo": "a", "influxdb": "a", "formula": "a"},
                          "Y": {"mongo": "b", "influxdb": "a", "formula": "b"}}}
    same = placement.rebalance(current, current, "per_cpu")
    assert same == {"result": True, "differs": {}, "moves": [], "strategy": "per_cpu",
                    "comment": "the current placement is the canonical one"}
    found = placement.rebalance(current, canonical, "per_cpu")
    assert found["differs"] == {"Y": {"current": current["cpus"]["Y"], "canonical": canonical["cpus"]["Y"]}}
    assert found["moves"] == [{"cpu": "Y", "component": "influxdb", "from": "b", "to": "a"}]
    assert found["comment"].startswith("1 CPU name(s) placed otherwise, 1 database(s) would move")
    assert placement.rebalance_cpus(found["moves"], 1) == ("Y", None)
    cpus, problem = placement.rebalance_cpus(found["moves"], 2)
    assert cpus == "Y" and problem.startswith("energy:influxdb:version: 2: energy.backup reads InfluxDB 1.x only")
    assert placement.rebalance_cpus([], 2) == ("", None)
