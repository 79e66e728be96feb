"""How fast does power show up? On the demo cluster (`make demo` first): removes the stack
(energy.clean_orch, volumes kept), runs `salt-run state.orchestrate energy.orch`, then measures
  - seconds from the orchestrate run's return (and from its start) to the first per-container
    point, per CPU name;
  - in steady state, the delay from a sensor report's timestamp to its point being in InfluxDB
    (median of samples every 2 s over 30 s).

    .venv/bin/python benchmarks/latency.py
"""

import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import demo  # noqa: E402
from tests.power import influx  # noqa: E402

CONTAINERS = "scope = 'cpu' AND target != 'rapl' AND target != 'global'"


def newest_ms(info, since_ms=0):
    series = influx(info["influxdb_url"], info["influxdb_database"],
                    f"SELECT last(power) FROM power_consumption WHERE {CONTAINERS} AND time > {since_ms}ms")
    return series[0]["values"][0][0] if series else None


def main():
    # asked before the orch: right after it, the minions restart to load the docker_events engine
    plan = json.loads(demo.salt("salt", "--out=json", "--static", "ctl", "energy.plan", capture=True).stdout)["ctl"]
    demo.salt("salt-run", "state.orchestrate", "energy.clean_orch", "--out=quiet", capture=True)
    started = time.time()
    ret = demo.salt("salt-run", "state.orchestrate", "energy.orch", "--out=quiet", check=False, capture=True)
    if ret.returncode:
        sys.exit("latency: the orchestrate run failed; is the demo up (make demo)?")
    returned = time.time()
    print(f"orchestrate run: {returned - started:.1f} s")
    first = {}
    while len(first) < len(plan["cpus"]) and time.time() - returned < 180:
        for cpu, info in plan["cpus"].items():
            # points newer than the run: reports left in a kept MongoDB volume carry older timestamps
            if cpu not in first and newest_ms(info, int(started * 1000)) is not None:
                first[cpu] = time.time() - returned
        time.sleep(0.5)
    for cpu in sorted(plan["cpus"]):
        value = (f"{first[cpu]:.1f} s ({returned - started + first[cpu]:.1f} s after it started)" if cpu in first
                 else "none within 180 s")
        print(f"first per-container point after the orchestrate return, {cpu}: {value}")
    delays = []
    for _ in range(15):
        for info in plan["cpus"].values():
            newest = newest_ms(info)
            if newest:
                delays.append(time.time() - newest / 1000)
        time.sleep(2)
    print(f"steady state, report timestamp -> in InfluxDB: median {statistics.median(delays):.1f} s, "
          f"max {max(delays):.1f} s over {len(delays)} samples")


if __name__ == "__main__":
    main()
