"""
A real Salt master and four minions (pytest-salt-factories) sharing the real Docker engine.

Each minion plays one machine: its own CPU name (through the ``energy_facts`` minion config the
grain module reads) and its own loopback address, so that two minions publishing the same port
do not collide on the one engine. The formula is served from the repository itself.
"""

import contextlib
import copy
import os
import time

import docker
import pytest
import yaml

from energy_core import events
from tests.conftest import ROOT, built_images, formula_file_root

XEON_GOLD = "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"
EPYC = "AMD EPYC 7452 32-Core Processor"
XEON_E5 = "Intel(R) Xeon(R) CPU E5-2630 v3 @ 2.40GHz"

# the core events of the simulated CPUs (the formula's tables): this VM has no PMU to find them
SKYLAKE, HASWELL, ZEN2 = list(events.INTEL_SKYLAKE), list(events.INTEL_SANDY), list(events.AMD_ZEN2)

# minion id -> (address, CPU facts); test-ctl is the control minion and also a sensor host.
# The ids differ from the demo's (scripts/demo.py), so the tests never touch a running demo.
MINIONS = {
    "test-ctl": ("127.0.0.11", {"cpu_name": XEON_GOLD, "cpu_vendor": "intel", "cpu_family": 6, "cpu_model": 85,
                                "cpu_base_freq_mhz": 2100,
                                "rapl_domains": ["dram", "package"], "pmu_events": SKYLAKE}),
    "test-node-a": ("127.0.0.12", {"cpu_name": XEON_GOLD, "cpu_vendor": "intel", "cpu_family": 6, "cpu_model": 85,
                                   "cpu_base_freq_mhz": 2100,
                                   "rapl_domains": ["dram", "package"], "pmu_events": SKYLAKE}),
    "test-node-b": ("127.0.0.13", {"cpu_name": EPYC, "cpu_vendor": "amd", "cpu_family": 23, "cpu_model": 49,
                                   "cpu_base_freq_mhz": 2350,
                                   "rapl_domains": ["package"], "pmu_events": ZEN2}),  # no DRAM domain
    "test-node-c": ("127.0.0.14", {"cpu_name": XEON_E5, "cpu_vendor": "intel", "cpu_family": 6, "cpu_model": 63,
                                   "cpu_base_freq_mhz": 2400,
                                   "rapl_domains": ["dram", "package"], "pmu_events": HASWELL}),
}


SENSOR_PERIOD_MS = 500
# the hwpc-sensor release the formula pins: the stand-in plays it (its words, target names, checks)
SENSOR_RELEASE = str(yaml.safe_load((ROOT / "energy" / "defaults.yaml").read_text())["energy"]["sensor"]["tag"])
# real containers the tests run as the measured workload (on no network): every stand-in sensor of
# this host finds them through the host's cgroups, like hwpc-sensor; the label sets each one's load
# in busy CPUs, hence its known share of the power (tests/images/hwpc-sensor-sim/sim.py)
WORKLOADS = {"energy-test-work-heavy": 1.0, "energy-test-work-light": 0.4}
WORKLOAD_LABEL = "energy.test.workload"
LOAD_LABEL = "energy.sim.load"
GRAFANA_PASSWORD = "energy-test-grafana"
# MongoDB users (authentication on, as by default): a password per purpose
MONGO_PASSWORDS = {"admin_password": "test-mongo-admin-1", "sensor_password": "test-mongo/sensor@2",
                   "formula_password": "test-mongo-formula-3"}
GRAFANA_PORT = 13000
TEST_NETWORK = "energy-test"  # the stack's Docker network in the tests (a demo's is "energy")


def mongo_user(purpose, cpu_slug, password=None):
    """``(user, password)`` of the MongoDB user of ``purpose`` (sensor or formula) for a CPU name's
    collection: the password an HMAC-SHA256 of the user name keyed with the role's pillar password."""
    import hashlib  # pylint: disable=import-outside-toplevel
    import hmac  # pylint: disable=import-outside-toplevel

    user = f"energy-{purpose}-{cpu_slug}"
    base = password or MONGO_PASSWORDS[f"{purpose}_password"]
    return user, hmac.new(base.encode(), user.encode(), hashlib.sha256).hexdigest()


def start_workloads(client, image):
    """(Re)start the workload containers; returns {name: container}. Started after the first
    orchestrate run: Docker gives a container a perf_event cgroup (cgroup v1) only when the
    hierarchy was mounted (by the sensor SLS) before it started."""
    remove_workloads(client)
    return {name: client.containers.run(
        image, ["sleep", "infinity"], name=name, detach=True, network_mode="none", read_only=True,
        cap_drop=["ALL"], mem_limit="32m", labels={WORKLOAD_LABEL: "1", LOAD_LABEL: str(load)},
        # back after a test restarts the Docker engine (test_zz_faults), with the same id: the same target
        restart_policy={"Name": "unless-stopped"})
        for name, load in WORKLOADS.items()}


def remove_workloads(client):
    for container in client.containers.list(all=True, filters={"label": WORKLOAD_LABEL}, ignore_removed=True):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def target_name(client, container, release=SENSOR_RELEASE):
    """The target name hwpc-sensor ``release`` reports a container under on this host: its name
    under cgroup v1 (1.3.0 reads it from Docker's config.v2.json), else its cgroup path relative
    to the base path (cgroup v2, and every path from 1.4.0)."""
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return container.name if release.startswith("1.3.") else f"/docker/{container.id}"
    if client.info().get("CgroupDriver") == "systemd":
        return f"/system.slice/docker-{container.id}.scope"
    return f"/docker/{container.id}"


class Workloads(dict):
    """{target name: load} of the workload containers, and when they started (``started_at``)."""

    started_at = 0.0


@pytest.fixture(scope="session")
def workloads(deployment, docker_engine, images_built):
    """The workload containers, running from right after the first orchestrate run."""
    started = start_workloads(docker_engine, images_built["python"])
    found = Workloads({target_name(docker_engine, c): WORKLOADS[name] for name, c in started.items()})
    found.started_at = time.time()
    yield found
    remove_workloads(docker_engine)


def base_pillar(images, config_dir):
    """The pillar a user would write for this cluster, with the locally built images."""

    def image(key):
        repo, tag = images[key].rsplit(":", 1)
        return {"image": repo, "tag": tag}

    return {
        "energy_example": {"image": images["python"]},
        "energy": {
            "control": "test-ctl",
            "roles": {
                "sensors": "L@" + ",".join(sorted(MINIONS)),
                # two mongo hosts for three CPU names: the third wraps around to the first
                "mongos": ["test-ctl", "test-node-a"],
                "formulas": ["test-ctl"],
                "influxdbs": ["test-ctl", "test-node-b"],
            },
            "config_dir": str(config_dir),
            "experiment": {"containers": 16},  # the workloads, the example app and the stack's own containers
            # a network of their own: a demo on the same engine keeps its own (energy)
            "network": {"name": TEST_NETWORK},
            # the stand-in runs with the hardened defaults (the capability, the perf_event cgroups and
            # Docker's container configs read-only, no host network) and plays the pinned release
            "sensor": dict(image("hwpc-sensor-sim"), frequency_ms=SENSOR_PERIOD_MS,
                           env={"SIM_RELEASE": SENSOR_RELEASE}),
            "mongo": dict(image("mongo"), **MONGO_PASSWORDS),
            "formula": image("smartwatts"),
            "influxdb": dict(image("influxdb"), retention="7d"),
            # published on test-ctl's address (127.0.0.11:13000), apart from a demo's; it reaches
            # the InfluxDBs by container name on the test network (one engine for every minion)
            "grafana": dict(image("grafana"), admin_password=GRAFANA_PASSWORD, port=GRAFANA_PORT),
            # a schedule re-applying the stack every minute would undo what the tests break on
            # purpose; test_heal.py turns it on for itself
            "heal": {"schedule": {"enabled": False, "seconds": 60, "splay": 0},
                     # these minions run under the test harness, which restarts them itself
                     "events": {"enabled": True, "restart_minion": False}},
        }
    }


def containers(docker_engine, all=True, **labels):  # pylint: disable=redefined-builtin
    """The containers of the test minions with these labels (``energy_cpu="X"`` is the label
    ``energy.cpu=X``): never those of a demo running on the same engine."""
    filters = {"label": [f"{k.replace('_', '.')}={v}" for k, v in labels.items()]}
    return [c for c in docker_engine.containers.list(all=all, filters=filters, ignore_removed=True)
            if c.labels.get("energy.minion") in MINIONS]


def one(docker_engine, component, cpu):
    """The one container of ``component`` for ``cpu`` on the test minions."""
    (container,) = containers(docker_engine, energy_component=component, energy_cpu=cpu)
    return container


def settled(docker_engine, quiet=20, timeout=240):
    """Wait until every container of the test stack runs and none has changed (recreated, restarted)
    for ``quiet`` seconds: what a test broke on purpose, and the reactions to it, are over. Returns
    ``{name: id}``; raises after ``timeout`` seconds."""
    deadline = time.time() + timeout
    last, since = None, time.time()
    while time.time() < deadline:
        found = containers(docker_engine)
        now = {c.name: (c.id, c.status, c.attrs["RestartCount"]) for c in found}
        if now != last:
            last, since = now, time.time()
        elif all(status == "running" for _id, status, _n in now.values()) and time.time() - since >= quiet:
            return {name: value[0] for name, value in now.items()}
        time.sleep(2)
    raise AssertionError(f"the test stack did not settle in {timeout} s: {last}")


def docker_client():
    return docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))


def remove_stack(client, minions=MINIONS):
    """Remove every container and volume the formula made for these minions (test hygiene)."""
    for minion in minions:
        for container in client.containers.list(all=True, filters={"label": f"energy.minion={minion}"}, ignore_removed=True):
            with contextlib.suppress(docker.errors.NotFound):  # the reactor or Docker removed it meanwhile
                container.remove(force=True)
        for volume in client.volumes.list():
            if volume.name.startswith(f"energy-{minion}-"):
                volume.remove(force=True)


def remove_network(client):
    """Remove the tests' stack network (every copy of it) once no container uses it."""
    for network in client.networks.list(names=[TEST_NETWORK]):
        network.reload()
        if network.name == TEST_NETWORK and not network.attrs.get("Containers"):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()


@pytest.fixture(scope="session")
def docker_engine():
    client = docker_client()
    client.ping()
    remove_stack(client)
    remove_workloads(client)
    remove_network(client)
    yield client
    remove_stack(client)
    remove_workloads(client)
    remove_network(client)
    client.close()


@pytest.fixture(scope="session")
def pillar_tree(tmp_path_factory):
    return tmp_path_factory.mktemp("pillar")


@pytest.fixture(scope="session")
def config_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("energy-config")


def write_pillar(pillar_tree, pillar):
    (pillar_tree / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["energy"]}}))
    (pillar_tree / "energy.sls").write_text(yaml.safe_dump(pillar))


# the master of the session, for pillar_changed (set by the salt_master fixture)
MASTER = {}


def handed(salt_cli):
    """What an operator does after a pillar change when no orch follows: the plan prepared again on
    the master (each minion's part of the plan carries the configuration the master validated) and
    every minion's pillar refreshed. A pillar the plan step refuses leaves the parts as they were."""
    MASTER["factory"].salt_run_cli(timeout=600).run("energy_plan.prepare")
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")


@contextlib.contextmanager
def pillar_changed(salt_cli, pillar_tree, pillar, change):
    """Run the block with `change(energy pillar)` applied on every minion, then put the pillar back."""
    changed = copy.deepcopy(pillar)
    change(changed["energy"])
    write_pillar(pillar_tree, changed)
    try:
        handed(salt_cli)
        yield
    finally:
        write_pillar(pillar_tree, pillar)
        handed(salt_cli)


@pytest.fixture(scope="session")
def pillar(images_built, pillar_tree, config_dir):
    data = base_pillar(images_built, config_dir)
    write_pillar(pillar_tree, data)
    return data


@pytest.fixture(scope="session")
def images_built():
    return built_images()


@pytest.fixture(scope="session")
def salt_master(salt_factories, pillar_tree, pillar, tmp_path_factory):
    config = {
        "file_roots": {"base": [str(formula_file_root(tmp_path_factory.mktemp("srv")))]},
        "pillar_roots": {"base": [str(pillar_tree)]},
        "open_mode": True,
        "timeout": 30,
        "file_recv": True,  # salt-run energy.backup/export: archives come back with cp.push
        "file_recv_max_size": 512,
        "ext_pillar": [{"energy_plan": {}}],  # each minion's part of the plan (_pillar/energy_plan.py)
        # no reactor: the reaction energy.orch writes to master.d starts it (test_reactor.py)
    }
    factory = salt_factories.salt_master_daemon("energy-master", overrides=config)
    with factory.started(start_timeout=120):
        MASTER["factory"] = factory
        yield factory


@pytest.fixture(scope="session")
def salt_minions(salt_master, docker_engine):
    factories = []
    for minion_id, (address, facts) in sorted(MINIONS.items()):
        factory = salt_master.salt_minion_daemon(
            minion_id, overrides={"energy_facts": dict(facts, address=address)}
        )
        factories.append(factory)
    started = []
    try:
        for factory in factories:
            factory.start(start_timeout=120)
            started.append(factory)
        yield {f.id: f for f in factories}
    finally:
        for factory in reversed(started):  # minions before their master
            factory.terminate()


@pytest.fixture(scope="session")
def salt_run_cli(salt_master):
    return salt_master.salt_run_cli(timeout=600)


@pytest.fixture(scope="session")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=300)


def state_changes(orch_ret):
    """{state id: changes} of every salt.state step of an orchestrate return, per minion."""
    changed = {}
    data = orch_ret.get("data", orch_ret)
    for _master, steps in data.items():
        if not isinstance(steps, dict):
            continue
        for step_id, step in steps.items():
            if "salt_|-" not in step_id or "_|-state" not in step_id:
                continue
            for minion, states in ((step.get("changes") or {}).get("ret") or {}).items():
                for state_id, result in (states or {}).items():
                    if result.get("changes"):
                        changed[f"{minion}: {state_id}"] = result["changes"]
    return changed


def failed_steps(orch_ret):
    """{step id: comment and failed minion states} of the steps that failed."""
    data = orch_ret.get("data", orch_ret)
    return {
        step_id: (step.get("comment"), {
            f"{minion}: {sid}": r.get("comment")
            for minion, states in ((step.get("changes") or {}).get("ret") or {}).items()
            if isinstance(states, dict)
            for sid, r in states.items() if isinstance(r, dict) and r.get("result") is False
        })
        for steps in data.values() if isinstance(steps, dict)
        for step_id, step in steps.items()
        if isinstance(step, dict) and step.get("result") is False
    }


@pytest.fixture(scope="session")
def deployment(salt_minions, salt_run_cli, docker_engine):
    """The first orchestrate run, shared by the tests that inspect its result, and when it returned."""
    ret = salt_run_cli.run("state.orchestrate", "energy.orch")
    assert ret.returncode == 0, failed_steps(ret.data) if isinstance(ret.data, dict) else ret.stdout
    return {"data": ret.data, "returned_at": time.time()}


@pytest.fixture(scope="session")
def deployed(deployment):
    return deployment["data"]


@pytest.fixture(scope="module")
def plan(deployed, salt_cli):
    """The plan as test-ctl computes it, once per test module (after what earlier modules changed)."""
    ret = salt_cli.run("energy.plan", minion_tgt="test-ctl")
    assert ret.returncode == 0, ret.stdout
    return ret.data

