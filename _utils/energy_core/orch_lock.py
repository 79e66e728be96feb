"""One ``energy.orch`` or ``energy.clean_orch`` at a time on a master.

Two orchs at once would interleave their phases on the same containers (a clean removing what a
deploy just made, two deploys recreating each other's containers). The first step of both
orchestrate files takes a lock file in the master's cachedir (``salt-run energy_lock.take``) and
their last step gives it back. The lock names the job that holds it: the orchestrate job's jid and
the process that runs it. A lock whose job no longer runs on the master (the orch failed
mid-way, its process was killed, the master restarted) is stale: the next orch takes it over and
says so, so an orch that died never blocks the ones after it.

The file is JSON ``{"jid", "pid", "what", "since"}``, written atomically, mode 0600.
"""

import contextlib
import fcntl
import json
import os
import time

from . import healing

LOCK = "energy/orch.lock"
# the runner functions an orchestrate job runs as (salt-run, or a runner called from a reactor/API)
ORCH_FUNS = ("state.orchestrate", "state.orch", "state.sls", "runner.state.orchestrate", "runner.state.orch",
             "runner.state.sls")
RELEASE = "salt-run energy_lock.release force=True"


def path_in(cachedir):
    return os.path.join(cachedir, LOCK)


def holder_of(running, pid, own_jid):
    """The jid an orch step runs for: the oldest orchestrate job of process ``pid`` among the
    master's ``running`` jobs (``[{"jid", "pid", "fun"}]``), else ``own_jid`` (the step's own
    job: the runner was called by hand)."""
    jids = sorted(str(job.get("jid")) for job in running
                  if job.get("pid") == pid and job.get("fun") in ORCH_FUNS and str(job.get("jid")) != str(own_jid))
    return jids[0] if jids else str(own_jid)


def read(path):
    """``(holder, problem)``: the lock's holder (None when there is no lock) and why the file
    cannot be read ('' when it can). An unreadable lock holds nobody: no job can be named."""
    try:
        with open(path, encoding="utf-8") as handle:
            held = json.load(handle)
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as exc:
        return None, f"{path} is not a lock this formula wrote ({exc})"
    if not isinstance(held, dict) or not held.get("jid"):
        return None, f"{path} is not a lock this formula wrote (no jid in it)"
    return held, ""


def describe(held):
    since = held.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    return f"{held.get('what') or 'an orch'} (jid {held.get('jid')}, pid {held.get('pid')}, since {when})"


def decide(held, me, running_jids, path):
    """What the orch ``me`` does with the lock ``held`` (None: free), knowing the jids of the jobs
    that run on the master: ``("take", note)``, where the note says which stale lock it takes over
    ('' for none), or ``("refuse", message)`` naming the running job and how to clear the lock."""
    if held is None:
        return "take", ""
    if str(held.get("jid")) == str(me["jid"]):
        return "take", ""
    if str(held.get("jid")) not in {str(j) for j in running_jids}:
        return "take", (f"{path}: {describe(held)} no longer runs on this master (it failed or was stopped); "
                        f"its lock is taken over by {describe(me)}")
    return "refuse", (f"{me.get('what') or 'this orch'} refused, nothing was touched: {describe(held)} is running "
                      f"on this master and holds {path}. Wait until it ends (salt-run jobs.active lists it); "
                      f"if it is stuck, stop it (salt-run jobs.kill {held.get('jid')} or its process "
                      f"{held.get('pid')}) and the next orch takes its lock over, or clear the lock with: {RELEASE}")


@contextlib.contextmanager
def guarded(path):
    """Hold an exclusive flock around a read-decide-write of the lock: two orchs started at the
    same moment must not both find it free."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".guard", "a", encoding="utf-8") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


def write(path, holder):
    healing.write_atomic(path, json.dumps(holder, sort_keys=True), mode=0o600)


def remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
