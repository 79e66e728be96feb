"""The rules of the pillar that tie several keys together (the schema checks each key alone).
Each rule yields ``(key path, bad value, fix)``."""

from . import names
from .checks import is_text, release

def grafana_enabled(conf):
    grafana = conf.get("grafana")
    return isinstance(grafana, dict) and grafana.get("enabled") is True


def _roles_need_a_host(conf):
    roles = conf.get("roles") if isinstance(conf.get("roles"), dict) else {}
    for role in names.ROLES:
        if roles.get(role) is None and role != "sensors" and not conf.get("control"):
            if role == "grafana" and not grafana_enabled(conf):
                continue
            yield (f"roles:{role}", None,
                   "set energy:control to the id of the minion that runs the databases and formulas, "
                   f"or set energy:roles:{role} to a compound target or a list of minion ids.")


GRAFANA_PASSWORD_MIN = 12


def _grafana_password(conf):
    if grafana_enabled(conf):
        password = conf["grafana"].get("admin_password")
        if not isinstance(password, str) or not password or password == "admin":
            yield ("grafana:admin_password", password,
                   f"set a secret admin password (not 'admin', {GRAFANA_PASSWORD_MIN} characters or more), "
                   "or set energy:grafana:enabled: false.")
        elif len(password) < GRAFANA_PASSWORD_MIN:
            yield ("grafana:admin_password", "***",
                   f"a password of {GRAFANA_PASSWORD_MIN} characters or more (this one has {len(password)}).")


def _influxdb2_secrets(conf):
    influxdb = conf.get("influxdb") if isinstance(conf.get("influxdb"), dict) else {}
    if influxdb.get("version") != 2:
        return
    for key, fix in (("org", "the organisation name"), ("token", "a secret admin token")):
        if not is_text(influxdb.get(key)):
            yield f"influxdb:{key}", influxdb.get(key), f"{fix}, required with influxdb:version 2."
    password = influxdb.get("password")
    if not isinstance(password, str) or len(password) < 8:
        yield ("influxdb:password", "***" if password else password,
               "a password of at least 8 characters, required with influxdb:version 2.")


def _mongo_env_without_credentials(conf):
    """The upstream mongo image turns authentication on when it is given a root user; the URIs
    the sensors and formulas get carry no credentials, so they would all be refused."""
    mongo = conf.get("mongo") if isinstance(conf.get("mongo"), dict) else {}
    env = mongo.get("env") if isinstance(mongo.get("env"), dict) else {}
    for key in sorted(k for k in env if str(k).startswith("MONGO_INITDB_ROOT_")):
        yield (f"mongo:env:{key}", "***" if "PASSWORD" in str(key) else env[key],
               "remove it: the sensors' and formulas' MongoDB URIs carry no credentials, so MongoDB with "
               "authentication would refuse every report.")


def _smartwatts_fits_influxdb(conf):
    """SmartWatts 2.1 (powerapi 2.1.0) is the last with the InfluxDB 1.x output (``influxdb``):
    powerapi 2.3.0 removed it, and SmartWatts 2.2 needs powerapi 2.5.0. SmartWatts 2.2 and later
    have only ``influxdb2``. A tag that names no release (a local build) cannot be checked."""
    formula = conf.get("formula") if isinstance(conf.get("formula"), dict) else {}
    influxdb = conf.get("influxdb") if isinstance(conf.get("influxdb"), dict) else {}
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


CROSS_CHECKS = (_roles_need_a_host, _grafana_password, _influxdb2_secrets, _smartwatts_fits_influxdb,
                _mongo_env_without_credentials)
