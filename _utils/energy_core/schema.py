"""The pillar schema of the energy formula, as a declarative table, and its validation.

``SCHEMA`` mirrors ``energy/defaults.yaml``: a mapping is a section whose keys are all known (an
unknown key is an error that suggests the nearest known one), a ``Rule`` is a leaf with a check
and the fix shown when the check fails, ``MapOf`` a free mapping whose values follow a rule.
``validate`` walks the table; ``CROSS_CHECKS`` hold the rules that tie several keys together.
Every error reads ``energy:<key>: bad value <value>. Fix: <fix>``.
"""

import collections
import copy
import difflib
import math
import re

from . import names

Rule = collections.namedtuple("Rule", "check fix")
MapOf = collections.namedtuple("MapOf", "rule fix")
# a section: ``keys`` the schema of each key, ``noun`` what an unknown key is called in errors
Section = collections.namedtuple("Section", "keys noun optional", defaults=(False,))

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
MISSING = object()


class PlanError(ValueError):
    """Bad configuration or mine data; the message names the pillar key, the value and the fix."""


# --------------------------------------------------------------------------- checks


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_positive(value):
    return is_number(value) and value > 0


def is_int(value, low=None, high=None):
    return (isinstance(value, int) and not isinstance(value, bool) and (low is None or value >= low)
            and (high is None or value <= high))


def is_port(value):
    return is_int(value, 1, 65535)


def is_bool(value):
    return isinstance(value, bool)


def is_text(value):
    return isinstance(value, str) and bool(value.strip())


def is_str_list(value):
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def is_target(value):
    """A compound target string, or a non-empty list of minion ids."""
    if isinstance(value, list):
        return bool(value) and is_str_list(value)
    return value is None or is_text(value)


def is_duration(value):
    """An InfluxDB duration: ``30d``, ``12w``, ``720h0m0s``, ``INF``."""
    return isinstance(value, str) and (value.upper() == "INF" or re.fullmatch(r"([0-9]+(w|d|h|m|s))+", value) is not None)


_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(text):
    """InfluxDB duration (``30d``, ``720h0m0s``, ``INF``, ``0s``) -> seconds; 0 means infinite."""
    text = str(text).strip().lower()
    if text in ("inf", "0", "0s", ""):
        return 0
    if not re.fullmatch(r"([0-9]+[wdhms])+", text):
        raise ValueError(f"not an InfluxDB duration: {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)([wdhms])", text))


def describe(value):
    return f"'{value}'" if isinstance(value, str) else repr(value)


# --------------------------------------------------------------------------- the table

def _tag_fix(value):
    return "a non-empty string." + (" Quote it in YAML (e.g. tag: '2.1')." if is_number(value) else "")


IMAGE = Rule(is_text, "a non-empty string.")
TAG = Rule(is_text, _tag_fix)
PORT = Rule(is_port, "an integer from 1 to 65535.")
ENV = MapOf(Rule(lambda v: isinstance(v, (str, int, float, bool)), "a scalar (string or number)."),
            "a mapping (name: value).")
OPTIONS = MapOf(Rule(lambda v: True, ""), "a mapping (name: value).")
BOOL = Rule(is_bool, "true or false.")
SECONDS = Rule(is_positive, "a positive number of seconds.")


def _container_section(**extra):
    return Section(dict({"image": IMAGE, "tag": TAG, "env": ENV, "options": OPTIONS}, **extra), "key")


def _components_list(value):
    return isinstance(value, list) and all(isinstance(c, str) for c in value) and set(value) <= set(names.COMPONENTS)


def _components_fix(value):
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        unknown = ", ".join(sorted(set(value) - set(names.COMPONENTS)))
        return f"unknown component(s) {unknown}; the components are {', '.join(names.COMPONENTS)}."
    return f"a list of components among {', '.join(names.COMPONENTS)}."


FACTS = Section({
    "cpu_name": Rule(is_text, "the CPU model name as a string."),
    "cpu_vendor": Rule(is_text, "intel, amd, arm or another vendor name, as a string."),
    "cpu_family": Rule(lambda v: is_int(v, 0), "the CPU family number (/proc/cpuinfo 'cpu family')."),
    "cpu_model": Rule(lambda v: is_int(v, 0), "the CPU model number (/proc/cpuinfo 'model')."),
    "cpu_count": Rule(lambda v: is_int(v, 1), "the number of logical CPUs, 1 or more."),
    "cpu_base_freq_mhz": Rule(is_positive, "the base frequency in MHz, e.g. 2100."),
    "tdp_w": Rule(is_positive, "the package TDP in Watts, e.g. 125."),
    "rapl_domains": Rule(is_str_list, "a list of RAPL domains, e.g. [package, dram]."),
    "pmu_events": Rule(is_str_list, "a list of core event names."),
    "virtual": BOOL,
    "cgroup_version": Rule(lambda v: v in (1, 2) and not isinstance(v, bool), "1 or 2."),
    "address": Rule(is_text, "the address other minions reach this one on, as a string."),
}, "fact", True)
assert tuple(FACTS.keys) == names.FACT_KEYS

SCHEMA = Section({
    "control": Rule(lambda v: v is None or isinstance(v, str),
                    "give the control minion's id (or a compound target) as a string."),
    "roles": Section({role: Rule(is_target, "a compound target string (e.g. 'G@energy:cpu_vendor:intel') "
                                            "or a non-empty list of minion ids (strings).")
                      for role in names.ROLES}, "role", True),
    "facts": FACTS,
    # ':' and ',' would split Docker's bind specification (host:container:mode)
    "config_dir": Rule(lambda v: isinstance(v, str) and v.startswith("/") and not re.search(r"[:,\s]", v),
                       "an absolute directory path on the minions, without ':', ',' or spaces."),
    "restart_policy": Rule(lambda v: isinstance(v, str) and (v in RESTART_POLICIES or re.fullmatch(r"on-failure:[0-9]+", v)),
                           f"one of {', '.join(RESTART_POLICIES)} (on-failure:N allowed)."),
    "ready_timeout": SECONDS,
    "ping_timeout": SECONDS,
    "sensor": _container_section(
        frequency_ms=Rule(lambda v: is_int(v, 10), "an integer number of milliseconds, at least 10 (1000 = 1 Hz)."),
        events=Rule(lambda v: isinstance(v, list) and all(isinstance(e, str) and e for e in v),
                    "a list of event names ([] = the grain's pmu_events)."),
    ),
    "mongo": _container_section(port=PORT),
    "formula": _container_section(
        cpu_error_threshold=Rule(is_positive, "a positive number of Watts."),
        default_base_freq_mhz=Rule(is_positive, "a positive number of MHz."),
        verbose=BOOL,
        extra_args=Rule(lambda v: isinstance(v, list) and all(isinstance(a, (str, int, float)) for a in v),
                        "a list of arguments, e.g. ['--learn-min-samples-required', '10']."),
    ),
    "influxdb": _container_section(
        version=Rule(lambda v: v in (1, 2) and not isinstance(v, bool), "1 (InfluxDB 1.x) or 2 (InfluxDB 2.x)."),
        port=PORT,
        # InfluxDB refuses a retention policy shorter than one hour
        retention=Rule(lambda v: is_duration(v) and (duration_seconds(v) == 0 or duration_seconds(v) >= 3600),
                       "an InfluxDB duration of 1h or more, such as 30d, 12w or INF."),
        org=Rule(lambda v: isinstance(v, str), "the organisation name (a string)."),
        token=Rule(lambda v: isinstance(v, str), "the admin token (a string)."),
        password=Rule(lambda v: isinstance(v, str), "the admin password (a string)."),
    ),
    "grafana": _container_section(enabled=BOOL, port=PORT,
                                  admin_password=Rule(lambda v: isinstance(v, str), "a string.")),
    "heal": Section({
        "components": Rule(_components_list, _components_fix),
        "grace_seconds": Rule(is_positive, "a positive number."),
        "max_backlog": Rule(is_positive, "a positive number."),
        "max_age_seconds": Rule(is_positive, "a positive number."),
        "timeout": Rule(is_positive, "a positive number."),
        "schedule": Section({
            "enabled": BOOL,
            "seconds": Rule(is_positive, "a positive number of seconds between runs."),
            "splay": Rule(lambda v: is_number(v) and v >= 0, "a number of seconds, 0 or more."),
        }, "key"),
        "events": Section({"enabled": BOOL, "restart_minion": BOOL, "restart_master": BOOL}, "key"),
    }, "key"),
    "clean": Section({"purge_data": BOOL}, "key"),
}, "key")

KNOWN_KEYS = tuple(SCHEMA.keys)


# --------------------------------------------------------------------------- rules across keys


def _grafana_enabled(conf):
    grafana = conf.get("grafana")
    return isinstance(grafana, dict) and grafana.get("enabled") is True


def _roles_need_a_host(conf):
    roles = conf.get("roles") if isinstance(conf.get("roles"), dict) else {}
    for role in names.ROLES:
        if roles.get(role) is None and role != "sensors" and not conf.get("control"):
            if role == "grafana" and not _grafana_enabled(conf):
                continue
            yield (f"roles:{role}", None,
                   "set energy:control to the id of the minion that runs the databases and formulas, "
                   f"or set energy:roles:{role} to a compound target or a list of minion ids.")


GRAFANA_PASSWORD_MIN = 12


def _grafana_password(conf):
    if _grafana_enabled(conf):
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


def release(tag):
    """(major, minor) of an image tag that names a release (``2.1.2``, ``v2.4``), else None."""
    match = re.fullmatch(r"v?([0-9]+)\.([0-9]+)(\.[0-9]+)?([-.+].*)?", str(tag))
    return (int(match.group(1)), int(match.group(2))) if match else None


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


# --------------------------------------------------------------------------- validation


def _error(path, value, fix):
    return f"energy:{path}: bad value {describe(value)}. Fix: {fix}"


def _walk(schema, value, path, errors):
    given = None if value is MISSING else value
    if isinstance(schema, Rule):
        if not schema.check(given):
            errors.append(_error(path, given, schema.fix(given) if callable(schema.fix) else schema.fix))
        return
    if isinstance(schema, MapOf):
        given = {} if given is None else given
        if not isinstance(given, dict):
            errors.append(_error(path, given, schema.fix))
            return
        for key in sorted(given, key=str):
            _walk(schema.rule, given[key], f"{path}:{key}", errors)
        return
    if given is None and (schema.optional or not path):
        given = {}
    if not isinstance(given, dict):
        fix = (f"a mapping of {schema.noun} names ({', '.join(schema.keys)}) to values." if schema.optional
               else "a mapping; see pillar.example.")
        errors.append(_error(path, given, fix) if path else f"energy: must be a mapping, got {describe(given)}. "
                      "Fix: see pillar.example.")
        return
    known = list(schema.keys)
    for key in sorted(set(given) - set(known), key=str):
        nearest = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {nearest[0]}?)" if nearest else ""
        if schema.noun == "key":
            fix = f"unknown key{hint}; remove it or use one of {', '.join(known)}."
        else:
            fix = f"unknown {schema.noun}{hint}; the {schema.noun}s are {', '.join(known)}."
        errors.append(_error(f"{path}:{key}" if path else str(key), given[key], fix))
    for key, sub in schema.keys.items():
        if schema.optional and key not in given:
            continue
        _walk(sub, given.get(key, MISSING), f"{path}:{key}" if path else key, errors)


def validate(conf):
    """Every problem of a merged ``energy`` configuration (empty when fine), each naming the
    pillar key, the bad value and the fix."""
    errors = []
    _walk(SCHEMA, {} if conf is None else conf, "", errors)
    if isinstance(conf, dict):
        for rule in CROSS_CHECKS:
            errors.extend(_error(*problem) for problem in rule(conf))
    return errors


def check(conf):
    """Raise PlanError listing every problem of ``conf``."""
    errors = validate(conf)
    if errors:
        raise PlanError("invalid energy pillar:\n  - " + "\n  - ".join(errors))


def merge(defaults, pillar):
    """``defaults`` overridden by ``pillar``: mappings merge key by key, anything else (lists
    included) is replaced. Raises PlanError when pillar ``energy`` is not a mapping."""
    if pillar is None:
        pillar = {}
    if not isinstance(pillar, dict):
        raise PlanError(f"invalid energy pillar:\n  - energy: must be a mapping, got {describe(pillar)}. "
                        "Fix: see pillar.example.")

    def merged(base, over):
        result = copy.deepcopy(base)
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = merged(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
        return result

    return merged(defaults, pillar)


def grafana_enabled(conf):
    return _grafana_enabled(conf)


def key_paths(section=SCHEMA, prefix=""):
    """Every key path of the schema (``mongo:port``, ``heal:schedule:seconds``, ...); the keys of
    an optional section (``facts``) count as one path, the section's own."""
    for key, sub in section.keys.items():
        path = f"{prefix}{key}"
        if isinstance(sub, Section) and not sub.optional:
            yield from key_paths(sub, path + ":")
        else:
            yield path


# the pillar keys that hold secrets: never in a return, an event, a log line or a label
SECRET_KEYS = ("grafana:admin_password", "influxdb:token", "influxdb:password")
MASK = "***"


def secrets(conf):
    """The secret values of a configuration (non-empty strings at SECRET_KEYS)."""
    found = set()
    for path in SECRET_KEYS:
        value = conf
        for key in path.split(":"):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            found.add(value)
    return found


def mask(value, hidden):
    """``value`` with every occurrence of a string of ``hidden`` replaced by ``***`` (a copy)."""
    if not hidden:
        return value
    if isinstance(value, dict):
        return {mask(k, hidden): mask(v, hidden) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask(v, hidden) for v in value)
    if isinstance(value, str):
        for secret in sorted(hidden, key=len, reverse=True):
            value = value.replace(secret, MASK)
    return value
