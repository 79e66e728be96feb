"""Do the database volumes grow as energy.sizing says? On the demo cluster (`make demo` first,
and let it run 10 minutes).

- InfluxDB: the demo's real SmartWatts output of the last 10 minutes, replayed into a fresh real
  InfluxDB (container energy-bench-sizing, port 8902, told to write its cache to TSM files after
  5 s) until it holds N and then 2N points; its volume size at both, against the estimate
  FIXED_INFLUXDB_BYTES + points x BYTES_PER_POINT. The marginal bytes per point and the fixed
  part come from the two sizes.
- MongoDB: one CPU name's formula on the demo stopped (in maintenance, as during an outage) for
  WINDOW seconds: the reports that pile up and the volume bytes they take, against the estimate
  (its reports per second times BYTES_PER_REPORT). The formula is started again at the end.

Target: each estimate within 25 % of the measured size. The constants in energy_core.sizing come
from this benchmark (README: Sizing).

    .venv/bin/python benchmarks/sizing.py [WINDOW] [COPIES]
"""

import os
import pathlib
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import docker
import pymongo

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "_utils")]

import demo  # noqa: E402
from energy_core import sizing  # noqa: E402
from tests.power import influx  # noqa: E402

CLIENT = docker.from_env()
BENCH_PORT = 8902


def volume_bytes(volume):
    mountpoint = CLIENT.volumes.get(volume).attrs["Mountpoint"]
    out = subprocess.run(["du", "-sb", mountpoint], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def within(predicted, measured):
    ratio = predicted / max(measured, 1)
    return f"{ratio:.2f}x ({'within' if abs(ratio - 1) <= 0.25 else 'NOT within'} 25 %)"


def influxdb_part(group, copies):
    rows = influx(group["influxdb_url"], group["influxdb_database"],
                  "SELECT * FROM power_consumption WHERE time > now() - 10m")
    if not rows:
        sys.exit("sizing: no SmartWatts output in the last 10 minutes; is the demo running?")
    columns = rows[0]["columns"]
    base = [dict(zip(columns, v)) for v in rows[0]["values"]]
    span = base[-1]["time"] - base[0]["time"] + 1000
    images = __import__("json").loads((ROOT / ".cache" / "images.json").read_text())
    try:
        CLIENT.containers.get("energy-bench-sizing").remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    bench = CLIENT.containers.run(images["influxdb"], name="energy-bench-sizing", detach=True,
                                  ports={"8086/tcp": ("127.0.0.1", BENCH_PORT)},
                                  environment={"INFLUXDB_DATA_CACHE_SNAPSHOT_WRITE_COLD_DURATION": "5s",
                                               "INFLUXDB_DATA_COMPACT_FULL_WRITE_COLD_DURATION": "15s"})
    url = f"http://127.0.0.1:{BENCH_PORT}"
    try:
        for _ in range(120):
            try:
                influx(url, "", "SHOW DATABASES")
                break
            except OSError:
                time.sleep(0.5)
        urllib.request.urlopen(urllib.request.Request(
            f"{url}/query", data=urllib.parse.urlencode({"q": 'CREATE DATABASE "bench"'}).encode()))
        start = int(time.time() * 1000) - 3 * 86400 * 1000
        written, sizes = 0, []
        tags = [c for c in columns if c not in ("time", "power")]
        for k in range(2 * copies):
            lines = [f"power_consumption,{','.join(f'{t}={p[t]}' for t in tags if p.get(t) is not None)} "
                     f"power={p['power']} {start + p['time'] - base[0]['time'] + k * span}" for p in base]
            urllib.request.urlopen(urllib.request.Request(f"{url}/write?db=bench&precision=ms",
                                                          data="\n".join(lines).encode()))
            written += len(lines)
            if k + 1 in (copies, 2 * copies):
                time.sleep(60)  # the cache written to TSM files
                bench.reload()
                sizes.append((written, volume_bytes(bench.attrs["Mounts"][0]["Name"])))
    finally:
        bench.remove(force=True, v=True)
    (n1, b1), (n2, b2) = sizes
    marginal = (b2 - b1) / (n2 - n1)
    print(f"InfluxDB (real SmartWatts output replayed, {len(base)} points of 10 minutes x {copies} and x {2 * copies}):")
    print(f"  measured {b1} bytes at {n1} points, {b2} at {n2}: {marginal:.1f} bytes/point, "
          f"{b1 - n1 * marginal:.0f} bytes to start with")
    for n, b in sizes:
        predicted = sizing.FIXED_INFLUXDB_BYTES + n * sizing.BYTES_PER_POINT
        print(f"  estimate at {n} points: {predicted:.0f} bytes, measured {b}: {within(predicted, b)}")


def mongo_part(plan, conf, group, window):
    volume = next(s["volume"] for s in plan["stores"] if s["component"] == "mongo" and group["cpu"] in s["cpus"])
    formula = next(c for c in CLIENT.containers.list(filters={"label": ["energy.component=formula"]})
                   if c.labels.get("energy.cpu") == group["cpu"] and c.labels.get("energy.minion") in demo.MINIONS)
    minion = formula.labels["energy.minion"]
    demo.salt("salt", minion, "energy_heal.maintenance", "on", formula.name, "reason=sizing benchmark", "hours=1",
              capture=True)
    password = demo.MONGO_PASSWORDS["admin_password"]
    client = pymongo.MongoClient(f"mongodb://energy-admin:{password}@{group['mongo_address']}:{group['mongo_port']}"
                                 "/?authSource=admin", serverSelectionTimeoutMS=5000)
    reports = client[group["database"]][group["collection"]]
    try:
        formula.stop(timeout=5)
        before = (reports.count_documents({}), volume_bytes(volume), time.time())
        time.sleep(window)
        after = (reports.count_documents({}), volume_bytes(volume), time.time())
    finally:
        formula.start()
        demo.salt("salt", minion, "energy_heal.maintenance", "off", formula.name, capture=True)
    added, grown, seconds = after[0] - before[0], after[1] - before[1], after[2] - before[2]
    per_second = len(group["sensors"]) * sizing.reports_per_second(conf)
    predicted = per_second * seconds * sizing.BYTES_PER_REPORT
    print(f"MongoDB {volume} (its formula stopped {seconds:.0f} s): {added} reports ({added / seconds:.1f}/s, "
          f"estimated {per_second:.1f}/s), {grown} bytes: {grown / max(added, 1):.0f} bytes/report")
    print(f"  estimate {predicted:.0f} bytes, measured {grown}: {within(predicted, grown)}")


def main():
    window = float(sys.argv[1]) if len(sys.argv) > 1 else 120
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    plan = demo.salt_json("salt", "--static", "ctl", "energy.plan").get("ctl")
    conf = demo.salt_json("salt", "--static", "ctl", "energy.config").get("ctl")
    if not plan or not conf:
        sys.exit("sizing: no plan from ctl; is the demo up (make demo)?")
    group = plan["groups"][0]
    print(f"machine: {os.cpu_count()} cores; CPU name {group['cpu']!r}: {len(group['sensors'])} machine(s) with "
          f"{conf['experiment']['containers']} containers (the demo's pillar: every sensor sees the host's), every {conf['sensor']['frequency_ms']} ms")
    influxdb_part(group, copies)
    mongo_part(plan, conf, group, window)


if __name__ == "__main__":
    main()
