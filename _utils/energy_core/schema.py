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

from . import formats, hardening, names, options, rules
from .checks import (describe, duration_seconds, is_bool, is_duration, is_int, is_number, is_port,  # noqa: F401
                     is_positive, is_str_list, is_target, is_text)
from .masking import MASK, SECRET_KEYS, mask, redact, redact_path, redact_text, secret_path, secrets  # noqa: F401  pylint: disable=unused-import
from .rules import GRAFANA_PASSWORD_MIN  # noqa: F401  pylint: disable=unused-import

Rule = collections.namedtuple("Rule", "check fix")
MapOf = collections.namedtuple("MapOf", "rule fix")
# a free mapping whose entries are judged with their key: ``problem(key, value)`` is the fix or None
Entries = collections.namedtuple("Entries", "problem fix")
# a section: ``keys`` the schema of each key, ``noun`` what an unknown key is called in errors
Section = collections.namedtuple("Section", "keys noun optional", defaults=(False,))

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
MISSING = object()


class PlanError(ValueError):
    """Bad configuration or mine data; the message names the pillar key, the value and the fix."""


# --------------------------------------------------------------------------- the table

def _port_fix(value):
    if isinstance(value, str) and value.strip().isdigit():
        return f"an integer from {formats.PORT_MIN} to 65535: write {value.strip()} without quotes."
    return (f"an integer from {formats.PORT_MIN} to 65535, written in decimal: YAML 1.1 reads 8:06 as 486 (base 60) "
            "and 0x1F90 as hexadecimal, so a port under 1024 is refused (docs/design.md: Pillar schema).")


def _env_problem(key, value):
    if not formats.is_env_name(key):
        return "a variable name: letters, digits and '_', not starting with a digit."
    return None if formats.is_env_value(value) else "a scalar (string, number or true/false), at most 4096 characters."


def _seconds(high, what="seconds"):
    return Rule(lambda v: formats.is_between(v, 0, high) and v > 0, f"a positive number of {what}, at most {high}.")


def _bounded(low, high, what):
    return Rule(lambda v: formats.is_between(v, low, high), f"{what} from {low} to {high}.")


IMAGE = Rule(formats.is_image, formats.image_fix)
TAG = Rule(formats.is_tag, formats.tag_fix)
PORT = Rule(formats.is_port, _port_fix)
ENV = Entries(_env_problem, "a mapping (NAME: value).")
BOOL = Rule(is_bool, "true or false.")
TEXT = Rule(formats.is_plain_text, "a non-empty string of printable characters without '$', at most 256.")
SECRET = Rule(lambda v: isinstance(v, str) and len(v) <= 1024, "a string of at most 1024 characters.")
EVENTS = Rule(lambda v: isinstance(v, list) and len(v) <= 64 and all(
    isinstance(e, str) and re.fullmatch(r"[A-Za-z0-9_.:=-]{1,128}", e) for e in v),
    "a list of event names (letters, digits, '_', '.', ':', '=', '-').")


def _is_memory(value):
    """A Docker memory size of at least 6 MiB (Docker's floor): bytes, or a number with b, k, m or g."""
    found = re.fullmatch(r"([0-9]+)([bkmg]?)", str(value).strip().lower()) if isinstance(value, (str, int)) \
        and not isinstance(value, bool) else None
    # a terabyte at most: more is a unit slip (512g for 512m), and no limit at all to the kernel
    return bool(found) and 6 * 2**20 <= int(found.group(1)) * 1024 ** "bkmg".index(found.group(2) or "b") <= 2**40


# the memory and PID limits of a component's containers (energy_core.hardening; docs/benchmarks.md)
LIMITS = Section({
    "memory": Rule(_is_memory, "a memory size of at least 6m and at most 1024g, e.g. 512m or 1g (quote it in YAML)."),
    "pids": Rule(lambda v: is_int(v, 16) and v <= 4194304, "a whole number of processes and threads, 16 or more."),
}, "key")


def _container_section(component, **extra):
    opts = Entries(lambda key, value: options.problem(component, key, value), "a mapping (argument: value).")
    return Section(dict({"image": IMAGE, "tag": TAG, "env": ENV, "options": opts, "limits": LIMITS},
                        **extra), "key")


def _components_list(value):
    return isinstance(value, list) and all(isinstance(c, str) for c in value) and set(value) <= set(names.COMPONENTS)


def _components_fix(value):
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        unknown = ", ".join(sorted(set(value) - set(names.COMPONENTS)))
        return f"unknown component(s) {unknown}; the components are {', '.join(names.COMPONENTS)}."
    return f"a list of components among {', '.join(names.COMPONENTS)}."


def _word(value):
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_.:=+~-]{1,128}", value) is not None


def _names(value):
    return isinstance(value, list) and all(_word(v) for v in value)


FACTS = Section({
    "cpu_name": Rule(formats.is_plain_text, "the CPU model name as a string (printable, no '$', at most 256)."),
    "cpu_vendor": Rule(formats.is_plain_text, "intel, amd, arm or another vendor name, as a string."),
    "cpu_family": Rule(lambda v: is_int(v, 0, 65535), "the CPU family number (/proc/cpuinfo 'cpu family')."),
    "cpu_model": Rule(lambda v: is_int(v, 0, 65535), "the CPU model number (/proc/cpuinfo 'model')."),
    "cpu_count": Rule(lambda v: is_int(v, 1, 1 << 20), "the number of logical CPUs, 1 or more."),
    "cpu_base_freq_mhz": Rule(lambda v: formats.is_between(v, 1, 100000), "the base frequency in MHz, e.g. 2100."),
    "tdp_w": Rule(lambda v: formats.is_between(v, 1, 100000), "the package TDP in Watts, e.g. 125."),
    # mine data reaches the sensor config and the comparison dashboard's text: names only
    "rapl_domains": Rule(_names, "a list of RAPL domains, e.g. [package, dram]."),
    "pmu_events": Rule(_names, "a list of core event names."),
    "virtual": BOOL,
    "cgroup_version": Rule(lambda v: v in (1, 2) and not isinstance(v, bool), "1 or 2."),
    "address": Rule(formats.is_address, formats.address_fix),
    "powercap_domains": Rule(is_str_list, "a list of powercap RAPL domains, e.g. [package, dram]."),
    "pmu_name": Rule(lambda v: v is None or _word(v), "the kernel's core PMU name, e.g. skylake."),
    "pmu_family": Rule(lambda v: v is None or _word(v), "an event family, e.g. intel_skylake or amd_zen3."),
    "pmu_event_names": Rule(_names, "a list of the event names the core PMU accepts."),
    "perf_event_paranoid": Rule(lambda v: v is None or is_int(v, -1), "the kernel's perf_event_paranoid, -1 to 4."),
    "kernel": Rule(lambda v: v == "" or _word(v), "the kernel release, e.g. 6.1.0."),
    "cgroup_perf_event": Rule(lambda v: v is None or is_bool(v), "true or false."),
    "perf_event_mounted": Rule(lambda v: v is None or is_bool(v), "true or false."),
    "cluster": Rule(formats.is_plain_text, "the cluster name, e.g. econome (printable, no '$')."),
    "sensor_support": Rule(lambda v: v == "ok" or is_str_list(v), "ok, or a list of reasons."),
    # energy_engine.facts: which Docker engine runs the minion's containers, and whether it knows
    # CAP_PERFMON (energy_core.hardening)
    "docker_engine": Rule(lambda v: v is None or (is_text(v) and len(v) <= 200),
                          "the Docker engine's ID (docker info), as a string."),
    "docker_perfmon": Rule(lambda v: v is None or is_bool(v), "true or false."),
    "msr_events": Rule(lambda v: v is None or _names(v), "a list of the kernel's msr PMU events, e.g. [aperf, mperf, tsc]."),
}, "fact", True)
assert tuple(FACTS.keys) == names.FACT_KEYS

SCHEMA = Section({
    "control": Rule(lambda v: v in (None, "") or formats.is_target_text(v),
                    "give the control minion's id (or a compound target) as a string, without surrounding spaces."),
    "roles": Section({role: Rule(formats.is_role, formats.role_fix) for role in names.ROLES}, "role", True),
    "facts": FACTS,
    # ':' and ',' would split Docker's bind specification (host:container:mode)
    "config_dir": Rule(formats.is_abs_path, "an absolute directory path on the minions (not /), without ':', "
                                            "',', spaces, globs (*?[]{}) or '.' and '..' parts."),
    "network": Section({
        "name": Rule(lambda v: hardening.network_problem(v) is None, hardening.network_problem),
    }, "key"),
    "restart_policy": Rule(lambda v: isinstance(v, str) and (v in RESTART_POLICIES or re.fullmatch(r"on-failure:[0-9]+", v)),
                           f"one of {', '.join(RESTART_POLICIES)} (on-failure:N allowed)."),
    "ready_timeout": _seconds(3600),
    "ping_timeout": _seconds(300),
    "strategy": Rule(lambda v: v in names.STRATEGIES,
                     f"one of {', '.join(names.STRATEGIES)} (README: Deployment strategies)."),
    "strategy_change": Rule(lambda v: v in ("refuse", "allow"),
                            "refuse (the orch stops when the plan moves a database) or allow (the old "
                            "containers go, their volumes stay)."),
    "experiment": Section({
        "duration": Rule(lambda v: is_duration(v) and 0 < duration_seconds(v) <= formats.DURATION_MAX,
                         "how long the experiment runs, an InfluxDB duration such as 14d or 12h, at most 520w."),
        "containers": Rule(lambda v: is_int(v, 1, 100000), "the containers per machine you expect, a whole number, "
                                                           "1 or more, at most 100000."),
        "buffer": Rule(lambda v: is_duration(v) and 0 < duration_seconds(v) <= formats.BUFFER_MAX,
                       "the longest formula outage MongoDB must hold reports for, e.g. 1h, at most 30d."),
        "check_space": BOOL,
    }, "key"),
    "sensor": _container_section(
        "sensor",
        frequency_ms=Rule(lambda v: is_int(v, 10, 60000),
                          "an integer number of milliseconds, at least 10 and at most 60000 (1000 = 1 Hz)."),
        events=MapOf(EVENTS,
                     "a mapping of CPU names (or '*') to the core events that replace the detected ones, "
                     "e.g. {'Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz': [CPU_CLK_THREAD_UNHALTED:REF_P, ...]}."),
        mode=Rule(lambda v: v in ("best", "common"),
                  "best (each CPU name gets every event its PMU has) or common (the same event roles for all)."),
        compare=Rule(lambda v: isinstance(v, list) and all(formats.is_plain_text(c) for c in v),
                     "a list of cluster names to compare in mode common ([] = every CPU name)."),
        extra_events=MapOf(EVENTS,
                           "a mapping of CPU names (or '*') to lists of events added to the detected ones."),
    ),
    "mongo": _container_section(
        "mongo", port=PORT, auth=BOOL, admin_password=SECRET, sensor_password=SECRET, formula_password=SECRET,
        # per CPU name, in place of sensor_password / formula_password for its users
        sensor_passwords=MapOf(SECRET, "a mapping CPU name: password (see pillar.example)."),
        formula_passwords=MapOf(SECRET, "a mapping CPU name: password (see pillar.example)."),
    ),
    "formula": _container_section(
        "formula",
        cpu_error_threshold=Rule(lambda v: is_positive(v) and v <= 1000, "a positive number of Watts, at most 1000."),
        default_base_freq_mhz=_bounded(100, 10000, "a number of MHz"),
        verbose=BOOL,
        extra_args=Rule(lambda v: formats.is_extra_args(v) and not options.formula_args_problem(v),
                        lambda v: options.formula_args_problem(v) or "a list of arguments (at most 64, each a number "
                        "or a printable string of at most 256), e.g. ['--learn-min-samples-required', '10']."),
        max_sensors=Rule(lambda v: v is None or is_int(v, 1, 100000),
                         "the sensors one SmartWatts reads, a whole number, 1 or more, at most 100000; ~ = what one keeps up with."),
    ),
    "influxdb": _container_section(
        "influxdb",
        version=Rule(lambda v: v in (1, 2) and not isinstance(v, bool), "1 (InfluxDB 1.x) or 2 (InfluxDB 2.x)."),
        port=PORT,
        # InfluxDB refuses a retention policy shorter than one hour
        retention=Rule(lambda v: v is None or (is_duration(v) and (duration_seconds(v) == 0 or (
            3600 <= duration_seconds(v) <= formats.DURATION_MAX))),
                       "an InfluxDB duration of 1h or more, at most 520w, such as 30d, 12w or INF; ~ = the "
                       "experiment's duration plus a quarter."),
        org=Rule(lambda v: v == "" or formats.is_plain_text(v, 64),
                 "the organisation name: printable, without '$', at most 64 characters."),
        token=SECRET, password=SECRET,
    ),
    "grafana": _container_section("grafana", enabled=BOOL, port=PORT, admin_password=SECRET),
    "heal": Section({
        "components": Rule(_components_list, _components_fix),
        "grace_seconds": _seconds(formats.SECONDS_MAX),
        "max_backlog": Rule(lambda v: formats.is_between(v, 0, 10 ** 8) and v > 0,
                            "a positive number of reports, at most 100000000."),
        "max_age_seconds": _seconds(formats.SECONDS_MAX),
        "timeout": _seconds(3600),
        "schedule": Section({
            "enabled": BOOL,
            "seconds": Rule(lambda v: formats.is_between(v, formats.SCHEDULE_MIN, formats.SCHEDULE_MAX),
                            f"a positive number of seconds between runs, from {formats.SCHEDULE_MIN} (each run "
                            f"checks every container of the minion) to {formats.SCHEDULE_MAX}."),
            "splay": Rule(lambda v: formats.is_between(v, 0, 3600), "a number of seconds, 0 or more, at most 3600."),
            "full_seconds": Rule(lambda v: is_int(v, 0, 0) or formats.is_between(v, formats.FULL_SCHEDULE_MIN,
                                                                        formats.FULL_SCHEDULE_MAX),
                                 f"a number of seconds between full state runs, from {formats.FULL_SCHEDULE_MIN} to "
                                 f"{formats.FULL_SCHEDULE_MAX}, or 0 for none."),
        }, "key"),
        "events": Section({"enabled": BOOL, "restart_minion": BOOL, "restart_master": BOOL,
                           "interval": Rule(lambda v: is_number(v) and 1 <= v <= 3600,
                                            "a number of seconds from 1 to 3600 (at most one energy_heal.react "
                                            "per container in that time).")}, "key"),
    }, "key"),
    "clean": Section({"purge_data": BOOL}, "key"),
}, "key")

KNOWN_KEYS = tuple(SCHEMA.keys)


# --------------------------------------------------------------------------- validation


def _error(path, value, fix):
    # nothing under a secret-looking key is echoed, known or not (admin_pasword, tokn, credentials:
    # {...}), nor what a mapping shown for an unknown key holds under one
    if secret_path(path) and value not in (None, "") and not isinstance(value, bool):
        value = MASK
    return f"energy:{redact_path(path)}: bad value {describe(redact(value))}. Fix: {fix}"


def _walk(schema, value, path, errors):
    given = None if value is MISSING else value
    if isinstance(schema, Rule):
        if not schema.check(given):
            errors.append(_error(path, given, schema.fix(given) if callable(schema.fix) else schema.fix))
        return
    if isinstance(schema, Entries):
        if not isinstance({} if given is None else given, dict):
            errors.append(_error(path, given, schema.fix))
            return
        for key in sorted(given or {}, key=str):
            fix = schema.problem(key, given[key])
            if fix:
                errors.append(_error(f"{path}:{key}", given[key], fix))
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
            problems.append((key, rule.fix if isinstance(rule.fix, str) else rule.fix(value)))
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


def check_rendered(pillar_errors):
    """Raise PlanError when Salt could not render part of the pillar: it merges what did render and
    lists why the rest did not under the pillar's ``_errors``. A plan from the rest would deploy
    what the operator did not write. Salt's messages may quote lines of the file: values under
    secret-looking keys are masked."""
    if pillar_errors:
        found = [redact_text(e) for e in (pillar_errors if isinstance(pillar_errors, list) else [pillar_errors])]
        raise PlanError(f"invalid energy pillar:\n  - pillar:_errors: bad value {found!r}. Fix: correct the pillar "
                        "file Salt names (salt-call pillar.items shows the same errors), then run again.")


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
