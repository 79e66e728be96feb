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
``energy_heal.healthy``          a container that runs and answers, recreated when it does not
``energy_heal.events_engine``    the docker_events engine config of event-driven healing

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

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import (
        components, container_lock, influx, inventory, masking, mongo_users as mongo_users_core, mongo_wire, names,
        schema)
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy states need the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return energy_core.virtual(__virtualname__, "the energy states",
                               __salt__, needs=("energy.plan", "docker.inspect_container"))


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
        schema.duration_seconds(retention)
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
                return influx.query(url, statement, method)
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    try:
        ret["result"], ret["changes"], what = influx.ensure_database(run, name, retention, test)
        ret["comment"] = f"{what}, on {label}"
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        ret["result"] = False
        ret["comment"] = f"{label}: {exc} (from minion {__opts__.get('id')})"
    return ret


def _masked(ret):
    """A docker_container return with every secret of the pillar replaced by ``***``: its changes
    and comment show the environment, which holds passwords, and the return reaches the job
    cache, the event bus and the orch's output."""
    return masking.mask(ret, masking.secrets(__salt__["energy.config"](secrets=True)))


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
    digest = components.config_digest(_digest_key(), name, args, image_id)
    return dict(args, labels=dict(labels, **{names.LABEL_CONFIG: digest})), digest, image_id


def _running(name, shortcut=False, **kwargs):
    """docker_container.running, its return masked, the container labelled with its configuration
    digest (``energy.config``). With ``shortcut``, a container that runs the same image with the
    same digest is left as it is without docker_container's comparison, which creates and removes
    a temporary container each time."""
    args, digest, image_id = _with_digest(name, _arguments(kwargs))
    if shortcut and digest and not args.get("force"):
        if components.unchanged(_inspect(name), digest, image_id):
            return {"name": name, "changes": {}, "result": True,
                    "comment": f"Container '{name}' is already configured as specified (same image, "
                               f"same {names.LABEL_CONFIG} digest, running)"}
    if __opts__.get("test"):  # says what it would do: no lock to wait for
        return _started(name, _masked(__states__["docker_container.running"](name=name, **args)))
    try:  # not beside a heal job of this minion recreating the same container (energy_core.container_lock)
        with container_lock.held(__opts__["cachedir"], name, wait=_lock_wait()):
            return _started(name, _masked(__states__["docker_container.running"](name=name, **args)))
    except container_lock.Busy as exc:
        return {"name": name, "changes": {}, "result": False, "comment": f"{exc}: try again once it is done"}


def _lock_wait():
    """How long this state waits for a heal job recreating the same container (energy:heal:timeout)."""
    return container_lock.state_wait(__salt__["energy.config"]().get("heal"))


def _started(name, ret):
    """``ret``, and ``name`` noted as (re)started by this state run when ``ret`` changed it:
    the state modules of one state run share ``__context__``, and ``energy_heal.healthy`` leaves such a
    sensor or formula container to ``energy_heal.stays_up``, which watches it once every container of
    the run is up (the databases' own states wait for them to answer)."""
    if ret.get("result") and ret.get("changes") and not __opts__.get("test"):
        __context__.setdefault(names.STARTED, set()).add(name)
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
        try:
            with container_lock.held(__opts__["cachedir"], name, wait=_lock_wait()):
                return _started(name, _masked(__states__["docker_container.mod_watch"](
                    name, sfun="running", **_with_digest(name, _arguments(kwargs))[0])))
        except container_lock.Busy as exc:
            return {"name": name, "changes": {}, "result": False, "comment": f"{exc}: try again once it is done"}
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
    problem = inventory.orphan_problem(conf, __opts__.get("id"), found)
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
        ret["result"], ret["changes"], ret["comment"] = mongo_users_core.keep(
            lambda: mongo_wire.Connection(name, timeout=5), admin, users, bool(__opts__.get("test")), deadline,
            label, __opts__.get("id"), expire=expire)
    return ret


def _inspect(name):
    """Docker's inspection of container ``name``, or None when it is missing (saltext-dockermod raises)."""
    try:
        return __salt__["docker.inspect_container"](name)
    except Exception:  # pylint: disable=broad-except
        return None
