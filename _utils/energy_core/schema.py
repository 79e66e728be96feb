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
import re

from . import names, rules
from .checks import (describe, duration_seconds, is_bool, is_duration, is_int, is_number, is_port,  # noqa: F401
                     is_positive, is_str_list, is_target, is_text)
from .masking import MASK, SECRET_KEYS, mask, secrets  # noqa: F401  pylint: disable=unused-import
from .rules import GRAFANA_PASSWORD_MIN  # noqa: F401  pylint: disable=unused-import

Rule = collections.namedtuple("Rule", "check fix")
MapOf = collections.namedtuple("MapOf", "rule fix")
# a section: ``keys`` the schema of each key, ``noun`` what an unknown key is called in errors
Section = collections.namedtuple("Section", "keys noun optional", defaults=(False,))

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
MISSING = object()


class PlanError(ValueError):
    """Bad configuration or mine data; the message names the pillar key, the value and the fix."""


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
    "powercap_domains": Rule(is_str_list, "a list of powercap RAPL domains, e.g. [package, dram]."),
    "pmu_name": Rule(lambda v: v is None or isinstance(v, str), "the kernel's core PMU name, e.g. skylake."),
    "pmu_family": Rule(lambda v: v is None or isinstance(v, str), "an event family, e.g. intel_skylake or amd_zen3."),
    "pmu_event_names": Rule(is_str_list, "a list of the event names the core PMU accepts."),
    "perf_event_paranoid": Rule(lambda v: v is None or is_int(v, -1), "the kernel's perf_event_paranoid, -1 to 4."),
    "kernel": Rule(lambda v: isinstance(v, str), "the kernel release, e.g. 6.1.0."),
    "cgroup_perf_event": Rule(lambda v: v is None or is_bool(v), "true or false."),
    "cluster": Rule(is_text, "the cluster name, e.g. econome."),
    "sensor_support": Rule(lambda v: v == "ok" or is_str_list(v), "ok, or a list of reasons."),
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
    "strategy": Rule(lambda v: v in names.STRATEGIES,
                     f"one of {', '.join(names.STRATEGIES)} (README: Deployment strategies)."),
    "strategy_change": Rule(lambda v: v in ("refuse", "allow"),
                            "refuse (the orch stops when the plan moves a database) or allow (the old "
                            "containers go, their volumes stay)."),
    "experiment": Section({
        "duration": Rule(lambda v: is_duration(v) and duration_seconds(v) > 0,
                         "how long the experiment runs, an InfluxDB duration such as 14d or 12h."),
        "containers": Rule(lambda v: is_int(v, 1), "the containers per machine you expect, a whole number, 1 or more."),
        "buffer": Rule(lambda v: is_duration(v) and duration_seconds(v) > 0,
                       "the longest formula outage MongoDB must hold reports for, e.g. 1h."),
        "check_space": BOOL,
    }, "key"),
    "sensor": _container_section(
        frequency_ms=Rule(lambda v: is_int(v, 10), "an integer number of milliseconds, at least 10 (1000 = 1 Hz)."),
        events=MapOf(Rule(lambda v: isinstance(v, list) and all(isinstance(e, str) and e for e in v),
                          "a list of event names."),
                     "a mapping of CPU names (or '*') to the core events that replace the detected ones, "
                     "e.g. {'Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz': [CPU_CLK_THREAD_UNHALTED:REF_P, ...]}."),
        mode=Rule(lambda v: v in ("best", "common"),
                  "best (each CPU name gets every event its PMU has) or common (the same event roles for all)."),
        compare=Rule(lambda v: isinstance(v, list) and all(is_text(c) for c in v),
                     "a list of cluster names to compare in mode common ([] = every CPU name)."),
        extra_events=MapOf(Rule(lambda v: isinstance(v, list) and all(isinstance(e, str) and e for e in v),
                                "a list of event names."),
                           "a mapping of CPU names (or '*') to lists of events added to the detected ones."),
    ),
    "mongo": _container_section(
        port=PORT, auth=BOOL,
        admin_password=Rule(lambda v: isinstance(v, str), "a string."),
        sensor_password=Rule(lambda v: isinstance(v, str), "a string."),
        formula_password=Rule(lambda v: isinstance(v, str), "a string."),
    ),
    "formula": _container_section(
        cpu_error_threshold=Rule(is_positive, "a positive number of Watts."),
        default_base_freq_mhz=Rule(is_positive, "a positive number of MHz."),
        verbose=BOOL,
        extra_args=Rule(lambda v: isinstance(v, list) and all(isinstance(a, (str, int, float)) for a in v),
                        "a list of arguments, e.g. ['--learn-min-samples-required', '10']."),
        max_sensors=Rule(lambda v: v is None or is_int(v, 1),
                         "the sensors one SmartWatts reads, a whole number, 1 or more; ~ = what one keeps up with."),
    ),
    "influxdb": _container_section(
        version=Rule(lambda v: v in (1, 2) and not isinstance(v, bool), "1 (InfluxDB 1.x) or 2 (InfluxDB 2.x)."),
        port=PORT,
        # InfluxDB refuses a retention policy shorter than one hour
        retention=Rule(lambda v: v is None or (is_duration(v) and (duration_seconds(v) == 0 or duration_seconds(v) >= 3600)),
                       "an InfluxDB duration of 1h or more, such as 30d, 12w or INF; ~ = the experiment's duration "
                       "plus a quarter."),
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
            "full_seconds": Rule(lambda v: is_number(v) and v >= 0,
                                 "a number of seconds between full state runs, 0 for none."),
        }, "key"),
        "events": Section({"enabled": BOOL, "restart_minion": BOOL, "restart_master": BOOL,
                           "interval": Rule(lambda v: is_number(v) and 1 <= v <= 3600,
                                            "a number of seconds from 1 to 3600 (at most one energy.react "
                                            "per container in that time).")}, "key"),
    }, "key"),
    "clean": Section({"purge_data": BOOL}, "key"),
}, "key")

KNOWN_KEYS = tuple(SCHEMA.keys)


# --------------------------------------------------------------------------- validation


SECRET_WORDS = ("password", "passwd", "token", "secret", "admin_password")


def _secret_looking(path):
    last = path.rsplit(":", 1)[-1].lower()
    return any(w in last for w in SECRET_WORDS) or bool(difflib.get_close_matches(last, SECRET_WORDS, cutoff=0.7))


def _error(path, value, fix):
    # a typo under a secret (admin_pasword, tokn) or a number for one must not be echoed either
    if value not in (None, "", "admin") and _secret_looking(path):
        value = MASK
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


MAX_FACT = 256  # longer strings in a mine entry are not facts of a machine


def fact_problems(facts):
    """What is wrong with one minion's energy facts as the mine holds them (each minion publishes
    its own, so they are not trusted): ``[(key, fix)]``, empty when fine."""
    if not isinstance(facts, dict):
        return [("facts", "a mapping")]
    problems = []
    for key, rule in FACTS.keys.items():
        if key not in facts:
            continue
        value = facts[key]
        too_long = isinstance(value, str) and len(value) > MAX_FACT or (
            isinstance(value, list) and (len(value) > 5000 or any(len(str(v)) > MAX_FACT for v in value)))
        if too_long or not rule.check(value):
            problems.append((key, rule.fix if isinstance(rule.fix, str) else "see the grain"))
    return problems


def validate(conf):
    """Every problem of a merged ``energy`` configuration (empty when fine), each naming the
    pillar key, the bad value and the fix."""
    errors = []
    _walk(SCHEMA, {} if conf is None else conf, "", errors)
    if isinstance(conf, dict):
        for rule in rules.CROSS_CHECKS:
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
    return rules.grafana_enabled(conf)


def key_paths(section=SCHEMA, prefix=""):
    """Every key path of the schema (``mongo:port``, ``heal:schedule:seconds``, ...); the keys of
    an optional section (``facts``) count as one path, the section's own."""
    for key, sub in section.keys.items():
        path = f"{prefix}{key}"
        if isinstance(sub, Section) and not sub.optional:
            yield from key_paths(sub, path + ":")
        else:
            yield path
