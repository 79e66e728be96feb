"""What each container may do (energy_core.hardening) and how its clients reach a database: by
container name on the stack's network when both share a Docker engine, by the published address
otherwise."""

import copy

import pytest

from energy_core import components, hardening, plan, schema

EVENTS = ["CYCLES_NOT_IN_HALT", "RETIRED_INSTRUCTIONS", "RETIRED_UOPS"]
CPU = "AMD EPYC"


def facts(address, engine, **more):
    return dict({"cpu_name": CPU, "pmu_events": EVENTS, "address": address, "rapl_domains": ["package"],
                 "docker_engine": engine, "kernel": "6.1.0-18-amd64", "docker_perfmon": True}, **more)


@pytest.fixture
def conf(defaults):
    conf = copy.deepcopy(defaults)
    conf.update(control="ctl")
    conf["grafana"]["admin_password"] = "grafana-admin-pw"
    conf["mongo"].update(admin_password="mongo-admin-pw-1", sensor_password="mongo-sensor-pw-2",
                         formula_password="mongo-formula-pw-3")
    return conf


def build(conf, ctl_engine="E1", node_engine="E1"):
    ctl = facts("10.0.0.9", ctl_engine)
    role_facts = {"sensors": {"node": facts("10.0.0.1", node_engine)},
                  "mongos": {"ctl": ctl}, "formulas": {"ctl": ctl}, "influxdbs": {"ctl": ctl}, "grafana": {"ctl": ctl}}
    return plan.build(conf, role_facts)


def container(full_plan, minion, component):
    (found,) = [c for c in plan.node(full_plan, minion)["containers"] if c["component"] == component]
    return found


def test_same_engine_reaches_the_database_by_container_name(conf):
    full_plan = build(conf)
    sensor = container(full_plan, "node", "sensor")
    (config,) = [f["data"] for f in sensor["files"].values()]
    assert config["output"]["uri"].split("@")[1].startswith("energy-ctl-mongo-amd_epyc:27017/")
    # the host-side checks still use the published address
    assert sensor["health"]["fresh"]["url"] == "http://10.0.0.9:8086"


def test_another_engine_reaches_the_database_by_its_published_address(conf):
    full_plan = build(conf, node_engine="E2")
    (config,) = [f["data"] for f in container(full_plan, "node", "sensor")["files"].values()]
    assert config["output"]["uri"].split("@")[1].startswith("10.0.0.9:27017/")
    # an unknown engine (a minion of an older formula) is another engine too
    full_plan = build(conf, node_engine=None)
    (config,) = [f["data"] for f in container(full_plan, "node", "sensor")["files"].values()]
    assert config["output"]["uri"].split("@")[1].startswith("10.0.0.9:27017/")


def test_the_formula_and_grafana_of_the_database_host_use_container_names(conf):
    full_plan = build(conf, node_engine="E2")
    formula = container(full_plan, "ctl", "formula")
    uri = formula["run"]["environment"]["POWERAPI_INPUT_PULLER_URI"]
    assert "@energy-ctl-mongo-amd_epyc:27017/" in uri
    command = formula["run"]["command"]
    assert command[command.index("--uri") + 1] == "energy-ctl-influxdb-amd_epyc"
    assert command[command.index("--port") + 1] == "8086"
    assert formula["waits_for"][0]["url"].startswith("mongodb://10.0.0.9:27017")  # waited for from the host
    grafana = container(full_plan, "ctl", "grafana")
    (datasources,) = [f["data"] for path, f in grafana["files"].items() if path.endswith("datasources/energy.yaml")]
    assert [d["url"] for d in datasources["datasources"]] == ["http://energy-ctl-influxdb-amd_epyc:8086"]


def test_a_minion_lying_about_its_engine_changes_only_its_own_connections(conf):
    honest = build(conf, node_engine="E2")
    lying = build(conf, node_engine="E1")  # claims the database host's engine
    for minion, component in (("ctl", "formula"), ("ctl", "grafana"), ("ctl", "mongo"), ("ctl", "influxdb")):
        assert container(honest, minion, component)["run"] == container(lying, minion, component)["run"]
    assert container(honest, "node", "sensor")["files"] != container(lying, "node", "sensor")["files"]


def test_endpoint_and_same_engine():
    engines = {"a": "E1", "b": "E1", "c": "E2", "d": None, "e": None}
    assert hardening.same_engine(engines, "d", "d")  # one minion: one engine, fact or not
    assert hardening.same_engine(engines, "a", "b") and not hardening.same_engine(engines, "a", "c")
    assert not hardening.same_engine(engines, "d", "e")  # two unknowns are not the same engine
    assert hardening.endpoint(engines, "a", "b", "mongo", "energy-b-mongo", "10.0.0.2", 27018) == ("energy-b-mongo", 27017)
    assert hardening.endpoint(engines, "c", "b", "influxdb", "energy-b-influxdb", "10.0.0.2", 8087) == ("10.0.0.2", 8087)


@pytest.mark.parametrize("kernel, perfmon, image, tag, expected", [
    ("6.1.0-18-amd64", True, "energy-test/hwpc-sensor-sim", "x", "PERFMON"),
    ("5.8.0", True, "energy-test/hwpc-sensor-sim", "x", "PERFMON"),
    ("5.4.0-150-generic", True, "energy-test/hwpc-sensor-sim", "x", "SYS_ADMIN"),  # before CAP_PERFMON
    ("6.1.0", False, "energy-test/hwpc-sensor-sim", "x", "SYS_ADMIN"),  # the engine refuses the name
    ("6.1.0", None, "energy-test/hwpc-sensor-sim", "x", "SYS_ADMIN"),  # the engine did not answer
    ("", True, "energy-test/hwpc-sensor-sim", "x", "SYS_ADMIN"),  # kernel unknown
    ("6.1.0", True, "powerapi/hwpc-sensor", "1.3.0", "SYS_ADMIN"),  # its entrypoint demands CAP_SYS_ADMIN
    ("6.1.0", True, "powerapi/hwpc-sensor", "1.7.0", "PERFMON"),  # its binary carries cap_perfmon
    ("6.1.0", False, "powerapi/hwpc-sensor", "1.7.0", "PERFMON"),  # the only one it accepts (see below)
])
def test_the_sensor_gets_the_one_capability_perf_needs(conf, kernel, perfmon, image, tag, expected):
    conf["sensor"].update(image=image, tag=tag)
    assert hardening.sensor_capability(conf, {"kernel": kernel, "docker_perfmon": perfmon}) == expected


def test_every_container_is_confined(conf):
    conf["network"] = {"name": "energy-x"}
    conf["formula"]["limits"] = {"memory": "300m", "pids": 99}
    full_plan = build(conf, node_engine="E2")
    built = [c for host in full_plan["hosts"].values() for c in host["containers"]]
    assert sorted(c["component"] for c in built) == ["formula", "grafana", "influxdb", "mongo", "sensor"]
    for c in built:
        run = c["run"]
        assert run["network_mode"] == "energy-x" and "privileged" not in run, c["name"]
        assert run["security_opt"] == ["no-new-privileges"] and run["read_only"] is True
        assert "/tmp" in run["tmpfs"] and run["restart_policy"] == "unless-stopped"
        limits = conf[c["component"]]["limits"]
        assert run["mem_limit"] == run["memswap_limit"] == str(limits["memory"]) and run["pids_limit"] == limits["pids"]
    assert container(full_plan, "ctl", "formula")["run"]["mem_limit"] == "300m"
    sensor = container(full_plan, "node", "sensor")["run"]
    # the default image, hwpc-sensor 1.7.0, raises CAP_PERFMON alone at start
    assert sensor["cap_drop"] == ["ALL"] and sensor["cap_add"] == ["PERFMON"] and sensor["pid_mode"] == "host"
    assert not any(b.startswith("/sys:") for b in sensor["binds"])  # the container's own /sys, read-only
    assert "/sys/fs/cgroup/perf_event:/sys/fs/cgroup/perf_event:ro" in sensor["binds"]
    assert "port_bindings" not in container(full_plan, "ctl", "formula")["run"]  # SmartWatts publishes nothing
    assert container(full_plan, "ctl", "grafana")["run"]["port_bindings"] == ["10.0.0.9:3000:3000"]
    assert "/var/log/grafana" in container(full_plan, "ctl", "grafana")["run"]["tmpfs"]


def test_pillar_options_still_have_the_last_word(conf):
    conf["influxdb"]["options"] = {"stop_timeout": 30}  # an argument the formula does not own
    assert container(build(conf), "ctl", "influxdb")["run"]["stop_timeout"] == 30


def test_duplicate_networks_keep_the_oldest_and_spare_used_ones():
    found = [{"Id": "b", "Created": "2026-01-01T00:00:02Z", "Containers": {}},
             {"Id": "a", "Created": "2026-01-01T00:00:01Z", "Containers": {}},
             {"Id": "c", "Created": "2026-01-01T00:00:03Z", "Containers": {"x": {}}},
             {"Id": "d", "Created": "2026-01-01T00:00:03Z", "Containers": {}}]
    assert [n["Id"] for n in hardening.networks_to_remove(found)] == ["b", "d"]
    assert hardening.networks_to_remove(found[:1]) == []


@pytest.mark.parametrize("key, value, words", [
    ("network:name", "host", "one of Docker's"),
    ("network:name", "bad name", "a Docker network name"),
    ("sensor:limits:memory", "1k", "at least 6m"),
    ("mongo:limits:memory", "lots", "memory size"),
    ("grafana:limits:pids", 0, "16 or more"),
    ("formula:limits:pids", "256", "whole number"),
    ("influxdb:limits:swap", 1, "limits"),
])
def test_bad_hardening_keys_name_key_value_and_fix(conf, key, value, words):
    section = conf
    *path, last = key.split(":")
    for part in path:
        section = section[part]
    section[last] = value
    errors = schema.validate(conf)
    assert any(e.startswith(f"energy:{key}: ") and words in e for e in errors), errors


def test_sensor_grants_name_each_one(conf):
    conf["sensor"].update(image="energy-test/hwpc-sensor-sim", tag="x")
    grants = components.sensor_grants(conf, {"kernel": "5.4.0"})
    assert grants == {"user": "root", "cap_add": ["SYS_ADMIN"], "pid_mode": "host"}


@pytest.mark.parametrize("facts, bind", [
    ({"cgroup_version": 2}, "/sys/fs/cgroup:/sys/fs/cgroup:ro"),
    ({"cgroup_version": 1, "cgroup_perf_event": True}, "/sys/fs/cgroup/perf_event:/sys/fs/cgroup/perf_event:ro"),
    ({"cgroup_version": 1}, "/sys/fs/cgroup/perf_event:/sys/fs/cgroup/perf_event:ro"),  # not known: as hwpc-sensor
    ({"cgroup_version": 1, "cgroup_perf_event": False}, None),  # Docker would make the directory on the host
])
def test_the_sensor_reads_only_the_perf_event_cgroups_of_the_host(facts, bind):
    assert hardening.sensor_cgroup_bind(facts) == bind


def test_the_network_a_recreation_makes_sure_of():
    assert hardening.stack_network({"network_mode": "energy"}) == "energy"
    assert [hardening.stack_network({"network_mode": n})
            for n in ("host", "bridge", "none", "container:x", None)] == [None] * 5
    assert hardening.stack_network({}) is None


@pytest.mark.parametrize("kernel, perfmon, tag, words", [
    ("5.4.0-150-generic", True, "1.7.0", "predates CAP_PERFMON"),
    ("6.1.0", False, "1.7.0", "refuses the capability name CAP_PERFMON"),
    ("6.1.0", True, "1.7.0", None), ("6.1.0", None, "1.7.0", None), (None, None, "1.7.0", None),
    ("5.4.0", False, "1.3.0", None),  # 1.3.0 runs with CAP_SYS_ADMIN
])
def test_hwpc_sensor_1_7_where_it_cannot_have_cap_perfmon_is_a_plan_error(conf, kernel, perfmon, tag, words):
    conf["sensor"].update(image="powerapi/hwpc-sensor", tag=tag)
    problem = hardening.sensor_capability_problem(conf, {"kernel": kernel, "docker_perfmon": perfmon}, "node-3")
    if words is None:
        assert problem is None
    else:
        assert words in problem and "energy:sensor:tag" in problem and "node-3" in problem and "Fix:" in problem
