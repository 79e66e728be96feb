"""The master's side of an orch for a large fleet, simulated (no daemons, no containers): the whole
plan, each minion's part and the pillar bytes each minion gets, for 1,000 and 10,000 minions over
50 CPU names.

The mine is synthesised from the recorded machines of tests/data/machines (the ``energy`` grain
run on each, as tests/unit/test_machines.py does; the supported ones only), one address and
Docker engine per minion, 50 CPU names over them (a few large, many small). Every minion is a
sensor; 5 run MongoDB, 5 InfluxDB, one in 50 SmartWatts, the first is the control host (Grafana).
What is timed is what ``salt-run energy_plan.prepare`` does after its mine read: the master's
pillar merged with defaults.yaml and checked (``schema.merge`` + ``schema.check``), the role facts
(``trust.role_facts``, the mine read counted), ``plan.build``, ``parts.parts``; then each part
serialised as Salt sends pillar (msgpack, ``salt.payload``) and as the master keeps it (JSON).

    .venv/bin/python benchmarks/simulate.py [sizes, default 1000,10000]

Prints a Markdown table: CPU seconds (the best of ``REPEAT`` runs), the tracemalloc peak of one run, and
the process's resident memory (VmRSS after the step, VmHWM: its peak so far).
"""

import copy
import importlib.util
import json
import pathlib
import random
import sys
import time
import tracemalloc

import msgpack
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "_utils"))

from energy_core import parts, plan, schema, trust  # noqa: E402

MACHINES = ROOT / "tests" / "data" / "machines"
CPU_NAMES = 50
REPEAT = 3
SECRETS = {"admin_password": "sim-Mongo-admin-1", "sensor_password": "sim-Mongo-sensor-2",
           "formula_password": "sim-Mongo-formula-3"}


def recorded():
    """The facts the ``energy`` grain detects on each recorded machine a sensor runs on."""
    spec = importlib.util.spec_from_file_location("energy_grains_sim", ROOT / "_grains" / "energy.py")
    grains = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grains)
    found = [grains._collect(str(path)) for path in sorted(MACHINES.iterdir()) if path.is_dir()]
    return [f for f in found if f.get("sensor_support") == "ok"]


def mine(count, seed=1):
    """``{minion: energy facts}`` as ``mine.get '*' energy.facts`` answers for ``count`` minions."""
    rng = random.Random(seed)
    base = recorded()
    models = [dict(base[k % len(base)], cpu_name=f"{base[k % len(base)]['cpu_name']} #{k:02d}")
              for k in range(CPU_NAMES)]
    weights = [1 / (k + 1) for k in range(CPU_NAMES)]  # a few CPU names with most machines
    picks = rng.choices(range(CPU_NAMES), weights, k=count)
    picks[:CPU_NAMES] = range(CPU_NAMES)  # every CPU name has a machine
    answer = {}
    for i, k in enumerate(picks):
        facts = copy.deepcopy(models[k])
        facts.update(address=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", kernel="6.1.0-18-amd64",
                     docker_engine=f"SIM{i:06d}:ENGINE", docker_perfmon=True)
        if rng.random() < 0.02:  # a few hosts of a CPU name on cgroup v1
            facts["cgroup_version"] = 1
        answer[f"node{i:05d}"] = facts
    return answer


def master_pillar(ids):
    """The master's pillar ``energy`` for the fleet: roles by id (one mine read)."""
    formulas = max(10, len(ids) // 50)
    return {"control": ids[0], "roles": {"mongos": ids[1:6], "influxdbs": ids[6:11], "formulas": ids[11:11 + formulas]},
            "mongo": dict(SECRETS), "grafana": {"enabled": True, "admin_password": "sim-Grafana-admin-4"}}


def rss():
    """``(VmRSS, VmHWM)`` of this process, MiB."""
    status = dict(line.split(":", 1) for line in pathlib.Path("/proc/self/status").read_text().splitlines())
    return tuple(int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))


def measure(step, repeat=REPEAT):
    """``(result, CPU seconds (the best run), tracemalloc peak MiB, VmRSS MiB, VmHWM MiB)`` of
    ``step()``: CPU time, not wall-clock time, which on a busy machine measures the others too."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        result = step()
        times.append(time.process_time() - start)
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return (result, min(times), peak, *rss())


def simulate(count, defaults):
    answer = mine(count)
    pillar = master_pillar(sorted(answer))
    reads = []

    def mine_get(target):
        reads.append(target)
        return answer

    def whole_plan():
        conf = schema.merge(copy.deepcopy(defaults), copy.deepcopy(pillar))
        schema.check(conf)
        return conf, plan.build(conf, trust.role_facts(conf, mine_get))

    rows = []
    (conf, full), *figures = measure(whole_plan)
    rows.append(("the whole plan (merge, check, role facts, plan.build)", *figures))
    per_plan = len(reads) // (REPEAT + 1)
    handed, *figures = measure(lambda: parts.parts(conf, full, list(answer), "sim"))
    rows.append((f"the parts of {len(handed):,} minions (parts.parts)", *figures))
    sizes, *figures = measure(lambda: [len(msgpack.packb({parts.PILLAR_KEY: p})) for p in handed.values()], 1)
    rows.append(("the pillar of each, msgpack (as Salt sends it)", *figures))
    kept = sum(len(json.dumps(p, sort_keys=True)) for p in handed.values())
    groups = len(full["groups"])
    return {"minions": count, "rows": rows, "sizes": sizes, "kept": kept, "mine_reads": per_plan,
            "mine_bytes": len(msgpack.packb(answer)), "groups": groups, "stores": len(full["stores"]),
            "local": sum("local" in p for p in handed.values()), "warnings": len(full["warnings"])}


def report(result):
    sizes = result["sizes"]
    print(f"\n### {result['minions']:,} minions, {CPU_NAMES} CPU names\n")
    print(f"{result['groups']:,} SmartWatts groups, {result['stores']} databases, {result['warnings']} warnings, "
          f"{result['local']} parts left to the minion; mine reads per plan: {result['mine_reads']} "
          f"(its answer: {result['mine_bytes'] / 2**20:.1f} MiB of msgpack)\n")
    print("| step | CPU seconds | tracemalloc peak | RSS after | RSS peak so far |")
    print("|---|---|---|---|---|")
    for name, seconds, peak, now, high in result["rows"]:
        print(f"| {name} | {seconds:.2f} | {peak:.1f} MiB | {now:.0f} MiB | {high:.0f} MiB |")
    print(f"\npillar bytes per minion (msgpack): mean {sum(sizes) / len(sizes):,.0f}, max {max(sizes):,}, "
          f"total {sum(sizes) / 2**20:.1f} MiB; the parts kept on the master (JSON): {result['kept'] / 2**20:.1f} MiB")


def main():
    counts = [int(n) for n in (sys.argv[1] if len(sys.argv) > 1 else "1000,10000").split(",")]
    defaults = yaml.safe_load((ROOT / "energy" / "defaults.yaml").read_text())["energy"]
    for count in counts:
        report(simulate(count, defaults))


if __name__ == "__main__":
    main()
