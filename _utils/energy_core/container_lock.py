"""One job at a time recreates a container of the stack on a minion.

Several jobs of one minion may want to recreate the same container at the same moment: the heal
schedule's light check, the reactor's ``energy_heal.react`` on a die/destroy event, a state run of
the orch or of the full heal schedule. docker_container.running replaces a container by creating
a temporary one and renaming it: two of them at once fail with a name conflict and leave the
temporary container behind. Each takes this lock first, a file per container under the minion's
cachedir; the lock is re-entrant within one process (the heal state takes it, then the
container state it calls takes it again).
"""

import contextlib
import os
import re
import sys
import threading
import time

POLL_SECONDS = 0.2
# the least a state waits for a heal job of its minion that recreates the same container
STATE_WAIT_SECONDS = 180.0


def _held_here():
    """(thread, lock file) pairs this process holds. Kept on ``sys``: each Salt module loads the
    core afresh (``energy_core.load``), and the heal state's copy of this module must see what the
    container state's copy holds."""
    return sys.__dict__.setdefault("_energy_container_locks", set())


def state_wait(heal):
    """How long a state run waits for the lock: a heal job holds it while the container it
    recreated gets ``energy:heal:timeout`` seconds to answer (``heal``: that section of the merged
    configuration), so a state waits that long and a minute more, and never less than
    ``STATE_WAIT_SECONDS``."""
    heal = heal if isinstance(heal, dict) else {}
    try:
        held_for = float(heal.get("timeout") or 0) + float(heal.get("grace_seconds") or 0)
    except (TypeError, ValueError):
        held_for = 0.0
    return max(STATE_WAIT_SECONDS, held_for + 60.0)


class Busy(Exception):
    """Another job held the container's lock for the whole wait."""


def path(cachedir, name):
    """The lock file of container ``name`` (its name reduced to characters safe in a file name)."""
    return os.path.join(cachedir, "energy", "locks", re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".lock")


@contextlib.contextmanager
def held(cachedir, name, wait=60.0):
    """The block runs holding container ``name``'s lock; raises :class:`Busy` when another job
    holds it for ``wait`` seconds."""
    import fcntl  # pylint: disable=import-outside-toplevel

    lock_path = path(cachedir, name)
    mine, held_here = (threading.get_ident(), lock_path), _held_here()
    if mine in held_here:
        yield
        return
    os.makedirs(os.path.dirname(lock_path), mode=0o700, exist_ok=True)
    deadline = time.monotonic() + max(0.0, float(wait))
    with open(lock_path, "a", encoding="utf-8") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise Busy(f"another job of this minion has been recreating {name} for {wait:.0f} s") from None
                time.sleep(POLL_SECONDS)
        held_here.add(mine)
        try:
            yield
        finally:
            held_here.discard(mine)
            fcntl.flock(handle, fcntl.LOCK_UN)
