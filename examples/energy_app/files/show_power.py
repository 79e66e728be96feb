"""Print this container's own power, read from the InfluxDB the energy formula told it about."""

import json
import os
import re
import socket
import time
import urllib.parse
import urllib.request

url, database = os.environ["MONITORING_ENERGY"], os.environ["MONITORING_ENERGY_DB"]
name, sensor = os.environ["MONITORING_CONTAINER"], os.environ["MONITORING_SENSOR"]


def own_id():
    """This container's id: Docker mounts /etc/hostname from /var/lib/docker/containers/<id>/ (also
    with the host's network, where the host name is the host's)."""
    for path in ("/proc/self/mountinfo", "/proc/self/cgroup"):
        try:
            with open(path, encoding="utf-8") as fh:
                found = re.search(r"(?:containers/|docker[-/])([0-9a-f]{64})", fh.read())
        except OSError:
            continue
        if found:
            return found.group(1)
    return socket.gethostname()


# hwpc-sensor names a target after its container (1.3.0 on cgroup v1) or by its cgroup path,
# /docker/<id> or /system.slice/docker-<id>.scope
short_id = re.sub(r"[^0-9a-f]", "", own_id())[:12] or "-"
query = ("SELECT last(power) FROM power_consumption WHERE scope = 'cpu' "
         rf"AND (target = '{name}' OR target =~ /docker[-\/]{short_id}/) AND sensor = '{sensor}'")
print(f"{name}: reading my power from {url} database {database}", flush=True)
while True:
    try:
        params = urllib.parse.urlencode({"db": database, "q": query})
        with urllib.request.urlopen(f"{url}/query?{params}", timeout=5) as resp:
            series = json.load(resp)["results"][0].get("series", [])
        if series:
            print(f"{name}: {series[0]['values'][0][1]:.2f} W", flush=True)
        else:
            print(f"{name}: no power point yet", flush=True)
    except OSError as exc:
        print(f"{name}: InfluxDB unreachable: {exc}", flush=True)
    time.sleep(5)
