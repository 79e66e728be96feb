"""Event-driven healing, the parts that need no Salt: the minion's docker_events engine config, the
master's reactor config, how a Salt daemon is restarted, and the atomic file writes both use.

Salt replaces a top-level key of the main config file with the same key of a ``.d`` file, so the
engine config (``minion.d/energy-events.conf``) and the reactor config
(``master.d/energy-reactor.conf``) carry over the ``engines`` / ``reactor`` entries of the main
config file, or those would stop.
"""

import os
import shlex

import yaml

from . import names

ENGINE_FILE = "energy-events.conf"
REACTOR_FILE = "energy-reactor.conf"


def engine_name(entry):
    """The name of an ``engines`` entry: a bare name, or the key of a one-key mapping."""
    if isinstance(entry, str):
        return entry
    return next(iter(entry), None) if isinstance(entry, dict) else None


def engine_config(minion, main_engines=None):
    """The minion config running the docker_events engine: only die and destroy of containers
    labelled with this minion's id reach the master (the reactor drops the temporary containers
    docker_container.running makes, whose names are random)."""
    if isinstance(main_engines, dict):
        main_engines = [{k: v} for k, v in main_engines.items()]
    ours = (names.NAMES_ENGINE, names.ENGINE_NAME)
    kept = [e for e in main_engines or [] if engine_name(e) not in ours]
    # the container names salt-run energy.report gives SmartWatts' cgroup-path targets: each start
    # recorded on the machine that ran it (the energy_names engine, one filtered Docker events stream)
    return {"engines": kept + [{names.NAMES_ENGINE: {"engine_module": "energy_names"}}, {names.ENGINE_NAME: {
        "engine_module": "docker_events",
        "tag": names.EVENT_TAG,
        "filters": {"type": ["container"], "event": ["die", "destroy"],
                    "label": [f"{names.LABEL_MINION}={minion}"]},
    }}]}


def engine_content(minion, main_engines=None):
    """The text of minion.d/energy-events.conf."""
    return ("# managed by the energy formula (energy.heal): the docker_events engine; the engines of the\n"
            "# main config are kept here, as Salt would otherwise replace them with this list\n"
            + yaml.safe_dump(engine_config(minion, main_engines), default_flow_style=False))


def config_change(name, current, wanted, test):
    """(the comment, the change) of a config file ``name`` going from ``current`` to ``wanted``
    (None: absent), as a state says it; ``test``: what it would do."""
    verb = "would be " if test else ""
    if wanted is None:
        return f"{name} {verb}removed", {"old": name, "new": None}
    return (f"{name} {verb}{'written' if current is None else 'updated'}",
            {"old": None if current is None else "other content", "new": name})


def engine_restart(enabled, loaded, current, wanted):
    """What a salt-minion restart must do to the docker_events engine (``start``, ``reload`` or
    ``stop``), or None: engines start with the minion, so a new, changed or removed config file
    (``current`` -> ``wanted``) takes a restart to apply."""
    if loaded == enabled and not (enabled and current != wanted and current is not None):
        return None
    return "start" if enabled and not loaded else "reload" if enabled else "stop"


def restart_needed(minion, what, restart):
    """(the warning, the comment) of ``energy_heal.events_engine`` when the minion needs a restart it
    cannot do itself (``restart``: energy:heal:events:restart_minion)."""
    why = "energy:heal:events:restart_minion is false" if not restart else \
        "no systemd, minion_restart_command or daemon mode to restart it with"
    return (f"restart salt-minion on {minion} to {what} the docker_events engine ({why}); "
            "until then the heal schedule recreates what dies",
            f"salt-minion needs a restart to {what} the docker_events engine ({why})")


def reactor_config(main_reactions, enabled=True):
    """The text of master.d/energy-reactor.conf, or None when it should not exist."""
    if not enabled:
        return None
    if isinstance(main_reactions, dict):
        main_reactions = [{k: v} for k, v in main_reactions.items()]
    kept = [r for r in main_reactions or [] if not (isinstance(r, dict) and names.REACTOR_EVENT in r)]
    return ("# managed by the energy formula (salt-run energy.reactor): the docker_events of the stack's\n"
            "# containers -> energy_heal.react on the minion; the reactions of the main config are kept here\n"
            + yaml.safe_dump({"reactor": kept + [{names.REACTOR_EVENT: [names.REACTOR_SLS]}]},
                             default_flow_style=False))


def main_config_key(conf_file, key):
    """``key`` of a Salt daemon's main config file (not of its .d files); None when absent."""
    try:
        with open(conf_file, encoding="utf-8") as handle:
            main = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError):
        return None
    return main.get(key) if isinstance(main, dict) else None


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def write_atomic(path, content, mode=0o644):
    """Make ``path`` hold ``content`` (None: remove it), through a rename so that a reader never
    sees half a file. Returns what was done (``written``, ``updated``, ``removed``) or None."""
    current = read_text(path)
    if current == content:
        return None
    if content is None:
        try:
            os.remove(path)
        except FileNotFoundError:
            return None
        return "removed"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    import tempfile  # pylint: disable=import-outside-toplevel

    # a temporary file of its own: several jobs of a minion may write the same file at once
    descriptor, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(path))
    try:
        os.fchmod(descriptor, mode)
        with open(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return "written" if current is None else "updated"


def parse_cmdline(raw):
    """A Salt daemon's command line from its /proc/<pid>/cmdline bytes. Salt sets process titles
    (setproctitle): the arguments then come as one string joined by spaces, followed by the title
    ``MainProcess``."""
    parts = [a.decode() for a in raw.split(b"\0") if a]
    if len(parts) == 1 and " " in parts[0]:
        parts = parts[0].split()
    if parts and parts[-1] == "MainProcess":
        parts = parts[:-1]
    return parts


def how_to_restart(pid, command, systemd, restart_command=None):
    """How a Salt daemon can be restarted: ``minion_restart_command``, ``systemd``, its own
    command line in daemon mode (``-d``), or None (a foreground daemon under a supervisor Salt
    does not know, such as a test harness: restarting it would stop it for good)."""
    if pid is None:
        return None
    if restart_command:
        return "minion_restart_command"
    if systemd:
        return "systemd"
    if "-d" in command or "--daemon" in command:
        return "daemon mode, same command line"
    return None


def restart_script(how, service, pid, command, wait_for=None, guard=None):
    """The shell script that restarts a Salt daemon once ``wait_for`` (a shell condition that is
    true while it must wait) turns false, for at most 2 minutes, if ``guard`` (a shell command)
    then succeeds. A daemon still there 60 s after its SIGTERM is killed: two minions (or
    masters) with one id would both run every job."""
    if how == "systemd":
        restart = f"systemctl restart {shlex.quote(service)}"
    else:
        restart = (f"kill {pid}; for i in $(seq 120); do kill -0 {pid} 2>/dev/null || break; sleep 0.5; done; "
                   f"kill -9 {pid} 2>/dev/null; exec {shlex.join(str(a) for a in command)}")
    wait = f"for i in $(seq 240); do {wait_for} || break; sleep 0.5; done; " if wait_for else ""
    check = f"{guard} || exit 0; " if guard else ""
    return wait + check + restart


def restart_pending(cachedir, now, window=120):
    """True when a restart was scheduled less than ``window`` seconds ago; else mark one now.
    Two runs that both find the engine missing (the orch's heal phase and the schedule) must
    not both restart the minion: the second restart would start a second salt-minion."""
    marker = os.path.join(cachedir, "energy", "restart-pending")
    try:
        if now - os.path.getmtime(marker) < window:
            return True
    except OSError:
        pass
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(str(now))
    return False


def started_at(pid):
    """When process ``pid`` started (epoch seconds), from /proc; None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="utf-8") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def pid_from(pidfile):
    """The pid in ``pidfile`` when that process runs, else None."""
    try:
        with open(pidfile, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError, TypeError):
        return None
    return pid


def command_of(pid):
    """The command line process ``pid`` was started with, from /proc."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return parse_cmdline(handle.read())
    except OSError:
        return []
