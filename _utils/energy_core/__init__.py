"""
The pure core of the energy formula: no Salt loader dunders, importable by plain ``import``.

The Salt-facing modules (``_modules/energy.py``, ``_states/energy.py``, ``_runners/energy.py``,
``_grains/energy.py``) are thin layers over these modules. Salt ships this package to minions and
to the master as a utils module (``saltutil.sync_all`` / ``saltutil.sync_utils``, both run by
``energy.orch``); Salt's loader puts the synced utils directories on ``sys.path`` while it loads
the other module types, which is what lets them ``import energy_core``.

Modules, one concern each:

``names``        what things are called: roles, components, container/volume names, labels, slugs
``schema``       the pillar schema (a declarative table), merging defaults with pillar, validation
``placement``    role resolution and the round-robin placement of databases and formulas
``components``   one builder per component: the container of a sensor, MongoDB, SmartWatts, ...
``plan``         the whole deployment plan from the configuration and the mine's facts
``inventory``    what is deployed on a minion, read back from Docker (what energy.clean removes)
``events``       the hardware events the sensor reads, per CPU family
``health``       what "healthy" means for each component (diagnosis)
``mongo_wire``   a MongoDB command over the wire protocol, without a driver
``healing``      event-driven healing: engine and reactor configs, daemon restarts, atomic writes
``maintenance``  maintenance windows (containers the formula must leave alone)
"""

MODULES = ("names", "schema", "placement", "events", "components", "plan", "inventory", "mongo_wire", "health",
           "healing", "maintenance")


def load():
    """Import the core afresh from disk; returns its modules as attributes (``core.plan``, ...).

    A salt-minion lives for months and forks each job from one process: a module imported by
    name stays in ``sys.modules`` across ``saltutil.sync_utils``, so without this a minion would
    run the old core after the orch synced a new one. Salt-facing modules call it each time Salt
    loads them (every job), which costs a few milliseconds.
    """
    import importlib  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    import types  # pylint: disable=import-outside-toplevel

    for name in [n for n in sys.modules if n == __name__ or n.startswith(__name__ + ".")]:
        del sys.modules[name]
    package = importlib.import_module(__name__)
    return types.SimpleNamespace(**{name: importlib.import_module(f"{__name__}.{name}") for name in package.MODULES})
