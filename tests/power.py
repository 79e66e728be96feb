"""Reading power back: InfluxDB queries and the fidelity of SmartWatts' output against the
stand-in sensor's ground truth. Shared by the end-to-end tests and benchmarks/fidelity.py."""

import datetime
import json
import statistics
import urllib.parse
import urllib.request

import pymongo


def influx(url, database, query):
    params = urllib.parse.urlencode({"db": database, "q": query, "epoch": "ms"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=10) as resp:
        result = json.load(resp)["results"][0]
    if "error" in result:
        raise RuntimeError(f"{query}: {result['error']}")
    return result.get("series", [])


def fidelity(plan, start, end, admin_password=None):
    """Per sensor, over [start, end] (epoch seconds): SmartWatts' sum over containers vs the package
    power the stand-in generated (total_error), and the worst relative error of a container's share
    of that sum vs its true share of the busy cycles (split_error), over the targets whose true share
    is 5 % or more (checked); the true mean shares of every target (shares). The ground truth is read as
    MongoDB's root user (``admin_password``) when authentication is on."""
    results = {}
    for info in plan["cpus"].values():
        uri = info["mongo_uri"]
        if admin_password:
            uri = (f"mongodb://energy-admin:{urllib.parse.quote(admin_password, safe='')}@"
                   f"{info['mongo_address']}:{info['mongo_port']}/?authSource=admin")
        truth_db = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)[info["database"]]
        window = f"time >= {int(start * 1000)}ms AND time <= {int(end * 1000)}ms"
        # a container present part of the window counts for its ticks only: its power summed over
        # the window, divided by the window's ticks (those of the model's `global`)
        series = influx(info["influxdb_url"], info["influxdb_database"],
                        "SELECT sum(power) FROM power_consumption WHERE scope = 'cpu' AND target != 'rapl' "
                        f"AND target != 'global' AND {window} GROUP BY sensor, target")
        ticks = {s["tags"]["sensor"]: s["values"][0][1] for s in influx(
            info["influxdb_url"], info["influxdb_database"],
            f"SELECT count(power) FROM power_consumption WHERE scope = 'cpu' AND target = 'global' AND {window} "
            "GROUP BY sensor")}
        for sensor in info["sensors"]:
            watts = {s["tags"]["target"]: s["values"][0][1] / ticks[sensor] for s in series
                     if s["tags"]["sensor"] == sensor and ticks.get(sensor)}
            docs = list(truth_db[f"{info['collection']}_truth"].find({"sensor": sensor, "timestamp": {
                "$gte": datetime.datetime.fromtimestamp(start, datetime.timezone.utc),
                "$lte": datetime.datetime.fromtimestamp(end, datetime.timezone.utc)}}))
            if not docs or not watts:
                results[sensor] = None
                continue
            package = statistics.mean(d["package_w"] for d in docs)
            total = sum(watts.values())
            # a target absent from a tick (a container stopped, not yet found) had no share of it
            targets = set().union(*(d["shares"] for d in docs))
            shares = {t: statistics.mean(d["shares"].get(t, 0.0) for d in docs) for t in targets}
            # the split is judged on the targets with a share of at least 5 %: a relative error on a
            # container idling at 1 % of the power says more about noise than about the model
            checked = {t for t, share in shares.items() if share >= 0.05}
            results[sensor] = {
                "cpu": info["slug"], "package_w": package, "containers_w": total, "shares": shares,
                "checked": checked, "total_error": abs(total - package) / package,
                "split_error": max((abs(watts.get(t, 0) / total - shares[t]) / shares[t] for t in checked), default=1.0),
            }
    return results


def model_totals(plan, since, until):
    """``{sensor: {tick time in ms: watts}}``: SmartWatts' ``global`` package estimate per tick."""
    found = {}
    for info in plan["cpus"].values():
        for series in influx(info["influxdb_url"], info["influxdb_database"],
                             "SELECT \"power\" FROM power_consumption WHERE target = 'global' AND scope = 'cpu' AND "
                             f"time >= {int(since * 1000)}ms AND time < {int(until * 1000)}ms GROUP BY sensor"):
            found.setdefault(series["tags"]["sensor"], {}).update({t: w for t, w in series["values"]})
    return found


def truth_joules(plan, since, until, period_s, admin_password=None, totals=None):
    """The stand-in sensors' ground truth over ``[since, until)`` (epoch seconds): ``{sensor:
    {target: {"cpu": J, "dram": J, "seconds": s}}}`` (``seconds``: the ticks the stand-in saw the
    target in, times the period), the sum over its ticks of each target's true watts times
    the period (``watts``/``dram_watts`` of a truth document, or the package and DRAM power times
    the target's share where the stand-in writes only shares). With ``totals`` (``model_totals``),
    the package power of each tick is the model's estimate: what is left is the error of the split."""
    found = {}
    for info in plan["cpus"].values():
        uri = info["mongo_uri"]
        if admin_password:
            uri = (f"mongodb://energy-admin:{urllib.parse.quote(admin_password, safe='')}@"
                   f"{info['mongo_address']}:{info['mongo_port']}/?authSource=admin")
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            docs = client[info["database"]][f"{info['collection']}_truth"].find({
                "sensor": {"$in": info["sensors"]},
                "timestamp": {"$gte": datetime.datetime.fromtimestamp(since, datetime.timezone.utc),
                              "$lt": datetime.datetime.fromtimestamp(until, datetime.timezone.utc)}})
            for doc in docs:
                sensor = found.setdefault(doc["sensor"], {})
                watts = doc.get("watts") or {t: doc["package_w"] * s for t, s in doc["shares"].items()}
                if totals is not None:
                    stamp = int(doc["timestamp"].replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
                    model = totals.get(doc["sensor"], {}).get(stamp)
                    watts = {t: (model or 0.0) * s for t, s in doc["shares"].items()}
                dram = doc.get("dram_watts") or {t: doc["dram_w"] * s for t, s in doc["shares"].items()}
                for target, w in watts.items():
                    entry = sensor.setdefault(target, {"cpu": 0.0, "dram": 0.0, "seconds": 0.0})
                    entry["seconds"] += period_s
                    entry["cpu"] += w * period_s
                    entry["dram"] += dram.get(target, 0.0) * period_s
    return found
