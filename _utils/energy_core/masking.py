"""Secrets: which pillar values are, and how returns hide them (``***``)."""

from urllib.parse import quote

# the pillar keys that hold secrets: never in a return, an event, a log line or a label
SECRET_KEYS = ("grafana:admin_password", "influxdb:token", "influxdb:password", "mongo:admin_password",
               "mongo:sensor_password", "mongo:formula_password")
MASK = "***"


MIN_MASKED = 4  # shorter values (a token InfluxDB 1.x does not use) would mangle every return


def secrets(conf):
    """The secret values of a configuration (strings at SECRET_KEYS, at least MIN_MASKED long)."""
    found = set()
    for path in SECRET_KEYS:
        value = conf
        for key in path.split(":"):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and len(str(value)) >= MIN_MASKED:
            found.add(str(value))
            found.add(quote(str(value), safe=""))  # as MongoDB URIs carry it
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
