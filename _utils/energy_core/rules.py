"""The rules of the pillar that tie several keys together (the schema checks each key alone).
Each rule yields ``(key path, bad value, fix)``."""

from . import names
from .checks import is_text, release

def _section(conf, name):
    """``conf[name]`` when it is a mapping, else {} (the schema reports the bad type itself)."""
    return conf.get(name) if isinstance(conf.get(name), dict) else {}


def grafana_enabled(conf):
    return _section(conf, "grafana").get("enabled") is True


def _roles_need_a_host_all(conf):
    roles = _section(conf, "roles")
    for role in names.ROLES:
        if roles.get(role) is None and role != "sensors" and not conf.get("control"):
            if role == "grafana" and not grafana_enabled(conf):
                continue
            yield (f"roles:{role}", None,
                   "set energy:control to the id of the minion that runs the databases and formulas, "
                   f"or set energy:roles:{role} to a compound target or a list of minion ids.")


GRAFANA_PASSWORD_MIN = 12
MONGO_PASSWORD_MIN = 12
INFLUXDB_PASSWORD_MIN = 8
# an InfluxDB 2 token is the one credential of every write and read (SmartWatts, Grafana): 16
# random printable characters hold about 100 bits; `influx auth create` makes 88-character ones. At
# that length masking.secrets always masks it (shorter values are not masked, not to mangle returns)
INFLUXDB_TOKEN_MIN = 16
MONGO_PASSWORDS = ("admin_password", "sensor_password", "formula_password")


def mongo_auth(conf):
    mongo = _section(conf, "mongo")
    return mongo.get("auth") is not False


# the pillar keys of the MongoDB passwords given per CPU name (a mapping CPU name -> password),
# in place of the role's password for that CPU name's users
MONGO_CPU_PASSWORDS = {"sensor": "sensor_passwords", "formula": "formula_passwords"}


def mongo_base_password(conf, purpose, cpu):
    """``(pillar key, password)`` that the MongoDB users of ``purpose`` (sensor or formula) for CPU
    name ``cpu`` derive their passwords from: energy:mongo:<purpose>_passwords:<cpu> when given,
    else energy:mongo:<purpose>_password. The password is '' when this minion's pillar lacks it."""
    mongo = _section(conf, "mongo")
    own = mongo.get(MONGO_CPU_PASSWORDS[purpose])
    if isinstance(own, dict) and isinstance(own.get(cpu), str) and own.get(cpu):
        return f"mongo:{MONGO_CPU_PASSWORDS[purpose]}:{cpu}", own[cpu]
    value = mongo.get(f"{purpose}_password")
    return f"mongo:{purpose}_password", value if isinstance(value, str) else ""


def _mongo_passwords(mongo):
    """``(key, password)`` of every MongoDB password the pillar gives, the per-CPU ones included."""
    for key in MONGO_PASSWORDS:
        yield key, mongo.get(key)
    for key in MONGO_CPU_PASSWORDS.values():
        own = mongo.get(key)
        for cpu, password in sorted((own if isinstance(own, dict) else {}).items(), key=lambda kv: str(kv[0])):
            yield f"{key}:{cpu}", password


def _given_secrets(conf):
    """A secret that is given must be usable, wherever it is given. Whether one is missing is for
    the minions that need it to say (``secret_problems``): a minion that runs only a sensor need
    not hold the Grafana password."""
    password = _section(conf, "grafana").get("admin_password")
    if password == "admin":
        yield ("grafana:admin_password", password,
               f"a secret admin password (not 'admin', {GRAFANA_PASSWORD_MIN} characters or more).")
    elif isinstance(password, str) and 0 < len(password) < GRAFANA_PASSWORD_MIN:
        yield ("grafana:admin_password", "***",
               f"a password of {GRAFANA_PASSWORD_MIN} characters or more (this one has {len(password)}).")
    password = _section(conf, "influxdb").get("password")
    if isinstance(password, str) and 0 < len(password) < INFLUXDB_PASSWORD_MIN:
        yield ("influxdb:password", "***", f"a password of at least {INFLUXDB_PASSWORD_MIN} characters.")
    token = _section(conf, "influxdb").get("token")
    if isinstance(token, str) and token and (len(token) < INFLUXDB_TOKEN_MIN or not all(
            0x21 <= ord(c) <= 0x7E and c != "$" for c in token)):
        yield ("influxdb:token", "***", f"a token of {INFLUXDB_TOKEN_MIN} characters or more (this one has "
                                       f"{len(token)}), printable ASCII without spaces or '$' (Grafana would expand "
                                       "$NAME in its datasource file), e.g. the output of openssl rand -hex 32.")
    mongo = _section(conf, "mongo")
    seen = {}
    for key, password in _mongo_passwords(mongo):
        if not isinstance(password, str) or not password:
            continue
        if len(password) < MONGO_PASSWORD_MIN:
            yield (f"mongo:{key}", "***", f"a password of {MONGO_PASSWORD_MIN} characters or more "
                                         f"(this one has {len(password)}).")
        elif not all(0x21 <= ord(c) <= 0x7E for c in password):
            yield (f"mongo:{key}", "***", "printable ASCII characters without spaces (SCRAM would have to "
                                         "normalise others, and drivers differ in how).")
        elif password in seen:
            yield (f"mongo:{key}", "***", f"a password of its own: it is the same as energy:mongo:{seen[password]}, "
                                         "and each user's password must give only that user's rights.")
        seen.setdefault(password, key)


def _influxdb2_org(conf):
    influxdb = _section(conf, "influxdb")
    if influxdb.get("version") == 2 and not is_text(influxdb.get("org")):
        yield "influxdb:org", influxdb.get("org"), "the organisation name, required with influxdb:version 2."


# the secrets each component's container needs on its minion: (key, when it applies, minimum length)
def _needs(conf):
    v2 = _section(conf, "influxdb").get("version") == 2
    auth = mongo_auth(conf)
    mongo = {f"mongo:{key}": MONGO_PASSWORD_MIN for key in MONGO_PASSWORDS} if auth else {}
    return {
        "sensor": {"mongo:sensor_password": MONGO_PASSWORD_MIN} if auth else {},
        "mongo": mongo,
        "formula": dict({"mongo:formula_password": MONGO_PASSWORD_MIN} if auth else {},
                        **({"influxdb:token": INFLUXDB_TOKEN_MIN} if v2 else {})),
        "influxdb": {"influxdb:token": INFLUXDB_TOKEN_MIN, "influxdb:password": INFLUXDB_PASSWORD_MIN} if v2 else {},
        "grafana": dict({"grafana:admin_password": GRAFANA_PASSWORD_MIN},
                        **({"influxdb:token": INFLUXDB_TOKEN_MIN} if v2 else {})),
    }


SECRET_FIX = {
    "grafana:admin_password": "set a secret admin password for Grafana, or set energy:grafana:enabled: false",
    "influxdb:token": "set the InfluxDB 2 admin token SmartWatts and Grafana use",
    "influxdb:password": "set the InfluxDB 2 admin user's password",
    "mongo:admin_password": "set the password of the MongoDB root user (energy-admin) the image creates on its "
                            "first start",
    "mongo:sensor_password": "set the password the sensors' MongoDB users (energy-sensor-<cpu>) derive theirs "
                             "from, or one per CPU name in energy:mongo:sensor_passwords",
    "mongo:formula_password": "set the password the formulas' MongoDB users (energy-formula-<cpu>) derive "
                              "theirs from, or one per CPU name in energy:mongo:formula_passwords",
}


def _given_per_cpu(conf, key, cpus):
    """Whether every CPU name of ``cpus`` has its own password in place of ``key``
    (energy:mongo:sensor_passwords or formula_passwords), so that ``key`` is not needed."""
    purpose = next((p for p in MONGO_CPU_PASSWORDS if key == f"mongo:{p}_password"), None)
    if purpose is None or not cpus:
        return False
    return all(mongo_base_password(conf, purpose, cpu)[0] != key for cpu in cpus)


def secret_problems(conf, minion, components, cpus=None):
    """Errors for the secrets that the containers of ``minion`` (their ``components``) need and
    the pillar this minion sees lacks: a missing secret is an error on the minions that need it,
    and only there. ``cpus`` (``{component: [CPU names its containers serve]}``) lets per-CPU
    MongoDB passwords stand in for the role's password."""
    problems = []
    needs = _needs(conf)
    for component in sorted(set(components)):
        for key, least in needs.get(component, {}).items():
            if _given_per_cpu(conf, key, (cpus or {}).get(component)):
                continue
            section, name = key.split(":")
            value = _section(conf, section).get(name)
            if not isinstance(value, str) or len(value) < least:
                problems.append(
                    f"energy:{key}: missing on {minion}, which runs a {component} container. Fix: "
                    f"{SECRET_FIX[key]} ({least} characters or more) in the pillar of {minion} "
                    "(pillar top file: the minions of that role).")
    return list(dict.fromkeys(problems))


def _mongo_env_without_credentials(conf):
    """The stack sets the upstream mongo image's root user itself (energy:mongo:admin_password)."""
    mongo = _section(conf, "mongo")
    env = mongo.get("env") if isinstance(mongo.get("env"), dict) else {}
    for key in sorted(k for k in env if str(k).startswith("MONGO_INITDB_ROOT_")):
        yield (f"mongo:env:{key}", "***" if "PASSWORD" in str(key) else env[key],
               "remove it: the stack creates the root user itself, from energy:mongo:admin_password "
               "(with energy:mongo:auth: true), and gives the sensors and formulas users of their own.")


def _smartwatts_fits_influxdb(conf):
    """SmartWatts 2.1 (powerapi 2.1.0) is the last with the InfluxDB 1.x output (``influxdb``):
    powerapi 2.3.0 removed it, and SmartWatts 2.2 needs powerapi 2.5.0. SmartWatts 2.2 and later
    have only ``influxdb2``. A tag that names no release (a local build) cannot be checked."""
    formula = _section(conf, "formula")
    influxdb = _section(conf, "influxdb")
    version = release(formula.get("tag"))
    if version is None or influxdb.get("version") not in (1, 2):
        return
    if influxdb["version"] == 1 and version >= (2, 2):
        yield ("formula:tag", formula["tag"],
               "SmartWatts 2.2 and later cannot write to InfluxDB 1.x (PowerAPI removed that output); use "
               "SmartWatts 2.1.2 (tag: '2.1.2'), or InfluxDB 2 (energy:influxdb:version: 2, org, token, password).")
    elif influxdb["version"] == 2 and version < (2, 2):
        yield ("formula:tag", formula["tag"],
               "SmartWatts before 2.2 has no InfluxDB 2 output; use a SmartWatts of 2.2 or later (e.g. tag: '2.4.1') "
               "with energy:influxdb:version: 2, or InfluxDB 1.x (energy:influxdb:version: 1).")


def _dedicated_uses_no_database_roles(conf):
    """dedicated runs every database and formula next to its sensor: the roles would be ignored."""
    if conf.get("strategy") != "dedicated":
        return
    roles = conf.get("roles") if isinstance(conf.get("roles"), dict) else {}
    for role in ("mongos", "formulas", "influxdbs"):
        if roles.get(role) is not None:
            yield (f"roles:{role}", roles[role],
                   "remove it (~): with energy:strategy: dedicated every sensor machine runs its own MongoDB, "
                   "SmartWatts and InfluxDB, so this role is not used; or choose per_cpu or shared.")


def _roles_need_a_host(conf):
    if conf.get("strategy") == "dedicated":  # no database or formula role; Grafana still needs a host
        roles = conf.get("roles") if isinstance(conf.get("roles"), dict) else {}
        if grafana_enabled(conf) and roles.get("grafana") is None and not conf.get("control"):
            yield ("roles:grafana", None, "set energy:control or energy:roles:grafana to the minion that runs "
                                          "Grafana, or set energy:grafana:enabled: false.")
        return
    yield from _roles_need_a_host_all(conf)


CROSS_CHECKS = (_roles_need_a_host, _dedicated_uses_no_database_roles, _given_secrets, _influxdb2_org, _smartwatts_fits_influxdb,
                _mongo_env_without_credentials)
