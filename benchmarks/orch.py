"""What an orch costs, against what it has to do, on the running demo (`make demo` first):

  1. clean (energy.clean_orch, data volumes kept) then a cold orch (images present, volumes kept);
  2. a re-run that has nothing to change, and the same in test=True;
  3. clean, then a plain script that creates the same containers with the Docker SDK from the
     same plan (the floor: no Salt, no checks, no waits), then clean and an orch to leave the demo
     as it was.

Targets: re-run / cold orch at most 0.5; cold orch / plain script at most 2. Also prints the
slowest steps of each orch (from the orchestrate return's durations).

    .venv/bin/python benchmarks/orch.py
"""

import copy
import json
import os
import pathlib
import sys
import time

import docker
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "_utils")]

import demo  # noqa: E402
import energy_core  # noqa: E402

core = energy_core.load()


def orch(sls, *args):
    """Seconds the orchestrate run took, whether it succeeded, and its steps' durations (ms)."""
    started = time.monotonic()
    ret = demo.salt("salt-run", "state.orchestrate", sls, "--out=json", *args, check=False, capture=True)
    seconds = time.monotonic() - started
    steps = {}
    try:
        data = json.loads(ret.stdout)
        for _master, states in (data.get("data") or {}).items():
            for step_id, step in (states or {}).items():
                steps[step_id.split("_|-")[1]] = step.get("duration", 0)
                if step.get("result") is False:  # why it failed, minion by minion
                    print(f"  {step_id.split('_|-')[1]} failed: {str(step.get('comment'))[:600]}", flush=True)
                    for minion, got in ((step.get("changes") or {}).get("ret") or {}).items():
                        bad = ({k.split("_|-")[1]: str(v.get("comment"))[:300] for k, v in got.items()
                                if isinstance(v, dict) and v.get("result") is False}
                               if isinstance(got, dict) else repr(got)[:300])
                        if bad:
                            print(f"    {minion}: {bad}", flush=True)
    except (ValueError, AttributeError):
        print(f"  orchestrate output is not JSON: {ret.stdout[-1500:]}", flush=True)
    return seconds, ret.returncode == 0, steps


def plan():
    """The demo's plan, built here by the pure core from the demo's pillar and the mine's facts
    (what every minion computes): nothing with a secret crosses Salt's bus for the benchmark."""
    with open(ROOT / "energy" / "defaults.yaml", encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)["energy"]
    pillar = yaml.safe_load((demo.DEMO / "pillar" / "energy.sls").read_text())["energy"]
    conf = core.schema.merge(copy.deepcopy(defaults), pillar)
    facts = demo.salt_json("salt-run", "mine.get", "*", "energy.facts")
    every = sorted(facts)

    def members(target):
        if target == "*":
            return every
        if target.startswith("L@"):
            return target[2:].split(",")
        return [target]

    role_facts = {role: {m: facts[m] for m in members(t) if m in facts}
                  for role, t in core.placement.role_targets(conf).items()}
    return core.plan.build(conf, role_facts)


def sdk_run_args(run):
    """saltext-dockermod's docker_container.running arguments as the Docker SDK's containers.run."""
    args = {"image": run["image"], "detach": True, "labels": run.get("labels") or {},
            "environment": run.get("environment") or {}}
    if run.get("command"):
        args["command"] = run["command"]
    if run.get("restart_policy"):
        args["restart_policy"] = {"Name": run["restart_policy"]}
    for key in ("network_mode", "pid_mode", "privileged", "user"):
        if run.get(key) not in (None, ""):
            args[key] = run[key]
    volumes = {}
    for bind in run.get("binds") or []:
        parts = bind.split(":")
        volumes[parts[0]] = {"bind": parts[1], "mode": parts[2] if len(parts) > 2 else "rw"}
    if volumes:
        args["volumes"] = volumes
    ports = {}
    for binding in run.get("port_bindings") or []:
        address, host_port, container_port = binding.rsplit(":", 2)
        ports[f"{container_port}/tcp"] = (address, int(host_port))
    if ports:
        args["ports"] = ports
    return args


def plain_script(full_plan):
    """Create every container of the plan with the Docker SDK, in deployment order; seconds."""
    client = docker.from_env()
    started = time.monotonic()
    order = core.stack.DEPLOY_ORDER
    every = [c for host in full_plan["hosts"].values() for c in host["containers"]]
    for container in sorted(every, key=lambda c: order.index(c["component"])):
        for path, spec in (container.get("files") or {}).items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = spec["data"]
            text = json.dumps(data) if spec.get("format") == "json" else (
                yaml.safe_dump(data) if not isinstance(data, str) else data)
            pathlib.Path(path).write_text(text)
        client.containers.run(name=container["name"], **sdk_run_args(container["run"]))
    return time.monotonic() - started


def slowest(steps, count=4):
    return ", ".join(f"{name} {ms / 1000:.1f} s" for name, ms in sorted(steps.items(), key=lambda kv: -kv[1])[:count])


def main():
    full_plan = plan()
    count = sum(len(h["containers"]) for h in full_plan["hosts"].values())
    print(f"demo plan: {len(full_plan['hosts'])} minions, {count} containers; {os.cpu_count()} cores", flush=True)
    clean, ok, _ = orch("energy.clean_orch")
    assert ok, "clean_orch failed"
    cold, ok, cold_steps = orch("energy.orch")
    assert ok, "cold orch failed"
    # the cold orch wrote the engine config back: the minions (and the master, for the reactor)
    # restart to load it; a re-run in the middle of that would time out
    demo.wait_armed()
    rerun, ok, rerun_steps = orch("energy.orch")
    assert ok, "re-run failed"
    dry, ok, dry_steps = orch("energy.orch", "test=True")
    print(f"clean {clean:.1f} s; cold orch {cold:.1f} s; re-run {rerun:.1f} s; re-run test=True {dry:.1f} s",
          flush=True)
    print(f"  slowest steps, cold: {slowest(cold_steps)}\n  re-run: {slowest(rerun_steps)}\n"
          f"  test=True: {slowest(dry_steps)}", flush=True)
    print("\n| step | cold s | re-run s |\n|---|---|---|")
    for step in cold_steps:
        print(f"| {step} | {cold_steps[step] / 1000:.1f} | {rerun_steps.get(step, 0) / 1000:.1f} |")
    print(f"| (the orch's render and Salt between steps) | {cold - sum(cold_steps.values()) / 1000:.1f} | "
          f"{rerun - sum(rerun_steps.values()) / 1000:.1f} |", flush=True)
    _, ok, _ = orch("energy.clean_orch")
    assert ok, "clean_orch failed"
    client = docker.from_env()
    for minion in full_plan["hosts"]:  # the floor starts from no container at all
        for left in client.containers.list(all=True, filters={"label": f"{core.names.LABEL_MINION}={minion}"}):
            print(f"  left after clean_orch: {left.name} ({left.status}); removed", flush=True)
            left.remove(force=True)
    floor = plain_script(full_plan)
    print(f"plain Docker SDK script: {floor:.1f} s", flush=True)
    orch("energy.clean_orch")
    _again, ok, _ = orch("energy.orch")
    demo.wait_armed()
    print(f"\n| step | seconds | ratio |\n|---|---|---|\n| cold orch | {cold:.1f} | 1 |\n"
          f"| re-run, nothing to change | {rerun:.1f} | {rerun / cold:.2f} of cold (target <= 0.5) |\n"
          f"| re-run, test=True | {dry:.1f} | {dry / cold:.2f} of cold |\n"
          f"| plain Docker SDK script (floor) | {floor:.1f} | cold / floor = {cold / floor:.1f} (target <= 2) |")
    if not ok:
        sys.exit("orch: the last orch, which puts the demo back, failed")


if __name__ == "__main__":
    main()
