"""Secrets: which pillar values are, and how returns hide them (``***``)."""

import difflib
import re
from urllib.parse import quote

# the pillar keys that hold secrets: never in a return, an event, a log line or a label
SECRET_KEYS = ("grafana:admin_password", "influxdb:token", "influxdb:password", "mongo:admin_password",
               "mongo:sensor_password", "mongo:formula_password")
MASK = "***"


MIN_MASKED = 4  # shorter values (a token InfluxDB 1.x does not use) would mangle every return
# mappings of secrets (CPU name -> password): each value is one
SECRET_MAPS = ("mongo:sensor_passwords", "mongo:formula_passwords")
# what the formula derives from the pillar's secrets (the MongoDB users' passwords, an HMAC of one)
# is no pillar value: it is masked where it sits, in a URI's credentials or under a password key
_URI_CREDENTIALS = re.compile(r"(mongodb(?:\+srv)?://[^:/@\s]+:)[^@\s]+@")
PASSWORD_FIELDS = ("password", "pwd")


def secrets(conf):
    """The secret values of a configuration (strings at SECRET_KEYS, at least MIN_MASKED long)."""
    found = set()
    values = []
    for path in SECRET_KEYS + SECRET_MAPS:
        value = conf
        for key in path.split(":"):
            value = value.get(key) if isinstance(value, dict) else None
        values.extend(value.values() if path in SECRET_MAPS and isinstance(value, dict) else [value])
    for value in values:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and len(str(value)) >= MIN_MASKED:
            found.add(str(value))
            found.add(quote(str(value), safe=""))  # as MongoDB URIs carry it
    return found


def mask(value, hidden):
    """``value`` with every occurrence of a string of ``hidden`` replaced by ``***`` (a copy)."""
    if isinstance(value, dict):
        return {mask(k, hidden): MASK if k in PASSWORD_FIELDS and isinstance(v, str) and v else mask(v, hidden)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask(v, hidden) for v in value)
    if isinstance(value, str):
        for secret in sorted(hidden or (), key=len, reverse=True):
            value = value.replace(secret, MASK)
        value = _URI_CREDENTIALS.sub(r"\1" + MASK + "@", value)
    return value


# --------------------------------------------------------------------------- secret-looking keys
# A key whose name looks like a secret's holds one as far as errors go, whether the schema knows it
# or not (a typo, a key one level off): its value is never echoed. Long words match inside a name
# (adminpassword, api_token), short ones as a word of it (db_pwd, apiKey, mongo:auth), and a word
# close to a long one counts too (pasword, tokn, secert).
SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "credential", "apikey", "privatekey",
                "authorization")
SECRET_WORDS = ("pwd", "pw", "pass", "key", "keys", "auth", "cred", "creds", "psk")
_FUZZY = ("password", "passwd", "token", "secret", "credential", "credentials")


def _words(name):
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return [w for w in re.split(r"[^a-zA-Z0-9]+", name.lower()) if w]


def secret_key(name):
    """Whether a key named ``name`` looks like it holds a secret."""
    flat = re.sub(r"[^a-z0-9]", "", str(name).lower())
    if any(part in flat for part in SECRET_PARTS):
        return True
    words = _words(name)
    return any(w in SECRET_WORDS or difflib.get_close_matches(w, _FUZZY, n=1, cutoff=0.75) for w in words)


def secret_path(path):
    """Whether any key of ``path`` (``grafana:credentials:admin_password``) looks like a secret's."""
    return any(secret_key(key) for key in str(path).split(":"))


def redact(value):
    """``value`` with whatever sits under a secret-looking key, at any depth, replaced by ``***``:
    what an error may show of a mapping given for an unknown key."""
    if isinstance(value, dict):
        return {k: (MASK if secret_key(k) and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str) and secret_text(value):
        return MASK
    return value


def secret_text(text):
    """Whether a string may carry a secret: a secret-looking word in it (``admin_password:x``,
    ``--token=x``, ``MONGO_INITDB_ROOT_PASSWORD=x``) or credentials in a URI (``scheme://u:p@h``)."""
    return secret_key(text) or re.search(r"://[^/\s]*@", text) is not None


def redact_path(path):
    """``path`` (``grafana:admin_password:x``) with every key after a secret-looking one masked: a
    YAML slip (``{admin_password:x}``) makes the secret a key of the path."""
    keys = str(path).split(":")
    for i, key in enumerate(keys):
        if secret_key(key) and ":".join(keys[:i + 1]) not in SECRET_MAPS:  # their keys are CPU names
            return ":".join(keys[:i + 1] + [MASK] * (len(keys) > i + 1))
    return str(path)


_SECRET_ASSIGNMENT = re.compile(r"""(?P<key>[\w.-]+)(?P<sep>["']?\s*[:=]\s*)(?P<value>[^\s,}\]]+)""")


def redact_text(text):
    """``text`` (an error Salt wrote, which may quote lines of a pillar file) with the value of
    every ``key: value`` or ``key=value`` whose key looks like a secret's replaced by ``***``."""
    def hide(match):
        if not secret_key(match.group("key")):
            return match.group(0)
        return match.group("key") + match.group("sep") + MASK
    return _SECRET_ASSIGNMENT.sub(hide, str(text))
