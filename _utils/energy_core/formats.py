"""The formats of pillar and mine values: ports, addresses, minion ids, image references, paths,
environment names, bounded numbers and durations. Each ``is_*`` takes any value and says whether
it has that format; the pillar schema pairs each with the fix an error shows.

Ports and YAML 1.1. Salt loads pillar files with its own YAML loader
(``salt.utils.yamlloader.SaltYamlSafeLoader``), which keeps two YAML 1.1 readings of integers:
``8:06`` is base 60 (486) and ``0x1F90`` hexadecimal (8080). A leading zero is not octal there:
Salt strips it, so ``0755`` is 755 (plain PyYAML would give 493). Once loaded, 486 is an int like
any other and cannot be told from a 486 written in decimal, so the rule is on the value: a port the
stack publishes is 1024 or more. Every base-60 reading ``H:MM`` with H below 17 lands under 1024,
so the common slip (a time-like ``8:06``) is refused; no service of the stack needs a privileged
port on its host (a reverse proxy in front of Grafana does, if wanted). A string port (``'8:06'``,
``'8086'``) is refused as not an integer. The fix says both: write it in decimal, unquoted.
"""

import ipaddress
import re

from .checks import is_int, is_number

PORT_MIN = 1024
# what a timeout, a grace or an age in seconds may be at most: a day; beyond that the number is a
# slip (a unit mistaken, an extra zero), and the stack's waits would block a state run for it
SECONDS_MAX = 86400
# the light heal check runs at most this often: each run lists the minion's containers and asks
# the databases of its sensors and formulas (a few ms of CPU and a few queries); under 10 s the
# checks overlap the recreations they trigger (a container has up to energy:heal:timeout to answer)
SCHEDULE_MIN = 10
SCHEDULE_MAX = 86400
FULL_SCHEDULE_MIN = 300  # a full state run compiles the pillar and renders every SLS of the minion
FULL_SCHEDULE_MAX = 30 * 86400
DURATION_MAX = 10 * 365 * 86400  # an experiment, a retention: ten years (or INF where allowed)
BUFFER_MAX = 30 * 86400  # MongoDB holds unread reports this long at most: a month of reports per sensor
TEXT_MAX = 256
PATH_MAX = 1024
ENV_VALUE_MAX = 4096
EXTRA_ARGS_MAX = 64


def is_port(value):
    return is_int(value, PORT_MIN, 65535)


def is_between(value, low, high, integer=False):
    """A number (an int when ``integer``) from ``low`` to ``high``; booleans are not numbers."""
    if integer:
        return is_int(value, low, high)
    return is_number(value) and low <= value <= high


def is_plain_text(value, longest=TEXT_MAX):
    """A non-empty string of printable characters without '$' (Grafana expands ``$NAME`` and
    ``${NAME}`` in its provisioning files, where CPU names, addresses and org names end up)."""
    return (isinstance(value, str) and bool(value.strip()) and len(value) <= longest and "$" not in value
            and value.isprintable())


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def is_hostname(value):
    """A DNS host name (RFC 1123 labels), not an all-numeric dotted string (a bad IPv4)."""
    return (isinstance(value, str) and len(value) <= 253 and _HOSTNAME.fullmatch(value) is not None
            and not re.fullmatch(r"[0-9.]+", value))


def is_address(value):
    """What another machine reaches a minion on: an IPv4 address that names one host, or a host
    name; no port, no scheme, no whitespace. IPv6 addresses are refused: the stack writes
    ``address:port`` into URLs and Docker port bindings without brackets."""
    if not isinstance(value, str):
        return False
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        return is_hostname(value)
    return not (address.is_unspecified or address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"))


def address_fix(value):
    if isinstance(value, str) and re.fullmatch(r"[^:]+:[0-9]+", value.strip()):
        return "an IPv4 address or a host name without a port (the stack adds each service's port)."
    if isinstance(value, str) and ":" in value and not value.strip().startswith(("http", "tcp")):
        return "an IPv4 address or a host name (IPv6 addresses are not supported: the stack writes address:port)."
    return ("an IPv4 address or a host name: the address other minions reach this one on, without port, scheme "
            "or whitespace.")


# Salt refuses ids with '/', '\\' or NUL (salt.utils.verify.valid_id); a role list is spliced into
# an L@ compound target, which whitespace and commas would split, and a glob would widen
_ID_BAD = re.compile(r"[\s,/\\\x00*?\[\]]")


def is_minion_id(value):
    """A minion id a role list can hold: Salt's id rules, and nothing that changes an ``L@`` target."""
    return (isinstance(value, str) and 0 < len(value) <= 253 and value not in (".", "..")
            and not _ID_BAD.search(value) and value.isprintable())


def is_target_text(value):
    """A compound target string: no leading or trailing whitespace, no control characters."""
    return isinstance(value, str) and bool(value) and value == value.strip() and value.isprintable()


def is_role(value):
    """A role's hosts: ~, a compound target string, or a non-empty list of distinct minion ids."""
    if isinstance(value, list):
        return bool(value) and all(is_minion_id(m) for m in value) and len(set(value)) == len(value)
    return value is None or is_target_text(value)


def role_fix(value):
    if isinstance(value, list) and value and all(isinstance(m, str) for m in value):
        bad = [m for m in value if not is_minion_id(m)]
        if bad:
            return (f"a non-empty list of minion ids, each without spaces, commas, '/', '\\' or globs "
                    f"({', '.join(repr(m) for m in bad)} is not one); for a pattern give a compound target string instead (e.g. 'web*' or 'G@role:db').")
        return "each minion id once."
    return ("a compound target string (e.g. 'G@energy:cpu_vendor:intel') without surrounding spaces, or a "
            "non-empty list of minion ids.")


# Docker's reference grammar (distribution/reference): [domain[:port]/]path-component(/path-component)*
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
_REPOSITORY = re.compile(rf"(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


def is_image(value):
    """An image repository as Docker's reference grammar has it, without tag or digest (the tag is
    a key of its own), at most 255 characters."""
    return isinstance(value, str) and len(value) <= 255 and _REPOSITORY.fullmatch(value) is not None


def image_fix(value):
    if isinstance(value, str) and ("@" in value or re.search(r":[^/]*$", value)):
        return "the repository alone (e.g. powerapi/hwpc-sensor): give the tag in the tag key of this section."
    return ("a non-empty string: an image repository in Docker's reference format: lowercase path components of letters and digits "
            "separated by '.', '_', '__' or '-', with '/' between them and an optional registry host[:port]/ "
            "first (e.g. registry.example:5000/powerapi/smartwatts-formula).")


def is_tag(value):
    return isinstance(value, str) and _TAG.fullmatch(value) is not None


def tag_fix(value):
    if is_number(value):
        return "a tag string: YAML read this one as a number. Quote it (e.g. tag: '2.1')."
    return "a Docker tag: letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'."


def is_abs_path(value):
    """An absolute path, not '/', without glob characters, '.' or '..' components, whitespace,
    control characters or ':' and ',' (they would split Docker's bind specification)."""
    if not (isinstance(value, str) and value.startswith("/") and len(value) <= PATH_MAX and value.isprintable()):
        return False
    parts = [p for p in value.split("/") if p]
    return bool(parts) and not re.search(r"[*?\[\]{}:,\s]", value) and not {".", ".."} & set(parts)


def is_env_name(value):
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", value) is not None


def is_env_value(value):
    """A scalar; a string without NUL, at most 4,096 characters."""
    if isinstance(value, str):
        return "\x00" not in value and len(value) <= ENV_VALUE_MAX
    return isinstance(value, bool) or is_number(value)


def is_extra_args(value):
    """A list of at most 64 arguments, each a number or a printable string of at most 256."""
    return isinstance(value, list) and len(value) <= EXTRA_ARGS_MAX and all(
        is_number(a) or (isinstance(a, str) and bool(a) and len(a) <= TEXT_MAX and a.isprintable()) for a in value)
