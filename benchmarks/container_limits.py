"""What each container of a running stack uses against its limits: memory (the cgroup's usage and
its peak since the container started, without the page cache) and processes+threads (pids), from
the Docker stats API, sampled every few seconds over a window; the highest per component.
The defaults of energy:<component>:limits are sized from these figures (docs/benchmarks.md:
Container limits).

    .venv/bin/python benchmarks/container_limits.py [window seconds, default 120] [minion id ...]

Without minion ids: every container labelled energy.component on the engine (a demo or a test
stack). Prints one line per container and a Markdown table of the maxima per component.
"""

import sys
import time

import docker

MIB = 2**20


def sample(container):
    """(memory now, memory peak or None, pids now) of one container, in bytes and processes."""
    stats = container.stats(stream=False)
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", detail.get("cache", 0)))
    usage = max(0, memory.get("usage", 0) - cache)
    return usage, memory.get("max_usage"), (stats.get("pids_stats") or {}).get("current", 0)


def main():
    window = float(sys.argv[1]) if len(sys.argv) > 1 else 120
    minions = set(sys.argv[2:])
    client = docker.from_env()
    seen = {}
    end = time.time() + window
    while True:  # listed again each round: a container recreated meanwhile is measured too
        for container in client.containers.list(filters={"label": "energy.component"}, ignore_removed=True):
            if minions and container.labels.get("energy.minion") not in minions:
                continue
            try:
                usage, peak, pids = sample(container)
            except docker.errors.NotFound:
                continue
            host = container.attrs["HostConfig"]
            entry = seen.setdefault(container.name, {"component": container.labels["energy.component"], "memory": 0,
                                                     "peak": 0, "pids": 0, "limit": host["Memory"],
                                                     "pids_limit": host["PidsLimit"]})
            entry.update(memory=max(entry["memory"], usage), peak=max(entry["peak"], peak or 0),
                         pids=max(entry["pids"], pids))
        if time.time() >= end:
            break
        time.sleep(5)
    if not seen:
        sys.exit("no container of the stack runs: start one (make demo) first")
    print(f"{'container':44} {'memory MiB':>10} {'peak MiB':>9} {'limit MiB':>9} {'pids':>5} {'limit':>6}")
    for name, e in sorted(seen.items()):
        print(f"{name:44} {e['memory'] / MIB:10.1f} {e['peak'] / MIB:9.1f} {(e['limit'] or 0) / MIB:9.0f} "
              f"{e['pids']:5d} {e['pids_limit'] or 0:6d}")
    print("\n| component | containers | memory, highest (MiB) | peak incl. cache (MiB) | pids, highest |")
    print("|---|---|---|---|---|")
    for component in ("sensor", "mongo", "formula", "influxdb", "grafana"):
        rows = [e for e in seen.values() if e["component"] == component]
        if rows:
            print(f"| {component} | {len(rows)} | {max(r['memory'] for r in rows) / MIB:.0f} | "
                  f"{max(r['peak'] for r in rows) / MIB:.0f} | {max(r['pids'] for r in rows)} |")


if __name__ == "__main__":
    main()
