"""What the formula has deployed on a minion, read from Docker (the inverse of the plan):
containers by their labels, data volumes by their names. ``energy.clean`` removes these."""

import shlex

from . import names


def containers(ps_result):
    """The stack's containers from ``docker.ps`` (``{id: {"Names", "Labels", ...}}``), in removal
    order (``names.CLEAN_ORDER``), each ``{"name", "component", "cpu"}``."""
    found = []
    for info in (ps_result or {}).values():
        if not isinstance(info, dict):
            continue
        labels = info.get("Labels") or {}
        component = labels.get(names.LABEL_COMPONENT)
        # whoever may run containers can label one: clean.sls puts the component in a state ID
        found.append({"name": (info.get("Names") or ["?"])[0].lstrip("/"),
                      "component": component if component in names.COMPONENTS else "unknown",
                      "cpu": labels.get(names.LABEL_CPU)})
    rank = {component: i for i, component in enumerate(names.CLEAN_ORDER)}
    return sorted(found, key=lambda c: (rank.get(c["component"], len(rank)), c["name"]))


def volumes(minion, volume_names):
    """The data volumes of ``minion``'s MongoDBs, InfluxDBs and Grafana among ``volume_names``."""
    prefixes = tuple(names.container_name(minion, c) + "-" for c in ("mongo", "influxdb"))
    grafana = names.container_name(minion, "grafana")
    return sorted(v for v in volume_names if v.startswith(prefixes) or v == grafana)


DATA = ("mongo", "influxdb")


def orphans(ps_result, node, minion):
    """The stack's containers on ``minion`` that its part of the plan (``node``) no longer has: after
    a strategy or role change, a CPU name gone, a placement moved. ``data`` is True for a MongoDB or
    an InfluxDB, whose volume holds measurements the new containers do not read."""
    planned = {c["name"] for c in node["containers"]}
    return [dict(c, data=c["component"] in DATA) for c in containers(ps_result)
            if c["name"] not in planned and names.is_stack_name(c["name"], minion)]


def orphan_problem(conf, minion, found):
    """The error when ``found`` (``orphans``) holds a database and energy:strategy_change is not
    allow, else None."""
    data = [o["name"] for o in found if o["data"]]
    if not data or conf.get("strategy_change") == "allow":
        return None
    return (f"energy:strategy_change: bad value {conf.get('strategy_change', 'refuse')!r}: the plan no longer has "
            f"{', '.join(data)} on {minion} (energy:strategy {conf.get('strategy', 'per_cpu')}, or a role or CPU name "
            "change, moved them); the measurements in their volumes (same names) would not be read by the new "
            "containers. Fix: back up and restore what you need: salt-run energy.backup now, then set "
            "energy:strategy_change: allow and run the orch again (it removes these containers, their volumes are "
            "kept), then salt-run energy.restore src=<the backup> stop_formulas=True; or put the strategy and roles "
            "back.")


ROLE_OF_KIND = {"mongo": "mongos", "influxdb": "influxdbs"}


def plan_problem(conf, minion, found, leave, space_problem):
    """Why the orch's plan check refuses this minion (``energy.check``), or None: a database
    container of an earlier plan left behind (``orphan_problem``; those in ``leave``, which
    ``salt-run energy.rebalance apply=True`` backed up, do not count), and ``space_problem``."""
    guarded = [o for o in found if o["name"] not in set(leave or ())]
    problems = [p for p in (orphan_problem(conf, minion, guarded), space_problem) if p]
    return "\n".join(problems) or None


def move_problem(conf, moved, roles):
    """The error when the plan moves a database of a CPU name (``moved``: ``placement.moves``) and
    energy:strategy_change is not allow, with the exact commands that keep its measurements; None
    otherwise. ``roles`` maps each role to its hosts now."""
    if not moved or conf.get("strategy_change") == "allow":
        return None
    cpus = sorted({m["cpu"] for m in moved})
    which = "; ".join(f"{m['cpu']!r}: its {m['component']} from {m['from']} to {m['to']}" for m in moved)
    gone = sorted({(m["from"], ROLE_OF_KIND[m["component"]]) for m in moved
                   if m["from"] not in (roles.get(ROLE_OF_KIND[m["component"]]) or [])})
    left = ", ".join(f"{host} left energy:roles:{role}" for host, role in gone) or "a rebalance"
    arg = shlex.quote(",".join(cpus))
    back = (f"put {', '.join(sorted({h for h, _r in gone}))} back in its role(s) for now, " if gone else "")
    return (f"energy:strategy_change: bad value {conf.get('strategy_change', 'refuse')!r}: the plan moves databases "
            f"({left}): {which}. Their measurements stay in the old host's volumes, which the new containers do not "
            f"read. Fix, to keep them: {back}salt-run energy.backup cpus={arg} (it prints the backup directory), "
            f"{'take the host(s) out again, ' if gone else ''}set energy:strategy_change: allow, "
            f"salt-run state.orchestrate energy.orch, then salt-run energy.restore src=<that directory> cpus={arg} "
            "stop_formulas=True and set energy:strategy_change back to refuse (MongoDB holds only the reports not "
            "yet read, energy:experiment:buffer); to drop them: only energy:strategy_change: allow and the orch.")


def live(entry, info, health, held, used_bytes):
    """One container as ``salt-call energy_inventory.live`` shows it: ``entry`` (``containers``), Docker's
    inspection ``info``, its last health record, why maintenance holds it (or ''), and its data
    volume's size through ``used_bytes(path)``."""
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    published = sorted(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}"
                       for bindings in ports.values() for b in (bindings or []))
    volume = next((m for m in info.get("Mounts") or [] if m.get("Type") == "volume"), None)
    return {
        "name": entry["name"], "component": entry["component"], "cpu": entry["cpu"],
        "state": (info.get("State") or {}).get("Status"),
        "health": health,
        "maintenance": held or None,
        "published": published[0] if published else None,
        "volume": volume.get("Name") if volume else None,
        "volume_bytes": used_bytes(volume.get("Source")) if volume else None,
    }
