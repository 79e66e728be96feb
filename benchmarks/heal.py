"""How fast does the stack heal itself, and what is lost? On the demo cluster (`make demo` first,
which loads the reactor and the minions' docker_events engines):

  - by reactor: kill a formula container, remove (`docker rm -f`) an InfluxDB container, several
    times each; seconds until it is healthy again (a new container running; the InfluxDB answering
    /ping);
  - by schedule: the same with the reactor off (salt-master restarted without the reaction), so
    only the minions' heal schedule (`energy:heal:schedule`) brings them back;
  - points lost: the InfluxDB points older than the removal, counted before and after.

Targets: under 10 s by reactor, under one schedule period + 10 s by schedule, 0 points lost.

    .venv/bin/python benchmarks/heal.py [reactor_runs] [schedule_runs]
"""

import datetime
import pathlib
import statistics
import sys
import time
import urllib.request

import docker

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import demo  # noqa: E402
from tests.power import influx  # noqa: E402

CLIENT = docker.from_env()


def reactor(enabled=True, restart=False):
    return demo.salt_json("salt-run", "energy.reactor", f"enabled={enabled}", f"restart={restart}")


def switch_reactor(enabled, timeout=180):
    """Have salt-master load (or drop) the formula's reaction: the runner restarts it once it has
    returned (the demo master is a daemon); wait until the restarted master says so."""
    if reactor(enabled).get("loaded") is enabled:
        return
    reactor(enabled, restart=True)
    deadline = time.time() + timeout
    time.sleep(5)
    while time.time() < deadline:
        if reactor(enabled).get("loaded") is enabled and demo.minions_return("test.ping")[1]:
            return
        time.sleep(3)
    sys.exit(f"heal: salt-master did not {'load' if enabled else 'drop'} the reaction in {timeout} s")


def container(component, cpu):
    # by name as well as labels: while docker_container.running replaces a container, its new one
    # exists under a temporary name next to the old one
    (found,) = [c for c in CLIENT.containers.list(all=True, filters={"label": [
        f"energy.component={component}", "energy.minion=ctl", f"energy.cpu={cpu}"]})
                if c.name.startswith(f"energy-ctl-{component}-")]
    return found


def answers(url):
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as resp:
            return resp.status == 204
    except OSError:
        return False


def healthy_again(name, since, url=None, timeout=300):
    """Seconds from ``since`` until container ``name`` runs again (a start after ``since``) and,
    for an InfluxDB, answers /ping; None after ``timeout``."""
    while time.time() < since + timeout:
        for found in CLIENT.containers.list(filters={"name": f"^{name}$", "status": "running"}):
            started = datetime.datetime.fromisoformat(found.attrs["State"]["StartedAt"][:26].rstrip("Z") + "+00:00")
            if started.timestamp() > since and (url is None or answers(url)):
                return time.time() - since
        time.sleep(0.2)
    return None


def count_before(info, ms):
    series = influx(info["influxdb_url"], info["influxdb_database"],
                    f"SELECT count(power) FROM power_consumption WHERE time < {ms}ms")
    return series[0]["values"][0][1] if series else 0


def break_and_time(component, cpu, info):
    """Kill (formula) or remove (InfluxDB) ctl's container for ``cpu``; seconds to healthy, points lost."""
    victim = container(component, cpu)
    name, lost = victim.name, None
    if component == "influxdb":
        cut = int(time.time() * 1000) - 2000
        before = count_before(info, cut)
        start = time.time()
        victim.remove(force=True)
    else:
        start = time.time()
        victim.kill()
    seconds = healthy_again(name, start, info["influxdb_url"] if component == "influxdb" else None)
    if component == "influxdb" and seconds is not None:
        lost = before - count_before(info, cut)
    return seconds, lost


def run(mode, runs, components, pause):
    results = {}
    cpu, info = next((c, i) for c, i in sorted(summary()["cpus"].items()) if i["influxdb"] == "ctl")
    for component in components:
        for i in range(runs):
            seconds, lost = break_and_time(component, cpu, info)
            results.setdefault(component, []).append((seconds, lost))
            shown = f"{seconds:.1f} s" if seconds is not None else "not back in 300 s"
            print(f"  {mode:8} {component:8} run {i + 1}: healthy after {shown}"
                  + (f", {lost} points lost" if lost is not None else ""), flush=True)
            time.sleep(pause)  # the recreated container's jobs end; SmartWatts writes again
    return results


def summary():
    return demo.salt_json("salt", "--static", "ctl", "energy.summary")["ctl"]


def report(mode, results, target):
    for component, rows in results.items():
        times = [s for s, _ in rows if s is not None]
        lost = [n for _, n in rows if n is not None]
        median = statistics.median(times) if times else None
        verdict = "met" if median is not None and median < target and len(times) == len(rows) else "MISSED"
        shown = f"median {median:.1f} s, max {max(times):.1f} s" if times else "never back"
        print(f"{mode:8} {component:8} {shown} over {len(times)}/{len(rows)} runs, target < {target:.0f} s: "
              f"{verdict}" + (f"; points lost {sum(lost)}" if lost else ""))


def main():
    reactor_runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    schedule_runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    pillar = demo.salt_json("salt", "--static", "ctl", "pillar.get", "energy:heal")["ctl"]
    schedule = pillar.get("schedule") or {}
    period, splay = schedule.get("seconds", 60), schedule.get("splay", 10)
    switch_reactor(True)
    print("by reactor (docker_events engine -> master reactor -> energy_heal.react):", flush=True)
    by_reactor = run("reactor", reactor_runs, ["formula", "influxdb"], pause=20)
    switch_reactor(False)
    try:
        print(f"by schedule (reactor off; schedule every {period} s, splay {splay} s):", flush=True)
        by_schedule = run("schedule", schedule_runs, ["formula", "influxdb"], pause=5)
    finally:
        switch_reactor(True)
    print()
    report("reactor", by_reactor, 10)
    report("schedule", by_schedule, period + 10)


if __name__ == "__main__":
    main()
