"""
The ``energy_heal`` execution module: self-healing on this minion, with or without its master.

``energy_heal.heal_check``   the light health check the heal schedule runs (no state run, no mine)
``energy_heal.react``        what the master's reactor runs when a container of the plan died
``energy_heal.maintenance``  the maintenance switch: containers the formula leaves alone
``energy_heal.healthy``      one container through the healing pipeline

Each of them, and the ``energy_heal.healthy`` state, runs a container through the one healing
pipeline, ``energy_health.check``: the facts its verdict needs (each probe once), the verdict, the
record, and a recreation with the pillar the minion holds, so that the heal schedule goes on
healing while the master is away (``state.single`` would compile the pillar on the master first).

.. code-block:: bash

    salt-call energy_heal.heal_check
"""

import logging
import os
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "energy_heal"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import healing, health, maintenance as maintenance_core, names
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_heal module needs the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _fail(exc):
    raise CommandExecutionError(str(exc)) from None


def healthy(name, component, run, probe=None, grace=60, timeout=60, trigger="health check"):
    """
    One container through the healing pipeline (``energy_health.check``): healthy, held, left as
    it is (with why and the fix) or recreated. Returns ``{"status", "result", "changes", "comment"}``.

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.healthy energy-node-a-sensor sensor run='{image: powerapi/hwpc-sensor:1.7.0}'
    """
    ret = __salt__["energy_health.check"](name, component, run, probe=probe, grace=grace, timeout=timeout,
                                          trigger=trigger)
    if ret["result"] is False:
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


def react(name, action="die"):
    """
    What the master's reactor runs when the docker_events engine reports that container ``name``
    died or was removed: if it is a container of this minion's plan (``energy_health.plan_part``),
    its component is healed and event healing is on here, it goes through the healing pipeline
    (``energy_health.check``: the verdict, then a recreation that is logged and fires
    ``energy/heal/<component>``; a container in maintenance is left alone). Several events for
    one container (``docker rm -f`` sends die and destroy) give one recreation: a second job
    finds the first holding the container's lock, or the container running again. A running
    container is left alone: the event may be forged.

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.react energy-node-a-sensor die
    """
    import fcntl  # pylint: disable=import-outside-toplevel

    def skip(comment):
        log.info("energy react: %s event for %s: %s", action, name, comment)
        return {"result": True, "changes": {}, "comment": comment}

    if not os.path.exists(engine_file()):
        return skip(f"event-driven healing is off on this minion ({engine_file()} is absent)")
    # the event may be forged (Salt lets a minion send one in another's name): look first
    if _running(name):
        return skip("still running: nothing to recreate")
    part = __salt__["energy_health.plan_part"]()
    settings = part["heal"]
    if not settings["events"]["enabled"]:
        return skip("energy:heal:events:enabled is false")
    spec = next((c for c in part["containers"] if c["name"] == name), None)
    if spec is None:
        return skip("not a container of this minion's plan: left alone")
    if spec["component"] not in settings["components"]:
        return skip(f"{spec['component']} is not in energy:heal:components: left alone")
    lock_path = os.path.join(__opts__["cachedir"], "energy", f"react-{name}.lock")
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "w", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return skip("another job is recreating it already")
        ret = _check(spec, settings, f"docker {action} event")
    if ret["result"] is False:
        __context__["retcode"] = 1
    return ret


def _running(name):
    """Whether Docker runs container ``name`` now (a cheap look before any plan is read)."""
    try:
        info = __salt__["docker.inspect_container"](name)
    except Exception:  # pylint: disable=broad-except  (missing: what a destroy event reports)
        return False
    return (info.get("State") or {}).get("Status") == "running"


def _check(spec, settings, trigger):
    """One container of the plan through the healing pipeline (``energy_health.check``)."""
    return __salt__["energy_health.check"](
        spec["name"], spec["component"], spec["run"], probe=spec["health"], grace=settings["grace_seconds"],
        timeout=settings["timeout"], trigger=trigger)


def node_kept_file():
    """
    Where this minion keeps its part of the plan for ``energy_heal.heal_check`` (written by the
    ``energy.heal`` SLS, mode 0600: the formula's health check holds its MongoDB password).

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.node_kept_file
    """
    return os.path.join(__opts__["cachedir"], health.NODE_KEPT)


def volume_free(volume):
    """
    Free bytes of Docker volume ``volume`` on this host, or None when Docker gives no mount point
    (``energy_health.volume_free``: what the health checks call "room").

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.volume_free energy-ctl-influxdb-intel_xeon_gold_6130
    """
    return __salt__["energy_health.volume_free"](volume)


def heal_check(trigger="heal schedule"):
    """
    The light health check the heal schedule runs every ``energy:heal:schedule:seconds``: this
    minion's containers of the plan (``energy_health.plan_part``: as the ``energy.heal`` SLS last
    kept them, so no state run, no plan, no mine), each through the healing pipeline
    (``energy_health.check``: inspected and probed once, the verdict, its record; a container that
    fails is recreated, logged, and ``energy/heal/<component>`` fired). Containers in maintenance
    are left alone. Returns the names found healthy, held, left as they are (with why: recreating
    them would not help, or another job of this minion was recreating them) and recreated (with
    the comment).

    CLI Example:

    .. code-block:: bash

        salt-call energy_heal.heal_check
    """
    part = __salt__["energy_health.plan_part"]()
    settings = part["heal"]
    found = {"healthy": [], "held": [], "left": {}, "recreated": {}}
    for spec in part["containers"]:
        if spec["component"] not in settings["components"]:
            continue
        ret = _check(spec, settings, trigger)
        if ret["status"] in ("healthy", "held"):
            found[ret["status"]].append(spec["name"])
        elif ret["status"] in ("left", "recreated", "busy"):  # busy: left to the job that holds it
            found["left" if ret["status"] == "busy" else ret["status"]][spec["name"]] = ret["comment"]
    return found
