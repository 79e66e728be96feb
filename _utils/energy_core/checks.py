"""Checks of single values, shared by the pillar schema and its rules: types, ranges, InfluxDB
durations, image release tags, and how a bad value is shown in an error."""

import math
import re

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


def release(tag):
    """(major, minor) of an image tag that names a release (``2.1.2``, ``v2.4``), else None."""
    match = re.fullmatch(r"v?([0-9]+)\.([0-9]+)(\.[0-9]+)?([-.+].*)?", str(tag))
    return (int(match.group(1)), int(match.group(2))) if match else None
