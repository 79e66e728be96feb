"""What the master hands each minion: its own part of the plan, computed once per orch.

The orch's runner step (``salt-run energy_plan.prepare``) computes the plan on the master from its
own pillar (``schema.merge`` + ``schema.check``, the one configuration path) and the mine, checks
it, and keeps in the master's cachedir (``energy/``):

- ``placement.json``: the placement of that plan (no secret), the ``current`` of the next one
  (``placement.placement``: what is deployed stays put);
- ``parts/<sha256 of the minion id>.json`` (mode 0600, the directory 0700): each minion's part,
  which the ext_pillar ``energy_plan`` (``_pillar/energy_plan.py``) gives that minion, and that
  minion only, as pillar ``energy_plan``.

A part is ``{"version", "minion", "stamp", "config", "containers", "hidden", "volume_sizes",
"influx"}``: the configuration as the master validated it with every secret masked, the minion's
own containers (with the secrets they need, and no other), which of the configuration's secrets
they hold (masked when a value leaves the minion), the sizes of its database volumes (the
free-space check) and, on a sensor minion, the InfluxDB that holds its power; ``leave`` names the
database containers ``salt-run energy.rebalance apply=True`` lets it remove (backed up).

When the master's pillar lacks a secret that minion's containers need (the operator targets
secrets by hand to the minions that use them), the part is ``{"version", "minion", "stamp",
"local": why, "placement"}`` instead: that minion builds its own part from its pillar and the
mine, keeping the master's placement, as every minion did before.
"""

import hashlib
import json
import os

from . import plan, plan_checks, schema, sizing

PILLAR_KEY = "energy_plan"
VERSION = 1
PARTS_DIR = "parts"
PLACEMENT_FILE = "placement.json"
CONTAINERS_FILE = "containers.json"


def part(conf, full_plan, minion, stamp, shared=None):
    """The part of ``full_plan`` that ``minion`` gets (see the module's docstring). ``shared`` is
    what every part takes from the whole plan (``_shared``), computed once for all of them."""
    shared = shared or _shared(conf, full_plan)
    # the placement: what a minion computing the whole plan for itself (salt-call energy.plan,
    # hostname_to_influx, or a local part) keeps, to place as the master did
    base = {"version": VERSION, "minion": minion, "stamp": stamp, "placement": shared["placement"]}
    try:
        plan_checks.check_secrets(conf, full_plan, minion)
    except schema.PlanError as exc:
        return dict(base, local=schema.mask(str(exc), shared["hidden"]), placement=shared["placement"])
    containers = plan.node(full_plan, minion)["containers"]
    text = json.dumps(containers, sort_keys=True, default=str)
    return dict(base, config=shared["config"], containers=containers,
                # the secrets in these containers: what the minion masks when a value leaves it
                hidden=sorted(h for h in shared["hidden"] if h in text),
                volume_sizes=dict(shared["sizes"].get(minion, {})), influx=shared["influx"].get(minion))


def compact(placed):
    """What ``placement.placement`` keeps of a placement (its ``current``): hosts and slots per CPU
    name, formula hosts per group; no sensor list, so that it grows with the CPU names, not the fleet."""
    return {"strategy": placed.get("strategy"), "grafana": placed.get("grafana"),
            "cpus": {cpu: {k: e[k] for k in ("mongo", "influxdb", "formula", "slots")} for cpu, e in placed["cpus"].items()},
            "groups": [{"name": g["name"], "formula": g["formula"]} for g in placed["groups"]]}


def _shared(conf, full_plan):
    hidden = schema.secrets(conf)
    return {"hidden": hidden, "config": schema.mask(conf, hidden), "sizes": sizing.estimate(conf, full_plan),
            "influx": plan.influx_by_minion(full_plan), "placement": compact(full_plan["placement"])}


def parts(conf, full_plan, minions, stamp):
    """``{minion: part}`` for each of ``minions`` (every minion the orch targets: one with no
    container gets an empty part, so that it removes what an earlier plan gave it) and each host
    of the plan."""
    shared = _shared(conf, full_plan)
    return {minion: part(conf, full_plan, minion, stamp, shared)
            for minion in sorted(set(minions) | set(full_plan["hosts"]))}


def file_name(minion):
    """The file of ``minion``'s part: a digest of its id, so that no id can name another path."""
    return hashlib.sha256(str(minion).encode()).hexdigest() + ".json"


def _write_atomic(path, data, mode):
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(tmp, path)


def write(directory, handed):
    """Keep ``handed`` (``{minion: part}``) in ``directory/parts``, one 0600 file per minion, each
    replaced whole; the parts of minions no longer handed one are removed."""
    folder = os.path.join(directory, PARTS_DIR)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    keep = set()
    for minion, data in handed.items():
        keep.add(file_name(minion))
        _write_atomic(os.path.join(folder, file_name(minion)), data, 0o600)
    for name in os.listdir(folder):
        if name.endswith(".json") and name not in keep:
            os.unlink(os.path.join(folder, name))


def read(directory, minion):
    """``minion``'s part as kept in ``directory``, or None (none kept, or not one of this version)."""
    try:
        with open(os.path.join(directory, PARTS_DIR, file_name(minion)), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and data.get("version") == VERSION and data.get("minion") == minion
    return data if ok else None


def read_placement(directory):
    """The placement the master keeps (the ``current`` of the next plan), or None."""
    try:
        with open(os.path.join(directory, PLACEMENT_FILE), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_placement(directory, placed):
    os.makedirs(directory, mode=0o700, exist_ok=True)
    _write_atomic(os.path.join(directory, PLACEMENT_FILE), placed, 0o644)


def write_containers(directory, containers, interval, stamp=None):
    """Keep ``{minion: [container names]}`` of the plan (no secret: what the reactor may touch)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    _write_atomic(os.path.join(directory, CONTAINERS_FILE),
                  {"containers": containers, "interval": interval, "stamp": stamp}, 0o644)


def read_containers(directory):
    """What ``write_containers`` kept, or None."""
    try:
        with open(os.path.join(directory, CONTAINERS_FILE), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and isinstance(data.get("containers"), dict)
    return data if ok else None


def own(pillar, minion):
    """``minion``'s part with its containers (``from_pillar``), or None: no part, or a ``local`` one
    (the master's pillar lacks a secret its containers need: the minion builds its own)."""
    handed = from_pillar(pillar, minion)
    return handed if handed and "containers" in handed else None


def from_pillar(pillar, minion):
    """The part in a minion's pillar (``energy_plan``), or None when it has none of this version
    for this minion (no orch since the formula was upgraded, or no ext_pillar on the master)."""
    data = (pillar or {}).get(PILLAR_KEY)
    ok = isinstance(data, dict) and data.get("version") == VERSION and data.get("minion") == minion
    return data if ok else None
