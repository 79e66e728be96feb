"""What an orch costs, against what it has to do, on the running demo (`make demo` first):

  1. clean (energy.clean_orch, data volumes kept) then a cold orch (images present, volumes kept);
  2. a re-run that has nothing to change, and the same in test=True;
  3. clean, then a plain script that does the same work with the Docker SDK from the same plan,
     without Salt (the floor): the same files, network, volumes and containers, in the same
     phases (databases, then services; the minions of a phase side by side, as the orch's state
     runs are), waiting for the same readiness: each service a container waits for answers, the
     MongoDB users and InfluxDB databases made (the formula's own code for both), and the same
     5 s watch of each sensor and SmartWatts after its start; then clean and an orch to leave the
     demo as it was. The bare creation of the containers, with no wait, is printed too.

Targets: re-run / cold orch at most 0.25; cold orch / the floor at most 2. Also prints the
slowest steps of each orch (from the orchestrate return's durations).

    .venv/bin/python benchmarks/orch.py
"""

import concurrent.futures
import copy
import datetime
import json
import os
import pathlib
import socket
import sys
import time
import urllib.parse

import docker
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "_utils")]

import demo  # noqa: E402
import energy_core  # noqa: E402

core = energy_core.load()
WATCHED = set(core.stack.WATCHED)


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


# saltext-dockermod's docker_container.running arguments that the Docker SDK's containers.run
# spells otherwise; every other argument the plan gives has the same name in both
TRANSLATED = ("binds", "port_bindings", "restart_policy", "image", "force", "watch_action")


def sdk_run_args(run):
    """saltext-dockermod's docker_container.running arguments as the Docker SDK's containers.run."""
    args = {k: v for k, v in run.items() if k not in TRANSLATED and v not in (None, "")}
    args.update({"image": run["image"], "detach": True})
    if run.get("restart_policy"):
        args["restart_policy"] = {"Name": run["restart_policy"]}
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


def _write_files(container):
    """The container's files as the SLS writes them: its data (a ``salt://energy/...`` source from
    this checkout), with their mode."""
    for path, spec in (container.get("files") or {}).items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = spec["data"]
        if spec.get("format") == "source":
            text = (ROOT / data.removeprefix("salt://")).read_text()
        elif spec.get("format") == "json":
            text = json.dumps(data)
        else:
            text = data if isinstance(data, str) else yaml.safe_dump(data)
        target = pathlib.Path(path)
        target.write_text(text)
        target.chmod(int(str(spec.get("mode") or "0600"), 8))


def _answers(url, deadline):
    """Wait until ``url`` (``scheme://host:port`` or ``host:port``) accepts TCP connections."""
    parsed = urllib.parse.urlsplit(url if "://" in url else "tcp://" + url)
    while True:
        try:
            with socket.create_connection((parsed.hostname, parsed.port), timeout=2):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _ready(container, deadline):
    """What the orch does once a container runs, before the run goes on: its MongoDB users, its
    InfluxDB databases (energy.mongo_users, energy.influxdb_database: the same core functions)."""
    users = container.get("users")
    if users:
        _answers(users["address"], deadline)
        ok, _changes, comment = core.mongo_users.keep(
            lambda: core.mongo_wire.Connection(users["address"], timeout=5), users["admin"], users["users"], False,
            deadline, container["name"], "floor", expire=users.get("expire"))
        assert ok, comment
    for db in container.get("databases") or []:
        _answers(container["url"], deadline)

        def run(statement, method):
            while True:
                try:
                    return core.influx.query(container["url"], statement, method)
                except OSError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.5)

        core.influx.ensure_database(run, db["name"], db["retention"])


def _deploy_host(client, containers, timeout=120):
    """One minion's part of a phase, as its state run does it: files, the services each container
    waits for, the container, then its users and databases. Returns the watched containers started."""
    deadline, started = time.monotonic() + timeout, []
    order = core.stack.DEPLOY_ORDER
    for container in sorted(containers, key=lambda c: order.index(c["component"])):
        _write_files(container)
        for service in container.get("waits_for") or []:
            _answers(service["url"], deadline)
        created = client.containers.run(name=container["name"], **sdk_run_args(container["run"]))
        if container["component"] in WATCHED:
            started.append(created)
        _ready(container, deadline)
    return started


def _watch(started, seconds=5):
    """energy_heal.stays_up: each container still runs, never restarted, 5 s after its start."""
    for container in started:
        container.reload()
        since = datetime.datetime.fromisoformat(container.attrs["State"]["StartedAt"][:26].rstrip("Z") + "+00:00")
        time.sleep(max(0.0, since.timestamp() + seconds - time.time()))
        container.reload()
        assert container.status == "running" and container.attrs["RestartCount"] == 0, container.name


def _network(client, full_plan):
    """The stack's network, created when missing (energy.clean_orch removes it), as the orch does."""
    network = next((c["run"]["network_mode"] for h in full_plan["hosts"].values() for c in h["containers"]), None)
    if network and not client.networks.list(names=[network]):
        client.networks.create(network, driver="bridge")


def plain_script(full_plan):
    """The floor: the orch's work on the plan with the Docker SDK and no Salt; seconds."""
    client = docker.from_env()
    started_at = time.monotonic()
    _network(client, full_plan)
    watched = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(full_plan["hosts"]) or 1) as pool:
        for _phase, components in core.stack.ORCH_PHASES:  # databases, then services
            parts = [[c for c in host["containers"] if c["component"] in components]
                     for host in full_plan["hosts"].values()]
            for found in pool.map(lambda part: _deploy_host(client, part), [p for p in parts if p]):
                watched.extend(found)
    _watch(watched)  # the watches run last in each state run: together, not one after the other
    return time.monotonic() - started_at


def bare_creation(full_plan):
    """Only the containers created, in deployment order, nothing waited for; seconds."""
    client = docker.from_env()
    started = time.monotonic()
    _network(client, full_plan)
    order = core.stack.DEPLOY_ORDER
    every = [c for host in full_plan["hosts"].values() for c in host["containers"]]
    for container in sorted(every, key=lambda c: order.index(c["component"])):
        _write_files(container)
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
    floor = bare = None
    for what in ("floor", "bare"):
        _, ok, _ = orch("energy.clean_orch")
        assert ok, "clean_orch failed"
        client = docker.from_env()
        for minion in full_plan["hosts"]:  # each starts from no container at all
            for left in client.containers.list(all=True, filters={"label": f"{core.names.LABEL_MINION}={minion}"}):
                print(f"  left after clean_orch: {left.name} ({left.status}); removed", flush=True)
                left.remove(force=True)
        if what == "floor":
            floor = plain_script(full_plan)
            print(f"plain Docker SDK script, the same work and waits (the floor): {floor:.1f} s", flush=True)
        else:
            bare = bare_creation(full_plan)
            print(f"plain Docker SDK script, the containers only: {bare:.1f} s", flush=True)
    orch("energy.clean_orch")
    _again, ok, _ = orch("energy.orch")
    demo.wait_armed()
    print(f"\n| run | seconds | ratio |\n|---|---|---|\n| cold orch | {cold:.1f} | 1 |\n"
          f"| re-run, nothing to change | {rerun:.1f} | {rerun / cold:.2f} of cold (target <= 0.25) |\n"
          f"| re-run, test=True | {dry:.1f} | {dry / cold:.2f} of cold |\n"
          f"| plain Docker SDK script, the same work and waits (the floor) | {floor:.1f} | "
          f"cold / floor = {cold / floor:.2f} (target <= 2) |\n"
          f"| plain Docker SDK script, the containers only | {bare:.1f} | cold / bare = {cold / bare:.1f} |")
    if not ok:
        sys.exit("orch: the last orch, which puts the demo back, failed")


if __name__ == "__main__":
    main()
