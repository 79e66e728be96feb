"""
The ``energy`` execution module: the deployment plan of the energy-monitoring stack
(hwpc-sensor -> MongoDB -> SmartWatts -> InfluxDB -> Grafana) from pillar and the mine, and the
minion-side commands of self-healing.

Each function gathers what only Salt has (pillar, mine, grains, Docker through
saltext-dockermod) and hands it to the pure core (``_utils/energy_core``), which decides.

.. code-block:: bash

    salt-call energy.plan
"""

import logging
import os
import sys
import time

log = logging.getLogger(__name__)

__virtualname__ = "energy"

try:  # imported from a checkout (or extmods) without Salt's loader: the core is beside this folder
    import energy_core  # noqa: F401  pylint: disable=unused-import
except ImportError:
    sys.path += [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), d) for d in ("_utils", "utils")]
try:
    import energy_core

    core = energy_core.load()
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    core = None
    CORE_ERROR = str(exc)

try:
    import docker  # noqa: F401  pylint: disable=unused-import

    HAS_DOCKER_SDK = True
except ImportError:
    HAS_DOCKER_SDK = False

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # pragma: no cover

    class CommandExecutionError(Exception):
        pass


def __virtual__():
    if core is None:
        return (False, f"the energy module needs the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    if not HAS_DOCKER_SDK:
        return (False, "the energy module needs the Docker SDK for Python (pip install docker)")
    if "docker.ps" not in __salt__:
        return (False, "the energy module needs saltext-dockermod (pip install saltext.dockermod): "
                       "Salt 3008 has no docker modules of its own")
    return __virtualname__


def _job_id():
    """The id of the job this call runs in (None outside a job), from the minion's proc file of it.
    ``salt.utils.minion.running`` is no help: with multiprocessing (the default) it leaves out the
    job of the process that asks. Under threads every job has this pid: the thread's name tells."""
    import threading  # pylint: disable=import-outside-toplevel

    import salt.payload  # pylint: disable=import-outside-toplevel

    proc = os.path.join(__opts__["cachedir"], "proc")
    try:
        names = os.listdir(proc)
    except OSError:
        return None
    pid, jids = os.getpid(), set()
    for name in names:
        try:
            with open(os.path.join(proc, name), "rb") as handle:
                data = salt.payload.loads(handle.read())
        except Exception:  # pylint: disable=broad-except  (a proc file removed or half written meanwhile)
            continue
        if isinstance(data, dict) and data.get("pid") == pid and data.get("jid"):
            jids.add(str(data["jid"]))
    if not __opts__.get("multiprocessing", True):  # every job of this minion has this pid
        thread = threading.current_thread().name
        jids = {jid for jid in jids if jid in thread}
    return jids.pop() if len(jids) == 1 else None


def _per_job(name, inputs, compute):
    """``compute()`` once per job: every SLS of a state run renders the plan."""
    return core.plan.once_per_job(__context__, f"energy.{name}", _job_id(), inputs, compute)


def _fail(exc):
    raise CommandExecutionError(str(exc)) from None


def facts():
    """
    This minion's energy facts as the mine publishes them: the ``energy`` grain and its Docker
    engine (``energy_engine.facts``), overridden by pillar ``energy:facts``, plus the ``address``
    other minions reach it on.

    CLI Example:

    .. code-block:: bash

        salt-call energy.facts
    """
    result = dict(__grains__.get("energy") or {})
    if "energy_engine.facts" in __salt__:  # which Docker engine, and whether it knows CAP_PERFMON
        result.update(__salt__["energy_engine.facts"]())
    pillar = __pillar__.get("energy")
    overrides = (pillar.get("facts") if isinstance(pillar, dict) else None) or {}
    result.update({k: v for k, v in overrides.items() if k in core.names.FACT_KEYS})
    if not result.get("address"):
        candidates = [ip for ip in (__grains__.get("fqdn_ip4") or []) + (__grains__.get("ipv4") or [])
                      if not ip.startswith("127.")]
        result["address"] = candidates[0] if candidates else "127.0.0.1"
    return result


def _defaults():
    import yaml  # pylint: disable=import-outside-toplevel

    text = __salt__["cp.get_file_str"]("salt://energy/defaults.yaml")
    if not text:
        raise CommandExecutionError("salt://energy/defaults.yaml not found: is the energy formula on the file roots?")
    return yaml.safe_load(text)["energy"]


def _masked(value, conf, secrets):
    """``value`` as it may leave the minion: secrets replaced by ``***`` unless ``secrets`` (the
    formula's own SLS files, which render in the job and return nothing of it)."""
    return value if secrets else core.schema.mask(value, core.schema.secrets(conf))


def config(defaults=None, secrets=False):
    """
    The merged configuration: ``defaults.yaml`` overridden by pillar ``energy``, validated.
    Secrets (``energy:grafana:admin_password``, ``energy:influxdb:token``/``password``,
    ``energy:mongo:*_password``) are shown as ``***`` unless ``secrets=True``.

    CLI Example:

    .. code-block:: bash

        salt-call energy.config
    """
    # __pillar__, not pillar.get: since Salt 3008 pillar.get masks values when a module calls it
    pillar = __pillar__.get("energy", {})

    def compute():
        try:
            core.schema.check_rendered(__pillar__.get("_errors"))  # a pillar file Salt could not render
            merged = core.schema.merge(defaults if defaults is not None else _defaults(), pillar)  # merge copies
            core.schema.check(merged)
        except core.schema.PlanError as exc:
            _fail(exc)
        return merged

    merged = _per_job("config", [defaults, pillar, __pillar__.get("_errors")], compute)
    return _masked(merged, merged, secrets)


def _role_facts(conf):
    """{role: {minion: facts}} from the mine (``energy_core.trust.role_facts``: the queries the
    master's ``energy.plan`` makes too). Each call is a round trip to the master."""
    return core.trust.role_facts(
        conf, lambda target: __salt__["mine.get"](target, core.names.MINE_FUNCTION, tgt_type="compound"))


def _plan(conf):
    """The plan with its secrets (for the formula's SLS files and energy.react)."""

    def compute():
        try:
            core.schema.check(conf)
            return core.plan.build(conf, _role_facts(conf))
        except core.schema.PlanError as exc:
            return _fail(exc)

    return _per_job("plan", conf, compute)


def plan(conf=None, secrets=False):
    """
    The deployment plan computed from the mine: which minion runs which containers (see
    ``energy_core.plan`` for its shape). Every node computes the same plan from the same mine data;
    it is computed once per job. Raises with a message naming the pillar key when the
    configuration or the placement is invalid. Secrets are shown as ``***`` unless ``secrets=True``.

    CLI Example:

    .. code-block:: bash

        salt-call energy.plan
    """
    conf = conf if conf is not None else config(secrets=True)
    return _masked(_plan(conf), conf, secrets)


PlanError = core.schema.PlanError if core else ValueError  # what sensor_events raises (a ValueError)


def sensor_events(cpu_facts, mode="best", extra=None):
    """
    The events of each CPU name's sensors (pure: see ``energy_core.sensor.sensor_events``).

    ``cpu_facts`` is ``{cpu_name: energy grain}``; ``mode`` ``best`` or ``common``; ``extra``
    ``{cpu_name or "*": [event, ...]}``. Returns ``{cpu_name: {"core", "rapl", "msr", "dram"}}``;
    raises PlanError (a ValueError) for an extra event a CPU lacks, or no core role in common.

    CLI Example:

    .. code-block:: bash

        salt-call energy.sensor_events '{"Xeon": {"cpu_vendor": "intel", "cpu_family": 6, "cpu_model": 85}}' common
    """
    return core.sensor.sensor_events(cpu_facts, mode, extra)


def node(conf=None, secrets=False):
    """
    This minion's part of the plan: ``{"containers": [...]}``. Raises when the pillar of this
    minion lacks a secret its containers need (the orch checks this on every minion before it
    touches a container). Secrets are shown as ``***`` unless ``secrets=True`` (what the formula's
    SLS files ask for).

    CLI Example:

    .. code-block:: bash

        salt-call energy.node
    """
    conf = conf if conf is not None else config(secrets=True)
    full_plan = _plan(conf)
    try:
        core.plan.check_secrets(conf, full_plan, __opts__["id"])
    except core.schema.PlanError as exc:
        _fail(exc)
    return _masked(core.plan.node(full_plan, __opts__["id"]), conf, secrets)


def orphans(conf=None):
    """
    The stack's containers on this minion that its part of the plan no longer has (a strategy,
    role or CPU name change moved them): ``[{"name", "component", "cpu", "data"}]``; ``data`` is
    true for a MongoDB or InfluxDB, whose volume holds measurements.

    CLI Example:

    .. code-block:: bash

        salt-call energy.orphans
    """
    conf = conf if conf is not None else config(secrets=True)
    minion = __opts__["id"]
    part = core.plan.node(_plan(conf), minion)

    def compute():
        found = __salt__["docker.ps"](all=True, filters={"label": [f"{core.names.LABEL_MINION}={minion}"]})
        return core.inventory.orphans(found, part, minion)

    # once per job: a state run asks for each component's orphans_absent
    return _per_job("orphans", part, compute)


def _space_problem(conf, node_part):
    """Why this minion lacks the room its new database volumes need (energy:experiment), or None."""
    if not conf["experiment"].get("check_space", True):
        return None
    sizes = core.sizing.estimate(conf, _plan(conf)).get(__opts__["id"], {})
    existing = {v.get("Name") for v in (__salt__["docker.volumes"]() or {}).get("Volumes") or []}
    new = {volume: size for volume, size in sizes.items() if volume not in existing}
    if not new:
        return None
    root = (__salt__["docker.info"]() or {}).get("DockerRootDir") or "/var/lib/docker"
    free = core.health.free_bytes(root)
    need = sum(new.values())
    if need <= free:
        return None
    h = core.sizing.human
    return (f"energy:experiment: {__opts__['id']} needs {h(need)} for its new database volumes "
            f"({', '.join(f'{v} {h(n)}' for v, n in sorted(new.items()))}) and {root} has {h(free)} free. Fix: a "
            "shorter energy:experiment:duration or energy:influxdb:retention, a longer energy:sensor:frequency_ms, "
            "fewer energy:experiment:containers, another energy:strategy or other database hosts, or "
            "energy:experiment:check_space: false")


def check(conf=None):
    """
    The orch's plan check, on every minion before any container is touched: this minion's part of
    the plan (as ``energy.node``, secrets masked), refused when its pillar lacks a secret its
    containers need, when the plan would leave a database container of an earlier plan behind
    (``energy:strategy_change``), or when its new database volumes would not fit
    (``energy:experiment:check_space``). ``leaving`` lists the containers this run removes.

    CLI Example:

    .. code-block:: bash

        salt-call energy.check
    """
    conf = conf if conf is not None else config(secrets=True)
    part = node(conf)
    found = orphans(conf)
    problems = [p for p in (core.inventory.orphan_problem(conf, __opts__["id"], found), _space_problem(conf, part)) if p]
    if problems:
        _fail(core.schema.PlanError("\n".join(problems)))
    return dict(part, leaving=[o["name"] for o in found])


def sizing(conf=None):
    """
    The expected size of each database volume, per host, for ``energy:experiment`` (duration,
    containers per machine, buffer), the sensor frequency and the plan, with the constants it
    uses; and the sensors per SmartWatts.

    CLI Example:

    .. code-block:: bash

        salt-call energy.sizing
    """
    conf = conf if conf is not None else config(secrets=True)
    full_plan = _plan(conf)
    sizes = core.sizing.estimate(conf, full_plan)
    return {
        "hosts": {host: {volume: core.sizing.human(size) for volume, size in sorted(volumes.items())}
                  for host, volumes in sorted(sizes.items())},
        "total": {host: core.sizing.human(sum(volumes.values())) for host, volumes in sorted(sizes.items())},
        "retention": core.sizing.retention(conf),
        "max_sensors": core.plan.max_sensors(conf),
        "experiment": dict(conf["experiment"]),
        "frequency_ms": conf["sensor"]["frequency_ms"],
        "constants": {"bytes_per_point": core.sizing.BYTES_PER_POINT, "bytes_per_report": core.sizing.BYTES_PER_REPORT,
                      "formula_reports_per_s": core.sizing.FORMULA_REPORTS_PER_S},
    }


def summary(conf=None):
    """
    Which minion runs which containers, per CPU name (a short view of ``energy.plan``).

    CLI Example:

    .. code-block:: bash

        salt-call energy.summary
    """
    conf = conf if conf is not None else config(secrets=True)
    return _masked(core.plan.summary(_plan(conf)), conf, False)


def _volume_bytes(mountpoint):
    """Disk use of a volume's files (what ``du`` counts), or None when it cannot be read."""
    if not mountpoint or not os.path.isdir(mountpoint):
        return None
    total = 0
    for root, _dirs, files in os.walk(mountpoint):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def live(topology=False):
    """
    What really runs here: every container labelled ``energy.minion=<this id>``, with its
    component, CPU name, state, last health check (``energy.healthy``), maintenance window,
    published address and port, data volume and the volume's size. With ``topology=True``, also
    the plan's topology as this minion computes it (``salt-run energy.summary`` asks one minion
    for it), or the reason it cannot.

    CLI Example:

    .. code-block:: bash

        salt '*' energy.live
    """
    minion = __opts__["id"]
    now = time.time()
    found = __salt__["docker.ps"](all=True, filters={"label": [f"{core.names.LABEL_MINION}={minion}"]})
    health = core.health.read_records(core.health.records_path(__opts__["cachedir"]))
    windows = core.maintenance.read(_maintenance_file(), now)
    containers = []
    for entry in core.inventory.containers(found):
        try:
            info = __salt__["docker.inspect_container"](entry["name"])
        except Exception:  # pylint: disable=broad-except
            continue  # removed meanwhile
        ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
        published = sorted(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}"
                           for bindings in ports.values() for b in (bindings or []))
        volume = next((m for m in info.get("Mounts") or [] if m.get("Type") == "volume"), None)
        containers.append({
            "name": entry["name"], "component": entry["component"], "cpu": entry["cpu"],
            "state": (info.get("State") or {}).get("Status"),
            "health": health.get(entry["name"]),
            "maintenance": core.maintenance.held_reason(windows, entry["name"], entry["component"], minion) or None,
            "published": published[0] if published else None,
            "volume": volume.get("Name") if volume else None,
            "volume_bytes": _volume_bytes(volume.get("Source")) if volume else None,
        })
    result = {"minion": minion, "containers": containers, "time": now}
    if topology:
        try:
            result["topology"] = core.topology.planned(_plan(config(secrets=True)))
        except Exception as exc:  # pylint: disable=broad-except
            result["topology_error"] = str(exc)[:2000]
    return result


def hostname_to_influx(conf=None):
    """
    For each monitored minion: the InfluxDB holding its containers' power, from the mine.

    Returns ``{minion: {"url", "database", "cpu", "measurement", "sensor"}}``; a container's
    power is ``SELECT power FROM power_consumption WHERE sensor = '<minion>' AND
    target = '<container name>' AND scope = 'cpu'``. Jinja helper: ``energy/influx.jinja``.

    CLI Example:

    .. code-block:: bash

        salt-call energy.hostname_to_influx
    """
    return core.plan.influx_by_minion(plan(conf))


def deployed(conf=None):
    """
    What the energy formula has deployed on this minion, in removal order: the containers labelled
    ``energy.minion=<this id>``, the data volumes and the files it wrote (sensor config, Grafana
    provisioning).

    CLI Example:

    .. code-block:: bash

        salt-call energy.deployed
    """
    import glob  # pylint: disable=import-outside-toplevel

    conf = conf if conf is not None else config()
    minion = __opts__["id"]
    found = __salt__["docker.ps"](all=True, filters={"label": [f"{core.names.LABEL_MINION}={minion}"]})
    volumes = [v.get("Name", "") for v in (__salt__["docker.volumes"]() or {}).get("Volumes") or []]
    files = glob.glob(core.names.sensor_config_file(conf["config_dir"], minion))
    files += glob.glob(core.names.grafana_dir(conf["config_dir"], minion))
    return {"containers": core.inventory.containers(found), "volumes": core.inventory.volumes(minion, volumes),
            "config_files": sorted(files)}


# --------------------------------------------------------------------------- self-healing


def engine_file():
    """
    Where this minion's docker_events engine config lives: ``minion.d/energy-events.conf`` next to
    its config file.

    CLI Example:

    .. code-block:: bash

        salt-call energy.engine_file
    """
    return os.path.join(os.path.dirname(__opts__["conf_file"]), "minion.d", core.healing.ENGINE_FILE)


def engine_loaded():
    """
    True when the running salt-minion started the formula's docker_events engine.

    CLI Example:

    .. code-block:: bash

        salt '*' energy.engine_loaded
    """
    return any(core.healing.engine_name(e) == core.names.ENGINE_NAME for e in __opts__.get("engines") or [])


def _maintenance_file():
    return core.maintenance.path_in(__opts__["cachedir"])


def held(name, component):
    """
    Why the formula leaves container ``name`` alone (a maintenance window), or ''.

    CLI Example:

    .. code-block:: bash

        salt-call energy.held energy-node-a-sensor sensor
    """
    entries = core.maintenance.read(_maintenance_file(), time.time())
    return core.maintenance.held_reason(entries, name, component, __opts__["id"])


def maintenance(action="status", what="all", reason="", hours=None):
    """
    The maintenance switch: while it is on, nothing of the formula touches the containers it
    covers (the reactor, the heal schedule, energy.heal and the component states leave them as
    they are, and say so), so a deliberate ``docker stop`` stays stopped.

    action
        ``on``, ``off`` or ``status`` (the default).
    what
        ``all`` (the default), a component (``sensor``, ``mongo``, ``formula``, ``influxdb``,
        ``grafana``) or a container name. ``off all`` ends every window on this minion.
    reason
        Shown in every run that leaves a container alone, and in the event.
    hours
        End the window by itself after this many hours (default: until ``off``).

    Fires ``energy/maintenance/on`` or ``energy/maintenance/off``.

    CLI Example:

    .. code-block:: bash

        salt node-a energy.maintenance on formula reason="moving the disk" hours=2
        salt node-a energy.maintenance off formula
        salt '*' energy.maintenance
    """
    now = time.time()
    entries = core.maintenance.read(_maintenance_file(), now)
    if str(action).lower() == "status":
        return entries
    try:
        action, entries, ended = core.maintenance.change(entries, action, what, reason, hours, now)
    except ValueError as exc:
        _fail(exc)
    core.maintenance.write(_maintenance_file(), entries)
    log.warning("energy maintenance %s for %s on %s%s", action, what, __opts__["id"], f" ({reason})" if reason else "")
    __salt__["event.send"](f"{core.names.MAINTENANCE_EVENT}/{action}",
                           {"minion": __opts__["id"], "what": str(what), "reason": str(reason or ""), "ended": ended})
    return entries


REACT_RETRY_SECONDS = 2


def react(name, action="die"):
    """
    What the master's reactor runs when the docker_events engine reports that container ``name``
    died or was removed: if it is a container of this minion's plan, not in maintenance, and event
    healing is on here, recreate it with ``energy.healthy`` (which logs it and fires
    ``energy/heal/<component>``). Several events for one container (``docker rm -f`` sends die and
    destroy) give one recreation: a second job finds the first holding the container's lock, or
    the container running again. A running container is left alone: the event may be forged.

    CLI Example:

    .. code-block:: bash

        salt-call energy.react energy-node-a-sensor die
    """
    import fcntl  # pylint: disable=import-outside-toplevel

    import salt.utils.state  # pylint: disable=import-outside-toplevel

    def skip(comment):
        log.info("energy react: %s event for %s: %s", action, name, comment)
        return {"result": True, "changes": {}, "comment": comment}

    if not os.path.exists(engine_file()):
        return skip(f"event-driven healing is off on this minion ({engine_file()} is absent)")
    # the event may be forged (Salt lets a minion send one in another's name): look first
    if _running(name):
        return skip("still running: nothing to recreate")
    conf = config(secrets=True)
    if not conf["heal"]["events"]["enabled"]:
        return skip("energy:heal:events:enabled is false")
    spec = next((c for c in node(conf, secrets=True)["containers"] if c["name"] == name), None)
    if spec is None:
        return skip("not a container of this minion's plan: left alone")
    if spec["component"] not in conf["heal"]["components"]:
        return skip(f"{spec['component']} is not in energy:heal:components: left alone")
    reason = held(name, spec["component"])
    if reason:
        return skip(f"left alone: {reason}")
    lock_path = os.path.join(__opts__["cachedir"], "energy", f"react-{name}.lock")
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "w", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return skip("another job is recreating it already")
        ret = _recreate(spec, conf["heal"], f"docker {action} event")
    if not salt.utils.state.check_result(ret):
        __context__["retcode"] = 1
    return ret


def _running(name):
    """Whether Docker runs container ``name`` now (a cheap look before any plan is computed)."""
    try:
        info = __salt__["docker.inspect_container"](name)
    except Exception:  # pylint: disable=broad-except  (missing: what a destroy event reports)
        return False
    return (info.get("State") or {}).get("Status") == "running"


def _recreate(spec, settings, trigger):
    """``energy.healthy`` on one container of the plan (it diagnoses again, recreates, logs and
    fires energy/heal/<component>) through ``energy_heal.healthy``: with the pillar this minion
    holds, so that it heals while the master is down (``state.single`` asks the master for it).
    Not Salt's state queue (it would store the job with no function name and break
    saltutil.is_running): a running state run is waited for here instead, for as long as a
    recreation may take."""
    deadline = time.monotonic() + float(settings["timeout"]) + float(settings["grace_seconds"])
    while True:
        ret = __salt__["energy_heal.healthy"](
            spec["name"], component=spec["component"], run=spec["run"], probe=spec["health"],
            grace=settings["grace_seconds"], timeout=settings["timeout"], trigger=trigger)
        if not isinstance(ret, list) or time.monotonic() >= deadline:
            return ret  # ran, or another state run held the minion until the deadline (ret says so)
        time.sleep(REACT_RETRY_SECONDS)


NODE_KEPT = "energy/node.json"


def empty_dir(path):
    """
    True when ``path`` is an empty directory. A container whose bind-mounted file is missing when
    Docker starts it (a config file removed under a stopped sensor, then a restart) gets a
    directory made at that path, and ``file.serialize`` then reports success without writing
    the file. The SLS files remove such a directory before they write the file.

    CLI Example:

    .. code-block:: bash

        salt-call energy.empty_dir /etc/energy/energy-node-a-sensor.json
    """
    try:
        return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
    except OSError:
        return False


def node_kept_file():
    """
    Where this minion keeps its part of the plan for ``energy.heal_check`` (written by the
    ``energy.heal`` SLS, mode 0600: the formula's health check holds its MongoDB password).

    CLI Example:

    .. code-block:: bash

        salt-call energy.node_kept_file
    """
    return os.path.join(__opts__["cachedir"], NODE_KEPT)


def volume_free(volume):
    """
    Free bytes of Docker volume ``volume`` on this host (on its mount point), or None when Docker
    gives no mount point. What the health checks call "room" (``energy.healthy``, ``energy.heal_check``).

    CLI Example:

    .. code-block:: bash

        salt-call energy.volume_free energy-ctl-influxdb-intel_xeon_gold_6130
    """
    mountpoint = __salt__["docker.inspect_volume"](volume).get("Mountpoint")
    return core.health.free_bytes(mountpoint) if mountpoint else None


def heal_check(trigger="heal schedule"):
    """
    The light health check the heal schedule runs every ``energy:heal:schedule:seconds``: this
    minion's containers of the plan (as the ``energy.heal`` SLS last kept them: no state run, no
    plan, no mine), each inspected and probed as ``energy.healthy`` does; only a container that
    fails its check goes through ``energy.healthy``, which recreates it, logs it and fires
    ``energy/heal/<component>``. Containers in maintenance are left alone. Returns the names
    found healthy, held, left as they are (with why) and recreated (with the comment).

    CLI Example:

    .. code-block:: bash

        salt-call energy.heal_check
    """
    import json  # pylint: disable=import-outside-toplevel

    try:
        with open(node_kept_file(), encoding="utf-8") as handle:
            kept = json.load(handle)
    except (OSError, ValueError):
        conf = config(secrets=True)  # not kept yet (the energy.heal SLS keeps it): from the plan
        kept = core.health.kept(node(conf, secrets=True), conf["heal"])
    settings = kept["heal"]
    checked, seen = {}, core.health.Seen(core.health.seen_path(__opts__["cachedir"]))  # freshness across checks
    found = {"healthy": [], "held": [], "left": {}, "recreated": {}}
    for spec in kept["containers"]:
        name = spec["name"]
        if spec["component"] not in settings["components"]:
            continue
        reason = held(name, spec["component"])
        if reason:
            checked[name] = ("held", reason)
            found["held"].append(name)
            continue
        try:
            info = __salt__["docker.inspect_container"](name)
        except Exception:  # pylint: disable=broad-except
            info = None  # saltext-dockermod raises for a missing container
        reason = core.health.diagnose(info, spec["health"], settings["grace_seconds"], volume_free, seen)
        if reason is None:
            checked[name] = ("healthy", "")
            found["healthy"].append(name)
        elif reason.startswith(core.health.LEFT_AS_IS):
            checked[name] = ("unhealthy", reason)
            log.error("energy heal: %s container %s is unhealthy: %s; left as it is", spec["component"], name, reason)
            found["left"][name] = reason
        else:  # energy.healthy keeps its own record of what it did
            ret = _recreate(spec, settings, trigger)
            found["recreated"][name] = "; ".join(
                str(r.get("comment")) for r in (ret.values() if isinstance(ret, dict) else [])) or str(ret)
    if checked:
        core.health.record(core.health.records_path(__opts__["cachedir"]), checked, time.time())
    return found


# --------------------------------------------------------------------------- backup, restore, export
# What salt-run energy.backup, energy.restore and energy.export ask of the minion that runs an
# InfluxDB of the plan. Archives travel with Salt itself: cp.push to the master (file_recv), and
# cp.recv_chunked to the minion (what salt-cp --chunked does).

TRANSFER_DIR = "energy/transfer"


def _transfer_dir():
    path = os.path.join(__opts__["cachedir"], TRANSFER_DIR)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _influx_holding(database):
    """This minion's InfluxDB container of the plan that holds ``database``, and its inspection."""
    conf = config(secrets=True)
    if conf["influxdb"]["version"] != 1:
        _fail(core.archive.ArchiveError(
            "energy:influxdb:version: bad value 2: energy.backup, energy.restore and energy.export read InfluxDB 1.x "
            "(influxd backup -portable, InfluxQL). Fix: with InfluxDB 2 use the influx CLI in the container "
            "(influx backup / influx restore, with the admin token)"))
    for container in core.plan.node(_plan(conf), __opts__["id"])["containers"]:
        if container["component"] == "influxdb" and database in [d["name"] for d in container["databases"]]:
            try:
                info = __salt__["docker.inspect_container"](container["name"])
            except Exception:  # pylint: disable=broad-except
                info = None
            if not info or not (info.get("State") or {}).get("Running"):
                _fail(core.archive.ArchiveError(
                    f"InfluxDB container {container['name']} on {__opts__['id']} is not running. Fix: salt-run "
                    "state.orchestrate energy.orch (or end its maintenance window), then try again"))
            return container, info
    _fail(core.archive.ArchiveError(f"database {database!r}: no InfluxDB of the plan on {__opts__['id']} holds it. "
                                    "Fix: a database of the current plan (salt-run energy.summary shows them)"))
    return None, None  # unreachable


def _data_dir(info):
    """Where the InfluxDB container's /var/lib/influxdb is on this host."""
    mount = next((m for m in info.get("Mounts") or [] if m.get("Destination") == "/var/lib/influxdb"), None)
    if not mount or not mount.get("Source"):
        _fail(core.archive.ArchiveError(f"InfluxDB container {info.get('Name')} has no volume on /var/lib/influxdb"))
    return mount["Source"]


def _bind_address(info):
    """``influxd backup/restore -host``: the RPC address the server listens on (INFLUXDB_BIND_ADDRESS
    of the container, else InfluxDB's default 127.0.0.1:8088, inside the container)."""
    for item in (info.get("Config") or {}).get("Env") or []:
        if item.startswith("INFLUXDB_BIND_ADDRESS="):
            address = item.split("=", 1)[1]
            return ("127.0.0.1" + address) if address.startswith(":") else address
    return "127.0.0.1:8088"


def _exec(name, argv, timeout=3600):
    """Run ``argv`` (a list, no shell) in container ``name``; ``(exit code, output)``."""
    import docker as docker_sdk  # pylint: disable=import-outside-toplevel

    client = docker_sdk.from_env(timeout=timeout)
    try:
        result = client.containers.get(name).exec_run(argv)
    finally:
        client.close()
    return result.exit_code, (result.output or b"").decode(errors="replace")[-4000:]


def _push(path, upload):
    """Send ``path`` to the master (``cp.push``; the master keeps it under its cachedir) and remove it."""
    if not __salt__["cp.push"](path, upload_path=upload, remove_source=True):
        _fail(core.archive.ArchiveError(
            f"cp.push of {os.path.basename(path)} ({os.path.getsize(path)} bytes) to the master failed: the master "
            "needs file_recv: True and a file_recv_max_size (MB) above the archive's size"))


def backup_influxdb(database, since=None, until=None, upload=None, job=None):
    """
    A consistent backup of ``database`` taken on its live InfluxDB (``influxd backup -portable`` in
    the container, ``-start``/``-end`` from ``since``/``until`` in nanoseconds), packed as one
    .tar.gz and pushed to the master under ``upload`` (``cp.push``). Returns its size, SHA-256,
    points per measurement, first and last point and the seconds it took. What
    ``salt-run energy.backup`` runs on each InfluxDB host.

    CLI Example:

    .. code-block:: bash

        salt ctl energy.backup_influxdb power_intel_xeon upload=energy-backup/x/power.tar.gz
    """
    import shutil  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    container, info = _influx_holding(database)
    data_dir = _data_dir(info)
    stamp = core.names.safe_minion(str(job or int(time.time())))
    where = core.archive.time_filter(since, until)
    points = core.influx.counts(container["url"], database, where)
    need = _volume_bytes(os.path.join(data_dir, "data", database)) or 0
    for place, free in ((f"the volume of {container['name']}", core.health.free_bytes(data_dir)),
                        (f"{__opts__['cachedir']} on {__opts__['id']}", core.health.free_bytes(_transfer_dir()))):
        if free < need + 16 * 2**20:
            _fail(core.archive.ArchiveError(
                f"no space for the backup of {database}: it needs about {core.topology.human(need)} on {place}, which "
                f"has {core.topology.human(free)} free. Fix: free space there, or back up a shorter range "
                "(since=/until=)"))
    inside = f"energy-backup-{stamp}"
    argv = ["influxd", "backup", "-portable", "-host", _bind_address(info), "-database", database]
    if since is not None:
        argv += ["-start", core.archive.rfc3339(since)]
    if until is not None:
        argv += ["-end", core.archive.rfc3339(until)]
    target = os.path.join(data_dir, inside)
    archive = os.path.join(_transfer_dir(), f"{inside}-{database}.tar.gz")
    try:
        code, output = _exec(container["name"], argv + [f"/var/lib/influxdb/{inside}"])
        if code != 0:
            _fail(core.archive.ArchiveError(f"influxd backup of {database} in {container['name']} failed "
                                            f"(exit {code}): {output.strip()[-1500:]}"))
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(target, arcname="backup")
    finally:
        shutil.rmtree(target, ignore_errors=True)
    size, digest = os.path.getsize(archive), core.archive.sha256_of(archive)
    edges = {}
    if points.get(core.archive.MEASUREMENT):
        for func in ("FIRST", "LAST"):  # asked together, both would answer the range's start
            one = core.influx.query(container["url"], f'SELECT {func}("power") FROM "{core.archive.MEASUREMENT}"{where}',
                                    db=database, epoch="ns")
            edges[func] = ((one.get("series") or [{}])[0].get("values") or [[None]])[0][0]
    first, last = edges.get("FIRST"), edges.get("LAST")
    if upload:
        _push(archive, upload)
    return {"database": database, "container": container["name"], "size": size, "sha256": digest,
            "points": points, "first": core.archive.rfc3339(first) if first else None,
            "last": core.archive.rfc3339(last) if last else None, "seconds": round(time.monotonic() - started, 2)}


def _safe_extract(tar, dest):
    for member in tar.getmembers():
        path = os.path.realpath(os.path.join(dest, member.name))
        if not path.startswith(os.path.realpath(dest) + os.sep) or not (member.isfile() or member.isdir()):
            _fail(core.archive.ArchiveError(f"archive member {member.name!r} is not a plain file under the archive"))
    tar.extractall(dest)  # nosec: every member checked above


def _restored(url, database, expected, wait):
    """Points per measurement of ``database``, a copy ``influxd restore`` just made, once InfluxDB
    shows them: it opens the restored shards in the background, and asked at once it answers with
    fewer points, none or "shard is disabled" for a few seconds. With ``expected`` (points per
    measurement, from the backup's manifest), waits until each is there, at most ``wait`` s, then
    fails naming what is missing; without, until two answers a second apart agree."""
    deadline = time.monotonic() + wait
    previous, found, error = None, None, None
    while True:
        try:
            found, error = core.influx.counts(url, database), None
        except (RuntimeError, OSError, ValueError) as exc:  # "shard is disabled", or busy opening them
            found, error = None, str(exc)
        if found is not None:
            if expected and not core.archive.shortfall(expected, found):
                return found
            if not expected and found and found == previous:
                return found
            previous = found
        if time.monotonic() >= deadline:
            if not expected and found is not None:
                return found
            missing = "; ".join(f"{name}: {have} of {want}"
                                for name, (have, want) in core.archive.shortfall(expected, found or {}).items())
            _fail(core.archive.ArchiveError(
                f"the restored copy {database} does not show the backup's points after {wait} s "
                f"({error or missing}); nothing was copied into the database. Fix: check the InfluxDB "
                "container's log and free space, then run the restore again"))
        time.sleep(1)


def restore_influxdb(archive, database, sha256, source_database=None, job=None, points=None, wait=120):
    """
    Restore the backup ``archive`` (a file under this minion's cachedir/energy/transfer, put there
    by ``salt-run energy.restore``; checked against ``sha256``) into ``database`` of this minion's
    InfluxDB: ``influxd restore -portable`` into a temporary database (InfluxDB refuses to restore
    over an existing one), then ``SELECT * INTO ... GROUP BY *`` per retention policy, then the
    temporary database is dropped. A point already there (same series, same time) is overwritten
    by the same point: no duplicates. ``points`` (points per measurement, from the backup's
    manifest): the copy waits, at most ``wait`` s, until the temporary database shows them, and
    the restore fails when fewer are written. Returns points per measurement copied and the
    seconds taken.

    CLI Example:

    .. code-block:: bash

        salt ctl energy.restore_influxdb /var/cache/salt/minion/energy/transfer/x.tar.gz power_intel_xeon <sha256>
    """
    import shutil  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    transfer = os.path.realpath(_transfer_dir())
    archive = os.path.realpath(str(archive))
    if not archive.startswith(transfer + os.sep) or not os.path.isfile(archive):
        _fail(core.archive.ArchiveError(f"archive {archive!r} is not a file under {transfer}"))
    try:
        if core.archive.sha256_of(archive) != sha256:
            _fail(core.archive.ArchiveError(f"archive {os.path.basename(archive)} arrived damaged (SHA-256 differs)"))
        container, info = _influx_holding(database)
        data_dir = _data_dir(info)
        stamp = core.names.safe_minion(str(job or int(time.time())))
        inside = f"energy-restore-{stamp}"
        target = os.path.join(data_dir, inside)
        temporary = f"{database}_restore_{stamp}"[:200]
        url = container["url"]
        try:
            os.makedirs(target, mode=0o700, exist_ok=True)
            with tarfile.open(archive, "r:gz") as tar:
                _safe_extract(tar, target)
            argv = ["influxd", "restore", "-portable", "-host", _bind_address(info),
                    "-db", source_database or database, "-newdb", temporary, f"/var/lib/influxdb/{inside}/backup"]
            code, output = _exec(container["name"], argv)
            if code != 0:
                _fail(core.archive.ArchiveError(f"influxd restore into {container['name']} failed (exit {code}): "
                                                f"{output.strip()[-1500:]}"))
            expected = core.archive.points_of(points)
            if points is None or expected:  # a manifest that counts no point has nothing to wait for
                _restored(url, temporary, expected, float(wait))
            into = core.influx.default_policy(url, database) or "autogen"
            copied = {}
            for row in (core.influx.query(url, f'SHOW RETENTION POLICIES ON "{temporary}"').get("series")
                        or [{}])[0].get("values") or []:
                result = core.influx.query(
                    url, f'SELECT * INTO "{database}"."{into}".:MEASUREMENT FROM "{temporary}"."{row[0]}"./.*/ GROUP BY *',
                    method="POST", timeout=3600)
                for series in result.get("series") or []:
                    for values in series.get("values") or []:
                        copied["written"] = copied.get("written", 0) + int(values[-1] or 0)
            if copied.get("written", 0) < sum(expected.values()):
                _fail(core.archive.ArchiveError(
                    f"restore of {database} on {__opts__['id']}: {copied.get('written', 0)} points written, the backup "
                    f"holds {sum(expected.values())}. Fix: run the restore again (a point already there is "
                    "overwritten, not doubled)"))
        finally:
            try:
                core.influx.query(url, f'DROP DATABASE "{temporary}"', method="POST")
            except (OSError, RuntimeError) as exc:
                log.warning("energy restore: cannot drop the temporary database %s: %s", temporary, exc)
            shutil.rmtree(target, ignore_errors=True)
    finally:
        os.remove(archive)
    return {"database": database, "container": container["name"], "written": copied.get("written", 0),
            "points": core.influx.counts(url, database), "seconds": round(time.monotonic() - started, 2)}


def export_influxdb(database, cpu, since=None, until=None, fmt="csv", upload=None, job=None):
    """
    Power per container of ``database`` over ``[since, until)`` (nanoseconds), as CSV rows
    (``time,minion,cpu,container,scope,watts``, the sockets of one time summed; no header) or as
    InfluxDB line protocol of the raw points, written gzip-compressed while InfluxDB streams its
    answer in chunks, then pushed to the master under ``upload``. Returns rows and bytes.

    CLI Example:

    .. code-block:: bash

        salt ctl energy.export_influxdb power_intel_xeon "Intel Xeon" fmt=csv upload=energy-export/x.csv.gz
    """
    import csv  # pylint: disable=import-outside-toplevel
    import gzip  # pylint: disable=import-outside-toplevel

    if fmt not in core.archive.FORMATS:
        _fail(core.archive.ArchiveError(f"format: bad value {fmt!r}: one of {', '.join(core.archive.FORMATS)}"))
    started = time.monotonic()
    container, _info = _influx_holding(database)
    url = container["url"]
    where = core.archive.time_filter(since, until)
    stamp = core.names.safe_minion(str(job or int(time.time())))
    path = os.path.join(_transfer_dir(), f"energy-export-{stamp}-{database}.{fmt}.gz")
    rows = 0
    with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            rows_of = core.archive.CsvRows(cpu)
            statement = (f'SELECT "power" FROM "{core.archive.MEASUREMENT}"{where} '
                         'GROUP BY "sensor","target","scope"')
            for series in core.influx.stream(url, statement, db=database, epoch="ns"):
                for row in rows_of.feed(series):
                    writer.writerow(row)
                    rows += 1
            for row in rows_of.flush():
                writer.writerow(row)
                rows += 1
        else:
            keys = core.influx.query(url, f'SHOW FIELD KEYS FROM "{core.archive.MEASUREMENT}"', db=database)
            types = {r[0]: r[1] for s in keys.get("series") or [] for r in s.get("values") or []}
            statement = f'SELECT * FROM "{core.archive.MEASUREMENT}"{where} GROUP BY *'
            for series in core.influx.stream(url, statement, db=database, epoch="ns"):
                for line in core.archive.line_protocol(series, types):
                    out.write(line + "\n")
                    rows += 1
    size = os.path.getsize(path)
    if upload:
        _push(path, upload)
    else:
        os.remove(path)
    return {"database": database, "rows": rows, "bytes": size, "seconds": round(time.monotonic() - started, 2)}
