"""What a minion id, a Docker label or a broken pillar file can do to the formula's SLS files,
rendered by Salt's own renderers and pillar compiler.

Salt accepts a minion id such as ``evil: id #x`` (only '/', '\\' and NUL are refused): every SLS
that renders an id quotes it (``| json``), so the id stays one string instead of ending the YAML
value (``: ``) or starting a comment (`` #``). A pillar file Salt cannot render (a duplicate key)
leaves ``_errors`` in the pillar: ``energy.config`` and the orch's targets stop with Salt's error
instead of planning from what did render."""

import copy

import pytest
import salt.config
import salt.loader
import salt.pillar
import salt.template
from salt.exceptions import CommandExecutionError
from saltfactories.utils.functional import Loaders
from energy_core import plan, stack

from tests.conftest import ROOT, formula_file_root
from tests.functional.test_orch_render import Master, master_opts, matchers  # noqa: F401  pylint: disable=unused-import

ODD = "evil: id #x"
EVENTS = ["CPU_CLK_THREAD_UNHALTED:REF_P", "CPU_CLK_THREAD_UNHALTED:THREAD_P", "LLC_MISSES", "INSTRUCTIONS_RETIRED"]
FLEET = {"sensors": {ODD: {"cpu_name": "X", "pmu_events": EVENTS, "address": "10.0.0.1"}},
         "mongos": {"db": {"address": "10.0.0.9"}}, "formulas": {"db": {"address": "10.0.0.9"}},
         "influxdbs": {"db": {"address": "10.0.0.9"}}, "grafana": {"db": {"address": "10.0.0.9"}}}
SECRET = "Hunter2-Secret-Value"


@pytest.fixture
def conf(defaults):
    conf = copy.deepcopy(defaults)
    conf["control"] = "db"
    conf["grafana"]["admin_password"] = "grafana-admin-pw"
    conf["mongo"].update(admin_password="mongo-admin-pw-1", sensor_password="mongo-sensor-pw-2",
                         formula_password="mongo-formula-pw-3")
    return conf


@pytest.fixture(scope="module")
def opts(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-render")
    opts = salt.config.minion_config(None)
    opts.update({"file_client": "local", "file_roots": {"base": [str(formula_file_root(root / "srv"))]},
                 "cachedir": str(root / "cache"), "extension_modules": str(root / "cache" / "extmods"), "pki_dir": str(root / "pki"), "sock_dir": str(root / "sock")})
    return opts


def render(opts, conf, sls, deployed=None):
    full_plan = plan.build(conf, FLEET)
    functions = {
        "energy.config": lambda defaults=None, secrets=False: copy.deepcopy(conf),
        "energy.node": lambda conf, secrets=False: plan.node(full_plan, ODD),
        "energy.empty_dir": lambda path: None,
        "energy.components": stack.rows,
        "energy_heal.held": lambda name, component: None,
        "energy_inventory.deployed": lambda: deployed or {"containers": [], "volumes": [], "config_files": []},
        "energy_heal.node_kept_file": lambda: "/var/cache/salt/minion/energy/node.json",
        "energy_heal.engine_file": lambda: "/etc/salt/minion.d/energy-engine.conf",
    }
    opts = dict(opts, id=ODD, grains={"id": ODD})
    renderers = salt.loader.render(opts, functions)
    path = f"{opts['file_roots']['base'][0]}/{sls.replace('.', '/')}.sls"
    return salt.template.compile_template(path, renderers, opts["renderer"], opts["renderer_blacklist"],
                                          opts["renderer_whitelist"], saltenv="base", sls=sls)


def args(high, sid):
    ((function, arguments),) = [(k, v) for k, v in high[sid].items() if not k.startswith("__")]
    return function, {k: v for a in arguments if isinstance(a, dict) for k, v in a.items()}


def test_an_id_with_colon_space_and_hash_renders_the_sensor_as_one_string(opts, conf):
    high = render(opts, conf, "energy.sensor")
    running = [sid for sid in high if sid.startswith("energy-sensor-container-running-")]
    assert len(running) == 1
    _, run = args(high, running[0])
    assert run["labels"]["energy.minion"] == ODD
    assert all(isinstance(sid, str) and "#" not in sid and ": " not in sid for sid in high)


def test_an_id_with_colon_space_and_hash_renders_an_empty_component(opts, conf):
    high = render(opts, conf, "energy.mongo")
    assert args(high, "energy-mongo-plan-empty-nop")[1]["name"] == f"the plan gives {ODD} no mongo container"


def test_an_id_with_colon_space_and_hash_renders_clean(opts, conf):
    deployed = {"containers": [{"name": "energy-evil--id--x-sensor", "component": "sensor", "cpu": "X"}],
                "volumes": ["energy-evil--id--x-mongo-x"],
                "config_files": ["/etc/energy/energy-evil--id--x-sensor.json"]}
    conf["clean"]["purge_data"] = True
    high = render(opts, conf, "energy.clean", deployed)
    assert args(high, "energy-clean-done-nop")[1]["name"] == f"energy stack removed from {ODD}"
    assert args(high, "energy-sensor-container-absent-energy-evil--id--x-sensor")[1]["name"] == \
        "energy-evil--id--x-sensor"
    assert args(high, "energy-files-absent-/etc/energy/energy-evil--id--x-sensor.json")[0] == "file.absent"


def test_a_label_cannot_put_yaml_into_clean_state_ids():
    from energy_core import inventory  # pylint: disable=import-outside-toplevel

    found = inventory.containers({"x": {"Names": ["/energy-n-sensor"], "Labels": {"energy.component": "a: b\n- c"}}})
    assert found[0]["component"] == "unknown"


# --------------------------------------------------------------------------- a pillar Salt could not render


@pytest.fixture
def broken_pillar(tmp_path):
    """The pillar a minion gets when one of its files has a duplicate key: Salt's own compiler."""
    root = tmp_path / "pillar"
    root.mkdir()
    (root / "top.sls").write_text("base:\n  '*':\n    - energy\n    - energy_extra\n")
    (root / "energy.sls").write_text(f"energy:\n  grafana:\n    admin_password: {SECRET}\n"
                                     "  mongo: {port: 27017}\n  mongo: {port: 27018}\n")
    (root / "energy_extra.sls").write_text("energy:\n  control: ctl\n")
    opts = salt.config.minion_config(None)
    opts.update({"file_client": "local", "pillar_roots": {"base": [str(root)]}, "cachedir": str(tmp_path / "c"),
                 "pki_dir": str(tmp_path / "pki"), "id": "m1", "grains": {}})
    compiled = salt.pillar.Pillar(opts, {}, "m1", "base").compile_pillar()
    assert compiled.get("_errors") and compiled["energy"] == {"control": "ctl"}  # the rest rendered
    return compiled


def test_config_stops_with_salts_error_when_the_pillar_did_not_render(tmp_path, broken_pillar):
    opts = salt.config.minion_config(None)
    opts.update({"id": "m1", "file_client": "local", "file_roots": {"base": [str(formula_file_root(tmp_path / "srv"))]},
                 "module_dirs": [str(ROOT / "_modules")], "cachedir": str(tmp_path / "cache"),
                 "pki_dir": str(tmp_path / "pki"), "sock_dir": str(tmp_path / "sock"), "pillar": broken_pillar})
    loaders = Loaders(opts)
    try:
        with pytest.raises(CommandExecutionError) as exc:
            loaders.modules.energy.config()
    finally:
        loaders.reset_state()
    text = str(exc.value)
    assert "pillar:_errors: bad value" in text and "Rendering SLS 'energy' failed" in text
    assert "Fix: correct the pillar file" in text and SECRET not in text


class BrokenMaster(Master):
    def pillar_get(self, key, default="", **kwargs):
        if key == "_errors":
            return ["Rendering SLS 'energy' failed. Please see master log for details."]
        return super().pillar_get(key, default, **kwargs)


def test_the_orch_stops_with_salts_error_when_the_masters_pillar_did_not_render(master_opts, matchers):  # noqa: F811
    master = BrokenMaster(copy.deepcopy(master_opts), matchers, {"control": "ctl"})
    with pytest.raises(Exception, match=r"pillar:_errors: bad value .*Rendering SLS 'energy' failed"):
        master.render("energy.orch")
    assert "energy.orch_targets" not in master.calls
