"""
The ``energy_names`` engine: on a monitored minion, records each container that starts (its ID,
name, and compose project and service labels) in ``<cachedir>/energy/containers.jsonl``, so that
``salt-run energy.report`` can name the targets of containers removed since
(``energy_report.names``).

The lightest way to see every start on the machine whose power it reports: one Docker events
stream filtered to container starts, on which the engine waits in a blocking read (no polling);
one line appended per start. The record is bounded: when it has grown past twice
``energy_core.report_names.MAX_RECORDS`` lines it is rewritten with the newest of those started
within ``energy:experiment:duration``. ``energy.heal`` configures it beside the docker_events
engine (``minion.d/energy-events.conf``, ``energy_core.healing.engine_config``).

.. code-block:: yaml

    engines:
      - energy-container-names:
          engine_module: energy_names
"""

import logging
import os
import time

log = logging.getLogger(__name__)

__virtualname__ = "energy_names"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import checks, healing, report_names
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)

try:
    import docker

    HAS_DOCKER_SDK = True
except ImportError:
    HAS_DOCKER_SDK = False


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_names engine needs the formula's energy_core utils ({CORE_ERROR})")
    return energy_core.virtual(__virtualname__, "the energy_names engine", docker_sdk=HAS_DOCKER_SDK)


def _keep_seconds():
    """How long a start is kept: the experiment's duration from pillar (14 days when unset)."""
    try:
        return checks.duration_seconds(__salt__["config.get"]("energy:experiment:duration", "14d"))
    except Exception:  # pylint: disable=broad-except  (a bad value: the schema names it elsewhere)
        return 14 * 86400


def _rewrite(path):
    """The record with only what it keeps; returns its line count."""
    with open(path, encoding="utf-8") as handle:
        kept = report_names.kept(handle, time.time(), _keep_seconds(), report_names.MAX_RECORDS)
    healing.write_atomic(path, "".join(line + "\n" for line in kept), mode=0o600)
    return len(kept)


def _append(path, line, lines):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    lines += 1
    return _rewrite(path) if lines > 2 * report_names.MAX_RECORDS else lines


def _watch(client, path, lines):
    """Record what runs now, then every start Docker reports, until the stream ends."""
    for found in client.containers():
        lines = _append(path, report_names.record(found["Id"], (found.get("Names") or ["/"])[0],
                                                       found.get("Labels"), time.time()), lines)
    for event in client.events(filters={"type": "container", "event": "start"}, decode=True):
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        if isinstance(actor.get("ID"), str) and attributes.get("name"):
            lines = _append(path, report_names.record(actor["ID"], attributes["name"], attributes,
                                                           event.get("time") or time.time()), lines)
    return lines


def start(docker_url="unix://var/run/docker.sock", retry=10):
    """Run until the minion stops: a Docker daemon that restarts is watched again ``retry`` s later."""
    path = os.path.join(__opts__["cachedir"], report_names.RECORD_FILE)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    lines = _rewrite(path) if os.path.exists(path) else 0
    while True:
        try:
            client = docker.APIClient(base_url=docker_url, timeout=None)
            try:
                lines = _watch(client, path, lines)
            finally:
                client.close()
        except Exception as exc:  # pylint: disable=broad-except  (Docker restarting: wait, watch again)
            log.warning("energy_names: Docker events stopped (%s): again in %s s", exc, retry)
        time.sleep(retry)
