"""The stack's components, one row each; every order and set of components is derived from here.

============  =========  =========  ======  =====  =====  =======  ====  ==========================
component     role       phase      deploy  clean  stage  watched  data  health probe
============  =========  =========  ======  =====  =====  =======  ====  ==========================
mongo         mongos     databases  1       5      2      no       yes   mongo (ping, room)
influxdb      influxdbs  databases  2       3      4      no       yes   http /ping (room)
sensor        sensors    services   3       4      1      yes      no    fresh (its reports arrive)
formula       formulas   services   4       2      3      yes      no    backlog (reports read)
grafana       grafana    services   5       1      5      no       yes   http /api/health (room)
============  =========  =========  ======  =====  =====  =======  ====  ==========================

``phase``    the orch's deploy phase (one state run per minion each; phases in deploy order)
``deploy``   the order in one state run (energy/init.sls) and of a minion's containers in the plan
``clean``    the removal order (energy.clean)
``stage``    where it sits in the data flow (sensor -> MongoDB -> SmartWatts -> InfluxDB -> Grafana)
``watched``  a container a state run (re)started is watched by ``energy_heal.stays_up``: it may exit
             at once on a config it refuses
``data``     it keeps its data on a named volume
``probe``    the kind of check ``energy_core.health`` makes besides "running" (components.py builds it)
"""

from collections import namedtuple

Component = namedtuple("Component", "name role phase deploy clean stage watched data probe")

TABLE = (
    Component("mongo", "mongos", "databases", 1, 5, 2, False, True, "mongo"),
    Component("influxdb", "influxdbs", "databases", 2, 3, 4, False, True, "http"),
    Component("sensor", "sensors", "services", 3, 4, 1, True, False, "fresh"),
    Component("formula", "formulas", "services", 4, 2, 3, True, False, "backlog"),
    Component("grafana", "grafana", "services", 5, 1, 5, False, True, "http"),
)


def _by(column, rows=TABLE):
    return tuple(row.name for row in sorted(rows, key=lambda row: getattr(row, column)))


# the data flow's order: what the names, error messages and the summary's picture list
COMPONENTS = _by("stage")
ROLES = tuple(row.role for row in sorted(TABLE, key=lambda row: row.stage))
ROLE_OF = {row.name: row.role for row in TABLE}
DEPLOY_ORDER = _by("deploy")
CLEAN_ORDER = _by("clean")
DATA_COMPONENTS = _by("deploy", [row for row in TABLE if row.data])
WATCHED = _by("deploy", [row for row in TABLE if row.watched])
# the orch's deploy phases in deploy order, each with its components in deploy order
ORCH_PHASES = tuple((phase, _by("deploy", [row for row in TABLE if row.phase == phase]))
                    for phase in dict.fromkeys(row.phase for row in sorted(TABLE, key=lambda row: row.deploy)))


def rows():
    """The table as plain data, in deploy order (``salt-call energy.components``, energy/init.sls)."""
    return [row._asdict() for row in sorted(TABLE, key=lambda row: row.deploy)]
