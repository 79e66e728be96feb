"""
States of the energy formula that Docker's own states do not cover.

``energy.reachable``: wait until a service of the stack answers on its TCP port, so that a
formula starts only once its MongoDB answers and an unreachable service fails the run with a
message naming it.
"""

import logging
import socket
import struct
import time
import urllib.parse

log = logging.getLogger(__name__)

__virtualname__ = "energy"


def __virtual__():
    return __virtualname__


def _host_port(uri):
    parsed = urllib.parse.urlsplit(uri if "://" in uri else "tcp://" + uri)
    return parsed.hostname, parsed.port


def _probe(host, port, timeout):
    """True when a TCP connection to host:port opens within ``timeout`` seconds (pure helper)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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


_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def _duration_seconds(text):
    """InfluxDB duration ('30d', '720h0m0s', 'INF', '0s') -> seconds; 0 means infinite."""
    text = str(text).strip().lower()
    if text in ("inf", "0", "0s", ""):
        return 0
    total, number = 0, ""
    for char in text:
        if char.isdigit():
            number += char
        elif char in _UNITS and number:
            total += int(number) * _UNITS[char]
            number = ""
        else:
            raise ValueError(f"not an InfluxDB duration: {text!r}")
    if number:
        raise ValueError(f"not an InfluxDB duration (unit missing): {text!r}")
    return total


def _influx_query(url, query, method="GET", timeout=10, **params):
    import json  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel

    data = urllib.parse.urlencode({"q": query, **params}).encode()
    if method == "GET":
        request = urllib.request.Request(f"{url}/query?{data.decode()}")
    else:
        request = urllib.request.Request(f"{url}/query", data=data, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        result = json.load(resp)["results"][0]
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def influxdb_database(name, url, retention="30d", service=None, timeout=60):
    """
    Make sure InfluxDB 1.x at ``url`` answers and holds database ``name`` whose default retention
    policy keeps ``retention`` (InfluxDB duration, ``INF`` = forever).

    .. code-block:: yaml

        energy-influxdb-database-present:
          energy.influxdb_database:
            - name: power_intel_xeon_gold_6130
            - url: http://10.0.0.5:8086
            - retention: 30d
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    label = service or f"influxdb {url}"
    try:
        wanted = _duration_seconds(retention)
    except ValueError as exc:
        ret["comment"] = f"{label}: {exc}"
        return ret
    host, port = _host_port(url)
    deadline = time.monotonic() + (1 if __opts__.get("test") else float(timeout))
    if not _wait_for_port(host, port, deadline):
        if __opts__.get("test"):
            ret["result"] = None
            ret["comment"] = f"database {name} would be created on {label} (not answering yet)"
        else:
            ret["comment"] = _not_answering(label, host, port, timeout)
        return ret
    try:
        # the port opens a moment before the HTTP API answers
        while True:
            try:
                databases = _influx_query(url, "SHOW DATABASES")
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)
        names = [row[0] for s in databases.get("series", []) for row in s.get("values", [])]
        if name not in names:
            if __opts__.get("test"):
                ret["result"] = None
                ret["comment"] = f"database {name} would be created on {label} with retention {retention}"
                return ret
            _influx_query(url, f'CREATE DATABASE "{name}" WITH DURATION {retention} NAME "energy"', "POST")
            ret["changes"] = {"database": {"old": None, "new": name}, "retention": {"old": None, "new": retention}}
            ret["result"] = True
            ret["comment"] = f"database {name} created on {label} with retention {retention}"
            return ret
        policies = _influx_query(url, f'SHOW RETENTION POLICIES ON "{name}"')
        series = (policies.get("series") or [{}])[0]
        columns = series.get("columns", [])
        default = next((dict(zip(columns, row)) for row in series.get("values", [])
                        if dict(zip(columns, row)).get("default")), None)
        current = _duration_seconds(default["duration"]) if default else None
        if current == wanted:
            ret["result"] = True
            ret["comment"] = f"database {name} on {label} is as wanted (retention {retention})"
            return ret
        if __opts__.get("test"):
            ret["result"] = None
            ret["comment"] = f"retention of {name} on {label} would change to {retention}"
            return ret
        _influx_query(url, f'ALTER RETENTION POLICY "{default["name"]}" ON "{name}" DURATION {retention} DEFAULT', "POST")
        ret["changes"] = {"retention": {"old": default["duration"], "new": retention}}
        ret["result"] = True
        ret["comment"] = f"retention of {name} on {label} changed to {retention}"
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        ret["comment"] = f"{label}: {exc} (from minion {__opts__.get('id')})"
    return ret


def _recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("the connection was closed")
        data += chunk
    return data


def _mongo_ping(address, timeout=3):
    """None when the MongoDB at ``address`` (host:port) answers ``{ping: 1}``, else why not.

    The command goes as one OP_MSG (the wire protocol of MongoDB 3.6 and later), so no driver is
    needed on the minion: a mongod that accepts connections but is hung fails this."""
    body = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    message = struct.pack("<I", 0) + b"\x00" + struct.pack("<i", len(body) + 5) + body + b"\x00"
    try:
        with socket.create_connection(_host_port(address), timeout=timeout) as sock:
            sock.sendall(struct.pack("<iiii", 16 + len(message), 1, 0, 2013) + message)
            length, _, _, opcode = struct.unpack("<iiii", _recv_exactly(sock, 16))
            reply = _recv_exactly(sock, length - 16)
    except (OSError, struct.error) as exc:
        return f"{address} does not answer a MongoDB ping ({exc})"
    document = reply[5:]  # flag bits, then the body section's kind byte
    for marker, fmt in ((b"\x01ok\x00", "<d"), (b"\x10ok\x00", "<i")):
        at = document.find(marker)
        if opcode == 2013 and at >= 0 and struct.unpack_from(fmt, document, at + len(marker))[0] == 1:
            return None
    return f"{address} answered a MongoDB ping without ok: 1"


def _http_ok(url, timeout=3):
    import urllib.request  # pylint: disable=import-outside-toplevel

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300, f"GET {url}: HTTP {resp.status}"
    except OSError as exc:
        return False, f"GET {url}: {exc}"


def _backlog(spec):
    """Reports waiting in the formula's MongoDB collection (None when pymongo is not installed)."""
    try:
        import pymongo  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    client = pymongo.MongoClient(spec["uri"], serverSelectionTimeoutMS=3000)
    try:
        return client[spec["database"]][spec["collection"]].estimated_document_count()
    finally:
        client.close()


def _newest_point_age(spec):
    """Seconds since this sensor's newest measured (rapl) point in InfluxDB; None when there is none."""
    query = (f"SELECT last(power) FROM power_consumption WHERE sensor = '{spec['sensor']}' "
             "AND target = 'rapl'")
    series = _influx_query(spec["url"], query, db=spec["database"], epoch="s").get("series", [])
    return time.time() - series[0]["values"][0][0] if series else None


def _diagnose(info, probe, grace):
    """Why a container of the stack is unhealthy, or None when it is healthy.

    ``info`` is ``docker.inspect_container``'s result (None when the container is missing);
    ``probe`` says what answering means for its component; containers younger than ``grace``
    seconds are only judged on running and answering (SmartWatts warms up for a minute)."""
    if info is None:
        return "the container is missing"
    status = (info.get("State") or {}).get("Status")
    if status != "running":
        return f"the container is {status}"
    if "mongo" in probe:
        reason = _mongo_ping(probe["mongo"])
        if reason:
            return reason
    if "http" in probe:
        ok, detail = _http_ok(probe["http"])
        if not ok:
            return f"{detail} (the service does not answer)"
    started = (info.get("State") or {}).get("StartedAt", "")
    try:
        import datetime  # pylint: disable=import-outside-toplevel

        age = time.time() - datetime.datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        age = grace
    if age < grace:
        return None
    try:
        if "backlog" in probe:
            waiting = _backlog(probe["backlog"])
            if waiting is not None and waiting > probe["backlog"]["max"]:
                return f"{waiting} sensor reports wait in MongoDB: the formula is not consuming them"
        if "fresh" in probe:
            stale = _newest_point_age(probe["fresh"])
            if stale is None or stale > probe["fresh"]["max_age"]:
                when = "never" if stale is None else f"{stale:.0f} s ago"
                return f"the sensor's newest measured power point is {when} (limit {probe['fresh']['max_age']} s)"
    except Exception as exc:  # pylint: disable=broad-except
        # a database we read through being down is its own container's problem, not this one's
        log.debug("energy.healthy: indirect check failed: %s", exc)
    return None


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
        return ret
    try:
        info = __salt__["docker.inspect_container"](name)
    except Exception:  # pylint: disable=broad-except
        info = None
    reason = _diagnose(info, probe, grace)
    if reason is None:
        ret["comment"] = f"{component} container {name} is healthy"
        return ret
    if __opts__.get("test"):
        ret["result"] = None
        ret["comment"] = f"would recreate {component} container {name} because {reason}"
        ret["changes"] = {"recreate": {"reason": reason}}
        return ret
    started = time.monotonic()
    log.warning("energy heal: %s container %s is unhealthy (%s; found by %s): recreating it", component, name,
                reason, trigger)
    if info is not None:
        __salt__["docker.rm"](name, force=True)
    created = __states__["docker_container.running"](name=name, **run)
    deadline = time.monotonic() + float(timeout)
    after = None
    while created.get("result"):
        after = _diagnose(__salt__["docker.inspect_container"](name), probe, grace=float("inf"))
        if after is None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    duration = round(time.monotonic() - started, 2)
    healed = bool(created.get("result")) and after is None
    event = {"minion": __opts__.get("id"), "container": name, "component": component, "reason": reason,
             "duration": duration, "healed": healed, "trigger": trigger}
    __salt__["event.send"](f"energy/heal/{component}", event)
    ret["changes"] = {"recreated": event}
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


def _can_restart_minion():
    """How this minion can be restarted, or None when it cannot (a foreground
    minion under a supervisor Salt does not know, such as a test harness)."""
    import os  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    if __opts__.get("minion_restart_command"):
        return "minion_restart_command"
    if os.path.isdir("/run/systemd/system"):
        return "systemd"
    if "-d" in sys.argv or "--daemon" in sys.argv:
        return "its own command line (daemon mode)"
    return None


def _restart_pending(cachedir, now, window=120):
    """True when a restart was scheduled less than ``window`` seconds ago; else mark one now.
    Two runs that both find the engine missing (the orch's heal phase and the schedule) must
    not both restart the minion: the second restart would start a second salt-minion."""
    import os  # pylint: disable=import-outside-toplevel

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


def _restart_minion_later(how, delay=5):
    """Restart this salt-minion from a detached process once no job runs on it, this one included
    (restarting it from inside the job would wait on the job itself). Returns
    False when a restart is already on its way."""
    import os  # pylint: disable=import-outside-toplevel
    import shlex  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    if _restart_pending(__opts__["cachedir"], time.time()):
        return False

    if how == "systemd":
        command = "systemctl restart salt-minion"
    else:
        try:
            with open(__opts__["pidfile"], encoding="utf-8") as handle:
                pid = int(handle.read().strip())
        except (KeyError, OSError, ValueError):
            pid = __grains__["pid"]
        restart = __opts__.get("minion_restart_command") or sys.argv
        # a minion still there after 60 s is killed: two minions with one id would both run every job
        command = (f"kill {pid}; for i in $(seq 120); do kill -0 {pid} 2>/dev/null || break; sleep 0.5; done; "
                   f"kill -9 {pid} 2>/dev/null; exec {shlex.join(str(a) for a in restart)}")
    # wait until no job runs (this one included: its proc file goes when it has returned), so that
    # the restart does not cut an orch phase or a heal run short; at most 2 minutes
    procs = shlex.quote(os.path.join(__opts__["cachedir"], "proc"))
    idle = f'for i in $(seq 240); do [ -z "$(ls -A {procs} 2>/dev/null)" ] && break; sleep 0.5; done; '
    subprocess.Popen(["sh", "-c", f"sleep {delay}; {idle}{command}"], start_new_session=True, close_fds=True,  # pylint: disable=consider-using-with
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def events_engine(name, enabled=True, restart=True):
    """
    Install (or remove) the docker_events engine config of the formula at ``name``
    (``minion.d/energy-events.conf``; see ``energy.engine_config``) and make sure the running
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
    import os  # pylint: disable=import-outside-toplevel

    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    wanted = __salt__["energy.engine_content"]() if enabled else None
    try:
        with open(name, encoding="utf-8") as handle:
            current = handle.read()
    except OSError:
        current = None
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
        if not __opts__.get("test"):
            if wanted is None:
                try:
                    os.remove(name)
                except FileNotFoundError:
                    pass
            else:
                os.makedirs(os.path.dirname(name), exist_ok=True)
                with open(name + ".tmp", "w", encoding="utf-8") as handle:
                    handle.write(wanted)
                os.replace(name + ".tmp", name)
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
