"""The whole deployment plan, from a validated configuration and the mine's facts (pure).

``build(conf, role_facts)`` returns::

    {"cpus": {cpu_name: {"slug", "sensors", "mongo", "formula", "influxdb", "facts", "mongo_uri",
                         "mongo_address", "mongo_port", "database", "collection", "influxdb_address",
                         "influxdb_port", "influxdb_url", "influxdb_database",
                         "local": {"mongo": bool, "influxdb": bool},   # published on 127.0.0.1 only
                         "influxdb_warning": why the InfluxDB is open, or None,
                         "sensor": {"core", "rapl", "msr", "dram", "dropped_roles", "mode"}}},
     "hosts": {minion: {"containers": [container, ...]}},    # see components.CONTAINER_KEYS
     "grafana": minion id or None,
     "placement": placement.placement's return (what the master keeps, the ``current`` of the next
                  plan) with "strategy" and "moves" (the databases this plan moves),
     "warnings": [what an operator must know: a database reachable without authentication, ...]}

Every node computes the same plan from the same mine data, whatever order it comes in.
"""

from . import components, hardening, inventory, names, placement as placement_rules, plan_checks, rules, schema, sizing, stack
from . import sensor as sensor_rules
from .placement import placement
from .schema import PlanError


def _addresses(role_facts):
    address = {}
    for members in role_facts.values():
        for minion, facts in members.items():
            if facts.get("address"):
                address[minion] = facts["address"]
            else:
                address.setdefault(minion, minion)
    return address


LOOPBACK = "127.0.0.1"
KINDS = ("mongo", "influxdb")


def _store_users(store):
    users = set()
    for group in store["groups"]:
        users |= {group["formula"], *group["sensors"]}
    return users


def _only_local(conf, store, kind, grafana):
    """True when every writer and reader of a database container (``store``: its groups) runs on
    its host: its port is then published on the loopback address only. Sensors write to MongoDB
    and read InfluxDB (their health check, the apps that ask hostname_to_influx); formulas read one
    and write the other; Grafana reads InfluxDB (by container name when on its host)."""
    if kind == "influxdb" and schema.grafana_enabled(conf) and grafana != store["host"]:
        return False
    return _store_users(store) == {store["host"]}


def _open_warning(conf, store, kind):
    users = ", ".join(sorted(_store_users(store) - {store["host"]})) or "the Grafana host"
    cpus = ", ".join(store["cpus"])
    if kind == "mongo":
        if rules.mongo_auth(conf):
            return None  # SCRAM authentication, a user per purpose
        return (f"MongoDB for {cpus} on {store['host']} ({store['address']}:{store['port']}) accepts "
                "connections without authentication from the network: whoever reaches it can read, inject or "
                f"drop sensor reports. Turn authentication back on (energy:mongo:auth: true, the default, with its "
                f"passwords), or let only {users} reach port {store['port']} (a firewall).")
    if conf["influxdb"]["version"] == 2:
        return None  # token authentication
    return (f"InfluxDB for {cpus} on {store['host']} (http://{store['address']}:{store['port']}) answers without "
            "authentication from the network: SmartWatts 2.1's InfluxDB 1.x output cannot send credentials. Close "
            "it with InfluxDB 2 (energy:influxdb:version: 2, with a token) or a firewall that lets only "
            f"{users} and Grafana reach port {store['port']}.")


def _stores(conf, strategy, placed, slugs, address, grafana):
    """The database containers, per kind: ``{(host, suffix): store}`` in the groups' order. A store
    is ``{"host", "suffix", "slot", "port", "address", "local", "groups", "cpus", "warning"}``:
    per_cpu gives each CPU name its own (suffix: the CPU slug) on the slot the placement gives it,
    shared one per kind for all, dedicated one per machine; its port is the base port + its slot."""
    groups = placed["groups"]
    stores = {kind: {} for kind in KINDS}
    slots = {}
    for group in groups:
        for kind in KINDS:
            host = group[kind]
            key = (host, slugs[group["cpu"]] if strategy == "per_cpu" else None)
            if key not in stores[kind]:
                slot = placed["cpus"][group["cpu"]]["slots"][kind] if strategy == "per_cpu" else slots.get((kind, host), 0)
                slots[(kind, host)] = slot + 1
                stores[kind][key] = {"host": host, "suffix": key[1], "slot": slot, "port": conf[kind]["port"] + slot,
                                     "container": names.container_name(host, kind, key[1]), "groups": [], "cpus": []}
            store = stores[kind][key]
            store["groups"].append(group)
            if group["cpu"] not in store["cpus"]:
                store["cpus"].append(group["cpu"])
            group.setdefault("stores", {})[kind] = key
    for kind in KINDS:
        for store in stores[kind].values():
            store["local"] = _only_local(conf, store, kind, grafana)
            # a host known by a loopback address (several minions on one machine, as in the demo)
            # keeps its own; any other publishes its local-only databases on 127.0.0.1
            own = address[store["host"]]
            store["address"] = (own if own.startswith("127.") else LOOPBACK) if store["local"] else own
            store["warning"] = None if store["local"] else _open_warning(conf, store, kind)
    return stores


def _group_info(group, shard, shards, slug, stores, representative, chosen, engines):
    """Everything one SmartWatts and its sensors need: where they read and write."""
    mongo = stores["mongo"][group["stores"]["mongo"]]
    influx = stores["influxdb"][group["stores"]["influxdb"]]
    return {
        "name": group["name"],
        "cpu": group["cpu"],
        "slug": slug,
        "shard": shard if shards > 1 else None,
        "sensors": list(group["sensors"]),
        "mongo": group["mongo"],
        "formula": group["formula"],
        "influxdb": group["influxdb"],
        # the CPU name's facts (plan.cpu_facts): SmartWatts' base frequency and TDP
        "facts": representative,
        # the containers it reads and writes: a dependent follows its database when the plan moves it
        "mongo_container": mongo["container"],
        "influxdb_container": influx["container"],
        "mongo_address": mongo["address"],
        "mongo_port": mongo["port"],
        "mongo_uri": names.mongo_uri(mongo["address"], mongo["port"]),
        "database": names.sensor_database(slug),
        # the shards of a CPU name share its database; each reads its own collection
        "collection": "hwpc" if shards == 1 else f"hwpc_{shard}",
        "influxdb_address": influx["address"],
        "influxdb_port": influx["port"],
        "influxdb_url": f"http://{influx['address']}:{influx['port']}",
        "influxdb_database": names.power_database(slug),
        # the Docker engine of each minion of the group: a container reaches a database of its
        # own engine by container name (hardening.endpoint), any other by its published address
        "engines": {m: engines.get(m) for m in sorted({*group["sensors"], group["formula"], group["mongo"],
                                                        group["influxdb"]})},
        "local": {"mongo": mongo["local"], "influxdb": influx["local"]},
        "influxdb_warning": influx["warning"],
        "sensor": chosen,
    }


def _check_events(cpu, entry, chosen, representative):
    if not chosen["core"]:
        why = representative.get("sensor_support")
        why = f" ({'; '.join(why)})" if isinstance(why, list) and why else ""
        raise PlanError(
            f"energy:roles:sensors: CPU name {cpu!r} (minions {', '.join(entry['sensors'])}) has no usable "
            f"PMU events{why or ' (a virtual machine, or a CPU the grain does not know)'}, so SmartWatts could "
            "never attribute power to containers. Fix: leave these minions out of energy:roles:sensors, "
            "or give the events in energy:sensor:events or energy:facts:pmu_events."
        )


def _compared(conf, sensors, cpus):
    """The CPU names of the comparison: those with a sensor minion in a cluster of
    energy:sensor:compare (the grain's ``cluster``), or every CPU name when it is empty."""
    clusters = set(conf["sensor"].get("compare") or [])
    if not clusters:
        return None
    return {cpus[m] for m, facts in sensors.items() if m in cpus and facts.get("cluster") in clusters}


def sensor_events(conf, sensors, placed):
    """Per sensor minion: ``{"core", "rapl", "msr", "dram", "dropped_roles", "mode"}`` from its own
    host's facts and the sensor section (mode, compare, extra_events and events that replace the
    detected ones, both per CPU name). In ``common`` mode every compared host gets the roles all of
    them have, so two hosts of one CPU name that disagree get what both can count."""
    settings = conf["sensor"]
    cpu_of = {m: cpu for cpu, entry in placed["cpus"].items() for m in entry["sensors"]}
    cpus = {m: f["cpu_name"] for m, f in sensors.items() if f.get("cpu_name")}
    compared = _compared(conf, sensors, cpus)
    extra = settings.get("extra_events") or {}
    per_host = {"*": list(extra.get("*") or []), **{m: list(extra.get(cpu) or []) for m, cpu in cpu_of.items()}}
    chosen, dropped = sensor_rules.resolve(
        {m: sensors[m] for m in cpu_of}, settings.get("mode", "best"), per_host,
        None if compared is None else {m for m, cpu in cpu_of.items() if cpu in compared},
        labels={m: f"{cpu} ({m})" for m, cpu in cpu_of.items()})
    replaced = settings.get("events") or {}
    for minion, result in chosen.items():
        own = replaced.get(cpu_of[minion], replaced.get("*"))
        if own:
            result["core"] = list(own)
        result.update(dropped_roles=dropped[minion], mode=settings.get("mode", "best"))
    return chosen


def group_events(chosen, sensors):
    """The events of one SmartWatts' sensors as it sees them: its first sensor's, with DRAM only
    when every one of its sensors reads it (``--disable-dram-formula`` otherwise)."""
    return dict(chosen[sensors[0]], dram=all(chosen[m]["dram"] for m in sensors))


FORMULA_FACTS = (("cpu_base_freq_mhz", "base frequency", "MHz"), ("tdp_w", "TDP", "W"))


def cpu_facts(cpu, minions, sensors):
    """``(facts, warnings)``: the facts that stand for CPU name ``cpu`` (SmartWatts' parameters):
    its first host's, with the base frequency and TDP that most of its hosts report (ties: the
    first host's value); a warning naming the hosts of each other value."""
    facts = dict(sensors[minions[0]])
    warnings = []
    for key, what, unit in FORMULA_FACTS:
        values = {}
        for minion in minions:
            if sensors[minion].get(key) is not None:
                values.setdefault(sensors[minion][key], []).append(minion)
        if not values:
            continue
        facts[key] = max(values, key=lambda v: (len(values[v]), -minions.index(values[v][0])))
        if len(values) > 1:
            others = "; ".join(f"{v} {unit} on {', '.join(ms)}" for v, ms in values.items() if v != facts[key])
            warnings.append(
                f"CPU name {cpu!r}: its hosts disagree on the {what}: {facts[key]} {unit} on "
                f"{', '.join(values[facts[key]])}, but {others}; SmartWatts gets {facts[key]} {unit} (most hosts). "
                f"Fix: energy:facts:{key} in the pillar of the hosts that are wrong (a BIOS setting, or a grain "
                "that misread), or energy:facts:cpu_name to give them a CPU name of their own")
    return facts, warnings


def max_sensors(conf):
    """How many sensors one SmartWatts reads: ``energy:formula:max_sensors``, or, when it is unset,
    what one SmartWatts keeps up with (``sizing.FORMULA_REPORTS_PER_S``, measured by
    benchmarks/formula_throughput.py, with a margin) at the sensors' frequency and the containers
    per machine of ``energy:experiment``."""
    given = (conf.get("formula") or {}).get("max_sensors")
    if given:
        return given
    return sizing.default_max_sensors(conf)


def _trusted(role_facts):
    """The role facts without the minions whose mine entry is malformed (each minion publishes its
    own: one bad entry must not break the plan of the fleet), and a warning for each left out."""
    bad = {}
    for members in role_facts.values():
        for minion, facts in (members or {}).items():
            problems = schema.fact_problems(facts)
            if problems:
                bad[minion] = problems
    kept = {role: {m: f for m, f in (members or {}).items() if m not in bad} for role, members in role_facts.items()}
    warnings = [f"minion {str(minion)[:80]!r} is left out: its energy facts in the mine are malformed "
                f"({'; '.join(f'{key}: {fix}' for key, fix in problems)}). Fix: its grain, energy_facts or "
                "energy:facts, then salt-run state.orchestrate energy.orch" for minion, problems in sorted(bad.items())]
    return kept, warnings


def _placed(conf, strategy, cpus, roles, current):
    """The placement, kept stable against ``current`` (the deployed one, ``result["placement"]`` of
    an earlier plan) of the same strategy; raises PlanError naming the data that would move while
    energy:strategy_change is not allow."""
    if not isinstance(current, dict) or current.get("strategy", "per_cpu") != strategy:
        current = None  # a strategy change: the minions' orphan check guards it
    placed = placement(cpus, roles, strategy, None if strategy == "dedicated" else max_sensors(conf), current)
    moved = placement_rules.moves(current, placed)
    problem = inventory.move_problem(conf, moved, roles)
    if problem:
        raise PlanError(problem)
    return dict(placed, strategy=strategy, moves=moved)


def build(conf, role_facts, current=None):
    """The plan (see the module's docstring). ``role_facts`` maps each role to ``{minion id:
    energy facts}`` of the minions its target matches; ``current`` is the placement deployed
    (``placement`` of an earlier plan, kept by the master), which the new one keeps where it can."""
    role_facts, dropped = _trusted(role_facts)
    sensors = role_facts.get("sensors") or {}
    cpus = {m: f["cpu_name"] for m, f in sensors.items() if f.get("cpu_name")}
    strategy = conf.get("strategy") or "per_cpu"
    roles = {role: sorted(role_facts.get(role) or {}) for role in names.ROLES if role != "sensors"}
    if not schema.grafana_enabled(conf):
        roles["grafana"] = []
    placed = _placed(conf, strategy, cpus, roles, current)
    address = _addresses(role_facts)
    engines = hardening.engines_of(role_facts)
    slugs = names.cpu_slugs(placed["cpus"])
    result = {"strategy": strategy, "cpus": {}, "groups": [], "hosts": {}, "grafana": placed["grafana"],
              "warnings": dropped, "placement": placed}

    def add(entry):
        result["hosts"].setdefault(entry["minion"], {"containers": []})["containers"].append(entry)

    chosen = sensor_events(conf, sensors, placed)
    representative = {}
    for cpu, entry in sorted(placed["cpus"].items()):
        for minion in entry["sensors"]:
            _check_events(cpu, dict(entry, sensors=[minion]), chosen[minion], sensors[minion])
        representative[cpu], disagree = cpu_facts(cpu, entry["sensors"], sensors)
        result["warnings"] += disagree
    if strategy == "shared" and conf["influxdb"]["version"] == 2 and len(placed["cpus"]) > 1:
        raise PlanError(
            f"energy:strategy: bad value 'shared': {len(placed['cpus'])} CPU names would share one InfluxDB 2, whose "
            "setup mode makes a single bucket. Fix: energy:strategy: per_cpu (or dedicated) with InfluxDB 2, or "
            "energy:influxdb:version: 1.")
    stores = _stores(conf, strategy, placed, slugs, address, placed["grafana"])
    for kind in KINDS:
        result["warnings"] += [store["warning"] for store in stores[kind].values() if store["warning"]]
    per_cpu = {}
    for group in placed["groups"]:
        per_cpu.setdefault(group["cpu"], []).append(group)
    for cpu, groups in sorted(per_cpu.items()):
        for shard, group in enumerate(groups, start=1):
            info = _group_info(group, shard, len(groups) if strategy != "dedicated" else 1, slugs[cpu], stores,
                               representative[cpu], group_events(chosen, group["sensors"]), engines)
            result["groups"].append(info)
            for minion in info["sensors"]:
                add(components.sensor(conf, minion, cpu, dict(info, sensor=chosen[minion]), sensors[minion]))
            add(components.formula(conf, cpu, info, None if strategy == "dedicated" else info["name"]))
        # the CPU name's view: its first group's places (all of them for per_cpu and shared but the
        # formula and collection of each shard), every sensor, and the names of its groups
        first = next(g for g in result["groups"] if g["cpu"] == cpu)
        result["cpus"][cpu] = dict(first, sensors=sorted(m for g in groups for m in g["sensors"]),
                                   groups=[g["name"] for g in groups])
    result["stores"] = []
    for kind in KINDS:
        for store in stores[kind].values():
            build_store = components.mongo if kind == "mongo" else components.influxdb
            pairs = {(store["host"], c) for c in store["cpus"]}  # once per store, not once per group
            served = [g for g in result["groups"] if (g[kind], g["cpu"]) in pairs]
            built = build_store(conf, store, [slugs[c] for c in store["cpus"]],
                                sorted({(g["database"], g["collection"]) for g in served}))
            add(built)
            result["stores"].append({"component": kind, "host": store["host"], "container": built["name"],
                                     "volume": built["volume"], "cpus": list(store["cpus"]),
                                     "sensors": sorted(m for g in store["groups"] for m in g["sensors"])})
    if schema.grafana_enabled(conf) and cpus and not placed["grafana"]:
        raise PlanError(
            f"energy:roles:grafana: bad value {schema.describe(placement_rules.role_target(conf, 'grafana'))}: it matches "
            "no minion that publishes its energy facts in the mine. Fix: target a minion of the fleet (or leave "
            "the role to energy:control), or set energy:grafana:enabled: false.")
    grafana_engine = {placed["grafana"]: engines.get(placed["grafana"])} if placed["grafana"] else {}
    result["datasources"] = components.datasources(
        [dict(g, engines=dict(g["engines"], **grafana_engine)) for g in result["groups"]], strategy, placed["grafana"])
    if placed["grafana"]:
        add(components.grafana(conf, placed["grafana"], address[placed["grafana"]], result["cpus"],
                                result["datasources"]))
    # databases first, then what reads or writes them: the heal SLS checks in this order, so a
    # sensor is not judged through an InfluxDB that is being brought back in the same run
    for host in result["hosts"].values():
        host["containers"].sort(key=lambda c: (stack.DEPLOY_ORDER.index(c["component"]), c["name"]))
    plan_checks.check_built(conf, result)
    return result


# the components that publish a port on their minion, and the pillar key that sets it
def node(full_plan, minion):
    """The part of the plan one minion deploys: ``{"containers": [...]}`` (empty when none)."""
    return full_plan["hosts"].get(minion, {"containers": []})


def influx_by_minion(full_plan):
    """For each sensor minion: the InfluxDB holding its containers' power."""
    return {
        minion: {"url": group["influxdb_url"], "database": group["influxdb_database"], "cpu": group["cpu"],
                 "measurement": "power_consumption", "sensor": minion}
        for group in full_plan["groups"]
        for minion in group["sensors"]
    }


def summary(full_plan):
    """Which minion runs which containers, per CPU name: a short view of the plan."""
    return {
        "strategy": full_plan.get("strategy", "per_cpu"),
        "cpus": {cpu: {k: info[k] for k in ("sensors", "mongo", "formula", "influxdb", "mongo_uri",
                                             "influxdb_url", "influxdb_database", "groups")}
                 for cpu, info in full_plan["cpus"].items()},
        "groups": [{k: g[k] for k in ("name", "cpu", "sensors", "mongo", "formula", "influxdb", "collection",
                                       "influxdb_url", "influxdb_database")} for g in full_plan.get("groups", [])],
        "hosts": {minion: sorted(c["name"] for c in h["containers"]) for minion, h in full_plan["hosts"].items()},
        "grafana": full_plan["grafana"],
        "warnings": full_plan.get("warnings", []),
        "grafana_url": next((c["url"] for h in full_plan["hosts"].values() for c in h["containers"]
                             if c["component"] == "grafana"), None),
    }
