"""
The ``energy`` execution module: the deployment plan of the energy-monitoring stack
(hwpc-sensor -> MongoDB -> SmartWatts -> InfluxDB -> Grafana) from pillar and the mine, and the
minion-side commands of self-healing.

Each function gathers what only Salt has (pillar, mine, grains, Docker through
saltext-dockermod) and hands it to the pure core (``_utils/energy_core``), which decides.

.. code-block:: bash

    salt-call energy.plan
"""

import logging
import os
import sys

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "energy"

try:  # imported from a checkout (or extmods) without Salt's loader: the core is beside this folder
    import energy_core  # noqa: F401  pylint: disable=unused-import
except ImportError:
    sys.path += [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), d) for d in ("_utils", "utils")]
try:
    import energy_core

    energy_core.load()  # afresh from disk, before the names below are bound (energy_core.load)
    from energy_core import health as health_core, inventory, names as names_core, parts
    from energy_core import jobs, plan as plan_core, plan_checks
    from energy_core import schema, sensor, sizing as sizing_core, stack, trust
    CORE_ERROR = None
except ImportError as exc:  # the utils are not synced yet (saltutil.sync_utils)
    CORE_ERROR = str(exc)


def __virtual__():
    if CORE_ERROR is not None:
        return (False, f"the energy module needs the formula's energy_core utils ({CORE_ERROR}): "
                       "run saltutil.sync_utils (energy.orch does)")
    return energy_core.virtual(__virtualname__, "the energy module",
                               __salt__, needs=("docker.ps",))


def _job_id():
    """The id of the job this call runs in (None outside a job), from the minion's proc file of it.
    ``salt.utils.minion.running`` is no help: with multiprocessing (the default) it leaves out the
    job of the process that asks. Under threads every job has this pid: the thread's name tells."""
    import threading  # pylint: disable=import-outside-toplevel

    import salt.payload  # pylint: disable=import-outside-toplevel

    proc = os.path.join(__opts__["cachedir"], "proc")
    try:
        names = os.listdir(proc)
    except OSError:
        return None
    entries = []
    for name in names:
        try:
            with open(os.path.join(proc, name), "rb") as handle:
                entries.append(salt.payload.loads(handle.read()))
        except Exception:  # pylint: disable=broad-except  (a proc file removed or half written meanwhile)
            continue
    # with multiprocessing: False, every job of this minion has this pid
    thread = None if __opts__.get("multiprocessing", True) else threading.current_thread().name
    return jobs.job_of(entries, os.getpid(), thread)


def _per_job(name, inputs, compute):
    """``compute()`` once per job: every SLS of a state run renders the plan."""
    return jobs.once_per_job(__context__, f"energy.{name}", _job_id(), inputs, compute)


def _fail(exc):
    raise CommandExecutionError(str(exc)) from None


def facts(fresh=False):
    """
    This minion's energy facts as the mine publishes them: the ``energy`` grain and its Docker
    engine (``energy_engine.facts``), overridden by pillar ``energy:facts``, plus the ``address``
    other minions reach it on.

    fresh
        Read ``energy:facts`` from the pillar as the master compiles it now, not as this minion
        loaded it (the orch's ``mine.send`` does, so that no pillar refresh of every minion has to
        come first): one pillar compilation, as a refresh costs.

    CLI Example:

    .. code-block:: bash

        salt-call energy.facts
    """
    engine = __salt__["energy_engine.facts"]() if "energy_engine.facts" in __salt__ else {}  # CAP_PERFMON known?
    # unmask: since Salt 3008 pillar.items masks values when a module calls it (energy:facts holds
    # no secret, and nothing but it is kept)
    pillar = (__salt__["pillar.items"](unmask=True) if fresh else __pillar__).get("energy")
    return names_core.published_facts(__grains__.get("energy"), engine,
                                      pillar.get("facts") if isinstance(pillar, dict) else None,
                                      (__grains__.get("fqdn_ip4") or []) + (__grains__.get("ipv4") or []))


def _defaults():
    import yaml  # pylint: disable=import-outside-toplevel

    text = __salt__["cp.get_file_str"]("salt://energy/defaults.yaml")
    if not text:
        raise CommandExecutionError("salt://energy/defaults.yaml not found: is the energy formula on the file roots?")
    return yaml.safe_load(text)["energy"]


def _masked(value, conf, secrets):
    """``value`` as it may leave the minion: secrets replaced by ``***`` unless ``secrets`` (the
    formula's own SLS files, which render in the job and return nothing of it), with those of
    this minion's part (``hidden``)."""
    return value if secrets else schema.mask(value, schema.secrets(conf) | set((_part() or {}).get("hidden") or []))


def _part():
    """This minion's part of the plan (``energy_core.parts.own``), or None: it builds its own."""
    return parts.own(__pillar__, __opts__["id"])


def config(defaults=None, secrets=False):
    """
    The merged configuration: the one the master validated for the orch (``defaults.yaml`` and the
    master's pillar, in this minion's part of the plan, pillar ``energy_plan``), or without a part
    ``defaults.yaml`` overridden by this minion's pillar ``energy``, validated.
    Secrets (``energy:grafana:admin_password``, ``energy:influxdb:token``/``password``,
    ``energy:mongo:*_password``) are shown as ``***`` unless ``secrets=True``.

    CLI Example:

    .. code-block:: bash

        salt-call energy.config
    """
    # __pillar__, not pillar.get: since Salt 3008 pillar.get masks values when a module calls it
    pillar = __pillar__.get("energy", {})
    part = _part()

    def compute():
        try:
            schema.check_rendered(__pillar__.get("_errors"))  # a pillar file Salt could not render
            if part:  # merged and validated on the master (energy_plan.prepare), secrets masked
                return part["config"]
            merged = schema.merge(defaults if defaults is not None else _defaults(), pillar)  # merge copies
            schema.check(merged)
        except schema.PlanError as exc:
            _fail(exc)
        return merged

    merged = _per_job("config", [defaults, pillar, __pillar__.get("_errors"), part and part["stamp"]], compute)
    return _masked(merged, merged, secrets)


def _role_facts(conf):
    """{role: {minion: facts}} from the mine (``energy_core.trust.role_facts``: the queries the
    master's ``energy.plan`` makes too). Each call is a round trip to the master."""
    return trust.role_facts(
        conf, lambda target: __salt__["mine.get"](target, names_core.MINE_FUNCTION, tgt_type="compound"))


def _plan(conf):
    """The whole plan computed on this minion from the mine (salt-call energy.plan, sizing, summary,
    hostname_to_influx, a local part), placed as the master placed it (the placement of its part)."""

    handed = parts.from_pillar(__pillar__, __opts__["id"])  # what the master handed this minion, or None
    kept = handed.get("placement") if handed else None  # place as the master did

    def compute():
        try:
            if not _part():  # a part's configuration was checked on the master (its secrets masked)
                schema.check(conf)
            return plan_core.build(conf, _role_facts(conf), kept)
        except schema.PlanError as exc:
            return _fail(exc)

    return _per_job("plan", conf, compute)


def plan(conf=None, secrets=False):
    """
    The deployment plan computed from the mine: which minion runs which containers (see
    ``energy_core.plan`` for its shape). Every node computes the same plan from the same mine data;
    it is computed once per job. Raises with a message naming the pillar key when the
    configuration or the placement is invalid. Secrets are shown as ``***`` unless ``secrets=True``.

    CLI Example:

    .. code-block:: bash

        salt-call energy.plan
    """
    conf = conf if conf is not None else config(secrets=True)
    return _masked(_plan(conf), conf, secrets)


def components():
    """
    The component table of the stack (``energy_core.stack``), one row per component in deploy
    order: ``name``, ``role``, orch ``phase``, ``deploy``/``clean``/``stage`` ranks, ``watched``
    (``energy_heal.stays_up`` watches a container a run started), ``data`` (a named volume) and
    the health ``probe``. energy/init.sls and macros.jinja read it.

    CLI Example:

    .. code-block:: bash

        salt-call energy.components
    """
    return stack.rows()


PlanError = schema.PlanError if CORE_ERROR is None else ValueError  # what sensor_events raises (a ValueError)


def sensor_events(cpu_facts, mode="best", extra=None):
    """
    The events of each CPU name's sensors (pure: see ``energy_core.sensor.sensor_events``).

    ``cpu_facts`` is ``{cpu_name: energy grain}``; ``mode`` ``best`` or ``common``; ``extra``
    ``{cpu_name or "*": [event, ...]}``. Returns ``{cpu_name: {"core", "rapl", "msr", "dram"}}``;
    raises PlanError (a ValueError) for an extra event a CPU lacks, or no core role in common.

    CLI Example:

    .. code-block:: bash

        salt-call energy.sensor_events '{"Xeon": {"cpu_vendor": "intel", "cpu_family": 6, "cpu_model": 85}}' common
    """
    return sensor.sensor_events(cpu_facts, mode, extra)


def node(conf=None, secrets=False):
    """
    This minion's part of the plan: ``{"containers": [...]}``, as the master handed it (pillar
    ``energy_plan``); without one, computed here from the mine. Raises when this minion builds its
    own part and its pillar lacks a secret its containers need (the orch checks this on every
    minion before it touches a container). Secrets are shown as ``***`` unless ``secrets=True``
    (what the formula's SLS files ask for).

    CLI Example:

    .. code-block:: bash

        salt-call energy.node
    """
    part = _part()
    if part:
        return _masked({"containers": part["containers"]}, {}, secrets)
    conf = conf if conf is not None else config(secrets=True)
    full_plan = _plan(conf)
    try:
        plan_checks.check_secrets(conf, full_plan, __opts__["id"])
    except schema.PlanError as exc:
        _fail(exc)
    return _masked(plan_core.node(full_plan, __opts__["id"]), conf, secrets)


def orphans(conf=None):
    """
    The stack's containers on this minion that its part of the plan no longer has (a strategy,
    role or CPU name change moved them): ``[{"name", "component", "cpu", "data"}]``; ``data`` is
    true for a MongoDB or InfluxDB, whose volume holds measurements.

    CLI Example:

    .. code-block:: bash

        salt-call energy.orphans
    """
    minion = __opts__["id"]
    part = node(conf, secrets=True)

    def compute():
        found = __salt__["docker.ps"](all=True, filters={"label": [f"{names_core.LABEL_MINION}={minion}"]})
        return inventory.orphans(found, part, minion)

    # once per job: a state run asks for each component's orphans_absent
    return _per_job("orphans", part, compute)


def _space_problem(conf, node_part):
    """Why this minion lacks the room its new database volumes need (energy:experiment), or None."""
    if not conf["experiment"].get("check_space", True):
        return None
    part = _part()
    sizes = part["volume_sizes"] if part else sizing_core.estimate(conf, _plan(conf)).get(__opts__["id"], {})
    existing = {v.get("Name") for v in (__salt__["docker.volumes"]() or {}).get("Volumes") or []}

    def docker_root():
        root = (__salt__["docker.info"]() or {}).get("DockerRootDir") or "/var/lib/docker"
        return root, health_core.free_bytes(root)

    return sizing_core.space_problem(__opts__["id"], sizes, existing, docker_root)


def check(conf=None):
    """
    The orch's plan check, on every minion before any container is touched: this minion's part of
    the plan (as ``energy.node``, secrets masked), refused when its pillar lacks a secret its
    containers need, when the plan would leave a database container of an earlier plan behind
    (``energy:strategy_change``), or when its new database volumes would not fit
    (``energy:experiment:check_space``). ``leaving`` lists the containers this run removes.

    CLI Example:

    .. code-block:: bash

        salt-call energy.check
    """
    conf = conf if conf is not None else config(secrets=True)
    part = node(conf)
    found = orphans(conf)
    problem = inventory.plan_problem(conf, __opts__["id"], found, (_part() or {}).get("leave"),
                                     _space_problem(conf, part))
    if problem:
        _fail(schema.PlanError(problem))
    return dict(part, leaving=[o["name"] for o in found])


def sizing(conf=None):
    """
    The expected size of each database volume, per host, for ``energy:experiment`` (duration,
    containers per machine, buffer), the sensor frequency and the plan, with the constants it
    uses; and the sensors per SmartWatts.

    CLI Example:

    .. code-block:: bash

        salt-call energy.sizing
    """
    conf = conf if conf is not None else config(secrets=True)
    full_plan = _plan(conf)
    return sizing_core.report(conf, full_plan, plan_core.max_sensors(conf))


def summary(conf=None):
    """
    Which minion runs which containers, per CPU name (a short view of ``energy.plan``).

    CLI Example:

    .. code-block:: bash

        salt-call energy.summary
    """
    conf = conf if conf is not None else config(secrets=True)
    return _masked(plan_core.summary(_plan(conf)), conf, False)


def hostname_to_influx(conf=None):
    """
    For each monitored minion: the InfluxDB holding its containers' power, from the mine.

    Returns ``{minion: {"url", "database", "cpu", "measurement", "sensor"}}``; a container's
    power is ``SELECT power FROM power_consumption WHERE sensor = '<minion>' AND
    target = '<container name>' AND scope = 'cpu'``. Jinja helper: ``energy/influx.jinja``.

    CLI Example:

    .. code-block:: bash

        salt-call energy.hostname_to_influx
    """
    return plan_core.influx_by_minion(plan(conf))


def empty_dir(path):
    """
    True when ``path`` is an empty directory. A container whose bind-mounted file is missing when
    Docker starts it (a config file removed under a stopped sensor, then a restart) gets a
    directory made at that path, and ``file.serialize`` then reports success without writing
    the file. The SLS files remove such a directory before they write the file.

    CLI Example:

    .. code-block:: bash

        salt-call energy.empty_dir /etc/energy/energy-node-a-sensor.json
    """
    try:
        return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
    except OSError:
        return False
