"""Time energy.placement for 10k and 100k sensor minions over 500 CPU names (target: 100k < 1 s, linear).

    .venv/bin/python benchmarks/placement.py
"""

import pathlib
import sys
import random
import statistics
import time
import tracemalloc

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "_utils"))

from energy_core import placement as energy  # noqa: E402


def inputs(minions, cpu_names, seed=1):
    rng = random.Random(seed)
    cpus = {f"node{i:06d}": f"CPU model {rng.randrange(cpu_names):03d}" for i in range(minions)}
    roles = {"mongos": [f"db{i}" for i in range(20)], "formulas": [f"f{i}" for i in range(40)],
             "influxdbs": [f"i{i}" for i in range(20)], "grafana": ["g0"]}
    return cpus, roles


def main():
    print(f"{'minions':>8} {'cpu names':>9} {'median s':>9} {'min s':>7} {'peak MiB':>9}")
    results = {}
    for minions in (10_000, 100_000):
        cpus, roles = inputs(minions, 500)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            energy.placement(cpus, roles)
            times.append(time.perf_counter() - start)
        tracemalloc.start()
        energy.placement(cpus, roles)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        results[minions] = statistics.median(times)
        print(f"{minions:>8} {500:>9} {results[minions]:>9.3f} {min(times):>7.3f} {peak:>9.1f}")
    ratio = results[100_000] / results[10_000]
    print(f"100k / 10k time ratio: {ratio:.1f} (10 = linear); target 100k < 1 s: "
          f"{'met' if results[100_000] < 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
