"""Power per container flows for real: stand-in sensor -> MongoDB (stand-in) -> real SmartWatts ->
real InfluxDB -> Grafana provisioning, for every CPU name, right after the first orchestrate run.

(This file sorts before test_orch.py on purpose: it needs the first deployment untouched.)
"""

import base64
import datetime
import json
import statistics
import time
import urllib.parse
import urllib.request

import pymongo
import pytest

from tests.integration.conftest import GRAFANA_PASSWORD, MINIONS, SENSOR_PERIOD_MS, simulated_containers


def influx(url, database, query):
    params = urllib.parse.urlencode({"db": database, "q": query, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=10) as resp:
        result = json.load(resp)["results"][0]
    assert "error" not in result, (query, result)
    return result.get("series", [])


@pytest.fixture(scope="module")
def plan(deployed, salt_cli):
    ret = salt_cli.run("energy.plan", minion_tgt="test-ctl")
    assert ret.returncode == 0, ret.stdout
    return ret.data


def test_every_simulated_container_has_power_within_60_s(deployment, plan):
    deadline = deployment["returned_at"] + 60
    for cpu, info in plan["cpus"].items():
        expected = {(minion, target) for minion in info["sensors"] for target in simulated_containers(minion)}
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


def fidelity(plan, start, end):
    """Per sensor: SmartWatts' container sum vs the stand-in's package power, and each container's share."""
    results = {}
    for info in plan["cpus"].values():
        truth_db = pymongo.MongoClient(info["mongo_uri"], serverSelectionTimeoutMS=5000)[info["database"]]
        window = f"time >= {int(start * 1000)}ms AND time <= {int(end * 1000)}ms"
        series = influx(info["influxdb_url"], info["influxdb_database"],
                        "SELECT mean(power) FROM power_consumption WHERE scope = 'cpu' AND target != 'rapl' "
                        f"AND target != 'global' AND {window} GROUP BY sensor, target")
        for sensor in info["sensors"]:
            watts = {s["tags"]["target"]: s["values"][0][1] for s in series if s["tags"]["sensor"] == sensor}
            docs = list(truth_db[f"{info['collection']}_truth"].find({"sensor": sensor, "timestamp": {
                "$gte": datetime.datetime.fromtimestamp(start, datetime.timezone.utc),
                "$lte": datetime.datetime.fromtimestamp(end, datetime.timezone.utc)}}))
            assert docs, f"no ground truth for {sensor}"
            package = statistics.mean(d["package_w"] for d in docs)
            total = sum(watts.values())
            shares = {t: statistics.mean(d["shares"][t] for d in docs) for t in docs[0]["shares"]}
            results[sensor] = {
                "package_w": package, "containers_w": total, "total_error": abs(total - package) / package,
                "split_error": max(abs(watts.get(t, 0) / total - share) / share for t, share in shares.items()),
            }
    return results


def test_containers_sum_to_the_package_power_and_split_right(deployment, plan):
    # skip SmartWatts' warm-up (about 70 reports until its history fills), then average one minute
    start = deployment["returned_at"] + 70 * SENSOR_PERIOD_MS / 1000
    end = start + 60
    time.sleep(max(0.0, end + 2 - time.time()))
    results = fidelity(plan, start, end)
    assert set(results) == set(MINIONS)
    for sensor, r in results.items():
        assert r["total_error"] < 0.10, (sensor, r)
        assert r["split_error"] < 0.10, (sensor, r)


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
    assert {s["name"]: (s["url"], s["jsonData"]["dbName"]) for s in sources} == {
        f"energy {cpu}": (info["influxdb_url"], info["influxdb_database"]) for cpu, info in plan["cpus"].items()}


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
