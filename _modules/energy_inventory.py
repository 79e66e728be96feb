"""
The ``energy_inventory`` execution module: what the energy formula runs on this minion, read back
from Docker (the inverse of the plan).

``energy_inventory.live``      every container labelled with this minion's id, with its state,
                               health record, maintenance window, published address and volume size
                               (what ``salt-run energy.summary`` asks each minion)
``energy_inventory.deployed``  what the formula deployed here, in removal order (``energy.clean``)

.. code-block:: bash

    salt '*' energy_inventory.live
"""

import time

__virtualname__ = "energy_inventory"

try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import health as health_core, inventory, maintenance, names as names_core, sizing as sizing_core, topology as topology_core
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy_inventory module needs the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return energy_core.virtual(__virtualname__, "the energy_inventory module", __salt__,
                               needs=("docker.ps", "energy.config"))


def live(topology=False):
    """
    What really runs here: every container labelled ``energy.minion=<this id>``, with its
    component, CPU name, state, last health check (``energy_heal.healthy``), maintenance window,
    published address and port, data volume and the volume's size. With ``topology=True``, also
    the plan's topology as this minion computes it (``salt-run energy.summary`` asks one minion
    for it), or the reason it cannot.

    CLI Example:

    .. code-block:: bash

        salt '*' energy_inventory.live
    """
    minion = __opts__["id"]
    now = time.time()
    found = __salt__["docker.ps"](all=True, filters={"label": [f"{names_core.LABEL_MINION}={minion}"]})
    health = health_core.read_records(health_core.records_path(__opts__["cachedir"]))
    windows = maintenance.read(maintenance.path_in(__opts__["cachedir"]), now)
    containers = []
    for entry in inventory.containers(found):
        try:
            info = __salt__["docker.inspect_container"](entry["name"])
        except Exception:  # pylint: disable=broad-except
            continue  # removed meanwhile
        held = maintenance.held_reason(windows, entry["name"], entry["component"], minion)
        containers.append(inventory.live(entry, info, health.get(entry["name"]), held, sizing_core.used_bytes))
    result = {"minion": minion, "containers": containers, "time": now}
    if topology:
        try:
            result["topology"] = topology_core.planned(__salt__["energy.plan"](secrets=True))
        except Exception as exc:  # pylint: disable=broad-except
            result["topology_error"] = str(exc)[:2000]
    return result


def deployed(conf=None):
    """
    What the energy formula has deployed on this minion, in removal order: the containers labelled
    ``energy.minion=<this id>``, the data volumes and the files it wrote (sensor config, Grafana
    provisioning).

    CLI Example:

    .. code-block:: bash

        salt-call energy_inventory.deployed
    """
    import glob  # pylint: disable=import-outside-toplevel

    conf = conf if conf is not None else __salt__["energy.config"]()
    minion = __opts__["id"]
    found = __salt__["docker.ps"](all=True, filters={"label": [f"{names_core.LABEL_MINION}={minion}"]})
    volumes = [v.get("Name", "") for v in (__salt__["docker.volumes"]() or {}).get("Volumes") or []]
    files = glob.glob(names_core.sensor_config_file(conf["config_dir"], minion))
    files += glob.glob(names_core.grafana_dir(conf["config_dir"], minion))
    return {"containers": inventory.containers(found), "volumes": inventory.volumes(minion, volumes),
            "config_files": sorted(files)}
