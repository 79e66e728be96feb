"""
The master's side of event-driven healing: ``salt-run energy_heal.reactor`` (also
``salt-run energy.reactor``) gives the master the reaction to the stack's docker_events
(``master.d/energy-reactor.conf``), loaded when salt-master starts. What the reaction runs is
``energy.react_event``.

.. code-block:: bash

    salt-run energy_heal.reactor
"""

import logging
import os
import subprocess

log = logging.getLogger(__name__)

__virtualname__ = "energy_heal"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import healing, names
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced to the master yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_heal runner needs the formula's energy_core utils on the master ({CORE_ERROR}): "
                       "run salt-run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _reactor_file():
    return os.path.join(os.path.dirname(__opts__["conf_file"]), "master.d", healing.REACTOR_FILE)


def _running_reactions(wait):
    """The reactions the running reactor lists, or None when the master runs no reactor.

    The list is taken as loaded from the config the reactor read when salt-master started: what
    ``salt/reactors/manage/add`` (``salt-run reactor.add``) adds shows in this list but, in Salt 3008,
    never matches an event (it goes to a copy of the opts the reactor does not read), which is why
    this runner does not add reactions live."""
    import salt.utils.event  # pylint: disable=import-outside-toplevel
    import salt.utils.master  # pylint: disable=import-outside-toplevel

    with salt.utils.event.get_event("master", __opts__["sock_dir"], opts=__opts__, listen=True) as sevent:
        data = {"key": salt.utils.master.get_master_key("root", __opts__)}
        sevent.fire_event(data, "salt/reactors/manage/list")
        listed = sevent.get_event(wait=wait, tag="salt/reactors/manage/list-results")
    if listed is None:
        return None
    return [next(iter(r)) for r in listed.get("reactors") or [] if isinstance(r, dict) and r]


def _restart_master_later(how, pid, command):
    """Restart salt-master from a detached process once the caller (``salt-run``, the orch) has
    returned: a restart in the middle of an orchestration would lose its jobs' returns."""
    import shlex  # pylint: disable=import-outside-toplevel

    pidfile = shlex.quote(__opts__["pidfile"])
    script = healing.restart_script(how, "salt-master", pid, command,
                                         wait_for=f"kill -0 {os.getpid()} 2>/dev/null",
                                         guard=f"sleep 1; [ \"$(cat {pidfile} 2>/dev/null)\" = {pid} ]")
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = "/"
    subprocess.Popen(["sh", "-c", script], start_new_session=True, close_fds=True, cwd=cwd,  # pylint: disable=consider-using-with
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def reactor(enabled=True, restart=False, wait=5):
    """
    Give this master the reaction ``energy/docker/* -> salt://energy/reactor/heal.sls``
    (``enabled``) or take it away, in ``master.d/energy-reactor.conf``, and say whether the running
    reactor has loaded it.

    The reactor reads its reactions when salt-master starts (and starts at all only when the master
    config has a ``reactor:`` or ``engines: [reactor]``). When the running master has not loaded the
    file as it is now: with ``restart=True`` and a master that can be restarted (systemd, or a
    daemon started with ``-d``), salt-master is restarted once this runner's caller (the orch) has
    returned; otherwise the return says so (``comment``, ``warnings``) and, until someone restarts
    it, the heal schedule recreates what dies. Nothing is added live: in Salt 3008 a reaction
    added to a running reactor is listed but never matched.

    Returns ``config`` (what was written, or None), ``file``, ``running`` (a reactor answered),
    ``loaded`` (the running reactor has the file's reaction), ``restart`` and ``comment``.

    CLI Example:

    .. code-block:: bash

        salt-run energy_heal.reactor
        salt-run energy_heal.reactor restart=True
        salt-run energy_heal.reactor enabled=False
    """
    path = _reactor_file()
    main = healing.main_config_key(__opts__["conf_file"], "reactor")
    written = healing.write_atomic(path, healing.reactor_config(main, enabled))
    result = {"config": f"{path} {written}" if written else None, "file": path, "restart": None}
    reactions = _running_reactions(wait)
    pid = healing.pid_from(__opts__.get("pidfile"))
    started = healing.started_at(pid) if pid else None
    event = names.REACTOR_EVENT
    result["running"] = reactions is not None
    listed = reactions is not None and event in reactions
    # the file is what the running master read when it started before the file last changed
    result["loaded"] = listed and (started is None or os.path.getmtime(path) < started) if enabled else listed
    if result["loaded"] == bool(enabled):
        result["comment"] = (f"reaction {event} loaded by the running reactor" if enabled
                             else f"reaction {event} absent from {path} and from the running reactor")
        return result

    command = healing.command_of(pid) if pid else []
    how = healing.how_to_restart(pid, command, os.path.isdir("/run/systemd/system")) if restart else None
    need = (f"to load {path} (reaction {event})" if enabled
            else f"to drop reaction {event} (harmless until then: energy_heal.react skips when events are off)")
    if how:
        _restart_master_later(how, pid, command)
        result["restart"] = how
        result["comment"] = f"salt-master restarts ({how}) once this run has returned, {need}"
        log.warning("energy: salt-master restarts (%s) once this run has returned, %s", how, need)
        return result
    why = ("energy:heal:events:restart_master is false" if not restart
           else "no systemd or daemon mode (-d) to restart it with")
    result["comment"] = f"restart salt-master {need} ({why})"
    if enabled:
        result["comment"] += "; until then the heal schedule recreates what dies"
        result["warnings"] = [result["comment"]]
    log.warning("energy: %s", result["comment"])
    return result
