"""
States of the energy formula that Docker's own states do not cover:

``energy.reachable``        wait until a service of the stack answers (a formula starts only once
                            its MongoDB and InfluxDB answer; an unreachable one fails the run,
                            naming it)
``energy.influxdb_database`` an InfluxDB 1.x database with the pillar retention
``energy.container_running`` docker_container.running, with the pillar's secrets masked in what it
                            returns (its changes show a changed environment in full)
``energy.mongo_users``      the MongoDB users and roles of the stack, per report collection and purpose
``energy.orphans_absent``   containers of an earlier plan removed (volumes kept), databases only when allowed
``energy.healthy``          a container that runs and answers, recreated when it does not
``energy.events_engine``    the docker_events engine config of event-driven healing

The decisions (what "healthy" means, the engine config) live in the pure core, ``energy_core``.
"""

import logging
import os
import time
import urllib.parse

log = logging.getLogger(__name__)

__virtualname__ = "energy"

try:
    import energy_core

    core = energy_core.load()
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    core = None
    CORE_ERROR = str(exc)


def __virtual__():
    if core is None:
        return (False, f"the energy states need the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    if "energy.plan" not in __salt__:
        return (False, "the energy states need the energy execution module (saltutil.sync_modules)")
    if "docker.inspect_container" not in __salt__:
        return (False, "the energy states need saltext-dockermod (pip install saltext.dockermod)")
    return __virtualname__


def _host_port(uri):
    parsed = urllib.parse.urlsplit(uri if "://" in uri else "tcp://" + uri)
    return parsed.hostname, parsed.port


def _probe(host, port, timeout):
    """True when a TCP connection to host:port opens within ``timeout`` seconds."""
    import socket  # pylint: disable=import-outside-toplevel

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_for_port(host, port, deadline, interval=0.5):
    """True once host:port accepts TCP connections; False when ``deadline`` (monotonic) passes first."""
    while not _probe(host, port, 2):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _not_answering(label, host, port, timeout):
    return (f"{label} at {host}:{port} does not answer after {timeout} s "
            f"(checked from minion {__opts__.get('id')}): is its container running?")


def _answers(ret, url, label, timeout, would):
    """The deadline of a state that talks to the service at ``url`` once it accepts connections
    (one second in test mode), or None when it does not in time: ``ret`` then says so (in test
    mode, what ``would`` happen once it answers)."""
    test = bool(__opts__.get("test"))
    host, port = _host_port(url)
    deadline = time.monotonic() + (1 if test else float(timeout))
    if _wait_for_port(host, port, deadline):
        return deadline
    if test:
        ret["result"] = None
        ret["comment"] = f"{would} (not answering yet)"
    else:
        ret["comment"] = _not_answering(label, host, port, timeout)
    return None


def reachable(name, service=None, timeout=60, interval=0.5):
    """
    Wait until ``name`` (``mongodb://host:port``, ``http://host:port`` or ``host:port``) accepts
    TCP connections; fail after ``timeout`` seconds naming the service, the address and this minion.

    .. code-block:: yaml

        energy-formula-mongo-reachable:
          energy.reachable:
            - name: mongodb://10.0.0.5:27017
            - service: mongo for Intel(R) Xeon(R) Gold 6130
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    host, port = _host_port(name)
    label = service or name
    if not host or not port:
        ret["comment"] = f"{label}: cannot read host and port from {name!r}"
        return ret
    if __opts__.get("test"):
        ok = _probe(host, port, 1)
        ret["result"] = True if ok else None
        ret["comment"] = f"{label} at {host}:{port} " + ("answers" if ok else "does not answer yet (it may be deployed by this run)")
        return ret
    if _wait_for_port(host, port, time.monotonic() + float(timeout), interval):
        ret["result"] = True
        ret["comment"] = f"{label} at {host}:{port} answers"
    else:
        ret["comment"] = _not_answering(label, host, port, timeout)
    return ret


def influxdb_database(name, url, retention="30d", service=None, timeout=60, warning=None):
    """
    Make sure InfluxDB 1.x at ``url`` answers and holds database ``name`` whose default retention
    policy keeps ``retention`` (InfluxDB duration, ``INF`` = forever). ``warning`` (why this
    InfluxDB is reachable without authentication) is returned as a warning of every run.

    .. code-block:: yaml

        energy-influxdb-database-present:
          energy.influxdb_database:
            - name: power_intel_xeon_gold_6130
            - url: http://10.0.0.5:8086
            - retention: 30d
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if warning:
        ret["warnings"] = [warning]
    label = service or f"influxdb {url}"
    try:
        core.schema.duration_seconds(retention)
    except ValueError as exc:
        ret["comment"] = f"{label}: {exc}"
        return ret
    deadline = _answers(ret, url, label, timeout, f"database {name} would be created on {label}")
    if deadline is None:
        return ret
    test = bool(__opts__.get("test"))

    def run(statement, method):
        # the port opens a moment before the HTTP API answers: retry a query until the deadline
        while True:
            try:
                return core.influx.query(url, statement, method)
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    try:
        ret["result"], ret["changes"], what = core.influx.ensure_database(run, name, retention, test)
        ret["comment"] = f"{what}, on {label}"
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        ret["result"] = False
        ret["comment"] = f"{label}: {exc} (from minion {__opts__.get('id')})"
    return ret


def _masked(ret):
    """A docker_container return with every secret of the pillar replaced by ``***``: its changes
    and comment show the environment, which holds passwords, and the return reaches the job
    cache, the event bus and the orch's output."""
    return core.masking.mask(ret, core.masking.secrets(__salt__["energy.config"](secrets=True)))


def _arguments(kwargs):
    """The arguments for docker_container, without the ``__``-keys Salt hands a state."""
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def _digest_key():
    """This minion's key for the containers' configuration digests (``<cachedir>/energy/config.key``,
    32 random bytes, mode 0600), made on first use."""
    path = os.path.join(__opts__["cachedir"], "energy", "config.key")
    try:
        with open(path, "rb") as handle:
            key = handle.read()
        if len(key) == 32:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(os.urandom(32))
    try:
        os.link(tmp, path)  # the first job to make it wins; a concurrent one reads that one
    except FileExistsError:
        pass
    finally:
        os.remove(tmp)
    with open(path, "rb") as handle:
        return handle.read()


def _with_digest(name, args):
    """``args`` with the ``energy.config`` label of what they make, the digest and the image's ID
    (no digest when the image is not there: docker_container pulls or fails on it)."""
    try:
        image_id = __salt__["docker.inspect_image"](args["image"])["Id"]
    except Exception:  # pylint: disable=broad-except
        return args, None, None
    labels = args.get("labels") or {}
    if not isinstance(labels, dict):
        return args, None, None
    digest = core.components.config_digest(_digest_key(), name, args, image_id)
    return dict(args, labels=dict(labels, **{core.names.LABEL_CONFIG: digest})), digest, image_id


def _running(name, shortcut=False, **kwargs):
    """docker_container.running, its return masked, the container labelled with its configuration
    digest (``energy.config``). With ``shortcut``, a container that runs the same image with the
    same digest is left as it is without docker_container's comparison, which creates and removes
    a temporary container each time."""
    args, digest, image_id = _with_digest(name, _arguments(kwargs))
    if shortcut and digest and not args.get("force"):
        if core.components.unchanged(_inspect(name), digest, image_id):
            return {"name": name, "changes": {}, "result": True,
                    "comment": f"Container '{name}' is already configured as specified (same image, "
                               f"same {core.names.LABEL_CONFIG} digest, running)"}
    return _started(name, _masked(__states__["docker_container.running"](name=name, **args)))


STARTED = "energy.started"  # __context__ key: the containers this state run (re)started
# the components whose (re)started containers energy.stays_up watches (macros.jinja)
WATCHED = ("sensor", "formula")


def _started(name, ret):
    """``ret``, and ``name`` noted as (re)started by this state run when ``ret`` changed it:
    the state modules of one state run share ``__context__``, and ``energy.healthy`` leaves such a
    sensor or formula container to ``energy.stays_up``, which watches it once every container of
    the run is up (the databases' own states wait for them to answer)."""
    if ret.get("result") and ret.get("changes") and not __opts__.get("test"):
        __context__.setdefault(STARTED, set()).add(name)
    return ret


def container_running(name, **kwargs):
    """
    ``docker_container.running`` with the same arguments; what it returns has the pillar's secrets
    masked (``***``). The formula's SLS files use it for every container of the plan. The container
    gets a label ``energy.config``: an HMAC-SHA256, keyed with a secret kept on this minion
    (``<cachedir>/energy/config.key``), of its name, image ID and arguments. When the container
    runs that image with that label, the state returns at once: docker_container.running's own
    comparison creates and removes a temporary container for every container on every run. A
    container changed by hand (``docker update``, ``docker network connect``) keeps its label and
    is not compared: remove it and the next run recreates it.

    .. code-block:: yaml

        energy-mongo-container-running-energy-ctl-mongo-intel_xeon:
          energy.container_running:
            - name: energy-ctl-mongo-intel_xeon
            - image: mongo:7.0.8
            - environment: {MONGO_INITDB_ROOT_PASSWORD: ...}
    """
    return _running(name, shortcut=True, **kwargs)


def mod_watch(name, sfun=None, **kwargs):
    """
    The ``watch`` requisite of ``energy.container_running``: docker_container's own (the container
    is recreated, ``watch_action: force``, or signalled), its return masked. A sensor whose
    config file changed is restarted this way, as it reads the file when it starts.
    """
    if sfun == "container_running":
        return _started(name, _masked(__states__["docker_container.mod_watch"](
            name, sfun="running", **_with_digest(name, _arguments(kwargs))[0])))
    return {"name": name, "changes": {}, "result": False, "comment": f"watch requisite is not implemented for {sfun}"}


def orphans_absent(name):
    """
    Remove this minion's containers of component ``name`` that the plan no longer has (a strategy,
    role or CPU name change moved them), before the plan's own start (a moved database may free
    the port the new one takes). Their volumes stay. A MongoDB or InfluxDB goes only with
    ``energy:strategy_change: allow``; otherwise the state fails, naming it and the fix.

    .. code-block:: yaml

        energy-mongo-orphans-absent:
          energy.orphans_absent:
            - name: mongo
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    conf = __salt__["energy.config"](secrets=True)
    found = [o for o in __salt__["energy.orphans"]() if o["component"] == name]
    if not found:
        ret["comment"] = f"no {name} container of an earlier plan on {__opts__.get('id')}"
        return ret
    problem = core.inventory.orphan_problem(conf, __opts__.get("id"), found)
    if problem:
        ret["result"] = False
        ret["comment"] = problem
        return ret
    gone = [o["name"] for o in found]
    if __opts__.get("test"):
        ret["result"] = None
        ret["comment"] = f"would remove {', '.join(gone)} (not in the plan any more; volumes kept)"
        ret["changes"] = {"removed": gone}
        return ret
    for container in gone:
        __salt__["docker.rm"](container, force=True)
        log.warning("energy: removed %s container %s: the plan no longer has it (its volume is kept)", name, container)
    ret["changes"] = {"removed": gone}
    ret["comment"] = f"removed {', '.join(gone)}: the plan no longer has them (volumes kept)"
    return ret


def mongo_users(name, admin, users, timeout=60, service=None, expire=None):
    """
    Keep the stack's MongoDB users and roles in the MongoDB at ``name`` (``host:port``), logged in
    as ``admin`` (``{"name", "password"}``, the root user the image makes on its first start; None
    without authentication): ``users`` is ``[{"name", "password", "role", "actions", "collections"}]``.
    A password is checked by logging in and set when that fails; other users of the stack are dropped.
    ``expire`` (``{"seconds", "collections": [[db, collection], ...]}``) keeps a TTL index on the
    reports' timestamp: a formula that stops reading cannot fill the volume. Passwords never appear
    in the return.

    .. code-block:: yaml

        energy-mongo-users-present-energy-ctl-mongo-intel_xeon:
          energy.mongo_users:
            - name: 10.0.0.5:27017
            - admin: {name: energy-admin, password: ...}
            - users:
              - {name: energy-sensor-intel_xeon, password: ..., role: energy-sensor-intel_xeon,
                 actions: [insert], collections: [[sensors_intel_xeon, hwpc]]}
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    label = service or f"MongoDB {name}"
    deadline = _answers(ret, name, label, timeout, f"users of {label} would be made once it answers")
    if deadline is not None:
        ret["result"], ret["changes"], ret["comment"] = core.mongo_users.keep(
            lambda: core.mongo_wire.Connection(name, timeout=5), admin, users, bool(__opts__.get("test")), deadline,
            label, __opts__.get("id"), expire=expire)
    return ret


def _inspect(name):
    """Docker's inspection of container ``name``, or None when it is missing (saltext-dockermod raises)."""
    try:
        return __salt__["docker.inspect_container"](name)
    except Exception:  # pylint: disable=broad-except
        return None


def _free_space(volume):
    """Free bytes of a Docker volume on this host, or None (``energy.volume_free``)."""
    return __salt__["energy.volume_free"](volume)


def healthy(name, component, run, probe=None, grace=60, timeout=60, trigger="health check"):
    """
    Make sure a container of the stack runs and answers; otherwise recreate it from ``run`` (the
    docker_container.running arguments of the plan), log what was found and done, and fire
    ``energy/heal/<component>`` with minion, container, reason and duration.

    .. code-block:: yaml

        energy-influxdb-health-healthy:
          energy.healthy:
            - name: energy-ctl-influxdb-intel_xeon_gold_6130
            - component: influxdb
            - run: {image: 'influxdb:1.8.10', ...}
            - probe: {http: 'http://10.0.0.5:8086/ping'}
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    probe = probe or {}
    held = __salt__["energy.held"](name, component)
    if held:
        ret["comment"] = f"{component} container {name} left alone: {held}"
        _note(name, "held", held)
        return ret
    if component in WATCHED and name in __context__.get(STARTED, ()):
        # the orch's last phase and the full schedule apply energy.heal with the components' SLS
        # files: a container they just started is energy.stays_up's to judge (a sensor that
        # refuses its config is stopped there, not recreated here)
        ret["comment"] = f"{component} container {name} was started by this state run: energy.stays_up watches it"
        return ret
    info = _inspect(name)
    reason = core.health.diagnose(info, probe, grace, _free_space, core.health.Seen(core.health.seen_path(__opts__["cachedir"])))
    if reason is None:
        ret["comment"] = f"{component} container {name} is healthy"
        _note(name, "healthy", "")
        return ret
    if reason.startswith(core.health.LEFT_AS_IS):
        # recreating this container would not bring back the database its check reads through,
        # nor free its volume
        ret["result"] = False
        ret["comment"] = f"{component} container {name} is unhealthy: {reason}; left as it is"
        _note(name, "unhealthy", reason)
        return ret
    try:
        __salt__["docker.inspect_image"](run["image"])
    except Exception:  # pylint: disable=broad-except
        ret["result"] = False
        ret["comment"] = core.health.image_missing(component, name, reason, run["image"], __opts__.get("id"))
        log.error("energy heal: %s", ret["comment"])
        _note(name, "unhealthy", ret["comment"])
        return ret
    if __opts__.get("test"):
        ret["result"] = None
        ret["comment"] = f"would recreate {component} container {name} because {reason}"
        ret["changes"] = {"recreate": {"reason": reason}}
        return ret
    started = time.monotonic()
    log.warning("energy heal: %s container %s is unhealthy (%s; found by %s): recreating it", component, name,
                reason, trigger)
    # docker_container.running makes the new container before it removes the old one (force:
    # even when the old one is configured as wanted): a failed creation leaves the old one there
    created = _running(name, force=info is not None, **run)
    deadline = time.monotonic() + float(timeout)
    after = None
    while created.get("result"):
        after = core.health.diagnose(_inspect(name), probe, grace=float("inf"), free_space=_free_space)
        if after is None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    duration = round(time.monotonic() - started, 2)
    healed = bool(created.get("result")) and after is None
    event = {"minion": __opts__.get("id"), "container": name, "component": component, "reason": reason,
             "duration": duration, "healed": healed, "trigger": trigger}
    __salt__["event.send"](f"{core.names.HEAL_EVENT}/{component}", event)
    ret["changes"] = {"recreated": event}
    _note(name, "recreated" if healed else "unhealthy", reason if healed else str(after or created.get("comment")))
    if healed:
        log.warning("energy heal: %s container %s recreated and answering in %.2f s", component, name, duration)
        ret["comment"] = f"recreated {component} container {name} because {reason}; answering after {duration} s"
    else:
        log.error("energy heal: %s container %s still unhealthy after recreation: %s", component, name,
                  after or created.get("comment"))
        ret["result"] = False
        ret["comment"] = (f"recreated {component} container {name} because {reason}, but it is still "
                          f"unhealthy: {after or created.get('comment')}")
    return ret


def node_kept(name):
    """
    Keep this minion's part of the plan in file ``name`` (``energy.node_kept_file``), mode 0600,
    for the light health check ``energy.heal_check`` that the heal schedule runs: it then needs
    neither the mine nor a state run. The return says whether it changed, never what it holds
    (the formula's check carries its MongoDB password).

    .. code-block:: yaml

        energy-heal-node-kept:
          energy.node_kept:
            - name: /var/cache/salt/minion/energy/node.json
    """
    import json  # pylint: disable=import-outside-toplevel

    ret = {"name": name, "changes": {}, "result": True, "comment": f"{name} is up to date"}
    conf = __salt__["energy.config"](secrets=True)
    content = json.dumps(core.health.kept(__salt__["energy.node"](conf, secrets=True), conf["heal"]), sort_keys=True)
    if core.healing.read_text(name) == content:
        return ret
    if __opts__.get("test"):
        ret.update(result=None, comment=f"{name} would be updated (this minion's containers and checks)",
                   changes={"node": "would be updated"})
        return ret
    done = core.healing.write_atomic(name, content, mode=0o600)
    ret.update(comment=f"{name} {done} (this minion's containers and checks)", changes={"node": done})
    return ret


def _note(name, status, reason):
    """Keep what the health check found (``salt-run energy.summary`` shows it); not in test mode."""
    if __opts__.get("test"):
        return
    try:
        core.health.record(core.health.records_path(__opts__["cachedir"]), {name: (status, reason)}, time.time())
    except OSError as exc:  # the check's result matters more than its record
        log.warning("energy heal: cannot keep the health record of %s: %s", name, exc)


def _restart_minion_later(how, delay=5):
    """Restart this salt-minion (``how``: what ``_can_restart_minion`` said) from a detached process
    once no job runs on it, this one included (restarting it from inside the job would wait on the
    job itself). Returns how, or None when a restart is already on its way."""
    import shlex  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    if how is None or core.healing.restart_pending(__opts__["cachedir"], time.time()):
        return None
    pid = _minion_pid()
    command = __opts__.get("minion_restart_command") or sys.argv
    # no job running (this one's proc file goes when it has returned): the restart cuts no orch
    # phase or heal run short
    procs = shlex.quote(os.path.join(__opts__["cachedir"], "proc"))
    script = core.healing.restart_script(how, "salt-minion", pid, command,
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
          energy.stays_up:
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
    up_for = core.health.age(first)  # a restart moves StartedAt: up that long means up all along
    wait = float(seconds) if up_for is None else min(float(seconds), max(0.0, float(seconds) - up_for))
    deadline = time.monotonic() + wait
    while True:
        info = _inspect(name) or {}
        state = info.get("State") or {}
        status = state.get("Status")
        if status != "running" or info.get("RestartCount", 0) > restarts or state.get("StartedAt") != started:
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
    refused = core.health.sensor_refusal(logs) if component == "sensor" else None
    if refused:
        __salt__["docker.stop"](name, timeout=1)
        ret["changes"] = {"stopped": name}
        ret["comment"] = (
            f"the hwpc-sensor on {minion} refused its config: this machine cannot count event "
            f"'{refused['event']}' (group {refused['group']}), so the sensor exits; it is stopped rather than "
            f"left restarting. Fix: remove '{refused['event']}' from energy:sensor:events / "
            f"energy:sensor:extra_events for {cpu or 'this CPU name'} (salt {minion} grains.get energy:pmu_events "
            "lists what it offers), or run the sensor on a machine that has it.")
    else:
        ret["comment"] = (f"{component} container {name} on {minion} does not stay up ({status or 'gone'}, "
                          f"{info.get('RestartCount', 0) - restarts} restart(s)); its last output:\n{logs.strip()[-1500:]}")
    log.error("energy: %s", ret["comment"])
    return ret


def _minion_pid():
    return core.healing.pid_from(__opts__.get("pidfile")) or __grains__.get("pid")


def _can_restart_minion():
    """How this salt-minion can be restarted (``core.healing.how_to_restart``), or None."""
    import sys  # pylint: disable=import-outside-toplevel

    return core.healing.how_to_restart(_minion_pid(), sys.argv, os.path.isdir("/run/systemd/system"),
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
          energy.events_engine:
            - name: /etc/salt/minion.d/energy-events.conf
            - order: last
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    main_engines = core.healing.main_config_key(__opts__["conf_file"], "engines")
    wanted = core.healing.engine_content(__opts__["id"], main_engines) if enabled else None
    current = core.healing.read_text(name)
    loaded = __salt__["energy.engine_loaded"]()
    comments = []
    if current != wanted:
        verb = "would be " if __opts__.get("test") else ""
        if wanted is None:
            comments.append(f"{name} {verb}removed")
            ret["changes"]["config"] = {"old": name, "new": None}
        else:
            comments.append(f"{name} {verb}{'written' if current is None else 'updated'}")
            ret["changes"]["config"] = {"old": None if current is None else "other content", "new": name}
        if __opts__.get("test"):
            ret["result"] = None
        else:
            core.healing.write_atomic(name, wanted)
    needs_restart = loaded != enabled or (enabled and current != wanted and current is not None)
    if not needs_restart:
        comments.append("the docker_events engine is " + ("running" if loaded else "off"))
    else:
        what = "start" if enabled and not loaded else "reload" if enabled else "stop"
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
        elif not enabled and not restart:  # energy.clean: without its file, energy.react does nothing
            comments.append("the docker_events engine stops with the next salt-minion restart")
        else:
            why = "energy:heal:events:restart_minion is false" if not restart else \
                "no systemd, minion_restart_command or daemon mode to restart it with"
            ret.setdefault("warnings", []).append(
                f"restart salt-minion on {__opts__['id']} to {what} the docker_events engine ({why}); "
                "until then the heal schedule recreates what dies")
            comments.append(f"salt-minion needs a restart to {what} the docker_events engine ({why})")
    ret["comment"] = "; ".join(comments)
    return ret
