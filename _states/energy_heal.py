"""
States of the energy formula's self-healing:

``energy_heal.healthy``        a container that runs and answers, recreated when it does not
``energy_heal.node_kept``      this minion's part of the plan kept for the light health check
``energy_heal.stays_up``       a container this run (re)started watched until it has run a while
``energy_heal.events_engine``  the docker_events engine config of event-driven healing

The decisions (what "healthy" means, the engine config) live in the pure core, ``energy_core``.
"""

import logging
import os
import time

log = logging.getLogger(__name__)

__virtualname__ = "energy_heal"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import hardening, healing, health, names, sensor_faults
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_heal states need the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return energy_core.virtual(__virtualname__, "the energy_heal states",
                               __salt__, needs=("energy_health.check", "docker.inspect_container"))


def _inspect(name):
    """Docker's inspection of container ``name``, or None when it is missing (saltext-dockermod raises)."""
    try:
        return __salt__["docker.inspect_container"](name)
    except Exception:  # pylint: disable=broad-except
        return None


def _recreator():
    """How this state run recreates a container for ``energy_health.check``: the stack's network
    first (a container recreated on a host whose network went missing would not start), then
    ``energy.container_running`` with ``force``, in this run (``energy_heal.stays_up`` sees it).
    The state functions are bound here: the execution module calls the returned function in its
    own loader context, which has no ``__states__``."""
    network_present = __states__["energy_network.present"]
    container_running = __states__["energy.container_running"]

    def recreate(name, run, force):
        network = hardening.stack_network(run)
        if network:
            ret = network_present(name=network)
            if not ret.get("result"):
                return ret
        return container_running(name=name, force=force, **run)

    return recreate


def healthy(name, component, run, probe=None, grace=60, timeout=60, trigger="health check"):
    """
    Make sure a container of the stack runs and answers; otherwise recreate it from ``run`` (the
    docker_container.running arguments of the plan), log what was found and done, and fire
    ``energy/heal/<component>`` with minion, container, reason and duration. The check, the
    verdict, the records and the recreation are ``energy_health.check``'s (the one healing
    pipeline, which the heal schedule and the reactor run too); this state adapts its result.

    .. code-block:: yaml

        energy-influxdb-health-healthy:
          energy_heal.healthy:
            - name: energy-ctl-influxdb-intel_xeon_gold_6130
            - component: influxdb
            - run: {image: 'influxdb:1.8.10', ...}
            - probe: {http: 'http://10.0.0.5:8086/ping'}
    """
    found = __salt__["energy_health.check"](
        name, component, run, probe=probe or {}, grace=grace, timeout=timeout, trigger=trigger,
        started_here=name in __context__.get(names.STARTED, ()), recreate=_recreator(),
        test=bool(__opts__.get("test")))
    return {"name": name, "changes": found["changes"], "result": found["result"], "comment": found["comment"]}


def node_kept(name):
    """
    Keep this minion's part of the plan in file ``name`` (``energy_heal.node_kept_file``), mode 0600,
    for the light health check ``energy_heal.heal_check`` that the heal schedule runs: it then needs
    neither the mine nor a state run. The return says whether it changed, never what it holds
    (the formula's check carries its MongoDB password).

    .. code-block:: yaml

        energy-heal-node-kept:
          energy_heal.node_kept:
            - name: /var/cache/salt/minion/energy/node.json
    """
    import json  # pylint: disable=import-outside-toplevel

    ret = {"name": name, "changes": {}, "result": True, "comment": f"{name} is up to date"}
    conf = __salt__["energy.config"](secrets=True)
    content = json.dumps(health.kept(__salt__["energy.node"](conf, secrets=True), conf["heal"]), sort_keys=True)
    if healing.read_text(name) == content:
        return ret
    if __opts__.get("test"):
        ret.update(result=None, comment=f"{name} would be updated (this minion's containers and checks)",
                   changes={"node": "would be updated"})
        return ret
    done = healing.write_atomic(name, content, mode=0o600)
    ret.update(comment=f"{name} {done} (this minion's containers and checks)", changes={"node": done})
    return ret


def _restart_minion_later(how, delay=5):
    """Restart this salt-minion (``how``: what ``_can_restart_minion`` said) from a detached process
    once no job runs on it, this one included (restarting it from inside the job would wait on the
    job itself). Returns how, or None when a restart is already on its way."""
    import shlex  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    if how is None or healing.restart_pending(__opts__["cachedir"], time.time()):
        return None
    pid = _minion_pid()
    command = __opts__.get("minion_restart_command") or sys.argv
    # no job running (this one's proc file goes when it has returned): the restart cuts no orch
    # phase or heal run short
    procs = shlex.quote(os.path.join(__opts__["cachedir"], "proc"))
    script = healing.restart_script(how, "salt-minion", pid, command,
                                         wait_for=f'[ -n "$(ls -A {procs} 2>/dev/null)" ]')
    subprocess.Popen(["sh", "-c", f"sleep {delay}; {script}"], start_new_session=True, close_fds=True,  # pylint: disable=consider-using-with
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return how


def stays_up(name, component, seconds=5, cpu=None):
    """
    Watch a container that this run (re)started until it has run ``seconds`` since it started
    (Docker's ``State.StartedAt``): a container that exits or restarts before fails the state with
    the end of its output, instead of looping on its restart policy. The SLS files run these last
    (``order: last``), so the watches of the containers a run started overlap instead of adding
    up: one already up that long is looked at once. An hwpc-sensor that refused an event of its
    config is stopped, and the comment names the minion, the event and the fix.

    .. code-block:: yaml

        energy-sensor-container-settled-energy-node-a-sensor:
          energy_heal.stays_up:
            - name: energy-node-a-sensor
            - component: sensor
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if __opts__.get("test"):
        ret["result"] = None
        ret["comment"] = f"would watch {component} container {name} for {seconds} s"
        return ret
    minion = __opts__.get("id")
    first = _inspect(name) or {}
    if (first.get("State") or {}).get("Status") == "restarting":
        # left in Docker's restart back-off by an earlier failure (its database was away): what
        # counts is whether it stays up now
        try:
            __salt__["docker.restart"](name, timeout=1)
        except Exception:  # pylint: disable=broad-except
            pass
        first = _inspect(name) or {}
    restarts = first.get("RestartCount", 0)
    started = (first.get("State") or {}).get("StartedAt")
    deadline = time.monotonic() + health.watch_left(seconds, health.age(first))
    while True:
        info = _inspect(name) or {}
        if not health.same_run(info, restarts, started):
            break
        if time.monotonic() >= deadline:
            ret["comment"] = f"{component} container {name} stays up ({seconds} s since it started)"
            return ret
        time.sleep(0.5)
    try:
        logs = __salt__["docker.logs"](name, tail=20) or ""
    except Exception as exc:  # pylint: disable=broad-except
        logs = f"(no output: {exc})"
    ret["result"] = False
    refused = health.sensor_refusal(logs, _sensor_groups(info or first)) if component == "sensor" else None
    if refused:
        __salt__["docker.stop"](name, timeout=1)
        ret["changes"] = {"stopped": name}
        ret["comment"] = sensor_faults.stopped_comment(minion, refused, cpu)
    else:
        ret["comment"] = health.not_up_comment(component, name, minion, (info.get("State") or {}).get("Status"),
                                               info.get("RestartCount", 0) - restarts, logs)
    log.error("energy: %s", ret["comment"])
    return ret


def _sensor_groups(info):
    """The event groups of the config the formula wrote for a sensor (its bind-mounted file), to
    name the group of a refused event: hwpc-sensor 1.3.0 names none."""
    import json  # pylint: disable=import-outside-toplevel

    source = next((m.get("Source") for m in info.get("Mounts") or []
                   if m.get("Destination") == "/etc/hwpc-sensor/config.json"), None)
    try:
        with open(source, encoding="utf-8") as handle:
            return sensor_faults.config_groups(json.load(handle))
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _minion_pid():
    return healing.pid_from(__opts__.get("pidfile")) or __grains__.get("pid")


def _can_restart_minion():
    """How this salt-minion can be restarted (``healing.how_to_restart``), or None."""
    import sys  # pylint: disable=import-outside-toplevel

    return healing.how_to_restart(_minion_pid(), sys.argv, os.path.isdir("/run/systemd/system"),
                                       __opts__.get("minion_restart_command"))


def events_engine(name, enabled=True, restart=True):
    """
    Install (or remove) the docker_events engine config of the formula at ``name``
    (``minion.d/energy-events.conf``; see ``energy_core.healing.engine_config``) and make sure the running
    salt-minion has loaded it: engines start with the minion, so when the file is new the minion
    is restarted once no job runs on it (systemd, ``minion_restart_command`` or daemon mode).
    With ``restart: False``, or when the minion cannot be restarted that way, the state says that
    the minion needs a restart and the heal schedule covers the gap.

    .. code-block:: yaml

        energy-heal-engine-managed:
          energy_heal.events_engine:
            - name: /etc/salt/minion.d/energy-events.conf
            - order: last
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    main_engines = healing.main_config_key(__opts__["conf_file"], "engines")
    wanted = healing.engine_content(__opts__["id"], main_engines) if enabled else None
    current = healing.read_text(name)
    loaded = __salt__["energy_heal.engine_loaded"]()
    comments = []
    if current != wanted:
        comment, ret["changes"]["config"] = healing.config_change(name, current, wanted, __opts__.get("test"))
        comments.append(comment)
        if __opts__.get("test"):
            ret["result"] = None
        else:
            healing.write_atomic(name, wanted)
    what = healing.engine_restart(enabled, loaded, current, wanted)
    if what is None:
        comments.append("the docker_events engine is " + ("running" if loaded else "off"))
    else:
        how = _can_restart_minion() if restart else None
        if __opts__.get("test"):
            ret["result"] = None
            comments.append(f"salt-minion would be restarted to {what} the docker_events engine"
                            if how else f"salt-minion needs a restart to {what} the docker_events engine")
        elif how:
            if _restart_minion_later(how):
                ret["changes"]["minion"] = {"restart": how, "to": f"{what} the docker_events engine"}
                log.warning("energy: salt-minion restarts (%s) once no job runs, to %s the docker_events engine",
                            how, what)
                comments.append(f"salt-minion restarts ({how}) once no job runs on it, to {what} "
                                "the docker_events engine")
            else:
                comments.append(f"salt-minion restarts to {what} the docker_events engine (an earlier run "
                                "scheduled it)")
        elif not enabled and not restart:  # energy.clean: without its file, energy_heal.react does nothing
            comments.append("the docker_events engine stops with the next salt-minion restart")
        else:
            warning, comment = healing.restart_needed(__opts__["id"], what, restart)
            ret.setdefault("warnings", []).append(warning)
            comments.append(comment)
    ret["comment"] = "; ".join(comments)
    return ret
