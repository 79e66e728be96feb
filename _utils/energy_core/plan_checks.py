"""What a built plan must pass before anything is deployed (pure): names and ports Docker and
MongoDB accept (``check_built``, raised by ``plan.build``), and the secrets a minion's own containers
need in the pillar it sees (``check_secrets``)."""

from . import names, rules
from .schema import PlanError

PUBLISHED = {"mongo": "mongo:port", "influxdb": "influxdb:port", "grafana": "grafana:port"}
MAX_NAME = names.MAX_NAME


def check_built(conf, full_plan):
    """Raise PlanError when the plan cannot run: a host port above 65535 or taken twice on one
    minion, a container or volume name Docker would refuse, a database name MongoDB would refuse."""
    problems = []
    for minion, host in sorted(full_plan["hosts"].items()):
        taken = {}
        for container in host["containers"]:
            key = PUBLISHED.get(container["component"])
            if key is None:
                continue
            port = int(container["url"].rsplit(":", 1)[1])
            base = conf[container["component"]]["port"]
            if port > 65535:
                problems.append(
                    f"energy:{key}: bad value {base}: {minion} runs several {container['component']} containers "
                    f"on ports {base} and up, and {port} is above 65535. Fix: a lower energy:{key}, or more "
                    f"hosts in energy:roles:{names.ROLE_OF[container['component']]}.")
            elif port in taken and taken[port] != key:
                problems.append(
                    f"energy:{key}: bad value {base}: port {port} on {minion} is also taken by energy:{taken[port]}. "
                    f"Fix: give energy:{key} and energy:{taken[port]} ranges that do not overlap (each host uses "
                    "port .. port + N - 1 for N containers of a kind).")
            taken.setdefault(port, key)
        for container in host["containers"]:
            for what in filter(None, (container["name"], container["volume"])):
                if len(what) > MAX_NAME or not names.is_docker_name(what):
                    problems.append(
                        f"energy:roles: bad value {minion!r}: the name {what[:60]!r}... is not a Docker name "
                        f"([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {MAX_NAME} characters). Fix: a shorter minion id.")
    for cpu, info in sorted(full_plan["cpus"].items()):
        for database in (info["database"], info["influxdb_database"]):
            if len(database.encode()) > names.MAX_DATABASE:
                problems.append(
                    f"energy:facts:cpu_name: bad value {cpu!r}: database {database!r} is longer than "
                    f"{names.MAX_DATABASE} bytes. Fix: a shorter energy:facts:cpu_name for these minions.")
    if problems:
        raise PlanError("invalid plan:\n  - " + "\n  - ".join(dict.fromkeys(problems)))


def check_secrets(conf, full_plan, minion):
    """Raise PlanError when the pillar ``minion`` sees lacks a secret its own containers need."""
    containers = full_plan["hosts"].get(minion, {"containers": []})["containers"]
    cpus = {}  # the CPU names whose MongoDB users each component's containers use or keep
    for c in containers:
        served = [u["cpu"] for u in (c["users"] or {}).get("users", [])] if c["component"] == "mongo" else [c["cpu"]]
        cpus.setdefault(c["component"], set()).update(served)
    problems = rules.secret_problems(conf, minion, [c["component"] for c in containers], cpus)
    if problems:
        raise PlanError("missing secrets:\n  - " + "\n  - ".join(problems))
