"""How right is the power per container? On the running demo (`make demo`, wait 2 minutes), over the
last minute: per minion, SmartWatts' sum over containers vs the package power the stand-in sensor
generated, and each container's share vs its true share. Targets: 5 % and 10 %.

    .venv/bin/python benchmarks/fidelity.py [window_seconds]
"""

import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import demo  # noqa: E402
from tests.power import fidelity  # noqa: E402


def main():
    window = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    ret = demo.salt("salt", "--out=json", "--static", "ctl", "energy.plan", capture=True)
    plan = json.loads(ret.stdout)["ctl"]
    end = time.time() - 5  # SmartWatts holds the last ticks back
    results = fidelity(plan, end - window, end, demo.MONGO_PASSWORDS["admin_password"])
    print(f"{'minion':10} {'cpu':28} {'package W':>9} {'containers W':>12} {'total err':>9} {'split err':>9}")
    for sensor, r in sorted(results.items()):
        if r is None:
            print(f"{sensor:10} no data in the window (is the demo up and past its warm-up?)")
            continue
        print(f"{sensor:10} {r['cpu']:28} {r['package_w']:9.2f} {r['containers_w']:12.2f} "
              f"{r['total_error']:9.2%} {r['split_error']:9.2%}")
    done = [r for r in results.values() if r]
    if done:
        worst_total = max(r["total_error"] for r in done)
        worst_split = max(r["split_error"] for r in done)
        print(f"worst total error {worst_total:.2%} (target 5 %: {'met' if worst_total < 0.05 else 'MISSED'}), "
              f"worst split error {worst_split:.2%} (target 10 %: {'met' if worst_split < 0.10 else 'MISSED'})")


if __name__ == "__main__":
    main()
