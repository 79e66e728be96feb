"""
Master side of the energy formula: the reactor reaction that turns the docker_events of the
stack's containers (``energy/docker/*``, from the engine ``energy.heal`` installs on each minion)
into ``energy.react`` on the minion that reported them.

``energy.orch`` calls ``salt-run energy.reactor``: it writes ``master.d/energy-reactor.conf``, read
when salt-master starts, and restarts salt-master once the orch has returned when the running
master has not loaded it and pillar ``energy:heal:events:restart_master`` allows it.

.. code-block:: bash

    salt-run energy.reactor
"""

import logging
import os
import shlex
import subprocess

import salt.utils.event
import salt.utils.master

log = logging.getLogger(__name__)

__virtualname__ = "energy"

EVENT = "energy/docker/*"
REACTOR_SLS = "salt://energy/reactor/heal.sls"


def __virtual__():
    return __virtualname__


def reactor_file():
    """master.d/energy-reactor.conf next to the master's config file."""
    return os.path.join(os.path.dirname(__opts__["conf_file"]), "master.d", "energy-reactor.conf")


def reactor_config(main_reactions, enabled=True):
    """The content of master.d/energy-reactor.conf, or None when it should not exist (pure).

    Salt replaces a top-level key of the main config with the same key of master.d files, so the
    reactions of the main config file (``main_reactions``) are carried over, or they would be lost."""
    import yaml  # pylint: disable=import-outside-toplevel

    if not enabled:
        return None
    if isinstance(main_reactions, dict):
        main_reactions = [{k: v} for k, v in main_reactions.items()]
    kept = [r for r in main_reactions or [] if not (isinstance(r, dict) and EVENT in r)]
    return ("# managed by the energy formula (salt-run energy.reactor): the docker_events of the stack's\n"
            "# containers -> energy.react on the minion; the reactions of the main config are kept here\n"
            + yaml.safe_dump({"reactor": kept + [{EVENT: [REACTOR_SLS]}]}, default_flow_style=False))


def _write_config(enabled):
    """Write or remove master.d/energy-reactor.conf; returns what was done or None."""
    import yaml  # pylint: disable=import-outside-toplevel

    path = reactor_file()
    try:
        with open(__opts__["conf_file"], encoding="utf-8") as handle:
            main = yaml.safe_load(handle) or {}
    except OSError:
        main = {}
    wanted = reactor_config(main.get("reactor") if isinstance(main, dict) else None, enabled)
    try:
        with open(path, encoding="utf-8") as handle:
            current = handle.read()
    except OSError:
        current = None
    if current == wanted:
        return None
    if wanted is None:
        os.remove(path)
        return f"{path} removed"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(wanted)
    os.replace(path + ".tmp", path)
    return f"{path} {'written' if current is None else 'updated'}"


def _ask(sevent, tag, data, answer, wait):
    data = dict(data, key=salt.utils.master.get_master_key("root", __opts__))
    sevent.fire_event(data, f"salt/reactors/manage/{tag}")
    return sevent.get_event(wait=wait, tag=f"salt/reactors/manage/{answer}")


def _running_reactions(wait):
    """The reactions the running reactor lists, or None when the master runs no reactor.

    The list is taken as loaded from the config the reactor read when salt-master started: what
    ``salt/reactors/manage/add`` (``salt-run reactor.add``) adds shows in this list but, in Salt 3008,
    never matches an event (it goes to a copy of the opts the reactor does not read), which is why
    this runner does not add reactions live."""
    with salt.utils.event.get_event("master", __opts__["sock_dir"], opts=__opts__, listen=True) as sevent:
        listed = _ask(sevent, "list", {}, "list-results", wait)
    if listed is None:
        return None
    return [next(iter(r)) for r in listed.get("reactors") or [] if isinstance(r, dict) and r]


def _master_pid():
    """The pid of the running salt-master (its pidfile), or None."""
    try:
        with open(__opts__["pidfile"], encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
    except (KeyError, OSError, ValueError):
        return None
    return pid


def _started_at(pid):
    """When process ``pid`` started (epoch seconds), from /proc; None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="utf-8") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def parse_cmdline(raw):
    """A salt-master's command line from its /proc/<pid>/cmdline bytes (pure). Salt sets process
    titles (setproctitle): the arguments then come as one string joined by spaces, followed by
    the title ``MainProcess``."""
    parts = [a.decode() for a in raw.split(b"\0") if a]
    if len(parts) == 1 and " " in parts[0]:
        parts = parts[0].split()
    if parts and parts[-1] == "MainProcess":
        parts = parts[:-1]
    return parts


def _master_command(pid):
    """The command line salt-master ``pid`` was started with, from /proc."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return parse_cmdline(handle.read())
    except OSError:
        return []


def can_restart_master(pid, command, systemd):
    """How the salt-master can be restarted (pure): ``systemd`` when it runs under systemd, its own
    command line when it runs as a daemon (``-d``), or None (a foreground master under a supervisor
    Salt does not know, such as a test harness: restarting it would stop it for good)."""
    if pid is None:
        return None
    if systemd:
        return "systemd"
    if "-d" in command or "--daemon" in command:
        return "daemon mode, same command line"
    return None


def _restart_master_later(how, pid, command):
    """Restart salt-master from a detached process once the caller (``salt-run``, the orch) has
    returned: a restart in the middle of an orchestration would lose its jobs' returns."""
    if how == "systemd":
        restart = "systemctl restart salt-master"
    else:
        restart = (f"kill {pid}; for i in $(seq 120); do kill -0 {pid} 2>/dev/null || break; sleep 0.5; done; "
                   f"kill -9 {pid} 2>/dev/null; exec {shlex.join(command)}")
    script = (f"for i in $(seq 240); do kill -0 {os.getpid()} 2>/dev/null || break; sleep 0.5; done; "
              f"sleep 1; [ \"$(cat {shlex.quote(__opts__['pidfile'])} 2>/dev/null)\" = {pid} ] || exit 0; {restart}")
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
    path = reactor_file()
    result = {"config": _write_config(enabled), "file": path, "restart": None}
    reactions = _running_reactions(wait)
    pid = _master_pid()
    started = _started_at(pid) if pid else None
    result["running"] = reactions is not None
    listed = reactions is not None and EVENT in reactions
    # the file is what the running master read when it started before the file last changed
    result["loaded"] = listed and (started is None or os.path.getmtime(path) < started) if enabled else listed
    if result["loaded"] == bool(enabled):
        result["comment"] = (f"reaction {EVENT} loaded by the running reactor" if enabled
                             else f"reaction {EVENT} absent from {path} and from the running reactor")
        return result

    command = _master_command(pid) if pid else []
    how = can_restart_master(pid, command, os.path.isdir("/run/systemd/system")) if restart else None
    need = (f"to load {path} (reaction {EVENT})" if enabled
            else f"to drop reaction {EVENT} (harmless until then: energy.react skips when events are off)")
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
