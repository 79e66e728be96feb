"""One computation per Salt job (pure): which job a process or thread runs, read from the minion's
proc files, and a value kept in ``__context__`` for that job only."""

import hashlib
import json


def job_of(entries, pid, thread_name=None):
    """The id of the job running in process ``pid`` among the minion's proc files ``entries`` (their
    loaded contents; anything not a job's is passed over), or None when not exactly one. Under
    threads (``thread_name``: the asking thread's name) every job has the minion's pid, and the
    thread's name holds its job id."""
    jids = {str(e["jid"]) for e in entries if isinstance(e, dict) and e.get("pid") == pid and e.get("jid")}
    if thread_name is not None:
        jids = {jid for jid in jids if jid in thread_name}
    return jids.pop() if len(jids) == 1 else None


def once_per_job(context, key, jid, inputs, compute):
    """``compute()`` once per job and ``inputs``, kept in ``context`` (Salt's ``__context__``): the job
    id in the key keeps a long-lived minion from serving a value of an earlier job; no job id, no
    keeping."""
    if jid is None:
        return compute()
    stamp = (jid, hashlib.sha1(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest())
    cached = context.get(key)
    if cached and cached[0] == stamp:
        return cached[1]
    value = compute()
    context[key] = (stamp, value)
    return value
