"""One builder per component: the container the plan gives a minion for it.

Every container of the plan is a mapping with exactly the keys of ``CONTAINER_KEYS``:

``name``        the container's name (``names.container_name``); its data volume has the same name
``component``   sensor, mongo, formula, influxdb or grafana
``minion``      the minion that runs it
``cpu``         the CPU name it serves (None for Grafana)
``image_repo``, ``image_tag``   the image, from pillar
``run``         the arguments of ``docker_container.running`` (pillar ``options`` have the last word)
``volume``      its named data volume, or None
``url``         where it answers (``mongodb://a:p``, ``http://a:p``), or None
``health``      what ``energy_heal.healthy`` checks besides "running": ``{"mongo": "a:p"}``,
                ``{"http": url}``, ``{"backlog": {...}}`` or ``{"fresh": {...}}``, and for a
                container with a data volume ``{"space": {"volume", "min_free_mb"}}``
``waits_for``   services that must answer before it starts: ``[{"service", "url", "component"}]``
``files``       files written on its minion before it starts: ``{path: {"format": "json" | "yaml" |
                "source", "data": ..., "mode", "secret"}}`` (``source`` data is a ``salt://`` URL;
                ``secret``: it holds a password or token, so Salt writes it without a diff)
``databases``   the InfluxDB 1.x databases the influxdb state keeps: ``[{"name", "retention", "warning"}]``
                (``warning``: why this InfluxDB is reachable without authentication)
``users``       the MongoDB users ``energy.mongo_users`` keeps in a MongoDB with authentication:
                ``{"address", "admin": {"name", "password"}, "users": [{"name", "password", "role",
                "actions", "collections", "cpu"}], "expire"}``, or None
"""

import copy
import hashlib
import hmac
import json

from . import dashboards, hardening, health, names, rules, sizing
from .schema import PlanError

CONTAINER_KEYS = ("name", "component", "minion", "cpu", "image_repo", "image_tag", "run", "volume", "url",
                  "health", "waits_for", "files", "databases", "users")

GRAFANA_DASHBOARD_PROVIDER = {
    "apiVersion": 1,
    "providers": [{"name": "energy", "folder": "Energy", "type": "file", "disableDeletion": True,
                   "allowUiUpdates": False, "options": {"path": "/etc/grafana/dashboards"}}],
}
DASHBOARD_SOURCE = "salt://energy/files/dashboard.json"


def config_digest(key, name, run, image_id):
    """The ``names.LABEL_CONFIG`` label of container ``name`` made from ``run`` (its
    docker_container.running arguments) on image ``image_id``: an HMAC-SHA256 keyed with a secret
    of the minion, as ``run`` holds passwords and labels are readable by whoever lists containers."""
    run = {k: v for k, v in run.items() if k not in ("force", "watch_action")}
    canonical = json.dumps({"name": name, "image": image_id, "run": run}, sort_keys=True, default=str,
                           separators=(",", ":"))
    return "hmac-sha256:" + hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def unchanged(attrs, digest, image_id):
    """True when the container Docker describes with ``attrs`` (an inspect) runs, on ``image_id``,
    and was created with the configuration of ``digest``: nothing to compare, nothing to do."""
    if not attrs or not digest or not image_id:
        return False
    state = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return (bool(state.get("Running")) and not state.get("Restarting") and not state.get("Paused")
            and attrs.get("Image") == image_id and hmac.compare_digest(labels.get(names.LABEL_CONFIG, ""), digest))


def space(volume):
    """The health probe of a data volume's free space (see health.full_reason)."""
    return {"volume": volume, "min_free_mb": health.MIN_FREE_MB}


def container(conf, component, minion, cpu=None, slug=None, run=None, **keys):
    """A container entry with every key of CONTAINER_KEYS (those not given are None or empty)."""
    section = conf[component]
    run = dict(run or {})
    env = dict(section.get("env") or {})
    env.update(run.pop("environment", {}))
    run.update({
        "image": f"{section['image']}:{section['tag']}",
        "labels": names.labels(component, minion, cpu),
        "restart_policy": conf["restart_policy"],
        "environment": {k: str(v) for k, v in sorted(env.items())},
    })
    run.update(hardening.run_arguments(conf, component))
    run.update(copy.deepcopy(section.get("options") or {}))  # pillar has the last word
    unknown = set(keys) - set(CONTAINER_KEYS)
    if unknown:
        raise TypeError(f"not container keys: {sorted(unknown)}")
    entry = {key: None for key in CONTAINER_KEYS}
    entry.update(waits_for=[], files={}, health={}, databases=[])
    entry.update(keys)
    entry.update(name=names.container_name(minion, component, slug), component=component, minion=minion, cpu=cpu,
                 image_repo=section["image"], image_tag=str(section["tag"]), run=run)
    return entry


def sensor_config(conf, minion, info, facts=None):
    """The hwpc-sensor JSON config of one sensor minion (the real sensor's --config-file format):
    the cgroup path of its own host (``facts``), the events ``info["sensor"]`` gives it."""
    facts = facts if facts is not None else info["facts"]
    chosen = info["sensor"]
    return {
        "name": minion,
        "verbose": False,
        "frequency": conf["sensor"]["frequency_ms"],
        # cgroup v2 is the sensor's default base path since hwpc-sensor 1.3.0
        "cgroup_basepath": "/sys/fs/cgroup" if facts.get("cgroup_version") == 2 else "/sys/fs/cgroup/perf_event",
        "output": {"type": "mongodb", "uri": mongo_uri_for(conf, info, "sensor", client=minion),
                   "database": info["database"],
                   "collection": info["collection"]},
        "system": {"rapl": {"events": list(chosen["rapl"]), "monitoring_type": "MONITOR_ONE_CPU_PER_SOCKET"},
                   "msr": {"events": list(chosen["msr"])}},
        "container": {"core": {"events": list(chosen["core"])}},
    }


def mongo_password(conf, purpose, cpu, user):
    """The password of the MongoDB user ``user`` of ``purpose`` (sensor or formula) for CPU name
    ``cpu``: HMAC-SHA256 of the user name keyed with the password of rules.mongo_base_password, so
    one pillar password gives each user a password of its own; '' when this minion's pillar lacks
    it (a minion whose containers do not use it: rules.secret_problems)."""
    base = rules.mongo_base_password(conf, purpose, cpu)[1]
    return hmac.new(base.encode(), user.encode(), hashlib.sha256).hexdigest() if base else ""


def reach(info, kind, client):
    """``(host, port)`` of ``info``'s ``kind`` database (mongo or influxdb) as seen from a container
    of minion ``client`` (hardening.endpoint), or from the host's network when ``client`` is None
    (the health checks and the waits, which run in the minion itself)."""
    address, port = info[f"{kind}_address"], info[f"{kind}_port"]
    if client is None:
        return address, port
    return hardening.endpoint(info["engines"], client, info[kind], kind, info[f"{kind}_container"], address, port)


def mongo_uri_for(conf, info, purpose, client=None):
    """The MongoDB URI of ``info``'s group (its collection) as ``purpose`` (sensor or formula) uses
    it from a container of minion ``client`` (None: from the host): with that collection's user of
    that purpose when authentication is on."""
    host, port = reach(info, "mongo", client)
    if not rules.mongo_auth(conf):
        return names.mongo_uri(host, port)
    user = names.mongo_user(purpose, info["database"], info["collection"])
    return names.mongo_uri(host, port, user, mongo_password(conf, purpose, info["cpu"], user))


def _follows(entry, **databases):
    """``entry`` with a label per database container it uses (names.LABEL_MONGO, LABEL_INFLUXDB)."""
    entry["run"]["labels"].update({label: name for label, name in databases.items()})
    return entry


def sensor_grants(conf, facts):
    """What hwpc-sensor gets beyond the common profile (hardening.run_arguments), each for a reason."""
    return {
        # the config holds the sensor's MongoDB password: root's alone (0600), read as root; root
        # also keeps the capability below across exec (no-new-privileges ignores file capabilities)
        "user": "root",
        # perf_event_open on other processes' cgroups and on the RAPL and MSR PMUs (docs/security.md)
        "cap_add": [hardening.sensor_capability(conf, facts)],
        # the host's processes: the cgroups of the containers it measures are theirs
        "pid_mode": "host",
    }


def sensor(conf, minion, cpu, info, facts=None):
    """The hwpc-sensor of ``minion`` (its own facts: ``facts``; the CPU name's: ``info["facts"]``)."""
    config_file = names.sensor_config_file(conf["config_dir"], minion)
    facts = facts if facts is not None else info["facts"]
    problem = hardening.sensor_capability_problem(conf, facts, minion)
    if problem:
        raise PlanError(problem)
    return _follows(container(
        conf, "sensor", minion, cpu,
        run=dict(sensor_grants(conf, facts),
                 command=["--config-file", "/etc/hwpc-sensor/config.json"],
                 # read-only: the host's perf_event cgroups (the containers it counts), and Docker's
                 # container configs (their names); the PMUs and the CPU topology are in the
                 # container's own read-only /sys
                 binds=[f"{config_file}:/etc/hwpc-sensor/config.json:ro",
                        *filter(None, [hardening.sensor_cgroup_bind(facts)]),
                        "/var/lib/docker/containers:/var/lib/docker/containers:ro"]),
        files={config_file: {"format": "json", "data": sensor_config(conf, minion, info, facts), "mode": "0600",
                             "secret": rules.mongo_auth(conf)}},
        health={"fresh": {"url": info["influxdb_url"], "database": info["influxdb_database"], "sensor": minion,
                          "max_age": conf["heal"]["max_age_seconds"]}},
    ), **{names.LABEL_MONGO: info["mongo_container"]})


# what each purpose may do on its own collection (one per CPU name, or per shard): sensors only
# add reports; formulas read and remove them (SmartWatts takes each report with findAndModify,
# which needs find, update and remove; the health check's count is a find). Nothing on another
# collection: a sensor's password cannot write into another CPU name's reports, nor into a
# collection the TTL index does not expire
MONGO_PRIVILEGES = {"sensor": ["insert"], "formula": ["find", "remove", "update"]}


def mongo_users(conf, address, port, cpus, collections):
    """What ``energy.mongo_users`` keeps in a MongoDB: a sensor user and a formula user per report
    collection (authentication on; ``cpus``: the CPU name of each sensor database) and the expiry
    of the reports (a TTL index on each collection the sensors write)."""
    settings = conf["mongo"]
    auth = rules.mongo_auth(conf)
    users = []
    for database, collection in sorted(collections) if auth else []:
        for purpose, actions in sorted(MONGO_PRIVILEGES.items()):
            user = names.mongo_user(purpose, database, collection)
            users.append({"name": user, "password": mongo_password(conf, purpose, cpus.get(database), user),
                          "role": user, "actions": actions, "collections": [[database, collection]],
                          "cpu": cpus.get(database)})
    return {
        "address": f"{address}:{port}",
        "admin": {"name": names.MONGO_USERS["admin"], "password": settings["admin_password"]} if auth else None,
        "users": users,
        "expire": {"seconds": sizing.buffer_seconds(conf), "collections": sorted(collections)},
    }


def _store_cpu(store):
    """The CPU name a database container serves (its label), or None when it serves several."""
    return store["cpus"][0] if len(store["cpus"]) == 1 else None


def mongo(conf, store, slugs, collections):
    """The MongoDB container of ``store`` (see plan._stores), holding the sensor database of
    each CPU name it serves (``slugs``), and in them the report ``collections`` ([db, name])."""
    host, address, port = store["host"], store["address"], store["port"]
    volume = names.container_name(host, "mongo", store["suffix"])
    run = {"port_bindings": [f"{address}:{port}:{hardening.INTERNAL_PORT['mongo']}"], "binds": [f"{volume}:/data/db"]}
    if rules.mongo_auth(conf):
        # the upstream image creates this root user on its first start and then runs with --auth;
        # energy.mongo_users makes the sensors' and formulas' users with it
        run["environment"] = {"MONGO_INITDB_ROOT_USERNAME": names.MONGO_USERS["admin"],
                              "MONGO_INITDB_ROOT_PASSWORD": conf["mongo"]["admin_password"]}
    cpus = {names.sensor_database(slug): cpu for cpu, slug in zip(store["cpus"], slugs)}
    users = mongo_users(conf, address, port, cpus, collections)
    return container(conf, "mongo", host, _store_cpu(store), store["suffix"], run=run, volume=volume,
                     url=f"mongodb://{address}:{port}", health={"mongo": f"{address}:{port}", "space": space(volume)},
                     users=users)


def influxdb(conf, store, slugs, collections=None):  # pylint: disable=unused-argument
    """The InfluxDB container of ``store``, holding the power database of each CPU name it serves."""
    host, address, port = store["host"], store["address"], store["port"]
    volume = names.container_name(host, "influxdb", store["suffix"])
    settings = conf["influxdb"]
    url = f"http://{address}:{port}"
    run = {"port_bindings": [f"{address}:{port}:{hardening.INTERNAL_PORT['influxdb']}"],
           "binds": [f"{volume}:/var/lib/influxdb"]}
    kept = sizing.retention(conf)
    databases = [{"name": names.power_database(slug), "retention": kept, "warning": store["warning"]}
                 for slug in slugs]
    if settings["version"] == 2:
        databases = []  # the image's setup mode makes the bucket, with its retention
        run["binds"] = [f"{volume}:/var/lib/influxdb2"]
        run["environment"] = {  # first start only: the upstream image's setup mode
            "DOCKER_INFLUXDB_INIT_MODE": "setup", "DOCKER_INFLUXDB_INIT_USERNAME": "energy",
            "DOCKER_INFLUXDB_INIT_PASSWORD": settings["password"],
            "DOCKER_INFLUXDB_INIT_ORG": settings["org"],
            "DOCKER_INFLUXDB_INIT_BUCKET": names.power_database(slugs[0]),
            "DOCKER_INFLUXDB_INIT_RETENTION": "0s" if kept.upper() == "INF" else kept,
            "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": settings["token"],
        }
    return container(conf, "influxdb", host, _store_cpu(store), store["suffix"], run=run, volume=volume, url=url,
                     health={"http": f"{url}/ping", "space": space(volume)}, databases=databases)


# SmartWatts' input and output names; PowerAPI reads POWERAPI_INPUT_<NAME>_<ARG> and
# POWERAPI_OUTPUT_<NAME>_<ARG> from the environment (with _TYPE), merged under the command line's
PULLER, PUSHER = "puller", "power"


def influxdb_output(conf, info):
    """SmartWatts output arguments: ``influxdb`` (1.x, SmartWatts 2.1) or ``influxdb2`` (2.x,
    SmartWatts >= 2.2). The ``scope`` tag keeps cpu and dram series apart (without it they
    overwrite each other). The 2.x token goes by the environment (``formula_environment``)."""
    settings = conf["influxdb"]
    v2 = settings["version"] == 2
    host, port = reach(info, "influxdb", info["formula"])
    args = ["--output", "influxdb2" if v2 else "influxdb", "--model", "PowerReport", "--name", PUSHER,
            "--uri", f"http://{host}" if v2 else host,
            "--port", str(port), "--db", info["influxdb_database"], "--tags", "scope,socket"]
    if v2:
        args += ["--org", settings["org"]]
    return args


def formula_environment(conf, info):
    """What SmartWatts must not get on its command line (``docker inspect`` and ``ps`` show it to
    all): the MongoDB URI with the formula's password, and the InfluxDB 2 token."""
    env = {f"POWERAPI_INPUT_{PULLER.upper()}_TYPE": "mongodb",
           f"POWERAPI_INPUT_{PULLER.upper()}_URI": mongo_uri_for(conf, info, "formula", client=info["formula"])}
    if conf["influxdb"]["version"] == 2:
        env.update({f"POWERAPI_OUTPUT_{PUSHER.upper()}_TYPE": "influxdb2",
                    f"POWERAPI_OUTPUT_{PUSHER.upper()}_TOKEN": conf["influxdb"]["token"]})
    return env


def formula_command(conf, info):
    """SmartWatts arguments for one CPU name (same for the upstream image and the test image)."""
    facts = info["facts"]
    settings = conf["formula"]
    args = [
        "--verbose" if settings.get("verbose") else None,
        "--stream",
        "--input", "mongodb", "--model", "HWPCReport", "--name", PULLER,
        "--db", info["database"], "--collection", info["collection"],  # its --uri: formula_environment
        *influxdb_output(conf, info),
        "--cpu-base-freq", str(facts.get("cpu_base_freq_mhz") or settings["default_base_freq_mhz"]),
        "--cpu-error-threshold", str(settings["cpu_error_threshold"]),
        # must equal the sensor's period, or the power is scaled wrong
        "--sensor-reports-frequency", str(conf["sensor"]["frequency_ms"]),
    ]
    if facts.get("tdp_w"):
        args += ["--cpu-tdp", str(facts["tdp_w"])]
    if not info["sensor"]["dram"]:  # no DRAM domain here, or not on every CPU of a comparison
        args.append("--disable-dram-formula")
    args += [str(a) for a in settings.get("extra_args") or []]
    return [a for a in args if a is not None]


def formula(conf, cpu, info, suffix):
    """The SmartWatts of one group (a CPU name, one of its shards, or one machine's):
    ``energy-<host>-formula-<group name>``, or ``energy-<host>-formula`` (``suffix`` None)."""
    return _follows(container(
        conf, "formula", info["formula"], cpu, suffix,
        run={"command": formula_command(conf, info), "environment": formula_environment(conf, info)},
        waits_for=[{"component": "mongo", "service": f"mongo for {cpu}", "url": info["mongo_uri"]},
                   {"component": "influxdb", "service": f"influxdb for {cpu}", "url": info["influxdb_url"]}],
        health={"backlog": {"uri": mongo_uri_for(conf, info, "formula"), "database": info["database"],
                            "collection": info["collection"], "max": conf["heal"]["max_backlog"]}},
    ), **{names.LABEL_MONGO: info["mongo_container"], names.LABEL_INFLUXDB: info["influxdb_container"]})


def datasources(groups, strategy, grafana=None):
    """The Grafana datasources of the plan: one per CPU name, or with the dedicated strategy one per
    machine (named after its CPU name first, so that the dashboards group them by CPU name):
    ``[{"name", "uid", "cpu", "slug", "url", "proxy_url", "database", "sensors"}]``, sorted by
    name; ``url`` is the InfluxDB's published address, ``proxy_url`` where the Grafana of minion
    ``grafana`` reaches it (by container name on the same engine)."""
    sources = {}
    for group in groups:
        if strategy == "dedicated":
            key, name = f"{group['slug']}/{group['name']}", f"energy {group['cpu']} / {group['name']}"
        else:
            key, name = group["slug"], f"energy {group['cpu']}"
        source = sources.setdefault(key, {"name": name, "uid": names.datasource_uid(key), "cpu": group["cpu"],
                                          "slug": group["slug"], "url": group["influxdb_url"],
                                          "proxy_url": group["influxdb_url"] if grafana is None else
                                          "http://{}:{}".format(*reach(group, "influxdb", grafana)),
                                          "database": group["influxdb_database"], "sensors": []})
        source["sensors"] = sorted(source["sensors"] + group["sensors"])
    return sorted(sources.values(), key=lambda s: s["name"])


def grafana_datasources(conf, sources):
    """Grafana provisioning: an InfluxQL datasource per entry of ``datasources``."""
    datasources = []
    for entry in sources:
        # Grafana expands $VAR and ${VAR} in provisioning files: a CPU name (mine data) must not
        source = {"name": entry["name"].replace("$", "$$"), "uid": entry["uid"], "type": "influxdb",
                  "access": "proxy", "url": entry.get("proxy_url") or entry["url"], "editable": False,
                  "jsonData": {"dbName": entry["database"], "httpMode": "GET"}}
        if conf["influxdb"]["version"] == 2:  # InfluxQL on 2.x: the bucket's DBRP mapping + token
            source["jsonData"]["httpHeaderName1"] = "Authorization"
            source["secureJsonData"] = {"httpHeaderValue1": f"Token {conf['influxdb']['token']}"}
        datasources.append(source)
    return {"apiVersion": 1, "datasources": datasources}


def grafana(conf, minion, address, cpus, sources):
    port = conf["grafana"]["port"]
    volume = names.container_name(minion, "grafana")
    home = names.grafana_dir(conf["config_dir"], minion)
    url = f"http://{address}:{port}"
    return container(
        conf, "grafana", minion,
        run={"port_bindings": [f"{address}:{port}:{hardening.INTERNAL_PORT['grafana']}"],
             "binds": [f"{volume}:/var/lib/grafana", f"{home}/provisioning:/etc/grafana/provisioning:ro",
                       f"{home}/dashboards:/etc/grafana/dashboards:ro"],
             # no anonymous viewer and no sign-up: the admin account only (Grafana's defaults, made explicit)
             "environment": {"GF_SECURITY_ADMIN_PASSWORD": conf["grafana"]["admin_password"],
                             "GF_AUTH_ANONYMOUS_ENABLED": "false", "GF_USERS_ALLOW_SIGN_UP": "false"}},
        volume=volume, url=url, health={"http": f"{url}/api/health", "space": space(volume)},
        files={  # read by the grafana user (uid 472, group root) in the container
            f"{home}/provisioning/datasources/energy.yaml": {  # holds the InfluxDB 2 token
                "format": "yaml", "data": grafana_datasources(conf, sources), "mode": "0640",
                "secret": conf["influxdb"]["version"] == 2},
            f"{home}/provisioning/dashboards/energy.yaml": {
                "format": "yaml", "data": GRAFANA_DASHBOARD_PROVIDER, "mode": "0644", "secret": False},
            f"{home}/dashboards/energy.json": {"format": "source", "data": DASHBOARD_SOURCE, "mode": "0644",
                                               "secret": False},
            f"{home}/dashboards/compare.json": {"format": "json", "data": dashboards.comparison(cpus, sources),
                                                "mode": "0644", "secret": False},
        },
    )
