"""
The ``energy_network`` states: the stack's own Docker network (``energy:network:name``, a
user-defined bridge) that every container of the energy formula joins.

``energy_network.present``  the network exists, once: minions sharing one engine may run this at
                            the same moment, and Docker's duplicate check is not atomic (six
                            concurrent creates made six networks of one name here), so the create
                            runs under a lock on the machine, and duplicates found anyway (an
                            engine shared across machines) are reduced to the oldest
``energy_network.absent``   the network removed once no container uses it

.. code-block:: yaml

    energy-stack-network-present:
      energy_network.present:
        - name: energy
"""

import contextlib
import logging
import os

log = logging.getLogger(__name__)

__virtualname__ = "energy_network"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import hardening
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)

try:
    import fcntl
except ImportError:  # pragma: no cover (not on Windows minions)
    fcntl = None


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_network states need the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return energy_core.virtual(__virtualname__, "the energy_network states", __salt__, needs=("docker.networks",))


@contextlib.contextmanager
def _machine_lock(name):
    """An exclusive lock every minion of this machine shares (/run when writable, as root; the
    minion's cache directory otherwise, which serves a single minion)."""
    folder = "/run" if os.access("/run", os.W_OK) else __opts__["cachedir"]
    path = os.path.join(folder, f"energy-network-{name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _named(name):
    """The networks called exactly ``name`` (Docker's name filter matches substrings), inspected."""
    found = [n for n in __salt__["docker.networks"](names=[name]) or [] if n.get("Name") == name]
    inspected = []
    for network in found:
        try:
            inspected.append(__salt__["docker.inspect_network"](network["Id"]))
        except Exception as exc:  # pylint: disable=broad-except
            if not _not_found(exc):  # a timeout or an engine error is not "gone"
                raise
            # removed in between, by another minion's clean on the same engine
            log.debug("energy_network: %s gone while listed (%s)", network["Id"][:12], exc)
    return inspected


def _not_found(exc):
    """Whether Docker answered 404 (saltext-dockermod's ``Error 404: ...`` or the SDK's NotFound)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status == 404 or str(exc).startswith("Error 404") or "404 Client Error" in str(exc)


def _used(found):
    return sorted({c.get("Name", cid[:12]) for n in found for cid, c in (n.get("Containers") or {}).items()})


def _without_duplicates(name, found, ret):
    extra = hardening.networks_to_remove(found)
    for network in extra:
        if not __opts__.get("test"):
            try:
                __salt__["docker.remove_network"](network["Id"])
            except Exception as exc:  # pylint: disable=broad-except
                log.debug("energy_network: duplicate %s already gone (%s)", network["Id"][:12], exc)
        ret["changes"].setdefault("duplicates_removed", []).append(network["Id"][:12])
    if extra:
        log.warning("energy_network: %d duplicate network(s) named %s removed", len(extra), name)


def present(name):
    """
    The Docker network ``name`` exists (a bridge labelled ``energy.network``), once.

    CLI Example:

    .. code-block:: bash

        salt-call state.single energy_network.present name=energy
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    problem = hardening.network_problem(name)
    if problem:
        ret.update(result=False, comment=f"energy:network:name: bad value {name!r}. Fix: {problem}")
        return ret
    with _machine_lock(name):
        found = _named(name)
        if not found:
            if __opts__.get("test"):
                ret.update(result=None, changes={"created": name}, comment=f"network {name} would be created")
                return ret
            __salt__["docker.create_network"](name, driver="bridge", labels={hardening.NETWORK_LABEL: "stack"},
                                              check_duplicate=True)
            ret["changes"]["created"] = name
            found = _named(name)
        _without_duplicates(name, found, ret)
    if __opts__.get("test") and ret["changes"]:
        ret["result"] = None
    ret["comment"] = f"network {name} " + ("created" if "created" in ret["changes"] else "is present")
    return ret


def absent(name):
    """
    The Docker network ``name`` is removed when no container uses it (others, of another minion
    on the same engine, keep it until their own clean).

    CLI Example:

    .. code-block:: bash

        salt-call state.single energy_network.absent name=energy
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": f"network {name} is absent"}
    problem = hardening.network_problem(name)
    if problem:
        ret.update(result=False, comment=f"energy:network:name: bad value {name!r}. Fix: {problem}")
        return ret
    decided = _gone_or_used(name, _named(name), ret, "network {name} is absent", "still use it")
    if decided:
        return decided
    if __opts__.get("test"):
        ret.update(result=None, changes={"removed": name}, comment=f"network {name} would be removed")
        return ret
    with _machine_lock(name):  # minions of this machine clean side by side: one removes it
        return _remove(name, ret)


def _gone_or_used(name, found, ret, gone, use):
    """``ret`` saying the network (``found``: ``_named``) is gone or used, or None when it is there
    and unused."""
    if not found:
        ret["comment"] = gone.format(name=name)
        return ret
    used = _used(found)
    if used:
        ret["comment"] = f"network {name} kept: {len(used)} container(s) {use} ({', '.join(used[:5])})"
        return ret
    return None


def _now(name, ret):
    """What is there now, after another minion may have removed the network or attached a
    container: ``(ret, None)`` when that decides, else ``(None, the networks)``."""
    found = _named(name)
    return _gone_or_used(name, found, ret, "network {name} is absent (removed by another minion's clean)",
                         "use it now"), found


def _remove(name, ret):
    """Under the machine's lock: what is there now decides; so it does after a removal that
    failed (an engine shared across machines)."""
    decided, found = _now(name, ret)
    if decided:
        return decided
    for network in found:
        try:
            __salt__["docker.remove_network"](network["Id"])
            ret["changes"] = {"removed": name}  # one of duplicates counts, whatever comes next
        except Exception as exc:  # pylint: disable=broad-except
            decided, _found = _now(name, ret)
            if decided:
                return decided
            ret.update(result=False, comment=f"network {name} could not be removed: {exc}")
            return ret
    ret["comment"] = f"network {name} removed"
    return ret
