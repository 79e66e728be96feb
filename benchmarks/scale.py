"""How the orch grows with the fleet, on one machine: the demo with 4, 8, 16, 24 and 48 minions
(the extra ones run a sensor only, the three CPU models in turn, on 127.0.2.x; every sensor is the
small stand-in image). For each size: clean (volumes kept), a cold orch, a re-run. For each orch:
its seconds, the master's CPU seconds (the salt-master daemon's processes and the salt-run process
that runs the orchestrate runner) and the mine reads it caused, counted by inotify on the master's
cache (benchmarks/mine_watch.py). After the re-run: the master's memory (its whole process tree)
and a minion's (the mean over the minions).

Targets: 48 minions' cold orch at most 3 times 8 minions'; the master's work linear in the fleet
(one mine read per orch); a re-run that changes nothing at most 0.25 of the cold orch.

    .venv/bin/python benchmarks/scale.py [sizes, default 4,8,16,24,48]

Prints a Markdown table and draws benchmarks/scale.png (needs matplotlib: pip install matplotlib).
Ends with the demo back at its 4 minions, deployed.
"""

import os
import pathlib
import resource
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "benchmarks")]

import demo  # noqa: E402
import docker  # noqa: E402
from footprint import processes, tree  # noqa: E402
from mine_watch import MineWatch  # noqa: E402
from orch import orch  # noqa: E402

CACHEDIR = demo.DEMO / "master" / "var" / "cache" / "salt" / "master"


SIZES = []  # the minion counts of this run


def rss_mib(pid):
    """Resident memory of ``pid``'s process tree, MiB."""
    table = processes()
    total = 0
    for member in tree(pid, table):
        try:
            for line in pathlib.Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024.0


def busy(seconds=10.0):
    """The share of the machine's CPU in use over ``seconds`` (/proc/stat): between orchs, the
    stack's data path (sensors, MongoDBs, SmartWatts) and the idle daemons."""
    def sample():
        fields = [int(f) for f in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # idle and iowait

    total, idle = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    return 1 - (idle2 - idle) / max(1, total2 - total)


def master_ticks():
    """{pid: CPU ticks, its reaped children's included} of the salt-master daemon's processes."""
    table = processes()
    return {pid: table[pid][1] for pid in tree(demo.running(demo.DEMO / "master" / "master.pid"), table)}


def measured_orch(sls):
    """``orch(sls)`` with the master's CPU seconds and the mine reads: (seconds, ok, steps, cpu,
    reads, entries), ``reads`` the most reads of one minion's entry (a plan reads every sensor's),
    ``entries`` the entries read in all."""
    before = master_ticks()
    own = resource.getrusage(resource.RUSAGE_CHILDREN)  # salt-run: a child of this process
    with MineWatch(str(CACHEDIR), demo.MINIONS) as watch:
        seconds, ok, steps = orch(sls)
    after = master_ticks()
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (sum(t - before.get(p, 0) for p, t in after.items()) / os.sysconf("SC_CLK_TCK")
           + done.ru_utime + done.ru_stime - own.ru_utime - own.ru_stime)
    reads = watch.reads()
    return seconds, ok, steps, cpu, max(reads.values()), sum(reads.values())


def measure(count):
    demo.MINIONS = demo.minions(count)
    demo.start(restart=False)
    demo.salt("salt", "*", "saltutil.refresh_pillar", "wait=True", capture=True)
    _clean, ok, _ = orch("energy.clean_orch")
    if not ok:  # a minion busy with its schedule misses the first run's timeout (as demo.py down)
        _clean, ok, _ = orch("energy.clean_orch")
    cold, ok_cold, steps, cold_cpu, cold_reads, cold_entries = measured_orch("energy.orch")
    demo.wait_armed()  # the minions and the master restart to load the engine and the reactor
    rerun, ok_rerun, rerun_steps, rerun_cpu, rerun_reads, rerun_entries = measured_orch("energy.orch")
    after = busy()  # with this size's stack deployed and running
    master = rss_mib(demo.running(demo.DEMO / "master" / "master.pid"))
    minion_rss = [rss_mib(demo.running(demo.DEMO / m / "minion.pid")) for m in demo.MINIONS]
    slowest = max(steps.items(), key=lambda kv: kv[1]) if steps else ("-", 0)
    row = {"minions": count, "cold": cold, "rerun": rerun, "ok": ok and ok_cold and ok_rerun,
           "master_mib": master, "minion_mib": sum(minion_rss) / len(minion_rss),
           "slowest": f"{slowest[0]} {slowest[1] / 1000:.1f} s", "steps": steps, "rerun_steps": rerun_steps,
           "cold_cpu": cold_cpu, "rerun_cpu": rerun_cpu, "cold_reads": cold_reads, "rerun_reads": rerun_reads,
           "cold_entries": cold_entries, "rerun_entries": rerun_entries, "busy": after}
    print(f"  {row}", flush=True)
    return row


def shrink_to_four():
    """Back to the demo's 4 minions: the extra ones' stack removed, then the minions stopped."""
    extra = sorted(set(demo.minions(max([4, *SIZES]))) - set(demo.minions(4)))
    demo.MINIONS = demo.minions(4)
    demo.configure()  # the demo's pillar for 4 minions again (its sizing counts the minions)
    orch("energy.clean_orch")
    for pidfile in sorted(demo.DEMO.glob("node-[0-9]*/minion.pid")):
        demo.stop(pidfile)
    # what a clean_orch that timed out on a busy minion left behind: the extra minions are gone,
    # so their containers go by label
    client = docker.from_env()
    for minion in extra:
        for left in client.containers.list(all=True, filters={"label": f"energy.minion={minion}"}):
            print(f"scale: removing {left.name}, left by clean_orch", flush=True)
            left.remove(force=True)
    demo.salt("salt-key", "-y", "-d", "node-[0-9]*", capture=True, check=False)
    time.sleep(3)
    orch("energy.orch")


def draw(rows, path):
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        print("scale: no matplotlib, no picture (pip install matplotlib)")
        return
    counts = [r["minions"] for r in rows]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
    left.plot(counts, [r["cold"] for r in rows], "o-", label="cold orch")
    left.plot(counts, [r["rerun"] for r in rows], "s-", label="re-run")
    left.set_xlabel("minions")
    left.set_ylabel("seconds")
    left.set_title(f"orch time ({os.cpu_count()} cores, one machine)")
    left.legend()
    middle.plot(counts, [r["cold_cpu"] for r in rows], "o-", label="cold orch")
    middle.plot(counts, [r["rerun_cpu"] for r in rows], "s-", label="re-run")
    middle.set_xlabel("minions")
    middle.set_ylabel("CPU seconds")
    middle.set_title("the master's CPU per orch")
    middle.legend()
    right.plot(counts, [r["master_mib"] for r in rows], "o-", label="salt-master")
    right.plot(counts, [r["minion_mib"] for r in rows], "s-", label="salt-minion (mean)")
    right.set_xlabel("minions")
    right.set_ylabel("MiB resident")
    right.set_title("memory")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"scale: drew {path}")


def main():
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "4,8,16,24,48").split(",")]
    SIZES[:] = sizes
    print(f"scale: {sizes} minions on {os.cpu_count()} cores", flush=True)
    rows = []
    try:
        for count in sizes:
            rows.append(measure(count))
    finally:
        shrink_to_four()
    print("\n| minions | cold orch | re-run | re-run / cold | master CPU, cold / re-run | per minion, cold "
          "| mine reads, cold / re-run (entries) | salt-master RSS | salt-minion RSS (mean) | slowest step (cold) "
          "| CPU busy after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['minions']} | {r['cold']:.1f} s | {r['rerun']:.1f} s | {r['rerun'] / r['cold']:.2f} | "
              f"{r['cold_cpu']:.1f} / {r['rerun_cpu']:.1f} s | {r['cold_cpu'] / r['minions']:.2f} s | "
              f"{r['cold_reads']} / {r['rerun_reads']} ({r['cold_entries']} / {r['rerun_entries']}) | "
              f"{r['master_mib']:.0f} MiB | {r['minion_mib']:.0f} MiB | {r['slowest']} | {r['busy']:.0%} |"
              + ("" if r["ok"] else " (an orch failed)"))
    print("\nStep by step (seconds, cold / re-run):\n")
    print("| step | " + " | ".join(f"{r['minions']} minions" for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for step in dict.fromkeys(s for r in rows for s in r["steps"]):
        print(f"| {step} | " + " | ".join(f"{r['steps'].get(step, 0) / 1000:.1f} / "
                                          f"{r['rerun_steps'].get(step, 0) / 1000:.1f}" for r in rows) + " |")
    by = {r["minions"]: r for r in rows}
    if 8 in by and 48 in by:
        print(f"\ncold orch 48 / 8 minions: {by[48]['cold'] / by[8]['cold']:.2f} (target <= 3)")
    if 8 in by and 24 in by:
        print(f"cold orch 24 / 8 minions: {by[24]['cold'] / by[8]['cold']:.2f}")
    print("re-run / cold orch: " + ", ".join(f"{r['rerun'] / r['cold']:.2f} at {r['minions']}" for r in rows)
          + " (target <= 0.25)")
    draw(rows, ROOT / "benchmarks" / "scale.png")


if __name__ == "__main__":
    main()
