"""
The ``energy_health`` execution module: the one healing pipeline of this minion.

``energy_health.check``      one container through the pipeline: the facts its verdict needs
                             (each probe runs once), the verdict (``energy_core.verdict``), its
                             record, and what the verdict says: nothing, leave it and say why, or
                             recreate it (on the stack's network), wait for it to answer and fire
                             ``energy/heal/<component>``; one job at a time per container
``energy_health.plan_part``  this minion's containers and ``energy:heal``: where healing reads the plan
``energy_health.volume_free`` free bytes of a Docker volume (a data volume's "room")

The heal schedule (``energy_heal.heal_check``), the reactor (``energy_heal.react``) and the
``energy_heal.healthy`` state all call ``check``. It writes the health records
(``<cachedir>/energy/health.json``, what ``salt-run energy.summary`` shows), and nothing else
does. It runs no ``energy`` state that calls back into it: a recreation applies
``energy_network.present`` and ``energy.container_running`` (through the state that asks, or with
the pillar this minion holds, so that it heals while the master is down: ``state.single`` would
compile the pillar on the master first).

.. code-block:: bash

    salt-call energy_health.check energy-node-a-formula formula run='{image: ...}' probe='{...}'
"""

import json
import logging
import os
import time

log = logging.getLogger(__name__)

__virtualname__ = "energy_health"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import container_lock, hardening, health, maintenance, names, sensor_faults, verdict
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)

RETRY_SECONDS = 2  # how often a check asks again while another state run holds the minion
SENSOR_CONFIG = "/etc/hwpc-sensor/config.json"  # where the sensor's container reads its config


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_health module needs the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return energy_core.virtual(__virtualname__, "the energy_health module",
                               __salt__, needs=("docker.inspect_container",))


def plan_part():
    """
    This minion's containers of the plan (name, component, run arguments, probe) and
    ``energy:heal``, as the ``energy.heal`` SLS last kept them (``<cachedir>/energy/node.json``:
    no plan, no mine), or from this minion's plan when not kept yet. Healing reads the plan here
    and nowhere else.

    CLI Example:

    .. code-block:: bash

        salt-call energy_health.plan_part
    """
    try:
        with open(os.path.join(__opts__["cachedir"], health.NODE_KEPT), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        conf = __salt__["energy.config"](secrets=True)
        return health.kept(__salt__["energy.node"](conf, secrets=True), conf["heal"])


def volume_free(volume):
    """
    Free bytes of Docker volume ``volume`` on this host (on its mount point), or None when Docker
    gives no mount point. What the health checks call "room".

    CLI Example:

    .. code-block:: bash

        salt-call energy_health.volume_free energy-ctl-influxdb-intel_xeon_gold_6130
    """
    mountpoint = __salt__["docker.inspect_volume"](volume).get("Mountpoint")
    return health.free_bytes(mountpoint) if mountpoint else None


def _inspect(name):
    try:
        return __salt__["docker.inspect_container"](name)
    except Exception:  # pylint: disable=broad-except  (saltext-dockermod raises for a missing container)
        return None


def _try(call, default=None):
    try:
        return call()
    except Exception:  # pylint: disable=broad-except  (Docker or the file system: the fact is unknown)
        return default


def _read(path, parse=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return parse(handle) if parse else handle.read()
    except (OSError, ValueError, TypeError):
        return None


def _sensor_host(spec):
    """What ``sensor_faults.fault`` reads of a sensor: the config the formula wrote for it, its
    last output, and its host's cgroups and containers."""
    config_file = next((str(b).split(":")[0] for b in spec["run"].get("binds") or [] if f":{SENSOR_CONFIG}" in str(b)),
                       None)
    config = _read(config_file, json.load) if config_file else None
    basepath = config.get("cgroup_basepath") if isinstance(config, dict) else None
    return sensor_faults.host_facts(
        config, _try(lambda: __salt__["docker.logs"](spec["name"], tail=100), ""),
        2 if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else 1, _read("/proc/mounts"),
        bool(basepath) and os.path.isdir(basepath), len(_try(lambda: __salt__["docker.ps"](), {}) or {}))


def _gather(spec, seen):
    """``gather(fact, facts)`` for ``verdict.judge``: each fact of this container from Docker, the
    maintenance file, this host, or its probe (``health.network_fact``)."""
    probe = spec.get("health") or {}

    def gather(name, _facts):
        if name == "held":
            entries = maintenance.read(maintenance.path_in(__opts__["cachedir"]), time.time())
            return maintenance.held_reason(entries, spec["name"], spec["component"], __opts__["id"])
        if name == "info":
            return _inspect(spec["name"])
        if name == "free":
            return _try(lambda: volume_free(probe["space"]["volume"]))
        if name == "image":
            return _try(lambda: bool(__salt__["docker.inspect_image"](spec["run"]["image"])), False)
        if name == "seen":
            return seen.get(verdict.fresh_key(probe["fresh"]))
        if name == "sensor":
            return _sensor_host(spec)
        return health.network_fact(name, probe)

    return gather


def _record(spec, status, reason, trigger, test):
    """Keep what was found (the one writer of the health records); a container found unhealthy
    and left as it is fires ``energy/unhealthy/<component>`` when that is news."""
    if test:
        return
    path = health.records_path(__opts__["cachedir"])
    before = health.read_records(path).get(spec["name"])
    try:
        health.record(path, {spec["name"]: ("unhealthy" if status == "left" else status, reason)}, time.time())
    except OSError as exc:  # the check's result matters more than its record
        log.warning("energy heal: cannot keep the health record of %s: %s", spec["name"], exc)
    if status == "left" and health.news(before, "unhealthy", reason):
        __salt__["event.send"](f"{health.UNHEALTHY_EVENT}/{spec['component']}", {
            "minion": __opts__.get("id"), "container": spec["name"], "component": spec["component"],
            "reason": reason, "trigger": trigger})


def _held_pillar():
    """The pillar this minion holds (as loaded at its last refresh). Salt's State compiles a
    pillar from the master when it is given an empty one: never empty here."""
    try:
        pillar = __pillar__.value()  # pylint: disable=undefined-variable
    except AttributeError:
        pillar = dict(__pillar__)  # pylint: disable=undefined-variable
    return pillar or {"energy": {}}


def _recreate(name, run, force):
    """``energy_network.present`` (the stack's network) then ``energy.container_running`` with
    ``force``, applied with the pillar this minion holds. Like ``state.single`` it does not run
    beside another state run of this minion: ``check`` waits for one to end, without the
    container's lock, before it calls this (Salt's state queue would store the job with no
    function name and break saltutil.is_running)."""
    import salt.state  # pylint: disable=import-outside-toplevel
    import salt.utils.state  # pylint: disable=import-outside-toplevel

    opts = salt.utils.state.get_sls_opts(__opts__)
    opts["test"] = False  # check says what it would do under test=True and recreates nothing
    state = salt.state.State(opts, initial_pillar=_held_pillar())
    network = hardening.stack_network(run)
    lows = ([{"state": "energy_network", "fun": "present", "__id__": network, "name": network}] if network else []) + [
        dict(run, state="energy", fun="container_running", __id__=name, name=name, force=force)]
    ret = {"result": True, "changes": {}, "comment": ""}
    for low in lows:
        errors = state.verify_data(low)
        if errors:
            return {"result": False, "changes": {}, "comment": "; ".join(errors)}
        state._mod_init(low)  # pylint: disable=protected-access
        ret = state.call(low)
        if not ret.get("result"):
            break
    return ret


def _settle(spec, created, timeout):
    """Wait up to ``timeout`` s for a recreated container to run and answer (judged with no grace
    period, so on running and answering only); returns what is still wrong, or None."""
    deadline = time.monotonic() + float(timeout)
    after = None
    while created.get("result"):
        facts, gather = {}, _gather(spec, {})

        def fact(name, facts=facts, gather=gather):
            if name not in facts:
                facts[name] = gather(name, facts)
            return facts[name]

        after = verdict.problem(spec.get("health") or {}, fact, float("inf"), time.time(),
                                     spec["component"] == "sensor")[0]
        if after is None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return after if created.get("result") else str(created.get("comment"))


def _recreated(spec, found, exists, settings, recreate):
    """Recreate the container, wait for it, fire ``energy/heal/<component>``, keep the record."""
    name, component, reason, trigger = spec["name"], spec["component"], found["reason"], settings["trigger"]
    started = time.monotonic()
    log.warning("energy heal: %s container %s is unhealthy (%s; found by %s): recreating it", component, name,
                reason, trigger)
    # docker_container.running makes the new container before it removes the old one (force:
    # even when the old one is configured as wanted): a failed creation leaves the old one there
    created = (recreate or _recreate)(name, spec["run"], exists)
    after = _settle(spec, created, settings["timeout"])
    duration = round(time.monotonic() - started, 2)
    healed = bool(created.get("result")) and after is None
    event = {"minion": __opts__.get("id"), "container": name, "component": component, "reason": reason,
             "duration": duration, "healed": healed, "trigger": trigger}
    __salt__["event.send"](f"{names.HEAL_EVENT}/{component}", event)
    _record(spec, "recreated" if healed else "unhealthy", reason if healed else str(after), trigger, False)
    if healed:
        log.warning("energy heal: %s container %s recreated and answering in %.2f s", component, name, duration)
        return {"status": "recreated", "result": True, "changes": {"recreated": event},
                "comment": f"recreated {component} container {name} because {reason}; answering after {duration} s"}
    log.error("energy heal: %s container %s still unhealthy after recreation: %s", component, name, after)
    return {"status": "recreated", "result": False, "changes": {"recreated": event},
            "comment": f"recreated {component} container {name} because {reason}, but it is still unhealthy: {after}"}


def check(name, component, run, probe=None, grace=60, timeout=60, trigger="health check", started_here=False,
          recreate=None, test=None):
    """
    One container of the stack through the healing pipeline: the facts its verdict needs (each
    probe once), the verdict, the record, and what the verdict says. Returns a state-like
    ``{"status", "result", "changes", "comment"}``: ``status`` is ``healthy``, ``held``,
    ``watched`` (this state run started it: ``energy_heal.stays_up`` watches it), ``left`` (unhealthy,
    and recreating it would not help: the comment says why and the fix), ``recreated`` or ``busy``.
    One job at a time judges and recreates a container (``energy_core.container_lock``): the heal
    schedule, a reaction and a state run that find it dead together recreate it once, the one that
    waited judging it again; ``busy`` when another job held it for ``timeout`` + ``grace`` seconds
    (or, recreating without a state, another state run of this minion went on that long).
    Under ``test`` (default: this job's ``test``) it says what it would recreate, changes nothing
    and takes no lock.
    ``recreate(name, run, force)``: how a state that calls this recreates (default: with the
    pillar this minion holds).

    CLI Example:

    .. code-block:: bash

        salt-call energy_health.check energy-node-a-sensor sensor run='{image: powerapi/hwpc-sensor:1.3.0}'
    """
    spec = {"name": name, "component": component, "run": run, "health": probe or {}}
    settings = {"grace": float(grace), "timeout": timeout, "trigger": trigger, "started_here": started_here}
    if __opts__.get("test") if test is None else test:
        return _judged(spec, settings, recreate, test=True)
    # one job at a time: the schedule's check, a reaction and a state run may find it dead together;
    # the one that waited judges it again, after the other recreated it (energy_core.container_lock)
    deadline = time.monotonic() + float(timeout) + float(grace)
    while True:
        try:
            with container_lock.held(__opts__["cachedir"], name, wait=deadline - time.monotonic()):
                ret = _judged(spec, settings, recreate, test=False)
        except container_lock.Busy as exc:
            ret = {"status": "busy", "result": False, "changes": {},
                   "comment": f"{component} container {name} left to the other job: {exc}"}
        if ret["status"] != "state run" or time.monotonic() >= deadline:
            return dict(ret, status="busy") if ret["status"] == "state run" else ret
        time.sleep(RETRY_SECONDS)  # without its lock, which that state run may be waiting for


def _judged(spec, settings, recreate, test):
    """``check``'s work (under the container's lock unless ``test``): the verdict, its record, and
    a recreation when the verdict says so."""
    name, component = spec["name"], spec["component"]
    seen = health.Seen(health.seen_path(__opts__["cachedir"]))  # a sensor's freshness across checks
    found, facts = verdict.judge(spec, _gather(spec, seen), settings["grace"], time.time(), settings["started_here"],
                                 __opts__.get("id"))
    if not test:  # test changes no file
        for key, value in (found.get("keep") or {}).items():
            seen[key] = value
    status, reason, trigger = found["status"], found["reason"], settings["trigger"]
    if status in ("healthy", "held", "watched"):
        comment = {"healthy": f"{component} container {name} is healthy",
                   "held": f"{component} container {name} left alone: {reason}", "watched": reason}[status]
        if status != "watched":
            _record(spec, status, reason, trigger, test)
        return {"status": status, "result": True, "changes": {}, "comment": comment}
    if found["action"] == "leave":
        comment = reason if found.get("image_missing") else f"{component} container {name} is unhealthy: {reason}; left as it is"
        log.error("energy heal: %s", comment)
        _record(spec, "left", reason, trigger, test)
        return {"status": "left", "result": False, "changes": {}, "comment": comment}
    if test:
        return {"status": "recreated", "result": None, "changes": {"recreate": {"reason": reason}},
                "comment": f"would recreate {component} container {name} because {reason}"}
    running = None if recreate else __salt__["state.running"]()
    if running:  # check waits for it, and judges again
        return {"status": "state run", "result": False, "changes": {},
                "comment": f"{component} container {name} left to another state run of this minion: {running}"}
    return _recreated(spec, found, facts.get("info") is not None, settings, recreate)
