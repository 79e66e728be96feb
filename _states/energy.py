"""
States of the energy formula that Docker's own states do not cover.

``energy.reachable``: wait until a service of the stack answers on its TCP port, so that a
formula starts only once its MongoDB answers and an unreachable service fails the run with a
message naming it.
"""

import socket
import time
import urllib.parse

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
    deadline = time.monotonic() + float(timeout)
    while True:
        if _probe(host, port, 2):
            ret["result"] = True
            ret["comment"] = f"{label} at {host}:{port} answers"
            return ret
        if time.monotonic() >= deadline:
            ret["comment"] = (f"{label} at {host}:{port} does not answer after {timeout} s "
                              f"(checked from minion {__opts__.get('id')}): is its container running?")
            return ret
        time.sleep(interval)
