"""Who holds which role, and where each CPU name's MongoDB, formula and InfluxDB go."""

from . import names
from .schema import PlanError


def role_target(conf, role):
    """The compound target of ``role``: a list of ids becomes ``L@a,b``; an unset role is
    ``'*'`` for sensors and ``energy:control`` for the others; '' when there is none."""
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


def placement(cpus, roles):
    """
    Place one formula, one MongoDB and one InfluxDB per CPU name.

    ``cpus`` maps sensor minion id -> CPU name; ``roles`` maps ``mongos``, ``formulas``,
    ``influxdbs`` (and ``grafana``) to lists of minion ids. CPU names are taken in sorted order;
    the i-th gets ``mongos[i % len(mongos)]`` and so on over the sorted host lists, wrapping
    around when CPU names outnumber hosts. The result does not depend on input order.

    Returns ``{"cpus": {cpu_name: {"sensors", "mongo", "formula", "influxdb", "slots"}},
    "grafana": id or None}``; ``slots`` numbers the containers of one kind on one host
    (0, 1, ...), which the plan turns into distinct ports.
    """
    by_cpu = {}
    for minion in sorted(cpus):
        by_cpu.setdefault(cpus[minion], []).append(minion)
    cpu_names = sorted(by_cpu)
    hosts = {role: sorted(set(roles.get(role) or [])) for role in ("mongos", "formulas", "influxdbs")}
    if cpu_names:
        for role, members in hosts.items():
            if not members:
                raise PlanError(
                    f"energy:roles:{role} matches no minion, but {len(cpu_names)} CPU name(s) need one "
                    f"({', '.join(cpu_names)}). Fix: target at least one minion that publishes its energy "
                    f"facts in the mine (energy:roles:{role} or energy:control)."
                )
    result = {"cpus": {}, "grafana": (sorted(roles.get("grafana") or []) or [None])[0]}
    used = {}  # (kind, host) -> next slot
    for i, name in enumerate(cpu_names):
        entry = {"sensors": by_cpu[name], "slots": {}}
        for role, kind in (("mongos", "mongo"), ("formulas", "formula"), ("influxdbs", "influxdb")):
            host = hosts[role][i % len(hosts[role])]
            entry[kind] = host
            entry["slots"][kind] = used.get((kind, host), 0)
            used[(kind, host)] = entry["slots"][kind] + 1
        result["cpus"][name] = entry
    return result
