"""
The plan on the master: computed once per orch from the master's pillar and the mine, checked
there, and handed to each minion as its own part (``energy_core.parts``, pillar ``energy_plan``
through the ext_pillar of the same name).

``energy_plan.prepare``    the orch's step after mine.send: the plan, its checks, each minion's part
``energy_plan.config``     the configuration as the master validates it (defaults.yaml + its pillar)
``energy_plan.plan``       the plan the master computes (``salt-run energy.plan``)
``energy_plan.rebalance``  the canonical placement against the kept one; ``apply=True`` moves the
                           data there with a backup and a restore (``salt-run energy.rebalance``)

.. code-block:: bash

    salt-run energy_plan.prepare
"""

import logging
import os
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "energy_plan"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import names as names_core, parts, placement, plan as plan_core, schema, trust
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced to the master yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)

EXT_PILLAR = "energy_plan"
ALLOW_FILE = "allow_moves.json"


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_plan runner needs the formula's energy_core utils on the master ({CORE_ERROR}): "
                       "run salt-run saltutil.sync_utils (energy.orch does)")
    return __virtualname__


def _kept_dir():
    return os.path.join(__opts__["cachedir"], "energy")


def _master_defaults():
    """``energy`` of defaults.yaml as this master's file server serves it."""
    import salt.fileserver  # pylint: disable=import-outside-toplevel
    import yaml  # pylint: disable=import-outside-toplevel

    found = salt.fileserver.Fileserver(__opts__).find_file("energy/defaults.yaml", "base")
    if not found.get("path"):
        raise schema.PlanError("salt://energy/defaults.yaml is not on the master's file server. Fix: put the "
                                    "energy formula in file_roots (or a gitfs remote)")
    with open(found["path"], encoding="utf-8") as handle:
        return yaml.safe_load(handle)["energy"]


def _master_pillar():
    """Pillar ``energy`` as the orchestrate runner sees it: compiled for this master's own id
    (``<id>_master``) with its own grains."""
    import salt.loader  # pylint: disable=import-outside-toplevel
    import salt.pillar  # pylint: disable=import-outside-toplevel

    if "energy_master_grains" not in __context__:
        __context__["energy_master_grains"] = salt.loader.grains(__opts__)
    compiled = salt.pillar.Pillar(__opts__, __context__["energy_master_grains"], __opts__["id"],
                                  __opts__.get("saltenv") or "base",
                                  pillarenv=__opts__.get("pillarenv")).compile_pillar()
    if compiled.get("_errors"):
        errors = "; ".join(map(str, compiled["_errors"]))[:2000]
        raise schema.PlanError(f"the master's pillar did not render: {errors}. Fix: the pillar file named there")
    return compiled.get("energy", {})


def _master_conf():
    """defaults.yaml merged with the master's pillar and validated: the one configuration path
    (``energy_core.schema``), once per runner job. Holds secrets: never return it unmasked."""
    if "energy_conf" not in __context__:
        conf = schema.merge(_master_defaults(), _master_pillar())
        schema.check(conf)
        __context__["energy_conf"] = conf
    return __context__["energy_conf"]


def _role_facts(conf):
    return trust.role_facts(
        conf, lambda target: __salt__["energy.mine"](target, tgt_type="compound"))


def _master_plan(current=True):
    """``(conf, plan, role facts)`` computed on this master, keeping the placement it keeps
    (``current``), or from scratch (``current=False``: the canonical placement). Holds secrets."""
    conf = _master_conf()
    facts = _role_facts(conf)
    kept = parts.read_placement(_kept_dir()) if current else None
    return conf, plan_core.build(conf, facts, kept), facts


def _failed(message):
    __context__["retcode"] = 1
    return {"result": False, "error": message}


def config(lenient=False):
    """
    The configuration as the master validates it: ``energy`` of defaults.yaml overridden by the
    master's pillar (the orchestrate runner's), through the same schema as on a minion; secrets
    shown as ``***``. ``lenient=True`` gives defaults.yaml alone when the pillar is invalid (the
    orch's targets; ``energy_plan.prepare`` names the error then).

    CLI Example:

    .. code-block:: bash

        salt-run energy_plan.config
    """
    try:
        conf = _master_conf()
    except schema.PlanError as exc:
        if not lenient:
            raise CommandExecutionError(str(exc)) from exc
        conf = _lenient_conf()
    return schema.mask(conf, schema.secrets(conf))


def _lenient_conf():
    """defaults.yaml merged with the master's pillar without the checks, or defaults.yaml alone."""
    defaults = _master_defaults()
    try:
        return schema.merge(defaults, _master_pillar())
    except schema.PlanError:
        return defaults


def plan():
    """
    The deployment plan computed on the master, from its own pillar (as the orch sees it), the
    energy facts in the mine of its cache and the placement it keeps: what each minion's part
    comes from, and what every runner checks a minion's return against. Secrets are shown as
    ``***``. Raises with the pillar key when the configuration or the placement is invalid.

    CLI Example:

    .. code-block:: bash

        salt-run energy_plan.plan
    """
    try:
        conf, full, _facts = _master_plan()
    except schema.PlanError as exc:
        raise CommandExecutionError(str(exc)) from exc
    return schema.mask(full, schema.secrets(conf))


def kept():
    """
    What the last orch handed the minions, without secrets: ``containers`` (``{minion: [container
    names]}``, what a reaction may touch), ``interval`` (``energy:heal:events:interval``) and
    ``stamp``; computed now from the master's plan when no orch has kept one yet.

    CLI Example:

    .. code-block:: bash

        salt-run energy_plan.kept
    """
    found = parts.read_containers(_kept_dir())
    if found:
        return found
    try:
        conf, full, _facts = _master_plan()
    except schema.PlanError as exc:
        raise CommandExecutionError(str(exc)) from exc
    return {"containers": trust.containers_of(full), "interval": conf["heal"]["events"].get("interval"),
            "stamp": None}


def _allowed():
    """The containers ``rebalance apply=True`` lets the orch remove (their data is backed up)."""
    import json  # pylint: disable=import-outside-toplevel

    try:
        with open(os.path.join(_kept_dir(), ALLOW_FILE), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return {m: [n for n in names if isinstance(n, str)] for m, names in data.items()
            if isinstance(names, list)} if isinstance(data, dict) else {}


def prepare():
    """
    The orch's plan step, after ``mine.send``: computes the plan on the master (its pillar through
    the schema, the mine, the placement kept from the last orch), checks it (configuration,
    placement, ports, names, the database moves ``energy:strategy_change`` guards), then keeps the
    placement and each minion's part (``energy_core.parts``), which the ``energy_plan``
    ext_pillar hands to that minion alone. Fails, before any container is touched, when the plan
    cannot be computed or the master has no ``energy_plan`` ext_pillar. Returns what it kept,
    without secrets.

    CLI Example:

    .. code-block:: bash

        salt-run energy_plan.prepare
    """
    if not any(isinstance(e, dict) and EXT_PILLAR in e for e in __opts__.get("ext_pillar") or []):
        return _failed(f"ext_pillar: the master does not give minions their part of the plan (no {EXT_PILLAR} in its "
                       f"ext_pillar). Fix: add 'ext_pillar: [{{{EXT_PILLAR}: {{}}}}]' to /etc/salt/master.d/energy.conf "
                       "and restart salt-master")
    try:
        conf, full, facts = _master_plan()
    except schema.PlanError as exc:
        return _failed(str(exc))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    minions = {m for members in facts.values() for m in members}
    handed = parts.parts(conf, full, minions, stamp)
    allowed = _allowed()
    for minion, part in handed.items():
        if allowed.get(minion):
            part["leave"] = allowed[minion]
    directory = _kept_dir()
    parts.write(directory, handed)
    parts.write_placement(directory, full["placement"])
    parts.write_containers(directory, trust.containers_of(full), conf["heal"]["events"].get("interval"), stamp)
    local = sorted(m for m, p in handed.items() if "local" in p)
    for minion in local:
        log.warning("energy: %s builds its own part (%s)", minion, handed[minion]["local"])
    hidden = schema.secrets(conf)
    return schema.mask({
        "result": True, "stamp": stamp, "minions": len(handed), "local": local,
        "moves": full["placement"]["moves"], "warnings": full["warnings"],
        "placement": {cpu: {k: e[k] for k in ("mongo", "influxdb", "formula")} for cpu, e in full["placement"]["cpus"].items()},
    }, hidden)


def _leaving(current, canonical, strategy):
    """``{minion: [database containers]}`` that moving ``current`` to ``canonical`` leaves behind."""
    slugs = names_core.cpu_slugs(canonical["cpus"])
    leaving = {}
    for move in placement.moves(current, canonical):
        suffix = slugs[move["cpu"]] if strategy == "per_cpu" else None
        leaving.setdefault(move["from"], []).append(names_core.container_name(move["from"], move["component"], suffix))
    return leaving


def _write_allowed(leaving):
    import json  # pylint: disable=import-outside-toplevel

    path = os.path.join(_kept_dir(), ALLOW_FILE)
    if leaving:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(leaving, handle)
    elif os.path.exists(path):
        os.unlink(path)


def rebalance(apply=False, timeout=3600):
    """
    The canonical placement (round-robin over sorted CPU names and hosts, what a fresh deploy
    gives) against the current one (kept by the master since the last orch: what stays put as
    CPU names and hosts come and go). ``differs`` lists each CPU name placed otherwise, ``moves``
    the databases that would change host.

    With ``apply=True``: backs up the InfluxDB databases of the CPU names whose databases move
    (``salt-run energy.backup``), makes the canonical placement the kept one, runs the orch (which
    removes the old database containers on their hosts, their volumes kept, and deploys the new
    ones), then restores the backup into the new plan (``salt-run energy.restore ...
    stop_formulas=True``). MongoDB keeps only the reports not yet read (``energy:mongo:ttl``): they
    are not moved. Stops at the first step that fails, saying what is done.

    CLI Example:

    .. code-block:: bash

        salt-run energy.rebalance
        salt-run energy.rebalance apply=True
    """
    try:
        conf, full, facts = _master_plan()
        canonical = plan_core.build(conf, facts, None)["placement"]
    except schema.PlanError as exc:
        return _failed(str(exc))
    result = placement.rebalance(full["placement"], canonical, full["strategy"])
    differs, moves = result["differs"], result["moves"]
    if not apply or not differs:
        return result
    cpus, problem = placement.rebalance_cpus(moves, conf["influxdb"]["version"])
    if problem:
        return _failed(problem)
    steps, backup = result.setdefault("steps", []), None
    if cpus:
        backup = __salt__["energy_archive.backup"](cpus=cpus, timeout=timeout)
        steps.append({"backup": backup})
        if not backup.get("result"):
            return _failed(f"the backup of {cpus} failed, nothing moved: {backup.get('error')}") | {"steps": steps}
    _write_allowed(_leaving(full["placement"], canonical, full["strategy"]))
    parts.write_placement(_kept_dir(), dict(canonical, moves=[]))
    try:
        orch = __salt__["state.orchestrate"]("energy.orch")
    finally:
        _write_allowed({})
    ok = isinstance(orch, dict) and orch.get("retcode", 0) == 0 and orch.get("data", {}) != {}
    steps.append({"orch": "done" if ok else "failed"})
    if not ok:
        return _failed("the orch failed after the placement changed: run salt-run state.orchestrate energy.orch "
                       f"again, then salt-run energy.restore src={backup and backup.get('backup')} cpus={cpus} "
                       "stop_formulas=True") | {"steps": steps}
    if backup:
        restored = __salt__["energy_archive.restore"](src=backup["backup"], cpus=cpus, stop_formulas=True,
                                                      timeout=timeout)
        steps.append({"restore": restored})
        if not restored.get("result"):
            return _failed(f"the restore failed: run salt-run energy.restore src={backup['backup']} cpus={cpus} "
                           "stop_formulas=True again") | {"steps": steps}
    result["comment"] = f"{len(differs)} CPU name(s) moved to the canonical placement"
    return result
