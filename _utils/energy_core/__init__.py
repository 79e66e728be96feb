"""
The pure core of the energy formula: no Salt loader dunders, importable by plain ``import``.

The Salt-facing modules (``_modules/energy.py``, ``_states/energy.py``, ``_runners/energy.py``,
``_grains/energy.py``) are thin layers over these modules. Salt ships this package to minions and
to the master as a utils module (``saltutil.sync_all`` / ``saltutil.sync_utils``, both run by
``energy.orch``); Salt's loader puts the synced utils directories on ``sys.path`` while it loads
the other module types, which is what lets them ``import energy_core``.

Modules, one concern each:

``stack``        the component table: one row per component, every order and phase derived from it
``names``        what things are called: roles, components, container/volume names, labels, slugs
``checks``       checks of single values (types, ranges, durations, release tags)
``rules``        the rules that tie several pillar keys together
``schema``       the pillar schema (a declarative table), merging defaults with pillar, validation
``masking``      which pillar values are secrets, and how returns hide them
``placement``    role resolution and the round-robin placement of databases and formulas
``dashboards``   the comparison dashboard, built from the plan
``sizing``       database volume sizes and the sensors one formula keeps up with, from the experiment
``components``   one builder per component: the container of a sensor, MongoDB, SmartWatts, ...
``plan``         the whole deployment plan from the configuration and the mine's facts
``plan_checks``  what a built plan must pass: names and ports Docker accepts, each minion's secrets
``inventory``    what is deployed on a minion, read back from Docker (what energy.clean removes)
``events``       the hardware events the sensor reads, per CPU family, and what each one means (roles)
``sensor``       which events each CPU name's sensors read: "best" or "common" mode, events users add
``health``       the health probes, a sensor's freshness, full volumes, the records of the last checks
``sensor_faults`` why a running hwpc-sensor counts nothing useful (silent failures), and the fix
``verdict``      what is wrong with a container and what to do: the one verdict heal acts on
``influx``       InfluxDB 1.x queries, and a database kept with its retention
``influx_archive`` what backup, restore and export do with an InfluxDB 1.x: influxd argv, InfluxQL, room
``mongo_wire``   MongoDB commands over the wire protocol (SCRAM-SHA-256 included), without a driver
``mongo_users``  the stack's MongoDB users and roles, one per purpose
``healing``      event-driven healing: engine and reactor configs, daemon restarts, atomic writes
``container_lock`` one job at a time recreates a container on a minion (a lock file per container)
``maintenance``  maintenance windows (containers the formula must leave alone)
``topology``     the deployment summary: the plan's topology against what runs, as text, SVG or DOT
``archive``      backup manifests (checked before anything is written) and the export's CSV rows
``extmods``      the extension modules the formula ships to minions, and their digest (what needs a sync)
``orch_lock``    one energy.orch or energy.clean_orch at a time on a master (the lock and its staleness)
``hardening``    what each container may do (network, capabilities, limits, read-only root) and how
                 its clients reach it (container name on one Docker engine, published address otherwise)
``trust``        what the master takes from a minion's return, checked against its own plan; files
                 written only as new ones inside the directory given
``reactions``    the reactor's reactions bounded: the plan's containers only, one per interval
``report``       an experiment's energy from SmartWatts' output: sums, coverage, gaps, model error
``report_names`` the containers behind SmartWatts' targets (cgroup paths), named on their minion
``report_view``  the report on the master: answers checked, put together, as a table, JSON or CSV
``report_plot``  the report's picture (matplotlib)
``experiment``   marks of an experiment's phases, its window, the plan's facts per CPU name, compare
``parts``        what the master hands each minion: its own part of the plan (pillar energy_plan)
``jobs``         one computation per Salt job: the job a process runs, a value kept for it only
"""

MODULES = ("stack", "names", "checks", "masking", "rules", "schema", "placement", "events", "sensor", "dashboards",
           "sizing", "components", "plan_checks", "plan", "inventory", "influx", "influx_archive", "mongo_wire", "mongo_users", "sensor_faults", "health", "verdict", "healing", "maintenance",
           "container_lock",
           "topology", "archive", "extmods", "orch_lock", "hardening",
           "trust", "reactions", "report", "report_names", "report_view", "report_plot", "experiment", "parts", "jobs")


def load():
    """Import the core as it is on disk now. Returns its modules as attributes (kept for callers
    that still write ``core.plan``); a Salt layer calls it, then binds plain names that tools can
    follow::

        import energy_core

        energy_core.load()
        from energy_core import names, plan

    A salt-minion lives for months and forks each job from one process: a module imported by
    name stays in ``sys.modules`` across ``saltutil.sync_utils``, so without this a minion would
    run the old core after the orch synced a new one. ``load`` compares the package's files on
    ``sys.path`` (their directory and a digest of each) with those the loaded core was read from;
    when they differ it drops every module of the core from ``sys.modules`` first, so the
    ``from energy_core import ...`` that follows reads the files on disk now
    (tests/unit/test_core_load.py shows a changed file is seen). When they are the same, nothing
    is imported again.

    A master loads modules from several threads at once (the reactor's pool, the runners it
    calls): dropping modules while another thread imports them made that import fail
    (``KeyError: 'energy_core.schema'`` in importlib). So a change is read under one lock per
    process, kept outside the package (in ``sys.modules["_energy_core_load"]``) since the package
    itself is what gets replaced. A fork waits for that lock (``os.register_at_fork``): a job
    forked while another thread of its minion re-imported the core would otherwise inherit that
    import's locks held, by a thread it does not have, and wait on them for ever.
    """
    import importlib  # pylint: disable=import-outside-toplevel
    import importlib.machinery  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    import types  # pylint: disable=import-outside-toplevel

    holder = sys.modules.setdefault("_energy_core_load", types.ModuleType("_energy_core_load"))
    with _load_lock(holder):
        spec = importlib.machinery.PathFinder.find_spec(__name__)
        stamp = _files_stamp(spec.origin) if spec is not None and spec.origin else None
        loaded = sys.modules.get(__name__)
        if loaded is None or (stamp is not None and getattr(loaded, "LOADED_FROM", None) != stamp):
            if loaded is not None and stamp is not None:  # changed since this process read it
                _drop_bytecode(stamp[0])
            for name in [n for n in sys.modules if n == __name__ or n.startswith(__name__ + ".")]:
                del sys.modules[name]
            importlib.invalidate_caches()  # a module added by the sync is found
            loaded = importlib.import_module(__name__)
        return types.SimpleNamespace(**{name: importlib.import_module(f"{__name__}.{name}") for name in loaded.MODULES})


def _load_lock(holder):
    """The process's lock of ``load``, kept in ``holder``; the first caller makes a fork wait for it
    and gives the child a lock of its own."""
    import os  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel

    holder.__dict__.setdefault("lock", threading.RLock())
    first = object()
    if holder.__dict__.setdefault("at_fork", first) is first and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=lambda: holder.lock.acquire(), after_in_parent=lambda: holder.lock.release(),
                            after_in_child=lambda: setattr(holder, "lock", threading.RLock()))
    return holder.lock


def _files_stamp(init_path):
    """What identifies the core found at ``init_path`` (its ``__init__.py``): its directory, and the
    name and SHA-256 of each of its Python files (a digest, not a time: a sync may rewrite a file
    within the same clock tick). A file that cannot be read (removed while a sync runs) counts as
    such, so the next call looks again; None when the directory cannot be listed."""
    import hashlib  # pylint: disable=import-outside-toplevel
    import os  # pylint: disable=import-outside-toplevel

    directory = os.path.dirname(os.path.abspath(init_path))
    try:
        listed = sorted(os.listdir(directory))
    except OSError:
        return None
    files = []
    for name in listed:
        if name.endswith(".py") and not name.startswith("."):  # an editor's .#plan.py is no module
            try:
                with open(os.path.join(directory, name), "rb") as handle:
                    files.append((name, hashlib.sha256(handle.read()).hexdigest()))
            except OSError:
                files.append((name, None))
    return directory, tuple(files)


def _drop_bytecode(directory):
    """Remove the core's cached bytecode: Python trusts a ``.pyc`` whose source has the same size and
    modification second, which a sync rewriting a file within that second keeps."""
    import os  # pylint: disable=import-outside-toplevel

    cache = os.path.join(directory, "__pycache__")
    try:
        names = os.listdir(cache)
    except OSError:
        return
    for name in names:
        if name.endswith(".pyc"):
            try:
                os.remove(os.path.join(cache, name))
            except OSError:
                pass


LOADED_FROM = _files_stamp(__file__)  # what this import read, before any of its modules


def has_docker_sdk():
    """Whether the Docker SDK for Python can be imported (without importing it)."""
    import importlib.util  # pylint: disable=import-outside-toplevel

    return importlib.util.find_spec("docker") is not None


def virtual(virtualname, what, salt=None, needs=(), docker_sdk=None):
    """What ``__virtual__`` of a Salt layer returns once the core has loaded: ``virtualname``, or
    ``(False, why)`` when it lacks the Docker SDK (``docker_sdk``: None to look for it) or a Salt function of
    ``needs`` (saltext-dockermod's, or the formula's own execution modules). ``what`` names the
    layer in the message ("the energy module"). The case where the core itself is missing stays
    in each layer: it is what runs when this package cannot be imported."""
    if not (has_docker_sdk() if docker_sdk is None else docker_sdk):
        return False, f"{what} needs the Docker SDK for Python (pip install docker)"
    for function in needs:
        if function not in (salt or {}):
            kind = function.split(".", 1)[0]
            fix = ("pip install saltext.dockermod: Salt 3008 has no docker modules of its own" if kind == "docker"
                   else f"the formula's {kind} execution module: saltutil.sync_modules")
            return False, f"{what} needs {function} ({fix})"
    return virtualname
