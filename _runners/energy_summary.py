"""
The deployment summary on the master: ``salt-run energy.summary`` (the ``energy`` runner keeps that
name and calls this one; ``salt-run energy_summary.summary`` is the same).

The topology is the plan the master computes itself (``salt-run energy.plan``), never one a minion
sends; each minion's ``energy_inventory.live`` answer is checked (``energy_core.trust.live``) and what it
cannot vouch for is left out, with a log line naming the minion. A picture is written as a new
file only (``energy_core.trust.Outbox``).

.. code-block:: bash

    salt-run energy.summary
"""

import contextlib
import logging
import os
import subprocess

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "energy_summary"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import archive, topology as topology_core, trust
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced to the master yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the {__virtualname__} runner needs the formula's energy_core utils on the master "
                       f"({CORE_ERROR}): run salt-run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _failed(message):
    """End a runner with an error: salt-run prints it and exits non-zero."""
    __context__["retcode"] = 1
    log.error("energy: %s", message)
    return {"result": False, "error": message, "retcode": 1}  # salt-run exits with retcode


def _client():
    import salt.client  # pylint: disable=import-outside-toplevel

    return salt.client.get_local_client(mopts=__opts__)


def _combined(tgt, timeout):
    """The summary's facts: the topology of the plan computed here on the master (``energy.plan``),
    with each minion's ``energy_inventory.live`` checked (``energy_core.trust.live``: what it cannot vouch for
    is left out and logged naming the minion). The minions with energy facts in the mine are the
    ones expected to answer."""
    try:
        topology, error = topology_core.planned(__salt__["energy.plan"]()), None
    except CommandExecutionError as exc:
        topology, error = None, str(exc)
    expected = sorted(__salt__["energy.mine"](tgt).keys())
    with _client() as client:
        found = client.cmd(tgt, "energy_inventory.live", timeout=timeout, full_return=True)
    lives = {}
    for minion, ret in sorted((found or {}).items()):
        lives[minion], problems = trust.live(minion, ret.get("ret") if isinstance(ret, dict) else ret)
        for problem in problems:
            log.warning("energy: %s: refused", problem)
    summary = topology_core.combine(topology, lives, expected)
    if topology is None:
        summary["differences"]["errors"]["plan"] = error
    return summary


DATA_OUTPUTTERS = ("json", "yaml", "pprint", "raw", "nested", "newline_values_only")
PICTURES = ("svg", "dot", "png")


def _picture(facts, format, path):  # pylint: disable=redefined-builtin
    """Draw the summary into ``path`` (a new file), or into the cachedir's ``energy/summary.<format>``
    (which replaces the one an earlier run drew there)."""
    if not path:
        path = os.path.join(__opts__["cachedir"], "energy", f"summary.{format}")
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # the master's own file: a link there is removed, not followed
    directory, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise archive.ArchiveError(f"path: bad value {path!r}: directory {directory} does not exist. Fix: "
                                        "create it, or leave path out")
    source = (topology_core.svg(facts) if format == "svg" else topology_core.dot(facts)).encode()
    if format == "png":
        try:
            source = subprocess.run(["dot", "-Tpng"], input=source, check=True, timeout=60, capture_output=True).stdout
        except FileNotFoundError as exc:
            raise archive.ArchiveError("format: png needs Graphviz's dot on the master. Fix: apt-get install "
                                            "graphviz, or format=svg (drawn without it)") from exc
        except subprocess.CalledProcessError as exc:
            raise archive.ArchiveError(f"dot -Tpng failed: {exc.stderr.decode(errors='replace')[-500:]}") from exc
    box = trust.Outbox(directory)
    try:
        box.create(name, mode=0o644).write(source)
    except FileExistsError as exc:
        raise archive.ArchiveError(f"path: bad value {path!r}: it exists, and the summary never overwrites a "
                                        "file. Fix: a new name, or remove it first") from exc
    finally:
        box.close()
    return path


def summary(tgt="*", format="text", path=None, timeout=30):  # pylint: disable=redefined-builtin
    """
    The deployment as it is: from every minion's live containers (``energy_inventory.live``, checked) and the
    plan (computed on the master from its pillar and the mine).

    - a table per minion: its containers, component, CPU name, state, last health check,
      maintenance window, published address and port, data volume and its size;
    - the topology (sensors of each CPU name -> MongoDB -> SmartWatts -> InfluxDB -> Grafana, with
      the machine of each box), drawn as text;
    - what differs between the plan and reality: a planned container that is missing or not
      running, a container with the stack's labels that the plan does not have, a minion that did
      not answer.

    format
        ``text`` (default); ``json`` (the same facts as data; ``--out=json`` or ``--out=yaml`` also
        give data); ``svg``, ``dot`` (Graphviz) or ``png`` (needs Graphviz's ``dot``) write the
        picture to ``path``, a new file (default: the master's cachedir ``energy/summary.<format>``)
        and return the text.
    tgt
        The minions to ask (default all).

    CLI Example:

    .. code-block:: bash

        salt-run energy.summary
        salt-run energy.summary --out=json
        salt-run energy.summary format=svg path=/tmp/energy.svg
    """
    if format not in ("text", "json") + PICTURES:
        return _failed(f"format: bad value {format!r}: one of text, json, {', '.join(PICTURES)}")
    facts = _combined(tgt, timeout)
    drawn = None
    if format in PICTURES:
        try:
            drawn = _picture(facts, format, path)
        except archive.ArchiveError as exc:
            return _failed(str(exc))
    if format == "json" or __opts__.get("output") in DATA_OUTPUTTERS:
        return dict(facts, picture=drawn)
    return topology_core.text(facts) + (f"\nPicture: {drawn}\n" if drawn else "")
