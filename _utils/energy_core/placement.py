"""Who holds which role, and where each CPU name's MongoDB, formula and InfluxDB go."""

import heapq

from . import names
from .schema import PlanError


def role_target(conf, role):
    """The compound target of ``role``: a list of ids becomes ``L@a,b``; an unset role is
    ``'*'`` for sensors and ``energy:control`` for the others; '' when there is none. With the
    dedicated strategy, the database and formula roles are the sensors'."""
    if conf.get("strategy") == "dedicated" and role in ("mongos", "formulas", "influxdbs"):
        return role_target(conf, "sensors")  # every sensor machine runs its own
    roles = conf.get("roles") if isinstance(conf.get("roles"), dict) else {}
    target = roles.get(role)
    if target is None:
        target = "*" if role == "sensors" else conf.get("control")
    if isinstance(target, list) and target and all(isinstance(m, str) for m in target):
        target = "L@" + ",".join(target)
    # anything else is a pillar error, which the plan check names; no target here
    return target.strip() if isinstance(target, str) else ""


def role_targets(conf):
    """{role: compound target} of every role that has one (grafana only while enabled)."""
    targets = {role: role_target(conf, role) for role in names.ROLES}
    grafana = conf.get("grafana")
    if not (isinstance(grafana, dict) and grafana.get("enabled") is True):
        targets.pop("grafana")
    return {role: target for role, target in targets.items() if target}


def named_ids(target):
    """The minion ids a compound target names by id alone: ``"*"`` for every minion, a tuple for
    ``L@a,b`` or a bare id; None for anything only the master can match (grains, pillar, globs,
    several terms)."""
    if target == "*":
        return "*"
    if isinstance(target, str) and target.startswith("L@"):
        ids = tuple(m for m in target[2:].split(",") if m)
        return ids if ids and all(names.plain_id(m) for m in ids) else None
    return (target,) if names.plain_id(target) else None  # 'a,b' is a list to the master, not an id


def mine_queries(targets):
    """How to get every role's facts from the mine in as few ``mine.get`` calls as possible:
    ``{role: (query, ids)}``; the roles whose targets name minions by id share one query (``*``
    when one of them is ``*``, else the list of all those ids) and keep ``ids`` of its answer
    (None: all of it); any other target is a query of its own, which identical targets share.
    ``targets`` maps role to compound target; a role without one is left out."""
    named = {role: named_ids(target) for role, target in targets.items() if target}
    simple = {role: ids for role, ids in named.items() if ids is not None}
    if any(ids == "*" for ids in simple.values()):
        shared = "*"
    else:
        shared = "L@" + ",".join(sorted({m for ids in simple.values() for m in ids}))
    queries = {}
    for role, ids in named.items():
        if ids is None:
            queries[role] = (targets[role], None)
        else:
            queries[role] = (shared, None if ids == "*" else ids)
    return queries


def orch_phases(targets, roles_down, every=""):
    """The deploy phases of the orch, in order: ``[{"name", "sls", "tgt"}]``. Each phase applies
    its components' SLS files in one state run per minion, on the union of their roles' targets
    (``targets``: role -> compound target); a minion applies only what the plan gives it, and an
    SLS whose component the plan does not give it changes nothing there. A role whose minions are
    all down (``roles_down``) leaves its component out; a phase left with none is skipped.

    The health checks, heal schedules and engine (``energy.heal``) go to every minion (``every``,
    the union of all targets) in the last phase's state run, which then targets ``every``: one state
    run per minion fewer than a phase of their own, the largest per-minion cost of an orch (each
    run compiles the minion's pillar and renders its SLS files). A phase named ``heal`` carries
    them when no other phase is left."""
    phases = []
    for name, components in names.ORCH_PHASES:
        present = [c for c in components if names.ROLE_OF[c] in targets and names.ROLE_OF[c] not in roles_down]
        if present:
            phases.append({"name": name, "sls": [f"energy.{c}" for c in present],
                           "tgt": " or ".join(f"( {t} )" for t in dict.fromkeys(targets[names.ROLE_OF[c]] for c in present))})
    if every:
        if not phases:
            phases.append({"name": "heal", "sls": [], "tgt": every})
        phases[-1]["sls"].append("energy.heal")
        phases[-1]["tgt"] = every
    return phases


STRATEGIES = names.STRATEGIES


def shards(sensors, max_sensors):
    """``sensors`` (sorted) cut into ``ceil(n / max_sensors)`` contiguous chunks whose sizes differ by
    at most one, the first chunks taking the extra."""
    sensors = sorted(sensors)
    if not max_sensors or len(sensors) <= max_sensors:
        return [sensors]
    count = -(-len(sensors) // max_sensors)
    size, extra = divmod(len(sensors), count)
    chunks, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        chunks.append(sensors[start:end])
        start = end
    return chunks




def _lowest_free(taken):
    slot = 0
    while slot in taken:
        slot += 1
    return slot


def _slot_of(entry, kind):
    slot = (entry.get("slots") if isinstance(entry.get("slots"), dict) else {}).get(kind)
    return slot if isinstance(slot, int) and not isinstance(slot, bool) and 0 <= slot < 1000 else None


def _stable(items, hosts, kind, kept_from, slotted=True):
    """``{item: (host, slot)}`` of one kind of container over the role's ``hosts``: an item whose
    earlier place (``kept_from[item]``, a dict with ``kind`` and ``slots``) is on a host still in the
    role keeps that host and slot; every other item, in sorted order, goes to the host with the
    fewest containers of the kind (ties: sorted host id) and takes its lowest free slot. With
    nothing kept this is round-robin over the sorted hosts. Without ``slotted`` (formulas of
    groups, which publish no port) a kept item takes the lowest free slot of its host."""
    placed, taken = {}, {host: set() for host in hosts}
    for item in sorted(items):
        old = kept_from.get(item)
        host = old.get(kind) if isinstance(old, dict) else None
        if host in taken and not slotted:
            placed[item] = (host, _lowest_free(taken[host]))
            taken[host].add(placed[item][1])
            continue
        slot = _slot_of(old, kind) if host in taken else None
        if slot is not None and slot not in taken[host]:
            placed[item] = (host, slot)
            taken[host].add(slot)
    # the least loaded host, ties broken by sorted host id: a heap of (load, host), each host's
    # entry replaced as its load grows (items x log hosts, not items x hosts at 10,000 minions)
    heap = [(len(slots), host) for host, slots in taken.items()]
    heapq.heapify(heap)
    for item in sorted(items):
        if item not in placed:
            _load, host = heapq.heappop(heap)
            placed[item] = (host, _lowest_free(taken[host]))
            taken[host].add(placed[item][1])
            heapq.heappush(heap, (len(taken[host]), host))
    return placed


def _current(current):
    """The CPU names and groups of an earlier placement, each a dict (anything else is left out:
    the master keeps it in a file, or rebuilds it from labels any container can carry)."""
    current = current if isinstance(current, dict) else {}
    cpus = current.get("cpus") if isinstance(current.get("cpus"), dict) else {}
    groups = current.get("groups") if isinstance(current.get("groups"), list) else []
    return ({cpu: e for cpu, e in cpus.items() if isinstance(e, dict)},
            {g["name"]: {"formula": g.get("formula")}
             for g in groups if isinstance(g, dict) and isinstance(g.get("name"), str)},
            current.get("grafana"))


def _groups(by_cpu, hosts, strategy, max_sensors, placed, kept):
    """One entry per SmartWatts: ``{"name", "cpu", "sensors", "mongo", "formula", "influxdb"}``,
    sorted by (CPU name, shard number); a group of ``kept`` (name -> earlier group) keeps its formula
    host while that host is in the role, the others go to the least loaded."""
    groups = []
    if strategy == "dedicated":
        for cpu in sorted(by_cpu):
            for minion in by_cpu[cpu]:
                groups.append({"name": minion, "cpu": cpu, "sensors": [minion], "mongo": minion, "formula": minion,
                               "influxdb": minion})
        return groups
    slugs = names.cpu_slugs(by_cpu)
    for cpu in sorted(by_cpu):
        chunks = shards(by_cpu[cpu], max_sensors)
        for n, chunk in enumerate(chunks, start=1):
            groups.append({"name": slugs[cpu] if len(chunks) == 1 else f"{slugs[cpu]}-{n}", "cpu": cpu,
                           "sensors": chunk, "mongo": placed[cpu]["mongo"], "formula": None,
                           "influxdb": placed[cpu]["influxdb"]})
    # group names sort as the groups do (slug, then shard number up to 9): order them by position
    order = {g["name"]: f"{j:09d}" for j, g in enumerate(groups)}
    formulas = _stable([order[g["name"]] for g in groups], hosts["formulas"], "formula",
                       {order[name]: old for name, old in kept.items() if name in order}, slotted=False)
    for group in groups:
        group["formula"] = formulas[order[group["name"]]][0]
    return groups


def _host_of(strategy, kind, cpu_hosts, hosts, role, stable, name, shared):
    if strategy == "dedicated":
        return cpu_hosts[0], None
    if strategy == "shared" and kind != "formula":
        return shared[role], 0  # one MongoDB and one InfluxDB container hold every CPU name's databases
    return stable[kind][name]


def placement(cpus, roles, strategy="per_cpu", max_sensors=None, current=None):
    """
    Place one formula, one MongoDB and one InfluxDB per CPU name, keeping what is deployed.

    ``cpus`` maps sensor minion id -> CPU name; ``roles`` maps ``mongos``, ``formulas``,
    ``influxdbs`` (and ``grafana``) to lists of minion ids. ``current`` is an earlier return value
    of ``placement`` (what is deployed: the master keeps it). A CPU name of ``current`` whose host
    is still in the role keeps that host and its slot; every other CPU name, in sorted order, goes
    to the role's host with the fewest containers of that kind, ties broken by sorted host id,
    taking the lowest free slot there. Without ``current`` (or from an empty one) this is
    round-robin: the i-th CPU name gets ``mongos[i % len(mongos)]`` and so on over the sorted host
    lists. The result does not depend on input order.

    Returns ``{"cpus": {cpu_name: {"sensors", "mongo", "formula", "influxdb", "slots"}},
    "grafana": id or None, "groups": [...]}``; ``slots`` numbers the containers of one kind on one
    host (0, 1, ...), which the plan turns into distinct ports.

    ``groups`` has one entry per SmartWatts, ``{"name", "cpu", "sensors", "mongo", "formula",
    "influxdb"}``, sorted by (CPU name, shard number), with the deployment ``strategy``:

    - ``per_cpu``: as above; the groups' formulas follow the same rule over groups (round-robin,
      the j-th group overall ``formulas[j % F]``, from an empty ``current``);
    - ``shared``: one MongoDB and one InfluxDB for every CPU name, on the host ``current`` has
      while it is in the role, else ``mongos[0]`` and ``influxdbs[0]``; formulas as per_cpu;
    - ``dedicated``: one group per sensor minion, named after it, all three on that minion.

    ``max_sensors`` (per_cpu and shared) cuts a CPU name whose sensors outnumber it into
    ``ceil(n / max_sensors)`` shards (``shards``), named ``<cpu slug>-<n>`` from 1.
    """
    if strategy not in STRATEGIES:
        raise PlanError(f"energy:strategy: bad value {strategy!r}. Fix: one of {', '.join(STRATEGIES)}.")
    if max_sensors is not None and not (isinstance(max_sensors, int) and not isinstance(max_sensors, bool)
                                        and max_sensors >= 1):
        raise PlanError(f"energy:formula:max_sensors: bad value {max_sensors!r}. Fix: a whole number, 1 or more.")
    by_cpu = {}
    for minion in sorted(cpus):
        by_cpu.setdefault(cpus[minion], []).append(minion)
    cpu_names = sorted(by_cpu)
    hosts = {role: sorted(set(roles.get(role) or [])) for role in ("mongos", "formulas", "influxdbs")}
    if cpu_names and strategy != "dedicated":
        for role, members in hosts.items():
            if not members:
                raise PlanError(
                    f"energy:roles:{role} matches no minion, but {len(cpu_names)} CPU name(s) need one "
                    f"({', '.join(cpu_names)}). Fix: target at least one minion that publishes its energy "
                    f"facts in the mine (energy:roles:{role} or energy:control)."
                )
    kept_cpus, kept_groups, kept_grafana = _current(current)
    grafanas = sorted(set(roles.get("grafana") or []))
    result = {"cpus": {}, "grafana": kept_grafana if kept_grafana in grafanas else (grafanas or [None])[0]}
    kinds = (("mongos", "mongo"), ("formulas", "formula"), ("influxdbs", "influxdb"))
    stable = {kind: _stable(cpu_names, hosts[role], kind, kept_cpus) for role, kind in kinds
              if strategy != "dedicated" and hosts[role]}
    shared = {}
    for role, kind in kinds:
        before = sorted({e.get(kind) for e in kept_cpus.values()} & set(hosts[role]), key=str)
        shared[role] = before[0] if len(before) == 1 else (hosts[role] or [None])[0]
    used = {}  # (kind, host) -> next slot (dedicated)
    for name in cpu_names:
        entry = {"sensors": by_cpu[name], "slots": {}}
        for role, kind in kinds:
            host, slot = _host_of(strategy, kind, by_cpu[name], hosts, role, stable, name, shared)
            entry[kind] = host
            entry["slots"][kind] = used.get((kind, host), 0) if slot is None else slot
            used[(kind, host)] = entry["slots"][kind] + 1
        result["cpus"][name] = entry
    result["groups"] = _groups(by_cpu, hosts, strategy, max_sensors, result["cpus"], kept_groups)
    return result


def moves(current, placed):
    """The databases ``placed`` (a placement) puts elsewhere than ``current`` (the deployed one):
    ``[{"cpu", "component", "from", "to"}]``, sorted, for the CPU names both have. Each is a data
    move: the measurements stay in the old host's volume."""
    kept_cpus = _current(current)[0]
    found = []
    for cpu, entry in sorted(placed["cpus"].items()):
        old = kept_cpus.get(cpu)
        for kind in ("mongo", "influxdb"):
            if old and isinstance(old.get(kind), str) and old.get(kind) != entry[kind]:
                found.append({"cpu": cpu, "component": kind, "from": old[kind], "to": entry[kind]})
    return found


def _layout(placed):
    return {cpu: {k: e[k] for k in ("mongo", "influxdb", "formula")} for cpu, e in placed["cpus"].items()}


def rebalance(current, canonical, strategy):
    """What ``salt-run energy_plan.rebalance`` reports before it moves anything: ``differs`` (each
    CPU name placed otherwise than the canonical placement), ``moves`` and a comment."""
    layout = _layout(canonical)
    differs = {cpu: {"current": where, "canonical": layout[cpu]} for cpu, where in _layout(current).items()
               if where != layout[cpu]}
    found = moves(current, canonical)
    comment = ("the current placement is the canonical one" if not differs else
               f"{len(differs)} CPU name(s) placed otherwise, {len(found)} database(s) would move: "
               "salt-run energy.rebalance apply=True moves them (backup, orch, restore)")
    return {"result": True, "differs": differs, "moves": found, "strategy": strategy, "comment": comment}


def rebalance_cpus(found, influx_version):
    """(the CPU names whose InfluxDB moves, comma-separated: what a rebalance backs up and restores,
    why it cannot move them or None). ``found``: ``moves``."""
    cpus = ",".join(sorted({m["cpu"] for m in found if m["component"] == "influxdb"}))
    if cpus and influx_version != 1:
        return cpus, (f"energy:influxdb:version: 2: energy.backup reads InfluxDB 1.x only, so the power of {cpus} "
                      "cannot be moved here. Fix: back it up with the influx CLI in its container (influx backup), "
                      "or leave the placement as it is")
    return cpus, None
