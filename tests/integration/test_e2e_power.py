"""Power per container flows for real: stand-in sensor -> MongoDB (stand-in) -> real SmartWatts ->
real InfluxDB -> Grafana provisioning, for every CPU name, right after the first orchestrate run.
The measured containers are real ones (``workloads``): each sensor finds them in the host's cgroups.

(This file sorts before test_orch.py on purpose: it needs the first deployment untouched.)
"""

import base64
import json
import time
import urllib.parse
import urllib.request


from tests.integration.conftest import GRAFANA_PASSWORD, MINIONS, MONGO_PASSWORDS, SENSOR_PERIOD_MS
from tests.power import fidelity, influx


def test_every_workload_container_has_power_on_every_sensor_within_60_s(deployment, plan, workloads):
    deadline = time.time() + 60
    for cpu, info in plan["cpus"].items():
        expected = {(minion, target) for minion in info["sensors"] for target in workloads}
        while True:
            series = influx(info["influxdb_url"], info["influxdb_database"],
                            "SELECT count(power) FROM power_consumption WHERE scope = 'cpu' GROUP BY sensor, target")
            found = {(s["tags"]["sensor"], s["tags"]["target"]) for s in series}
            if expected <= found or time.time() > deadline:
                break
            time.sleep(2)
        assert expected <= found, f"{cpu}: missing {sorted(expected - found)} 60 s after the orchestrate run"


def test_no_point_lands_in_another_cpu_database(deployment, plan):
    for cpu, info in plan["cpus"].items():
        series = influx(info["influxdb_url"], info["influxdb_database"],
                        'SHOW TAG VALUES FROM power_consumption WITH KEY = "sensor"')
        sensors = {value for s in series for _key, value in s["values"]}
        assert sensors == set(info["sensors"]), cpu


def test_database_has_the_pillar_retention(deployment, plan):
    for info in plan["cpus"].values():
        (series,) = influx(info["influxdb_url"], info["influxdb_database"],
                           f'SHOW RETENTION POLICIES ON "{info["influxdb_database"]}"')
        policies = [dict(zip(series["columns"], row)) for row in series["values"]]
        assert [p["duration"] for p in policies if p["default"]] == ["168h0m0s"]  # 7d from pillar


def test_containers_sum_to_the_package_power_and_split_right(deployment, plan, workloads):
    # skip SmartWatts' warm-up (about 70 reports until its history fills), also the one after the
    # workloads started (the package power jumped: the model refits), then average one minute
    warm_up = 70 * SENSOR_PERIOD_MS / 1000
    start = max(deployment["returned_at"] + warm_up, workloads.started_at + warm_up + 10, time.time())
    end = start + 60
    time.sleep(max(0.0, end + 2 - time.time()))
    results = fidelity(plan, start, end, MONGO_PASSWORDS["admin_password"])
    assert set(results) == set(MINIONS)
    for sensor, r in results.items():
        assert r is not None, f"no power or no ground truth for {sensor}"
        assert r["total_error"] < 0.10, (sensor, r)
        assert r["split_error"] < 0.10, (sensor, r)
        # the workloads' labels set their loads: their true shares are in the proportion of the labels
        heavy, light = sorted(workloads, key=workloads.get, reverse=True)
        assert set(workloads) <= set(r["shares"]), (sensor, r)
        ratio = r["shares"][heavy] / r["shares"][light]
        assert abs(ratio - workloads[heavy] / workloads[light]) < 0.1, (sensor, r)
        assert r["checked"] >= set(workloads), (sensor, r)  # the split was checked on them


def grafana(url, path, password=GRAFANA_PASSWORD):
    request = urllib.request.Request(url + path)
    if password is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"admin:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, None


def dashboard_queries(dashboard):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["query"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]


def grafana_substitute(query):
    """What Grafana does to the dashboard's queries with 'All' minions over the last 5 minutes."""
    return (query.replace("$timeFilter", "time > now() - 5m").replace("$__interval", "5s")
            .replace("/^$sensor$/", "/^.*$/"))


def test_grafana_is_provisioned_with_one_datasource_per_cpu_on_the_planned_influxdb(deployment, plan):
    (container,) = [c for c in plan["hosts"]["test-ctl"]["containers"] if c["component"] == "grafana"]
    url = container["url"]
    assert grafana(url, "/api/health", None)[0] == 200
    assert grafana(url, "/api/datasources", None)[0] == 401
    assert grafana(url, "/api/datasources", "admin")[0] == 401  # the pillar password, never admin
    status, sources = grafana(url, "/api/datasources")
    assert status == 200
    # every test minion runs on the one engine: Grafana reaches each InfluxDB by container name on
    # the stack's network (its inside port), not by the published address
    assert {s["name"]: (s["url"], s["jsonData"]["dbName"]) for s in sources} == {
        f"energy {cpu}": (f"http://{info['influxdb_container']}:8086", info["influxdb_database"])
        for cpu, info in plan["cpus"].items()}


def test_every_dashboard_query_returns_rows_through_every_datasource(deployment, plan):
    (container,) = [c for c in plan["hosts"]["test-ctl"]["containers"] if c["component"] == "grafana"]
    status, body = grafana(container["url"], "/api/dashboards/uid/energy-power")
    assert status == 200
    queries = list(dashboard_queries(body["dashboard"]))
    assert len(queries) >= 5
    _, sources = grafana(container["url"], "/api/datasources")
    for source in sources:
        for title, query in queries:
            path = f"/api/datasources/proxy/uid/{source['uid']}/query?" + urllib.parse.urlencode(
                {"q": grafana_substitute(query), "epoch": "ms"})
            status, result = grafana(container["url"], path)
            assert status == 200, (source["name"], title)
            rows = [row for s in result["results"][0].get("series", []) for row in s["values"]]
            assert rows, f"{source['name']}: '{title}' returned no rows"


def test_hostname_to_influx_and_the_example_app_that_prints_its_own_power(deployment, plan, salt_cli,
                                                                          docker_engine):
    ret = salt_cli.run("energy.hostname_to_influx", minion_tgt="test-node-b")
    assert ret.returncode == 0, ret.stdout
    amd = plan["cpus"]["AMD EPYC 7452 32-Core Processor"]
    assert ret.data["test-node-b"] == {"url": amd["influxdb_url"], "database": amd["influxdb_database"],
                                       "cpu": "AMD EPYC 7452 32-Core Processor",
                                       "measurement": "power_consumption", "sensor": "test-node-b"}
    assert set(ret.data) == set(MINIONS)
    try:
        ret = salt_cli.run("state.apply", "examples.energy_app", minion_tgt="test-node-b")
        assert ret.returncode == 0, ret.stdout
        app = docker_engine.containers.get("example-test-node-b")
        assert app.attrs["Config"]["Env"].count(f"MONITORING_ENERGY={amd['influxdb_url']}") == 1
        deadline, logs = time.time() + 30, ""
        while time.time() < deadline:
            logs = app.logs().decode()
            watts = [float(line.split(": ")[1].split()[0]) for line in logs.splitlines() if line.endswith(" W")]
            if watts:
                break
            time.sleep(2)
        assert watts and watts[-1] > 0, logs
    finally:
        for container in docker_engine.containers.list(all=True, filters={"label": "energy.example"}, ignore_removed=True):
            container.remove(force=True)


def test_the_comparison_dashboard_puts_every_cpu_side_by_side_through_its_own_datasource(deployment, plan):
    (container,) = [c for c in plan["hosts"]["test-ctl"]["containers"] if c["component"] == "grafana"]
    status, body = grafana(container["url"], "/api/dashboards/uid/energy-compare")
    assert status == 200
    panels = body["dashboard"]["panels"]
    header = panels[0]["options"]["content"]
    # the test pillar keeps mode best: the header says the configurations differ, and how
    assert header.startswith("**The configurations differ**")
    assert "- AMD EPYC 7452 32-Core Processor: cycles, instructions, uops; DRAM not measured" in header
    for panel in panels[1:]:
        assert len(panel["targets"]) == len(plan["cpus"])
        for target in panel["targets"]:
            path = f"/api/datasources/proxy/uid/{target['datasource']['uid']}/query?" + urllib.parse.urlencode(
                {"q": grafana_substitute(target["query"]), "epoch": "ms"})
            status, result = grafana(container["url"], path)
            assert status == 200, (panel["title"], target["alias"])
            rows = [row for s in result["results"][0].get("series", []) for row in s["values"]]
            assert rows, f"'{panel['title']}' returned no rows for {target['alias']}"
