"""
Master side of the energy formula.

``energy.orch_targets``  what each phase of ``energy.orch`` targets (role resolution of the pure
                         core, the minions that do not answer left out)
``energy.reactor``       the master's reaction to the stack's docker_events
                         (``master.d/energy-reactor.conf``), loaded when salt-master starts
``energy.react_event``   what that reaction runs: checks the event, then has the minion that sent
                         it recreate its container (``energy.react``)

.. code-block:: bash

    salt-run energy.reactor
"""

import logging
import os
import subprocess

log = logging.getLogger(__name__)

__virtualname__ = "energy"

try:
    import energy_core

    core = energy_core.load()
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced to the master yet (saltutil.sync_utils)
    core = None
    CORE_ERROR = str(exc)


def __virtual__():
    if core is None:
        return (False, f"the energy runner needs the formula's energy_core utils on the master ({CORE_ERROR}): "
                       "run salt-run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def orch_targets(defaults, pillar=None, ping_timeout=None):
    """
    What each phase of ``energy.orch`` targets: ``targets`` (role -> compound target, without the
    minions that do not answer), ``all`` (every minion of every role), ``down`` (those that did not
    answer a ``test.ping`` within ``energy:ping_timeout``), ``roles_down`` (roles whose minions are
    all down: their phase is skipped), ``events_enabled`` and ``restart_master``.

    ``defaults`` is ``energy`` of defaults.yaml, ``pillar`` the master's pillar ``energy``. Pillar
    errors are left to the orch's plan-check step, which names them on every minion.

    CLI Example:

    .. code-block:: bash

        salt-run energy.orch_targets "$(python3 -c 'import yaml,json;print(json.dumps(yaml.safe_load(open("energy/defaults.yaml"))["energy"]))')"
    """
    try:
        conf = core.schema.merge(defaults or {}, pillar)
    except core.schema.PlanError:
        conf = dict(defaults or {})
    targets = core.placement.role_targets(conf)
    every = " or ".join(f"( {t} )" for t in dict.fromkeys(targets.values()))
    timeout = ping_timeout or conf.get("ping_timeout")
    if not core.schema.is_positive(timeout):
        timeout = 10
    # an explicit timeout: the master's (or salt-run -t's) could make a down minion cost minutes
    status = __salt__["manage.status"](tgt=every, tgt_type="compound", timeout=timeout,
                                       gather_job_timeout=timeout) if every else {}
    down = sorted((status or {}).get("down") or [])
    roles_down = []
    if down:
        skip = " and not L@" + ",".join(down)
        targets = {role: f"( {target} ){skip}" for role, target in targets.items()}
        every = f"( {every} ){skip}"  # 'a or b and not c' is 'a or (b and not c)'
        # cache.grains matches without pinging: a role with no minion left has no phase
        roles_down = [role for role, target in targets.items()
                      if not __salt__["cache.grains"](tgt=target, tgt_type="compound")]
    heal = conf.get("heal") if isinstance(conf.get("heal"), dict) else {}
    events = heal.get("events") if isinstance(heal.get("events"), dict) else {}
    return {"targets": targets, "all": every, "down": down, "roles_down": roles_down,
            "events_enabled": events.get("enabled", True) is True,
            "restart_master": events.get("restart_master", False) is True}


def react_event(minion=None, event=None):
    """
    The master's reaction to ``energy/docker/<action>`` from the docker_events engine of
    ``minion``: when ``event`` reports the death (or removal) of a container of the stack that
    belongs to that minion, run ``energy.react <name> <action>`` on it; anything else is dropped
    and logged. The event comes from a minion, so it is untrusted: it is checked here, in Python,
    and passed on as data.

    CLI Example:

    .. code-block:: bash

        salt-run energy.react_event minion=node-a event='{"Action": "die", "Actor": {"Attributes": {"name": "energy-node-a-sensor", "energy.minion": "node-a"}}}'
    """
    reason = core.names.reaction_refused(minion, event)
    if reason:
        log.info("energy reactor: event from %r dropped: %s", minion, reason)
        return {"result": True, "comment": f"dropped: {reason}"}
    import salt.client  # pylint: disable=import-outside-toplevel

    name = event["Actor"]["Attributes"]["name"]
    with salt.client.get_local_client(mopts=__opts__) as client:
        jid = client.cmd_async([minion], "energy.react", kwarg={"name": name, "action": event["Action"]},
                               tgt_type="list")
    return {"result": bool(jid), "comment": f"energy.react {name} {event['Action']} sent to {minion} (job {jid})"}


# --------------------------------------------------------------------------- the reactor config


def _reactor_file():
    return os.path.join(os.path.dirname(__opts__["conf_file"]), "master.d", core.healing.REACTOR_FILE)


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
    script = core.healing.restart_script(how, "salt-master", pid, command,
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

        salt-run energy.reactor
        salt-run energy.reactor restart=True
        salt-run energy.reactor enabled=False
    """
    path = _reactor_file()
    main = core.healing.main_config_key(__opts__["conf_file"], "reactor")
    written = core.healing.write_atomic(path, core.healing.reactor_config(main, enabled))
    result = {"config": f"{path} {written}" if written else None, "file": path, "restart": None}
    reactions = _running_reactions(wait)
    pid = core.healing.pid_from(__opts__.get("pidfile"))
    started = core.healing.started_at(pid) if pid else None
    event = core.names.REACTOR_EVENT
    result["running"] = reactions is not None
    listed = reactions is not None and event in reactions
    # the file is what the running master read when it started before the file last changed
    result["loaded"] = listed and (started is None or os.path.getmtime(path) < started) if enabled else listed
    if result["loaded"] == bool(enabled):
        result["comment"] = (f"reaction {event} loaded by the running reactor" if enabled
                             else f"reaction {event} absent from {path} and from the running reactor")
        return result

    command = core.healing.command_of(pid) if pid else []
    how = core.healing.how_to_restart(pid, command, os.path.isdir("/run/systemd/system")) if restart else None
    need = (f"to load {path} (reaction {event})" if enabled
            else f"to drop reaction {event} (harmless until then: energy.react skips when events are off)")
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
