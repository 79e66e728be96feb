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
             "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}}, "grafana": {"ctl": {}}}
    (sensor,) = plan.build(conf, facts)["hosts"]["a"]["containers"]
    assert sensor["run"]["privileged"] is False
    assert sensor["run"]["labels"] == {"energy.component": "sensor", "energy.minion": "a", "energy.cpu": "X",
                                       "energy.mongo": "energy-ctl-mongo-x"}  # it follows its MongoDB


def test_cpu_without_pmu_events_is_refused_with_the_fix(defaults):
    conf = dict(defaults, control="ctl")
    facts = {"sensors": {"vm1": {"cpu_name": "AMD EPYC", "pmu_events": [], "virtual": True}},
             "mongos": {"ctl": {}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}}, "grafana": {"ctl": {}}}
    with pytest.raises(PlanError, match=r"'AMD EPYC' \(minions vm1\) has no usable PMU events.*Fix:"):
        plan.build(conf, facts)
    conf["sensor"] = dict(defaults["sensor"], events={"AMD EPYC": EVENTS})  # the user names them: accepted
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


def test_named_ids_only_for_targets_that_name_minions_by_id():
    assert placement.named_ids("*") == "*"
    assert placement.named_ids("L@db1,db2") == ("db1", "db2")
    assert placement.named_ids("ctl") == ("ctl",)
    for master_only in ("G@role:db", "I@energy:db:true", "node-*", "ctl or node-a", "L@a,b and G@x:y",
                        "E@node-.*", "", None, "node-[ab]", "db1,db2", "N@racks", "L@a,b c"):
        assert placement.named_ids(master_only) is None, master_only


def test_mine_queries_ask_once_for_every_role_named_by_id():
    # the demo's roles: five roles, one query
    targets = {"sensors": "*", "mongos": "L@ctl,node-a", "formulas": "L@ctl", "influxdbs": "L@ctl",
               "grafana": "ctl"}
    queries = placement.mine_queries(targets)
    assert {query for query, _ in queries.values()} == {"*"}
    assert queries["sensors"] == ("*", None)
    assert queries["mongos"] == ("*", ("ctl", "node-a"))
    assert queries["grafana"] == ("*", ("ctl",))
    # no role is every minion: the union of the ids, each role keeping its own
    queries = placement.mine_queries({"sensors": "L@n1,n2", "mongos": "db", "formulas": ""})
    assert queries == {"sensors": ("L@db,n1,n2", ("n1", "n2")), "mongos": ("L@db,n1,n2", ("db",))}
    # a target only the master can match is asked as it is, once however many roles share it
    queries = placement.mine_queries({"sensors": "G@rack:4", "mongos": "G@rack:4", "formulas": "ctl"})
    assert queries == {"sensors": ("G@rack:4", None), "mongos": ("G@rack:4", None),
                       "formulas": ("L@ctl", ("ctl",))}


def test_the_last_phase_carries_the_health_checks_to_every_minion():
    targets = {"sensors": "*", "mongos": "L@db", "formulas": "ctl", "influxdbs": "ctl"}
    phases = placement.orch_phases(targets, [], "( * ) or ( L@db ) or ( ctl )")
    assert [(p["name"], p["sls"], p["tgt"]) for p in phases] == [
        ("databases", ["energy.mongo", "energy.influxdb"], "( L@db ) or ( ctl )"),
        ("services", ["energy.sensor", "energy.formula", "energy.heal"], "( * ) or ( L@db ) or ( ctl )")]
    # every role down but one of a database: the databases phase is the last
    phases = placement.orch_phases({"mongos": "L@db"}, [], "( L@db )")
    assert [(p["name"], p["sls"]) for p in phases] == [("databases", ["energy.mongo", "energy.heal"])]
    # no component left: the health checks still go, in a phase of their own
    assert placement.orch_phases({"sensors": "n1"}, ["sensors"], "( n1 )") == [
        {"name": "heal", "sls": ["energy.heal"], "tgt": "( n1 )"}]
    assert placement.orch_phases({}, [], "") == []


def test_inventory_reads_the_stack_back_from_docker_in_removal_order():
    from energy_core import inventory

    ps = {"1": {"Names": ["/energy-a-mongo-x"], "Labels": {"energy.component": "mongo", "energy.cpu": "X"}},
          "2": {"Names": ["/energy-a-grafana"], "Labels": {"energy.component": "grafana"}},
          "3": {"Names": ["/energy-a-sensor"], "Labels": {"energy.component": "sensor", "energy.cpu": "X"}},
          "4": "not a container"}
    assert [c["name"] for c in inventory.containers(ps)] == ["energy-a-grafana", "energy-a-sensor", "energy-a-mongo-x"]
    volumes = ["energy-a-mongo-x", "energy-a-influxdb-x", "energy-a-grafana", "energy-ab-mongo-x", "other"]
    assert inventory.volumes("a", volumes) == ["energy-a-grafana", "energy-a-influxdb-x", "energy-a-mongo-x"]


FLEET = {"sensors": {"a": {"cpu_name": "X", "pmu_events": EVENTS, "address": "10.0.0.1"},
                     "b": {"cpu_name": "Y", "pmu_events": EVENTS, "address": "10.0.0.2"},
                     "c": {"cpu_name": "Z", "pmu_events": EVENTS, "address": "10.0.0.3"}},
         "mongos": {"ctl": {"address": "10.0.0.9"}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}},
         "grafana": {"ctl": {}}}


def fleet_conf(defaults, **sections):
    conf = dict(defaults, control="ctl")
    for name, values in sections.items():
        conf[name] = dict(defaults[name], **values)
    return conf


@pytest.mark.parametrize("sections, words", [
    # three CPU names on one host: ports 65534, 65535, 65536
    ({"mongo": {"port": 65534}}, "energy:mongo:port: bad value 65534: ctl runs several mongo containers"),
    ({"influxdb": {"port": 65535}}, "energy:influxdb:port: bad value 65535"),
    # two kinds on one port range
    ({"mongo": {"port": 8086}}, "port 8086 on ctl is also taken by energy:"),
    ({"grafana": {"port": 27018}}, "port 27018 on ctl is also taken by energy:"),
])
def test_the_built_plan_is_checked_for_ports(defaults, sections, words):
    with pytest.raises(PlanError) as exc:
        plan.build(fleet_conf(defaults, **sections), FLEET)
    assert words in str(exc.value) and "Fix:" in str(exc.value)


def test_grafana_role_matching_no_minion_is_named(defaults):
    facts = dict(FLEET, grafana={})
    with pytest.raises(PlanError, match=r"energy:roles:grafana: bad value 'ctl': it matches no minion.*Fix:"):
        plan.build(fleet_conf(defaults), facts)
    assert plan.build(fleet_conf(defaults, grafana={"enabled": False}), facts)["grafana"] is None


def test_a_long_cpu_name_gives_database_names_mongodb_accepts(defaults):
    long_name = "Intel(R) Xeon(R) Platinum 8380 Extraordinarily Long Engineering Sample Name " * 3
    facts = dict(FLEET, sensors={"a": {"cpu_name": long_name, "pmu_events": EVENTS}})
    info = plan.build(fleet_conf(defaults), facts)["cpus"][long_name]
    assert len(info["database"]) <= 63 and len(info["influxdb_database"]) <= 63
    assert names.cpu_slug(long_name) != names.cpu_slug(long_name[:-1])  # the cut keeps names apart


def test_a_minion_id_docker_cannot_name_is_refused(defaults):
    facts = dict(FLEET, sensors={"x" * 300: {"cpu_name": "X", "pmu_events": EVENTS}})
    with pytest.raises(PlanError, match="is not a Docker name.*Fix: a shorter minion id"):
        plan.build(fleet_conf(defaults), facts)


def test_databases_open_to_the_network_are_named_in_the_plan_warnings(defaults):
    result = plan.build(fleet_conf(defaults), FLEET)
    assert all(not info["local"]["mongo"] and not info["local"]["influxdb"] for info in result["cpus"].values())
    assert not [w for w in result["warnings"] if w.startswith("MongoDB")]  # authentication on
    influx = [w for w in result["warnings"] if w.startswith("InfluxDB for X on ctl (http://10.0.0.9:8086)")]
    unauthenticated = plan.build(fleet_conf(defaults, mongo={"auth": False}), FLEET)
    mongo = [w for w in unauthenticated["warnings"] if w.startswith("MongoDB for X on ctl (10.0.0.9:27017)")]
    assert len(mongo) == 1 and "without authentication" in mongo[0] and "let only a reach port 27017" in mongo[0]
    assert len(influx) == 1 and "energy:influxdb:version: 2" in influx[0]
    (database,) = [d for c in result["hosts"]["ctl"]["containers"] if c["component"] == "influxdb" and c["cpu"] == "X"
                   for d in c["databases"]]
    assert database["warning"] == influx[0]
    assert plan.summary(result)["warnings"] == result["warnings"]


def test_a_stack_on_one_machine_publishes_its_databases_on_loopback_only(defaults):
    facts = {"sensors": {"solo": {"cpu_name": "X", "pmu_events": EVENTS, "address": "10.0.0.5"}},
             "mongos": {"solo": {}}, "formulas": {"solo": {}}, "influxdbs": {"solo": {}}, "grafana": {"solo": {}}}
    conf = fleet_conf(defaults, grafana={"enabled": False})
    conf["control"] = "solo"
    result = plan.build(conf, facts)
    info = result["cpus"]["X"]
    assert info["local"] == {"mongo": True, "influxdb": True} and result["warnings"] == []
    assert info["mongo_uri"] == "mongodb://127.0.0.1:27017" and info["influxdb_url"] == "http://127.0.0.1:8086"
    bindings = [c["run"]["port_bindings"] for c in result["hosts"]["solo"]["containers"] if c["component"] != "sensor"
                and c["run"].get("port_bindings")]
    assert bindings == [["127.0.0.1:27017:27017"], ["127.0.0.1:8086:8086"]]
    # Grafana on the same host reaches InfluxDB by container name on the stack's network: InfluxDB
    # stays on loopback; Grafana on another host makes it published (and warned about)
    conf["grafana"] = dict(defaults["grafana"], enabled=True)
    result = plan.build(conf, facts)
    assert result["cpus"]["X"]["local"] == {"mongo": True, "influxdb": True} and result["warnings"] == []
    assert [s["proxy_url"] for s in result["datasources"]] == ["http://energy-solo-influxdb-x:8086"]
    facts["grafana"] = {"viewer": {"address": "10.0.0.9"}}
    conf["roles"] = dict(conf["roles"], grafana=["viewer"])
    result = plan.build(conf, facts)
    assert result["cpus"]["X"]["local"] == {"mongo": True, "influxdb": False}
    assert [w.split(" answers")[0] for w in result["warnings"]] == ["InfluxDB for X on solo (http://10.0.0.5:8086)"]
    assert [s["proxy_url"] for s in result["datasources"]] == ["http://10.0.0.5:8086"]


def test_common_mode_over_compared_clusters_gives_their_cpus_the_same_roles_and_no_dram(defaults):
    import pathlib
    import importlib.util

    spec = importlib.util.spec_from_file_location("grains_for_plan", pathlib.Path(plan.__file__).parents[2] / "_grains" / "energy.py")
    grains = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grains)
    data = pathlib.Path(__file__).resolve().parent.parent / "data" / "machines"
    sensors = {"econome-1": grains._collect(str(data / "intel-haswell-e5-2630v3")),
               "gros-1": grains._collect(str(data / "amd-zen2-epyc-7452")),
               "dahu-1": grains._collect(str(data / "intel-skylake-gold-6130"))}
    facts = dict(FLEET, sensors=sensors)
    conf = fleet_conf(defaults, sensor={"mode": "common", "compare": ["econome", "gros"]})
    result = plan.build(conf, facts)
    haswell, epyc, gold = (sensors[m]["cpu_name"] for m in ("econome-1", "gros-1", "dahu-1"))
    assert result["cpus"][haswell]["sensor"]["dropped_roles"] == ["ref_cycles", "llc_misses"]
    assert result["cpus"][epyc]["sensor"]["dropped_roles"] == ["uops"]
    assert result["cpus"][gold]["sensor"]["dropped_roles"] == []  # dahu is not compared: best
    assert result["cpus"][gold]["sensor"]["dram"] is True and result["cpus"][haswell]["sensor"]["dram"] is False
    formulas = {c["cpu"]: c["run"]["command"] for c in result["hosts"]["ctl"]["containers"] if c["component"] == "formula"}
    assert "--disable-dram-formula" in formulas[haswell] and "--disable-dram-formula" not in formulas[gold]
    (config,) = [c["files"] for c in result["hosts"]["econome-1"]["containers"]]
    (data,) = [f["data"] for f in config.values()]
    assert data["container"]["core"]["events"] == ["CPU_CLK_UNHALTED:THREAD_P", "INSTRUCTIONS_RETIRED"]
    assert data["system"]["rapl"]["events"] == ["RAPL_ENERGY_PKG"]


def test_events_given_per_cpu_name_replace_the_detected_ones_of_that_cpu_only(defaults):
    conf = fleet_conf(defaults, sensor={"events": {"Y": ["INSTRUCTIONS_RETIRED"]}})
    result = plan.build(conf, FLEET)
    cores = {cpu: info["sensor"]["core"] for cpu, info in result["cpus"].items()}
    assert cores["Y"] == ["INSTRUCTIONS_RETIRED"] and cores["X"] == EVENTS


@pytest.mark.parametrize("bad", [{"cpu_name": 123}, {"cpu_name": ["x"]}, {"cpu_name": "X", "pmu_events": 5},
                                 {"cpu_name": "X" * 100_000}, {"cpu_name": "X", "address": ["10.0.0.1"]}, "facts"])
def test_a_malformed_mine_entry_leaves_its_minion_out_not_the_fleet(defaults, bad):
    facts = dict(FLEET, sensors=dict(FLEET["sensors"], evil=bad))
    result = plan.build(fleet_conf(defaults), facts)
    assert "evil" not in result["hosts"] and sorted(result["cpus"]) == ["X", "Y", "Z"]
    (warning,) = [w for w in result["warnings"] if "evil" in w]
    assert warning.startswith("minion 'evil' is left out: its energy facts in the mine are malformed") and "Fix:" in warning
