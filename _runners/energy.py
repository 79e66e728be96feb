"""
Master side of the energy formula.

``energy.orch_targets``  what each phase of ``energy.orch`` targets (role resolution of the pure
                         core, the minions that do not answer left out)
``energy.reactor``       the master's reaction to the stack's docker_events
                         (``master.d/energy-reactor.conf``), loaded when salt-master starts
                         (``energy_heal``)
``energy.react_event``   what that reaction runs: checks the event, then has the minion that sent
                         it recreate its container (``energy_heal.react``)
``energy.plan``          the plan computed on the master, from its own pillar and the mine in its
                         cache: what the runners check every minion's return against
``energy.summary``       the deployment as it is (``energy_summary``): a table per minion, the
                         topology (text, SVG, DOT, PNG), what differs between plan and reality
``energy.backup``        consistent backups of the InfluxDB databases, with a manifest
``energy.restore``       a backup into the current plan (checked first, merged without duplicates)
``energy.export``        power per container as CSV or line protocol, streamed (the three in
                         ``energy_archive``)

.. code-block:: bash

    salt-run energy.reactor
"""

import logging
import os

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "energy"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import extmods, names, placement, reactions, schema
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced to the master yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy runner needs the formula's energy_core utils on the master ({CORE_ERROR}): "
                       "run salt-run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _served_extmods(saltenv="base"):
    """The digest of the formula's modules as this master's file server serves them in
    ``saltenv`` (``energy_core.extmods``), or None when it serves none of them (every minion is
    synced then, as before this check existed)."""
    import salt.fileserver  # pylint: disable=import-outside-toplevel

    try:
        server = salt.fileserver.Fileserver(__opts__)
        files = {}
        for path in server.file_list({"saltenv": saltenv}):
            if path.startswith("_") and extmods.shipped(path[1:]):
                found = server.find_file(path, saltenv)
                if found.get("path"):
                    files[path[1:]] = extmods.file_sha256(found["path"])
        return extmods.digest(files)
    except Exception as exc:  # pylint: disable=broad-except  (no file server here: sync everyone)
        log.warning("energy: cannot read the formula's modules from the file server (%s): every minion is synced", exc)
        return None


def _to_sync(every):
    """The compound target of the sync step: ``every`` without the minions whose
    ``energy_extmods`` grain, as the master's cache holds it (sent with each pillar request), is
    the digest of what the master serves; '' when that leaves none. Ids, not a grain match: a
    minion whose cached grain is behind its own is synced once more rather than waited for."""
    served = _served_extmods()
    if not served:
        return every
    cached = __salt__["cache.grains"](tgt=every, tgt_type="compound") or {}
    # an id with a comma or a space would change the target: such a minion is synced, always
    synced = sorted(m for m, grains in cached.items() if names.plain_id(m) and isinstance(grains, dict)
                    and grains.get(extmods.GRAIN) == served)
    if not synced:
        return every
    # cache.grains names every minion its target matches ({} without cached data): those left
    # once the synced ones are out are the ones the target below matches
    return f"( {every} ) and not L@{','.join(synced)}" if set(cached) - set(synced) else ""


def orch_targets(defaults=None, pillar=None, ping_timeout=None):
    """
    What each step of ``energy.orch`` targets: ``targets`` (role -> compound target, without the
    minions that do not answer), ``all`` (every minion of every role), ``down`` (those that did not
    answer a ``test.ping`` within ``energy:ping_timeout``), ``roles_down`` (roles whose minions are
    all down: their component is left out), ``phases`` (the deploy phases: ``[{"name", "sls",
    "tgt"}]``, ``energy_core.placement.orch_phases``: the last one applies ``energy.heal`` too, on
    every minion), ``events_enabled`` and ``restart_master``.

    ``sync`` is the target of the sync step: the minions whose synced copy of the formula's modules
    differs from what the master serves ('' when none does: no sync step).

    The configuration is the master's own, as the plan step reads it (``energy_plan.config``:
    defaults.yaml and the master's pillar through the formula's schema); ``defaults`` and ``pillar``
    (``energy`` of each) replace it when given. A pillar the schema refuses is left to the orch's
    plan step (``energy_plan.prepare``), which names the error before any container is touched.

    CLI Example:

    .. code-block:: bash

        salt-run energy.orch_targets
    """
    if defaults is None:
        conf = __salt__["energy_plan.config"](lenient=True)
    else:
        try:
            conf = schema.merge(defaults, pillar)
        except schema.PlanError:
            conf = dict(defaults)
    targets = placement.role_targets(conf)
    every = " or ".join(f"( {t} )" for t in dict.fromkeys(targets.values()))
    timeout = ping_timeout or conf.get("ping_timeout")
    if not schema.is_positive(timeout):
        timeout = 10
    # an explicit timeout: the master's (or salt-run -t's) could make a down minion cost minutes
    status = __salt__["manage.status"](tgt=every, tgt_type="compound", timeout=timeout,
                                       gather_job_timeout=timeout) if every else {}
    down = sorted((status or {}).get("down") or [])
    odd = [m for m in down if not names.plain_id(m)]
    if odd:  # 'x,ctl' or 'x or *' spliced into 'and not L@...' would leave out minions that answer
        raise CommandExecutionError(
            f"minion(s) {', '.join(repr(m) for m in odd)} did not answer, and their ids cannot be left out of a "
            "compound target (only letters, digits, '.', '_' and '-' can): bring them back, or remove their keys "
            "(salt-key -d), then run the orch again")
    roles_down = []
    if down:
        skip = " and not L@" + ",".join(down)
        targets = {role: f"( {target} ){skip}" for role, target in targets.items()}
        every = f"( {every} ){skip}"  # 'a or b and not c' is 'a or (b and not c)'
        # cache.grains matches without pinging: a role with no minion left has no phase
        roles_down = [role for role, target in targets.items()
                      if not __salt__["cache.grains"](tgt=target, tgt_type="compound")]
    heal = conf.get("heal") if isinstance(conf.get("heal"), dict) else {}
    events = heal.get("events") if isinstance(heal.get("events"), dict) else {}
    return {"targets": targets, "all": every, "down": down, "roles_down": roles_down,
            "sync": _to_sync(every) if every else "",
            "phases": placement.orch_phases(targets, roles_down, every),
            "events_enabled": events.get("enabled", True) is True,
            "restart_master": events.get("restart_master", False) is True}


def react_event(minion=None, event=None):
    """
    The master's reaction to ``energy/docker/<action>`` from the docker_events engine of
    ``minion``: when ``event`` reports the death (or removal) of a container that the plan computed
    on the master (``energy.plan``) places on that minion, run ``energy_heal.react <name> <action>`` on
    it, at most once per container per ``energy:heal:events:interval`` seconds; anything else is
    dropped, counted per container and logged once per interval. The event comes from a minion,
    and Salt lets a minion stamp an event with another minion's id: it is checked here, in
    Python, and passed on as data. The plan is computed at most once per interval too
    (``energy_core.reactions``: a small state file in the master's cachedir, under a lock).

    CLI Example:

    .. code-block:: bash

        salt-run energy.react_event minion=node-a event='{"Action": "die", "Actor": {"Attributes": {"name": "energy-node-a-sensor", "energy.minion": "node-a"}}}'
    """
    import time  # pylint: disable=import-outside-toplevel

    refused = names.reaction_refused(minion, event)
    name = "" if refused else event["Actor"]["Attributes"]["name"]
    with reactions.locked(os.path.join(__opts__["cachedir"], "energy", reactions.STATE_FILE)) as state:
        kept = reactions.planned(state, time.time()) if refused else _planned(state, time.time())
        now = time.time()  # after the plan: the interval starts when the reaction is sent
        interval = (kept or {}).get("interval") or reactions.DEFAULT_INTERVAL
        refused = refused or reactions.refused(kept, minion, name)
        if refused:
            admitted, key = False, f"minion {str(minion)[:80]!r}"
            note = reactions.drop(state, key, now, interval, refused, section="refused")
            dropped = reactions.dropped(state, key, "refused")
        else:
            key = f"{minion}/{name}"
            admitted, note = reactions.admit(state, key, now, interval)
            dropped = reactions.dropped(state, key)
    if note:
        log.warning("energy reactor: %s", note)
    if not admitted:
        why = refused or f"at most one energy_heal.react per {interval:g} s for {name} on {minion}"
        return {"result": True, "comment": f"dropped: {why}", "dropped": dropped}
    import salt.client  # pylint: disable=import-outside-toplevel

    with salt.client.get_local_client(mopts=__opts__) as client:
        jid = client.cmd_async([minion], "energy_heal.react", kwarg={"name": name, "action": event["Action"]},
                               tgt_type="list")
    return {"result": bool(jid), "comment": f"energy_heal.react {name} {event['Action']} sent to {minion} (job {jid})"}


def _kept():
    return __salt__["energy_plan.kept"]()


def _planned(state, now):
    """The plan's containers per minion as ``energy_core.reactions`` keeps them: what the last orch
    handed the minions (``energy_plan.kept``: the same parts the minions deploy and heal), read once
    per interval at most; a plan that cannot be read is kept as such for an interval too (every
    reaction is dropped until then: the heal schedule remains)."""
    kept = reactions.planned(state, now)
    if kept:
        return kept
    try:
        handed = _kept()
    except Exception as exc:  # pylint: disable=broad-except  (a pillar, file server or mine failure)
        log.error("energy reactor: no plan on the master, reactions are dropped: %s", exc)
        return reactions.keep_plan(state, now, {}, reactions.DEFAULT_INTERVAL, error=str(exc)[:500])
    interval = handed.get("interval") or reactions.DEFAULT_INTERVAL
    return reactions.keep_plan(state, now, handed["containers"], interval)


# --------------------------------------------------------------------------- the plan, on the master


def mine(tgt="*", tgt_type="glob"):
    """
    The energy facts (``energy.facts``) in the mine of this master's cache, per minion that ``tgt``
    matches: what ``salt-run mine.get <tgt> energy.facts`` answers, without the warnings it leaves
    (Salt 3008's mine runner never destroys its master client). The runners read the mine here.

    CLI Example:

    .. code-block:: bash

        salt-run energy.mine
        salt-run energy.mine 'G@energy:cpu_vendor:amd' tgt_type=compound
    """
    import salt.daemons.masterapi  # pylint: disable=import-outside-toplevel

    api = salt.daemons.masterapi.RemoteFuncs(__opts__)
    try:
        return api._mine_get({"id": __opts__["id"], "fun": names.MINE_FUNCTION, "tgt": tgt,  # pylint: disable=protected-access
                              "tgt_type": tgt_type}, skip_verify=True) or {}
    finally:
        helper = api.mminion
        api.destroy()
        # Salt 3008.3's MasterMinion.__del__ takes the {} that destroy() leaves for "not destroyed"
        # and warns "unclosed MasterMinion" all the same
        if helper is not None:
            helper.returners = helper.functions = helper.utils = None


def plan():
    """
    The deployment plan computed on the master (``energy_plan.plan``): its own pillar through the
    formula's schema, the energy facts in the mine of its cache and the placement kept from the last
    orch; the reference every runner checks a minion's return against. Secrets are shown as ``***``.
    Raises with the pillar key when the configuration or the placement is invalid.

    CLI Example:

    .. code-block:: bash

        salt-run energy.plan
    """
    return __salt__["energy_plan.plan"]()


def rebalance(apply=False, timeout=3600):
    """
    The canonical placement against the current one, and with ``apply=True`` the data moved there
    with a backup and a restore: ``energy_plan.rebalance``.

    CLI Example:

    .. code-block:: bash

        salt-run energy.rebalance
        salt-run energy.rebalance apply=True
    """
    return __salt__["energy_plan.rebalance"](apply=apply, timeout=timeout)


# --------------------------------------------------------------------------- operate (energy_summary, energy_archive)


def summary(tgt="*", format="text", path=None, timeout=30):  # pylint: disable=redefined-builtin
    """
    The deployment as it is: ``energy_summary.summary`` (the plan computed on the master, each
    minion's live containers, what differs; a picture with ``format=svg|dot|png``).

    CLI Example:

    .. code-block:: bash

        salt-run energy.summary
        salt-run energy.summary format=svg path=/tmp/energy.svg
    """
    return __salt__["energy_summary.summary"](tgt=tgt, format=format, path=path, timeout=timeout)


def backup(dest=None, cpus=None, since=None, until=None, tgt="*", timeout=3600):
    """
    Back up the InfluxDB databases of the plan into ``<dest>/energy-backup-<time>/``:
    ``energy_archive.backup``.

    CLI Example:

    .. code-block:: bash

        salt-run energy.backup dest=/srv/backups since=7d
    """
    return __salt__["energy_archive.backup"](dest=dest, cpus=cpus, since=since, until=until, tgt=tgt,
                                             timeout=timeout)


def restore(src, cpus=None, tgt="*", stop_formulas=False, timeout=3600):
    """
    Restore a backup of ``salt-run energy.backup`` into the current plan: ``energy_archive.restore``.

    CLI Example:

    .. code-block:: bash

        salt-run energy.restore src=/srv/backups/energy-backup-20261126T101500Z stop_formulas=True
    """
    return __salt__["energy_archive.restore"](src=src, cpus=cpus, tgt=tgt, stop_formulas=stop_formulas,
                                              timeout=timeout)


def export(dest, since=None, until=None, cpus=None, format="csv", per_cpu=True, tgt="*", timeout=3600):  # pylint: disable=redefined-builtin
    """
    Power per container as CSV or line protocol, new files in ``dest``: ``energy_archive.export``.

    CLI Example:

    .. code-block:: bash

        salt-run energy.export dest=/srv/exports since=1d
    """
    return __salt__["energy_archive.export"](dest=dest, since=since, until=until, cpus=cpus, format=format,
                                             per_cpu=per_cpu, tgt=tgt, timeout=timeout)


def reactor(enabled=True, restart=False, wait=5):
    """
    Give this master the reaction ``energy/docker/* -> salt://energy/reactor/heal.sls`` (or take it
    away) and say whether the running reactor has loaded it: ``energy_heal.reactor``.

    CLI Example:

    .. code-block:: bash

        salt-run energy.reactor
        salt-run energy.reactor restart=True
    """
    return __salt__["energy_heal.reactor"](enabled=enabled, restart=restart, wait=wait)


def report(since=None, until=None, experiment=None, cpus=None, minions=None, containers=None, out="text",
           plot=None, compare=None, timeout=600):  # pylint: disable=unused-argument  (passed on by locals())
    """An experiment's joules per container, machine and CPU name (``energy_report.report``). CLI Example:

        salt-run energy.report experiment=run-42 out=json plot=/tmp/run-42.png
    """
    return __salt__["energy_report.report"](**locals())


def mark(name, phase, note="", timeout=60):
    """Mark an experiment's start or end in every InfluxDB (``energy_report.mark``). CLI Example:

        salt-run energy.mark run-42 start note="10 clients"
    """
    return __salt__["energy_report.mark"](name, phase, note=note, timeout=timeout)


def marks(timeout=60):
    """The experiments marked, each with its window (``energy_report.marks``). CLI Example:

        salt-run energy.marks
    """
    return __salt__["energy_report.marks"](timeout=timeout)
