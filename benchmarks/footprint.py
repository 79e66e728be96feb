"""What the monitor costs on a machine it measures: CPU of a demo minion's salt-minion (every
process of it: the main process, its jobs, the docker_events engine) and of its sensor container,
averaged over a window, as a share of one core. Target: under 1 % of one core together, with
self-healing on.

Three windows, one after the other, on the running demo (`make demo` first):
  - as deployed: the light-check schedule (energy_heal.heal_check), the full-run schedule, the engine;
  - schedules off: the engine only (schedule.disable_job, enabled again after);
  - schedules and engine off: the engine's process is left out of the sum (it stays running).

    .venv/bin/python benchmarks/footprint.py [window seconds, default 600] [minion, default node-c] [deployed]

With `deployed`, only the first window (what the target is about) and the cost of one job of each
schedule.

Prints one line per window and a Markdown table for the README.
"""

import os
import pathlib
import sys
import time

import docker

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import demo  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SCHEDULES = ("energy-heal", "energy-heal-full")


def processes():
    """{pid: (ppid, cpu ticks of itself and its reaped children, command line)} of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
            cmdline = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # after the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based in stat
        found[int(entry)] = (int(fields[1]), sum(int(f) for f in fields[11:15]), cmdline.strip())
    return found


def tree(root, table):
    members, todo = set(), [root]
    while todo:
        pid = todo.pop()
        members.add(pid)
        todo += [p for p, (ppid, _t, _c) in table.items() if ppid == pid and p not in members]
    return members


def is_engine(cmdline):
    return "Engine" in cmdline or "docker_events" in cmdline


def minion_ticks(root, skip_engine):
    """CPU ticks of ``root``'s process tree (the engine's process left out with ``skip_engine``)."""
    table = processes()
    return {pid: table[pid][1] for pid in tree(root, table)
            if not (skip_engine and is_engine(table[pid][2]))}, table


def container_ns(name):
    stats = docker.from_env().containers.get(name).stats(stream=False)
    return stats["cpu_stats"]["cpu_usage"]["total_usage"]


def window(minion, seconds, skip_engine=False):
    pid = demo.running(demo.DEMO / minion / "minion.pid")
    if not pid:
        sys.exit(f"footprint: the demo's {minion} is not running (make demo first)")
    sensor = f"energy-{minion}-sensor"
    before, _ = minion_ticks(pid, skip_engine)
    sensor_before, started = container_ns(sensor), time.monotonic()
    time.sleep(seconds)
    after, table = minion_ticks(pid, skip_engine)
    sensor_after, elapsed = container_ns(sensor), time.monotonic() - started
    # a process that ended was reaped by one of the tree's: its time is in that one's cutime
    minion_s = sum(after.values()) - sum(v for p, v in before.items() if p in after)
    minion_share = 100.0 * minion_s / TICK / elapsed
    sensor_share = 100.0 * (sensor_after - sensor_before) / 1e9 / elapsed
    engines = [p for p in tree(pid, table) if is_engine(table[p][2])]
    return {"minion": minion_share, "sensor": sensor_share, "total": minion_share + sensor_share,
            "seconds": elapsed, "engine_processes": len(engines)}


def one_run(minion, *command):
    """CPU seconds the minion's process tree spends on one job (``command`` run from the master)."""
    pid = demo.running(demo.DEMO / minion / "minion.pid")
    before, _ = minion_ticks(pid, False)
    demo.salt_json("salt", "-t", "300", minion, *command)
    time.sleep(2)  # the job's process is reaped
    after, _ = minion_ticks(pid, False)
    return (sum(after.values()) - sum(v for p, v in before.items() if p in after)) / TICK


def schedules(minion, enabled):
    for job in SCHEDULES:
        demo.salt_json("salt", minion, "schedule.enable_job" if enabled else "schedule.disable_job", job)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
    minion = sys.argv[2] if len(sys.argv) > 2 else "node-c"
    only_deployed = len(sys.argv) > 3 and sys.argv[3] == "deployed"
    cores = os.cpu_count()
    listed = demo.salt_json("salt", minion, "schedule.list", "return_yaml=False").get(minion) or {}
    print(f"footprint of {minion} on {cores} cores, {seconds:.0f} s per window; schedules: "
          + ", ".join(f"{name} -> {job.get('function')} every {job.get('seconds')} s"
                      for name, job in sorted(listed.items()) if name in SCHEDULES), flush=True)
    rows = []
    try:
        result = window(minion, seconds)
        rows.append(("as deployed (light check every 60 s, full run every 2 h, engine)", result))
        print(f"  as deployed: {result}", flush=True)
        if not only_deployed:
            schedules(minion, False)
            result = window(minion, seconds)
            rows.append(("schedules off (engine only)", result))
            print(f"  schedules off: {result}", flush=True)
            result = window(minion, seconds, skip_engine=True)
            rows.append(("schedules and engine off (engine process left out)", result))
            print(f"  schedules and engine off: {result}", flush=True)
        light = one_run(minion, "energy_heal.heal_check")
        full = one_run(minion, "state.apply", "energy,energy.heal")
        period = {name: float(job.get("seconds") or 0) for name, job in listed.items()}
        print(f"  one light check: {light:.2f} CPU-s (every {period.get('energy-heal', 0):.0f} s); one full state run: "
              f"{full:.2f} CPU-s (every {period.get('energy-heal-full', 0):.0f} s: "
              f"{100 * full / max(period.get('energy-heal-full', 0), 1):.3f} % of a core on average)", flush=True)
    finally:
        schedules(minion, True)
    print(f"\n| {minion}, {seconds:.0f} s each | salt-minion | sensor container | together |")
    print("|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['minion']:.2f} % | {r['sensor']:.2f} % | {r['total']:.2f} % |")


if __name__ == "__main__":
    main()
