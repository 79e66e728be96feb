"""
The ``energy_heal`` execution module: self-healing on this minion, with or without its master.

``energy_heal.heal_check``   the light health check the heal schedule runs (no state run, no mine)
``energy_heal.react``        what the master's reactor runs when a container of the plan died
``energy_heal.maintenance``  the maintenance switch: containers the formula leaves alone
``energy_heal.healthy``      the ``energy_heal.healthy`` state on one container, with the pillar
                             this minion holds

``energy_heal.heal_check`` (the heal schedule) and ``energy_heal.react`` (the reactor) recreate an
unhealthy container through the ``energy_heal.healthy`` state. ``state.single`` would compile this
minion's pillar on the master before it runs the state: with the master down, a container that
died would stay dead until the master came back (the job waits for the master, then fails). The
state needs no pillar (its arguments are the kept plan), so ``energy_heal.healthy`` runs it with the
pillar the minion holds, and the heal schedule goes on healing while the master is away.

.. code-block:: bash

    salt-call energy_heal.healthy energy-node-a-sensor sensor run='{image: ...}'
"""

import logging
import os
import time

log = logging.getLogger(__name__)

__virtualname__ = "energy_heal"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import healing, health, maintenance as maintenance_core, names
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # pragma: no cover

    class CommandExecutionError(Exception):
        pass


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_heal module needs the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _fail(exc):
    raise CommandExecutionError(str(exc)) from None


def _held_pillar():
    """The pillar this minion holds (as loaded at its last refresh). Salt's State compiles a
    pillar from the master when it is given an empty one: never empty here."""
    try:
        pillar = __pillar__.value()  # pylint: disable=undefined-variable
    except AttributeError:
        pillar = dict(__pillar__)  # pylint: disable=undefined-variable
    return pillar or {"energy": {}}


def healthy(name, component, run, probe=None, grace=60, timeout=60, trigger="health check"):
    """
    Apply the ``energy_heal.healthy`` state to one container, as ``state.single energy_heal.healthy`` does,
    but without asking the master for the pillar. Like ``state.single``, it refuses to run beside
    another state run of this minion, and returns that run's description (a list) instead.

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.healthy energy-node-a-sensor sensor run='{image: powerapi/hwpc-sensor:1.4.0}'
    """
    import salt.state  # pylint: disable=import-outside-toplevel
    import salt.utils.state  # pylint: disable=import-outside-toplevel

    conflict = __salt__["state.running"]()
    if conflict:
        __context__["retcode"] = 1
        return conflict
    low = {"state": "energy_heal", "fun": "healthy", "__id__": name, "name": name, "component": component, "run": run,
           "probe": probe, "grace": grace, "timeout": timeout, "trigger": trigger}
    opts = salt.utils.state.get_sls_opts(__opts__)
    opts["test"] = bool(__opts__.get("test"))
    state = salt.state.State(opts, initial_pillar=_held_pillar())
    errors = state.verify_data(low)
    if errors:
        __context__["retcode"] = 1
        return errors
    state._mod_init(low)  # pylint: disable=protected-access
    ret = {f"energy_heal_|-{name}_|-{name}_|-healthy": state.call(low)}
    if not salt.utils.state.check_result(ret):
        __context__["retcode"] = 1
    return ret


def engine_file():
    """
    Where this minion's docker_events engine config lives: ``minion.d/energy-events.conf`` next to
    its config file.

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.engine_file
    """
    return os.path.join(os.path.dirname(__opts__["conf_file"]), "minion.d", healing.ENGINE_FILE)


def engine_loaded():
    """
    True when the running salt-minion started the formula's docker_events engine.

    CLI Example:

    .. code-block:: bash

        salt '*' energy_heal.engine_loaded
    """
    return any(healing.engine_name(e) == names.ENGINE_NAME for e in __opts__.get("engines") or [])


def _maintenance_file():
    return maintenance_core.path_in(__opts__["cachedir"])


def held(name, component):
    """
    Why the formula leaves container ``name`` alone (a maintenance window), or ''.

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.held energy-node-a-sensor sensor
    """
    entries = maintenance_core.read(_maintenance_file(), time.time())
    return maintenance_core.held_reason(entries, name, component, __opts__["id"])


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

        salt node-a energy_heal.maintenance on formula reason="moving the disk" hours=2
        salt node-a energy_heal.maintenance off formula
        salt '*' energy_heal.maintenance
    """
    now = time.time()
    entries = maintenance_core.read(_maintenance_file(), now)
    if str(action).lower() == "status":
        return entries
    try:
        action, entries, ended = maintenance_core.change(entries, action, what, reason, hours, now)
    except ValueError as exc:
        _fail(exc)
    maintenance_core.write(_maintenance_file(), entries)
    log.warning("energy maintenance %s for %s on %s%s", action, what, __opts__["id"], f" ({reason})" if reason else "")
    __salt__["event.send"](f"{names.MAINTENANCE_EVENT}/{action}",
                           {"minion": __opts__["id"], "what": str(what), "reason": str(reason or ""), "ended": ended})
    return entries


REACT_RETRY_SECONDS = 2


def react(name, action="die"):
    """
    What the master's reactor runs when the docker_events engine reports that container ``name``
    died or was removed: if it is a container of this minion's plan, not in maintenance, and event
    healing is on here, recreate it with ``energy_heal.healthy`` (which logs it and fires
    ``energy/heal/<component>``). Several events for one container (``docker rm -f`` sends die and
    destroy) give one recreation: a second job finds the first holding the container's lock, or
    the container running again. A running container is left alone: the event may be forged.

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.react energy-node-a-sensor die
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
    conf = __salt__["energy.config"](secrets=True)
    if not conf["heal"]["events"]["enabled"]:
        return skip("energy:heal:events:enabled is false")
    spec = next((c for c in __salt__["energy.node"](conf, secrets=True)["containers"] if c["name"] == name), None)
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
    """``energy_heal.healthy`` on one container of the plan (it diagnoses again, recreates, logs and
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


def node_kept_file():
    """
    Where this minion keeps its part of the plan for ``energy_heal.heal_check`` (written by the
    ``energy.heal`` SLS, mode 0600: the formula's health check holds its MongoDB password).

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.node_kept_file
    """
    return os.path.join(__opts__["cachedir"], NODE_KEPT)


def volume_free(volume):
    """
    Free bytes of Docker volume ``volume`` on this host (on its mount point), or None when Docker
    gives no mount point. What the health checks call "room" (``energy_heal.healthy``, ``energy_heal.heal_check``).

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.volume_free energy-ctl-influxdb-intel_xeon_gold_6130
    """
    mountpoint = __salt__["docker.inspect_volume"](volume).get("Mountpoint")
    return health.free_bytes(mountpoint) if mountpoint else None


def heal_check(trigger="heal schedule"):
    """
    The light health check the heal schedule runs every ``energy:heal:schedule:seconds``: this
    minion's containers of the plan (as the ``energy.heal`` SLS last kept them: no state run, no
    plan, no mine), each inspected and probed as ``energy_heal.healthy`` does; only a container that
    fails its check goes through ``energy_heal.healthy``, which recreates it, logs it and fires
    ``energy/heal/<component>``. Containers in maintenance are left alone. Returns the names
    found healthy, held, left as they are (with why) and recreated (with the comment).

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.heal_check
    """
    import json  # pylint: disable=import-outside-toplevel

    try:
        with open(node_kept_file(), encoding="utf-8") as handle:
            kept = json.load(handle)
    except (OSError, ValueError):
        conf = __salt__["energy.config"](secrets=True)  # not kept yet (the energy.heal SLS keeps it): from the plan
        kept = health.kept(__salt__["energy.node"](conf, secrets=True), conf["heal"])
    settings = kept["heal"]
    checked, seen = {}, health.Seen(health.seen_path(__opts__["cachedir"]))  # freshness across checks
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
        reason = health.diagnose(info, spec["health"], settings["grace_seconds"], volume_free, seen)
        if reason is None:
            checked[name] = ("healthy", "")
            found["healthy"].append(name)
        elif reason.startswith(health.LEFT_AS_IS):
            checked[name] = ("unhealthy", reason)
            log.error("energy heal: %s container %s is unhealthy: %s; left as it is", spec["component"], name, reason)
            found["left"][name] = reason
        else:  # energy_heal.healthy keeps its own record of what it did
            ret = _recreate(spec, settings, trigger)
            found["recreated"][name] = "; ".join(
                str(r.get("comment")) for r in (ret.values() if isinstance(ret, dict) else [])) or str(ret)
    if checked:
        health.record(health.records_path(__opts__["cachedir"]), checked, time.time())
    return found
