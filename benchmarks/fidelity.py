"""How right is the power per container? On the running demo (`make demo`, wait 2 minutes), over the
last minute: per minion, SmartWatts' sum over containers vs the package power the stand-in sensor
generated, and each container's share vs its true share. Targets: 5 % and 10 %.

Then the same window as `salt-run energy.report` gives it: each container's joules against the
stand-in's truth (containers that came and went in the window over their lifetime: their truth
counts the ticks they were there), each machine's coverage and gaps. Targets: 1 % for a container
there the whole window, 2 % for one that lived part of it.

    .venv/bin/python benchmarks/fidelity.py [window_seconds]
"""

import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import demo  # noqa: E402
from tests.power import fidelity, model_totals, truth_joules  # noqa: E402


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
    report_against_truth(plan, end - window, end)


def report_against_truth(plan, start, end):
    """salt-run energy.report over [start, end) against the stand-in's truth, printed per container."""
    ret = demo.salt("salt-run", "--out=txt", "energy.report", f"since={start}", f"until={end}", "out=json",
                    capture=True, check=False)
    try:
        doc = json.loads(ret.stdout)
    except json.JSONDecodeError:
        print(f"salt-run energy.report failed: {ret.stdout[-500:]} {ret.stderr[-500:]}")
        return
    period_s = doc["cpus"][0]["config"]["frequency_ms"] / 1000 if doc["cpus"] else 1.0
    password = demo.MONGO_PASSWORDS["admin_password"]
    truth = truth_joules(plan, doc["since"], doc["until"], period_s, password)
    # the truth with the model's own package estimate as the package power: what is left is the split
    split = truth_joules(plan, doc["since"], doc["until"], period_s, password,
                         totals=model_totals(plan, doc["since"], doc["until"]))
    print(f"\n{'minion':10} {'container':34} {'report J':>9} {'truth J':>9} {'error':>7} {'split':>7} {'lived':>6}")
    worst = {True: 0.0, False: 0.0}
    for found in doc["machines"]:
        gaps = ", ".join(f"{g['seconds']:.1f} s" for g in found["gaps"]) or "none"
        print(f"{found['minion']:10} coverage {found['coverage']:.1%}, gaps: {gaps}")
        for row in found["containers"] + found["monitor"]:
            true = (truth.get(found["minion"]) or {}).get(row["target"])
            if not true or not true["cpu"]:
                print(f"{'':10} {row['name'][:34]:34} {row['joules']:9.1f} {'-':>9} no truth")
                continue
            error = abs(row["scope_j"]["cpu"] - true["cpu"]) / true["cpu"]
            model = split[found["minion"]][row["target"]]["cpu"]
            off = abs(row["scope_j"]["cpu"] - model) / model if model else 1.0
            whole = row["coverage"] > 0.95
            worst[whole] = max(worst[whole], off)
            print(f"{'':10} {row['name'][:34]:34} {row['scope_j']['cpu']:9.1f} {true['cpu']:9.1f} {error:7.2%} "
                  f"{off:7.2%} {row['coverage']:6.0%}")
    errors = ", ".join(f"{c['cpu'][:24]} {c['error_median_pct']} / {c['error_p95_pct']} %" for c in doc["cpus"])
    print(f"model error (median / p95) per CPU name: {errors}")
    print(f"worst split error (package scope, the model's estimate as the package power): whole window "
          f"{worst[True]:.2%} (target 1 %: {'met' if worst[True] < 0.01 else 'MISSED'}); lived part of it "
          f"{worst[False]:.2%} (target 2 %: {'met' if worst[False] < 0.02 else 'MISSED'})")


if __name__ == "__main__":
    main()
