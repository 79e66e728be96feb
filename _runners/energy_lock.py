"""
The master's lock on the stack: one ``energy.orch`` or ``energy.clean_orch`` at a time.

``energy_lock.take``     the first step of both orchestrate files: refuses, before any minion is
                         touched, while another orch of the stack runs on this master
``energy_lock.release``  their last step; by hand (``force=True``) to clear a lock
``energy_lock.status``   who holds the lock, and whether that job still runs

The decisions are ``energy_core.orch_lock``'s; this file reads the master's running jobs.

.. code-block:: bash

    salt-run energy_lock.status
"""

import logging
import os
import time

log = logging.getLogger(__name__)

__virtualname__ = "energy_lock"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import orch_lock
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced to the master yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_lock runner needs the formula's energy_core utils on the master ({CORE_ERROR}): "
                       "run salt-run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _running():
    """The jobs that run on this master (``<cachedir>/proc``; Salt drops those whose process died)."""
    import salt.utils.master  # pylint: disable=import-outside-toplevel

    return salt.utils.master.get_running_jobs(__opts__)


def _me(running, what):
    own = globals().get("__jid__", "")  # Salt sets it for each runner call
    return {"jid": orch_lock.holder_of(running, os.getpid(), own), "pid": os.getpid(), "what": str(what),
            "since": round(time.time(), 1)}


def _path():
    return orch_lock.path_in(__opts__["cachedir"])


def take(what="energy.orch"):
    """
    Take the stack's lock for the orchestrate job this step belongs to. Refused (the step fails,
    and the orch's ``failhard`` stops it before any minion is touched) while another orch of the
    stack runs on this master; the message names that job and how to clear a stuck lock. A lock
    whose job no longer runs (the orch failed or was killed) is taken over, with a warning.

    CLI Example:

    .. code-block:: bash

        salt-run energy_lock.take what=energy.orch
    """
    path = _path()
    with orch_lock.guarded(path):
        running = _running()
        me = _me(running, what)
        held, problem = orch_lock.read(path)
        if problem:
            log.warning("energy: %s; taken over by %s", problem, orch_lock.describe(me))
        verdict, message = orch_lock.decide(held, me, [job.get("jid") for job in running], path)
        if verdict == "refuse":
            __context__["retcode"] = 1
            log.error("energy: %s", message)
            return {"result": False, "error": message, "holder": held}
        if message:
            log.warning("energy: %s", message)
        orch_lock.write(path, me)
    return {"result": True, "holder": me, "comment": message or problem or f"{path} taken by {orch_lock.describe(me)}"}


def release(force=False):
    """
    Give the stack's lock back: the last step of ``energy.orch`` and ``energy.clean_orch``. Only
    the job that holds it releases it; ``force=True`` clears it whoever holds it (a job that is
    stuck: stop it first).

    CLI Example:

    .. code-block:: bash

        salt-run energy_lock.release
        salt-run energy_lock.release force=True
    """
    path = _path()
    with orch_lock.guarded(path):
        held, problem = orch_lock.read(path)
        me = _me(_running(), "release")
        if held is None and not problem:
            return {"result": True, "comment": f"{path}: no lock"}
        if force or (held and str(held.get("jid")) == me["jid"]):
            orch_lock.remove(path)
            if force:
                log.warning("energy: %s cleared by hand (held by %s)", path,
                            orch_lock.describe(held) if held else "nobody")
            return {"result": True, "comment": f"{path} released", "holder": held}
    return {"result": True, "comment": f"{path} is held by {orch_lock.describe(held)}, not by this job: left "
                                       f"as it is (clear it with {orch_lock.RELEASE})", "holder": held}


def status():
    """
    Who holds the stack's lock, and whether that job still runs on this master.

    CLI Example:

    .. code-block:: bash

        salt-run energy_lock.status
    """
    path = _path()
    held, problem = orch_lock.read(path)
    if held is None:
        return {"held": False, "path": path, "comment": problem or "no lock"}
    alive = str(held.get("jid")) in {str(job.get("jid")) for job in _running()}
    return {"held": True, "path": path, "holder": held, "running": alive,
            "comment": orch_lock.describe(held) + (" runs" if alive else " no longer runs: the next orch takes it")}
