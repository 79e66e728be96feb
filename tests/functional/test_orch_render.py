"""energy/orch.sls and energy/clean_orch.sls rendered by Salt's own jinja|yaml renderers.

The orchestrate files render on the master before any of their steps runs: at render time
orch_targets.jinja syncs the utils and runners to the master, reads the pillar and asks the
formula's runner (``energy.orch_targets``) what each phase targets. Here the render is the real
one (``salt.template.compile_template`` with the renderers of ``salt.loader.render``, templates
served by a local fileclient from a file root made by ``formula_file_root``, so that the
``tpldir``-relative ``import_yaml`` and ``from ... import`` resolve as on a master), and so is the
runner: ``salt['saltutil.runner']`` records the sync calls and, for ``energy.orch_targets``, calls
the real ``_runners/energy.py``. Only the master's view of the fleet is faked: ``manage.status``
and ``cache.grains`` match their compound target against a small fleet with Salt's own compound
matcher, and a per-test set of minions does not answer.

What is checked against the pure core: the databases phase targets the union of
``energy_core.placement.role_targets(merged conf)`` for mongos and influxdbs and applies their SLS
files, the services phase does the same for sensors, formulas and grafana, and the steps that
concern every minion target the union of every role's target.
"""

import copy
import importlib.util
import logging
import shutil

import pytest
import salt.config
import salt.exceptions
import salt.loader
import salt.template
import salt.utils.args
import yaml
from energy_core import names, placement, schema

from tests.conftest import ROOT, formula_file_root

# the fleet the master knows: minion id -> grains (what its cache holds)
FLEET = {
    "ctl": {"energy_role": "control", "virtual": "physical"},
    "n1": {"energy_role": "node", "virtual": "physical"},
    "n2": {"energy_role": "node", "virtual": "physical"},
    "n3": {"energy_role": "node", "virtual": "container"},
    "db1": {"energy_role": "db", "virtual": "physical"},
    "db2": {"energy_role": "db", "virtual": "physical"},
    "graf": {"energy_role": "dashboard", "virtual": "physical"},
}

DATABASES, SERVICES = "energy-databases-deploy-orch", "energy-services-deploy-orch"
# the components of each phase, in the order each minion applies them
PHASES = {DATABASES: ("mongo", "influxdb"), SERVICES: ("sensor", "formula", "grafana")}
SYNC_STEP, REFRESH_STEP = "energy-orch-modules-sync-state", "energy-orch-pillar-refresh-function"
SYNC_STEPS = (SYNC_STEP, REFRESH_STEP)
HEAL = "energy.heal"  # applied by the last phase, on every minion
UNION_STEPS_ORCH = SYNC_STEPS + ("energy-orch-mine-update-function", "energy-orch-plan-refresh-function",
                                  "energy-orch-plan-check-function")
PREPARE_STEP = "energy-orch-plan-prepare-runner"
UNION_STEPS_CLEAN = SYNC_STEPS + ("energy-orch-clean-apply-orch",)
FAIL_STEP = "energy-orch-minions-answer-fail"
REACTOR_STEP = "energy-reactor-reaction-present-runner"
LOCK_TAKE, LOCK_RELEASE = "energy-orch-lock-present-runner", "energy-orch-lock-absent-runner"

PILLARS = {
    "roles-unset-with-control": {"control": "ctl", "grafana": {"admin_password": "pw"}},
    "roles-as-lists": {"roles": {"sensors": ["n1", "n2"], "mongos": ["db1"], "formulas": ["db1", "db2"],
                                 "influxdbs": ["db2"], "grafana": ["graf"]},
                       "grafana": {"admin_password": "pw"}},
    "compound-targets": {"control": "ctl",
                         "roles": {"sensors": "n* and not G@virtual:container",
                                   "mongos": "G@energy_role:db",
                                   "influxdbs": "L@db1,db2 or ctl",
                                   "grafana": "graf"},
                         "grafana": {"admin_password": "pw"}},
    "grafana-disabled": {"control": "ctl", "grafana": {"enabled": False}},
    "sensors-explicit": {"control": "ctl", "roles": {"sensors": "n1"}, "grafana": {"admin_password": "pw"}},
    # every sensor machine runs its own MongoDB, SmartWatts and InfluxDB: those phases target the sensors
    "dedicated": {"control": "ctl", "strategy": "dedicated", "roles": {"sensors": ["n1", "n2"]},
                  "grafana": {"admin_password": "pw"}},
}


# --------------------------------------------------------------------------- the fleet's matcher


@pytest.fixture(scope="module")
def matchers():
    opts = salt.config.minion_config(None)
    opts["grains"] = {}
    return salt.loader.matchers(opts)


def matching(matchers, tgt, fleet=FLEET):
    """The fleet's minions that the compound target ``tgt`` matches (Salt's compound matcher)."""
    match = matchers["compound_match.match"]
    return sorted(mid for mid, grains in fleet.items()
                  if match(tgt, opts={"id": mid, "grains": grains, "nodegroups": {}}, minion_id=mid))


# --------------------------------------------------------------------------- the render


class Master:
    """The master as the orchestrate file sees it at render time."""

    def __init__(self, opts, matchers, pillar, down=(), fleet=None, runner_opts=None):
        self.opts = opts
        self.fleet = FLEET if fleet is None else fleet
        self.matchers = matchers
        self.pillar = pillar
        self.down = set(down)
        self.calls = []  # saltutil.runner names, in call order
        self.calls_before_targets = None  # what had been called when energy.orch_targets was
        self.status_calls = []
        self.grains_calls = []
        spec = importlib.util.spec_from_file_location("energy_runner_under_test", ROOT / "_runners" / "energy.py")
        self.runner = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.runner)
        assert self.runner.__virtual__() == "energy"
        # the master's configuration as the real energy_plan.config reads it: defaults.yaml and this pillar
        spec = importlib.util.spec_from_file_location("energy_plan_runner_under_test", ROOT / "_runners" / "energy_plan.py")
        self.plan_runner = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.plan_runner)
        self.plan_runner.__context__ = {}
        self.plan_runner._master_defaults = lambda: yaml.safe_load((ROOT / "energy" / "defaults.yaml").read_text())["energy"]
        self.plan_runner._master_pillar = lambda: copy.deepcopy(self.pillar) if self.pillar is not None else {}
        self.runner.__salt__ = {"manage.status": self.manage_status, "cache.grains": self.cache_grains,
                                "energy_plan.config": self.plan_runner.config}
        if runner_opts is not None:  # a master's file server: the runner compares the minions' copies with it
            self.runner.__opts__ = runner_opts

    # runners the energy runner calls
    def manage_status(self, output=True, tgt="*", tgt_type="glob", timeout=None, gather_job_timeout=None):
        assert tgt_type == "compound"
        self.status_calls.append({"tgt": tgt, "timeout": timeout, "gather_job_timeout": gather_job_timeout})
        matched = matching(self.matchers, tgt)
        return {"up": [m for m in matched if m not in self.down], "down": [m for m in matched if m in self.down]}

    def cache_grains(self, tgt=None, tgt_type="glob", **kwargs):
        assert tgt_type == "compound"
        self.grains_calls.append(tgt)
        return {mid: self.fleet[mid] for mid in matching(self.matchers, tgt, self.fleet)}

    # execution modules the template calls
    def saltutil_runner(self, name, arg=None, kwarg=None, full_return=False, saltenv="base", **kwargs):
        # as salt.modules.saltutil.runner: keyword arguments join kwarg
        kwarg = dict(kwarg or {})
        kwarg.update(salt.utils.args.clean_kwargs(**kwargs))
        self.calls.append(name)
        if name == "energy.orch_targets":
            self.calls_before_targets = list(self.calls[:-1])
            self.targets_kwargs = copy.deepcopy(kwarg)
            return self.runner.orch_targets(*(arg or []), **kwarg)
        if name in ("saltutil.sync_utils", "saltutil.sync_runners"):
            return []
        raise AssertionError(f"unexpected runner {name}")

    def pillar_get(self, key, default="", **kwargs):
        if key == "energy" and self.pillar is not None:
            return copy.deepcopy(self.pillar)
        return default

    def render(self, sls):
        functions = {"saltutil.runner": self.saltutil_runner, "pillar.get": self.pillar_get}
        pillar = {} if self.pillar is None else {"energy": copy.deepcopy(self.pillar)}
        renderers = salt.loader.render(self.opts, functions, pillar=pillar)
        path = self.opts["file_roots"]["base"][0] + "/" + sls.replace(".", "/") + ".sls"
        high = salt.template.compile_template(path, renderers, self.opts["renderer"],
                                              self.opts["renderer_blacklist"], self.opts["renderer_whitelist"],
                                              saltenv="base", sls=sls)
        assert high, f"{sls} rendered to nothing"
        return high


@pytest.fixture(scope="module")
def master_opts(tmp_path_factory):
    root = tmp_path_factory.mktemp("orch-render")
    opts = salt.config.minion_config(None)
    opts.update({
        "id": "orch-master",
        "file_client": "local",
        "file_roots": {"base": [str(formula_file_root(root / "srv"))]},
        "cachedir": str(root / "cache"),
        "pki_dir": str(root / "pki"),
        "sock_dir": str(root / "sock"),
        "grains": {},
    })
    return opts


@pytest.fixture(scope="module")
def empty_server_opts(tmp_path_factory):
    """A master's options whose file server serves none of the formula's modules: every minion is
    synced (the runner reads no cache for that)."""
    root = tmp_path_factory.mktemp("empty-file-server")
    (root / "srv").mkdir()
    opts = salt.config.master_config(None)
    opts.update({"file_roots": {"base": [str(root / "srv")]}, "fileserver_backend": ["roots"],
                 "cachedir": str(root / "cache")})
    return opts


@pytest.fixture
def render(master_opts, matchers, empty_server_opts):
    def render(sls, pillar, down=(), fleet=None, runner_opts=None):
        master = Master(copy.deepcopy(master_opts), matchers, pillar, down, fleet, runner_opts or empty_server_opts)
        return master, master.render(sls)
    return render


def step(high, sid):
    """(function, {argument: value}) of the state ``sid``."""
    assert sid in high, f"{sid} not rendered; ids: {list(high)}"
    (fun, args), = [(k, v) for k, v in high[sid].items() if not k.startswith("__")]
    merged = {}
    for arg in args:
        merged.update(arg)
    return fun, merged


def deploy_phases(high):
    return [sid for sid in high if sid.endswith("-deploy-orch")]


def expected_phases(expected, gone=()):
    """{phase id: (its SLS files, the roles whose targets it joins)} for the role targets
    ``expected``, the roles in ``gone`` (every minion down) left out; a phase with none is skipped.
    The last phase applies energy.heal too, on every minion: its roles are None."""
    phases = {}
    for sid, components in PHASES.items():
        present = [c for c in components if names.ROLE_OF[c] in expected and names.ROLE_OF[c] not in gone]
        if present:
            phases[sid] = ([f"energy.{c}" for c in present], [names.ROLE_OF[c] for c in present])
    last = list(phases)[-1]
    phases[last] = (phases[last][0] + [HEAL], None)
    return phases


def expected_targets(defaults, pillar):
    return placement.role_targets(schema.merge(defaults, pillar))


def requires(high, sid):
    return [next(iter(r.items())) for r in step(high, sid)[1].get("require", [])]


def assert_requisites_resolve(high):
    for sid in high:
        for kind, target in requires(high, sid):
            assert target in high, f"{sid} requires {kind}: {target}, which is not rendered"
            assert step(high, target)[0].split(".")[0] == kind, f"{sid} requires {kind}: {target}"


# --------------------------------------------------------------------------- every minion answers


@pytest.mark.parametrize("case", sorted(PILLARS))
def test_each_phase_targets_its_role_and_the_other_steps_the_union(render, defaults, matchers, case):
    pillar = PILLARS[case]
    master, high = render("energy.orch", pillar)
    expected = expected_targets(defaults, pillar)

    phases = expected_phases(expected)
    assert deploy_phases(high) == list(phases)
    union = step(high, SYNC_STEP)[1]["tgt"]
    for sid, (sls, roles) in phases.items():
        fun, args = step(high, sid)
        assert fun == "salt.state"
        assert args["sls"] == sls
        assert args["tgt_type"] == "compound"
        assert args["failhard"] is True and args["queue"] is True
        if roles is None:  # the last phase: its components and the health checks, on every minion
            assert args["tgt"] == union
            continue
        assert args["tgt"] == " or ".join(f"( {t} )" for t in dict.fromkeys(expected[role] for role in roles))
        # the phase reaches exactly the minions of its roles
        assert matching(matchers, args["tgt"]) == sorted(set().union(*(matching(matchers, expected[r])
                                                                       for r in roles)))

    fun, args = step(high, SYNC_STEP)  # one state run syncs what the formula ships, and refreshes
    assert fun == "salt.state" and args["sls"] == ["energy.sync"] and args["queue"] is True
    fun, args = step(high, REFRESH_STEP)  # then the synced minions load the modules, and say so
    assert fun == "salt.function" and args["name"] == "saltutil.refresh_pillar" and args["kwarg"]["wait"] is True
    assert requires(high, REFRESH_STEP) == [("salt", SYNC_STEP)]
    assert requires(high, "energy-orch-mine-update-function") == [("salt", REFRESH_STEP)]
    for sid in UNION_STEPS_ORCH:
        args = step(high, sid)[1]
        assert args["tgt"] == union and args["tgt_type"] == "compound", sid
    for target in expected.values():
        assert f"( {target} )" in union
    # the union matches exactly the minions of every role
    assert matching(matchers, union) == sorted(set().union(*(matching(matchers, t) for t in expected.values())))
    assert FAIL_STEP not in high
    assert master.grains_calls == []  # nobody down: no cache lookup
    assert master.status_calls == [{"tgt": union, "timeout": 10, "gather_job_timeout": 10}]


@pytest.mark.parametrize("case", sorted(PILLARS))
def test_the_phases_chain_in_deployment_order(render, case):
    _, high = render("energy.orch", PILLARS[case])
    assert_requisites_resolve(high)
    chain = ["energy-orch-plan-check-function"] + deploy_phases(high)
    for previous, current in zip(chain, chain[1:]):
        assert requires(high, current) == [("salt", previous)], current
    ids = list(high)
    assert ids.index(LOCK_TAKE) == 0
    assert [ids.index(sid) for sid in chain] == sorted(ids.index(sid) for sid in chain)


@pytest.mark.parametrize("case", sorted(PILLARS))
def test_clean_orch_targets_the_union(render, defaults, matchers, case):
    pillar = PILLARS[case]
    _, orch = render("energy.orch", pillar)
    _, high = render("energy.clean_orch", pillar)
    assert_requisites_resolve(high)
    union = step(orch, SYNC_STEP)[1]["tgt"]
    for sid in UNION_STEPS_CLEAN:
        assert step(high, sid)[1]["tgt"] == union, sid
    fun, args = step(high, "energy-orch-clean-apply-orch")
    assert fun == "salt.state" and args["sls"] == ["energy.clean"]
    assert step(high, "energy-reactor-reaction-absent-runner")[1]["enabled"] is False
    assert deploy_phases(high) == []
    assert FAIL_STEP not in high
    expected = expected_targets(defaults, pillar)
    assert matching(matchers, union) == sorted(set().union(*(matching(matchers, t) for t in expected.values())))


def depends_on(high, sid):
    """Every step ``sid`` requires, directly or through the steps it requires."""
    found, todo = set(), [sid]
    while todo:
        for _kind, target in requires(high, todo.pop()):
            if target not in found:
                found.add(target)
                todo.append(target)
    return found


@pytest.mark.parametrize("sls", ["energy.orch", "energy.clean_orch"])
@pytest.mark.parametrize("down", [(), ("n2",)], ids=["all-up", "one-down"])
def test_the_lock_comes_first_and_every_step_depends_on_it(render, sls, down):
    """Two orchs at once, or an orch during a clean: the master's lock is the first step, with
    failhard, so that a refused orch stops before any minion is touched; its release is the last
    step that works (after the last phase and the reactor), before the failure naming down minions."""
    _, high = render(sls, PILLARS["roles-unset-with-control"], down=down)
    ids = list(high)
    assert ids[0] == LOCK_TAKE
    fun, args = step(high, LOCK_TAKE)
    assert fun == "salt.runner" and args["name"] == "energy_lock.take" and args["what"] == sls
    assert args["failhard"] is True and not requires(high, LOCK_TAKE)
    for sid in ids[1:]:
        if sid != FAIL_STEP:
            assert LOCK_TAKE in depends_on(high, sid), sid
    fun, args = step(high, LOCK_RELEASE)
    assert fun == "salt.runner" and args["name"] == "energy_lock.release"
    last = deploy_phases(high)[-1] if sls == "energy.orch" else "energy-orch-clean-apply-orch"
    reactor = REACTOR_STEP if sls == "energy.orch" else "energy-reactor-reaction-absent-runner"
    assert {last, reactor} <= depends_on(high, LOCK_RELEASE)
    assert ids.index(LOCK_RELEASE) == len(ids) - (2 if down else 1)


def test_grafana_disabled_has_no_grafana_phase(render, defaults):
    pillar = PILLARS["grafana-disabled"]
    _, high = render("energy.orch", pillar)
    assert "grafana" not in expected_targets(defaults, pillar)
    assert step(high, SERVICES)[1]["sls"] == ["energy.sensor", "energy.formula", HEAL]
    assert requires(high, SERVICES) == [("salt", DATABASES)]
    # the same pillar with grafana enabled applies it
    _, enabled = render("energy.orch", {**pillar, "grafana": {"enabled": True, "admin_password": "pw"}})
    assert step(enabled, SERVICES)[1]["sls"] == ["energy.sensor", "energy.formula", "energy.grafana", HEAL]
    assert step(enabled, SERVICES)[1]["tgt"] == step(enabled, SYNC_STEP)[1]["tgt"]


def test_a_pillar_the_runner_cannot_merge_still_renders_for_the_plan_step(render):
    """``energy`` not a mapping: the runner falls back to defaults.yaml (control unset: sensors
    only), so that the plan step runs and names the error before any container is touched."""
    _, high = render("energy.orch", "not a mapping")
    assert deploy_phases(high) == [SERVICES]
    assert step(high, SERVICES)[1]["tgt"] == "( * )"
    assert step(high, SERVICES)[1]["sls"] == ["energy.sensor", HEAL]
    assert step(high, PREPARE_STEP)[1]["name"] == "energy_plan.prepare"
    assert step(high, "energy-orch-plan-check-function")[1]["name"] == "energy.check"


@pytest.mark.parametrize("pillar", [
    {"control": "ctl", "roles": ["n1"]},
    {"control": 5},
    {"control": "ctl", "roles": {"mongos": 5}},
], ids=["roles-a-list", "control-a-number", "role-a-number"])
def test_an_ill_typed_target_still_renders_for_the_plan_check(render, monkeypatch, pillar):
    # the failed render's traceback would reach Salt's deferred log handler, flushed after pytest closed stderr
    monkeypatch.setattr(logging.getLogger("salt.utils.templates"), "disabled", True)
    assert schema.validate(schema.merge(yaml.safe_load((ROOT / "energy" / "defaults.yaml").read_text())["energy"],
                                        pillar)), "the plan-check would name this pillar's error"
    _, high = render("energy.orch", pillar)
    assert step(high, "energy-orch-plan-check-function")[1]["name"] == "energy.check"


def test_no_energy_pillar_deploys_sensors_everywhere_and_nothing_else(render):
    _, high = render("energy.orch", None)
    assert deploy_phases(high) == [SERVICES]
    assert step(high, SERVICES)[1]["sls"] == ["energy.sensor", HEAL]
    assert step(high, "energy-orch-plan-check-function")[1]["tgt"] == "( * )"


# --------------------------------------------------------------------------- render-time calls


@pytest.mark.parametrize("sls", ["energy.orch", "energy.clean_orch"])
def test_utils_and_runners_are_synced_before_the_runner_is_called_once(render, sls):
    master, _ = render(sls, PILLARS["roles-unset-with-control"])
    assert master.calls_before_targets == ["saltutil.sync_utils", "saltutil.sync_runners"]
    # one call: each one pings every minion of the stack
    assert master.calls == ["saltutil.sync_utils", "saltutil.sync_runners", "energy.orch_targets"]
    assert len(master.status_calls) == 1


def test_ping_timeout_from_pillar_reaches_manage_status(render):
    master, _ = render("energy.orch", {**PILLARS["roles-unset-with-control"], "ping_timeout": 3})
    assert [(c["timeout"], c["gather_job_timeout"]) for c in master.status_calls] == [(3, 3)]


@pytest.mark.parametrize("events, expected", [
    (None, (True, False)),
    ({"enabled": False}, (False, False)),
    ({"restart_master": True}, (True, True)),
    ({"enabled": False, "restart_master": True}, (False, True)),
])
def test_events_enabled_and_restart_master_reach_the_reactor_step(render, events, expected):
    pillar = copy.deepcopy(PILLARS["roles-unset-with-control"])
    if events is not None:
        pillar["heal"] = {"events": events}
    _, high = render("energy.orch", pillar)
    fun, args = step(high, REACTOR_STEP)
    assert fun == "salt.runner" and args["name"] == "energy.reactor"
    assert (args["enabled"], args["restart"]) == expected
    assert requires(high, REACTOR_STEP) == [("salt", "energy-orch-runners-sync-runner")]


# --------------------------------------------------------------------------- minions that do not answer


@pytest.mark.parametrize("case, down", [
    ("roles-unset-with-control", ["n2"]),
    ("roles-as-lists", ["n1"]),
    ("compound-targets", ["n2", "db1"]),
    ("sensors-explicit", ["n1"]),  # sensors: n1 only, so no sensor phase
    ("grafana-disabled", ["db1"]),  # db1 is only a sensor here (sensors: '*')
])
def test_a_down_minion_is_left_out_of_every_target_and_named_at_the_end(render, defaults, matchers, case, down):
    pillar = PILLARS[case]
    master, high = render("energy.orch", pillar, down=down)
    expected = expected_targets(defaults, pillar)
    every = sorted(set().union(*(matching(matchers, t) for t in expected.values())))
    assert set(down) <= set(every), "each case's down minions belong to the stack"
    really_down = sorted(down)
    skip = " and not L@" + ",".join(really_down)
    # one ping of the whole stack; the steps for every minion target it without the down ones
    assert len(master.status_calls) == 1
    assert step(high, "energy-orch-plan-check-function")[1]["tgt"] == f"( {master.status_calls[0]['tgt']} ){skip}"
    skipped = [role for role in expected if not set(matching(matchers, expected[role])) - set(really_down)]
    phases = expected_phases(expected, skipped)
    assert deploy_phases(high) == list(phases)
    for sid, (sls, roles) in phases.items():
        args = step(high, sid)[1]
        assert args["sls"] == sls
        if roles is None:  # the last phase: every minion that answered
            assert args["tgt"] == step(high, "energy-orch-plan-check-function")[1]["tgt"]
            continue
        assert args["tgt"] == " or ".join(f"( ( {t} ){skip} )" for t in dict.fromkeys(expected[role] for role in roles))
        assert matching(matchers, args["tgt"]) == sorted(
            set().union(*(matching(matchers, expected[r]) for r in roles)) - set(really_down))
    for sid in UNION_STEPS_ORCH:
        tgt = step(high, sid)[1]["tgt"]
        assert tgt.endswith(skip), sid
        assert matching(matchers, tgt) == sorted(set(every) - set(really_down))
    fun, args = step(high, FAIL_STEP)
    assert fun == "test.fail_without_changes"
    assert args["name"].startswith(f"minion(s) {', '.join(really_down)} did not answer")
    assert ("all their minions are down" in args["name"]) == bool(skipped)
    for role in skipped:
        assert role in args["name"].split("(nothing deployed for ")[1].split(":")[0]
    assert list(high)[-1] == FAIL_STEP


def test_a_minion_outside_every_role_does_not_count_as_down(render):
    """n3 does not answer, but the stack (sensors n1, the rest on ctl) does not include it."""
    master, high = render("energy.orch", PILLARS["sensors-explicit"], down=["n3"])
    assert FAIL_STEP not in high
    assert master.status_calls[0]["tgt"] == "( n1 ) or ( ctl )"


def test_a_role_whose_minions_are_all_down_has_no_phase(render, defaults):
    pillar = PILLARS["roles-as-lists"]  # mongos: [db1]
    master, high = render("energy.orch", pillar, down=["db1"])
    # the InfluxDB on db2 is still deployed; the MongoDB SLS is left out
    assert step(high, DATABASES)[1]["sls"] == ["energy.influxdb"]
    assert step(high, DATABASES)[1]["tgt"] == "( ( L@db2 ) and not L@db1 )"
    assert_requisites_resolve(high)
    name = step(high, FAIL_STEP)[1]["name"]
    assert "minion(s) db1 did not answer" in name and "(nothing deployed for mongos: all their minions are down)" in name
    # the runner looked each remaining target up in the master's cache
    assert "( L@db1 ) and not L@db1" in master.grains_calls
    # with the InfluxDB's minion down too, there is no databases phase and the chain skips it
    _, high = render("energy.orch", pillar, down=["db1", "db2"])
    assert DATABASES not in high
    assert requires(high, SERVICES) == [("salt", "energy-orch-plan-check-function")]
    assert_requisites_resolve(high)


def test_every_minion_of_the_control_down_leaves_only_the_sensors(render):
    _, high = render("energy.orch", PILLARS["roles-unset-with-control"], down=["ctl"])
    assert deploy_phases(high) == [SERVICES]
    assert step(high, SERVICES)[1]["tgt"] == "( ( * ) or ( ctl ) ) and not L@ctl"  # every minion that answered
    assert step(high, SERVICES)[1]["sls"] == ["energy.sensor", HEAL]
    name = step(high, FAIL_STEP)[1]["name"]
    for role in ("mongos", "formulas", "influxdbs", "grafana"):
        assert role in name
    assert "sensors" not in name


def test_clean_orch_leaves_down_minions_out_and_names_them(render, matchers):
    _, high = render("energy.clean_orch", PILLARS["compound-targets"], down=["db2", "n1"])
    tgt = step(high, "energy-orch-clean-apply-orch")[1]["tgt"]
    assert tgt.endswith(" and not L@db2,n1")
    assert "db2" not in matching(matchers, tgt) and "n1" not in matching(matchers, tgt)
    for sid in UNION_STEPS_CLEAN:
        assert step(high, sid)[1]["tgt"] == tgt
    name = step(high, FAIL_STEP)[1]["name"]
    assert name.startswith("minion(s) db2, n1 did not answer: the stack is still on them")
    assert list(high)[-1] == FAIL_STEP
    # the reactor's reaction goes whoever answers
    assert step(high, "energy-reactor-reaction-absent-runner")[1]["enabled"] is False


def test_the_runner_is_the_real_one(render):
    """Guard: the runner the template called is _runners/energy.py itself, not a stand-in."""
    master, _ = render("energy.orch", PILLARS["roles-unset-with-control"])
    assert master.runner.__file__ == str(ROOT / "_runners" / "energy.py")
    assert master.runner.orch_targets.__module__ == "energy_runner_under_test"
    assert master.status_calls, "the runner did not ask manage.status"


def test_the_runner_gets_no_pillar_and_reads_the_masters_itself(render):
    # a runner's arguments land in the job cache and on the event bus (salt/run/<jid>/new): none
    pillar = dict(PILLARS["roles-unset-with-control"], grafana={"admin_password": "a-grafana-secret-1", "enabled": True},
                  influxdb={"token": "an-influx-token-2", "password": "an-influx-password-3", "version": 2})
    master, high = render("energy.orch", pillar)
    assert master.targets_kwargs == {}
    assert "energy.grafana" in step(high, SERVICES)[1]["sls"]  # the runner read grafana:enabled itself
    assert "a-grafana-secret-1" not in repr(high) and "an-influx-token-2" not in repr(high)


def test_the_plan_is_prepared_on_the_master_after_the_mine_and_loaded_before_the_check(render):
    _, high = render("energy.orch", PILLARS["roles-unset-with-control"])
    assert step(high, PREPARE_STEP)[1]["name"] == "energy_plan.prepare"
    assert requires(high, PREPARE_STEP) == [("salt", "energy-orch-mine-update-function")]
    assert requires(high, "energy-orch-plan-refresh-function") == [("salt", PREPARE_STEP)]
    assert step(high, "energy-orch-plan-refresh-function")[1]["name"] == "saltutil.refresh_pillar"
    assert requires(high, "energy-orch-plan-check-function") == [("salt", "energy-orch-plan-refresh-function")]


# --------------------------------------------------------------------------- which minions are synced


@pytest.fixture(scope="module")
def file_server_opts(master_opts, tmp_path_factory):
    """A master's options whose file server (the roots backend) serves the formula."""
    opts = salt.config.master_config(None)
    opts.update({"file_roots": master_opts["file_roots"], "fileserver_backend": ["roots"],
                 "cachedir": str(tmp_path_factory.mktemp("file-server-cache")), "pki_dir": master_opts["pki_dir"]})
    return opts


@pytest.fixture(scope="module")
def synced_digest(tmp_path_factory):
    """The ``energy_extmods`` grain of a minion that has synced this formula: its extension modules
    laid out as saltutil.sync_* writes them (with the compiled files Python adds)."""
    from energy_core import extmods

    root = tmp_path_factory.mktemp("extmods")
    for kind in extmods.SHIPPED:
        shutil.copytree(ROOT / f"_{kind}", root / kind)
    (root / "utils" / "energy_core" / "__pycache__").mkdir(exist_ok=True)
    (root / "utils" / "energy_core" / "__pycache__" / "names.cpython-311.pyc").write_bytes(b"compiled")
    (root / "modules" / "other_formula.py").write_text("# not the formula's\n")
    return extmods.digest(extmods.local_files(str(root)))


def test_a_minion_is_synced_only_when_its_copy_is_not_what_the_master_serves(render, file_server_opts,
                                                                            synced_digest, matchers):
    from energy_core import extmods

    pillar = PILLARS["roles-unset-with-control"]
    assert synced_digest and synced_digest.startswith("sha256-")
    fleet = {mid: dict(grains, **{extmods.GRAIN: synced_digest}) for mid, grains in FLEET.items()}
    # every minion has the master's copy: no sync step and no refresh before the mine (energy.facts
    # fresh=True reads the pillar as compiled now); every minion still loads its part of the plan
    _, high = render("energy.orch", pillar, fleet=fleet, runner_opts=file_server_opts)
    assert SYNC_STEP not in high and REFRESH_STEP not in high
    assert requires(high, "energy-orch-mine-update-function") == [("salt", "energy-orch-runners-sync-runner")]
    assert step(high, "energy-orch-mine-update-function")[1]["kwarg"] == {"fresh": True}
    assert_requisites_resolve(high)
    union = step(high, "energy-orch-plan-refresh-function")[1]["tgt"]
    assert matching(matchers, union) == sorted(FLEET)
    _, clean = render("energy.clean_orch", pillar, fleet=fleet, runner_opts=file_server_opts)
    assert SYNC_STEP not in clean and REFRESH_STEP not in clean
    assert requires(clean, "energy-orch-clean-apply-orch") == [("salt", "energy-orch-runners-sync-runner")]
    assert_requisites_resolve(clean)
    # n2 has another copy and n3 none: they are synced, and reload their modules; the others not
    fleet["n2"][extmods.GRAIN] = "sha256-" + "0" * 64
    del fleet["n3"][extmods.GRAIN]
    _, high = render("energy.orch", pillar, fleet=fleet, runner_opts=file_server_opts)
    tgt = step(high, SYNC_STEP)[1]["tgt"]
    assert tgt == f"( {union} ) and not L@ctl,db1,db2,graf,n1"
    assert matching(matchers, tgt) == ["n2", "n3"]
    assert requires(high, REFRESH_STEP) == [("salt", SYNC_STEP)]
    assert step(high, REFRESH_STEP)[1]["tgt"] == tgt  # only the synced minions reload
    assert requires(high, "energy-orch-mine-update-function") == [("salt", REFRESH_STEP)]
    assert step(high, "energy-orch-plan-refresh-function")[1]["tgt"] == union  # every minion loads its part
    # the same for clean_orch
    _, high = render("energy.clean_orch", pillar, fleet=fleet, runner_opts=file_server_opts)
    assert step(high, SYNC_STEP)[1]["tgt"] == tgt


def test_a_master_that_serves_no_formula_module_syncs_every_minion(render, empty_server_opts):
    master, high = render("energy.orch", PILLARS["roles-unset-with-control"], runner_opts=empty_server_opts)
    assert master.runner._served_extmods() is None
    assert step(high, SYNC_STEP)[1]["tgt"] == step(high, REFRESH_STEP)[1]["tgt"]


def test_only_plain_ids_are_left_out_of_the_sync(file_server_opts, synced_digest, master_opts, matchers):
    from energy_core import extmods

    master = Master(copy.deepcopy(master_opts), matchers, None, runner_opts=file_server_opts)
    cached = {"ctl": {extmods.GRAIN: synced_digest}, "x,ctl": {extmods.GRAIN: synced_digest},
              "n1 or *": {extmods.GRAIN: synced_digest}, "n2": {extmods.GRAIN: "sha256-other"}}
    master.runner.__salt__["cache.grains"] = lambda tgt, tgt_type: cached
    # a minion that reports the master's digest under an id with a comma or a space is synced anyway
    assert master.runner._to_sync("( * )") == "( ( * ) ) and not L@ctl"


def test_a_down_minion_whose_id_would_change_the_targets_stops_the_render(master_opts, matchers, defaults):
    master = Master(copy.deepcopy(master_opts), matchers, None)
    master.runner.__salt__["manage.status"] = lambda **kwargs: {"up": ["ctl"], "down": ["x,ctl"]}
    with pytest.raises(salt.exceptions.CommandExecutionError, match=r"'x,ctl' did not answer.*salt-key -d"):
        master.runner.orch_targets(defaults, {"control": "ctl"})
