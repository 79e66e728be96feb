"""The component SLS files (energy/macros.jinja ``deploy``) rendered by Salt's own jinja|yaml
renderers: every file that holds a password or a token is written with ``show_changes: False``,
so that a changed secret never reaches a return, the job cache or the minion's log as a diff (Salt
logs a changed file's diff at INFO); the files without a secret keep their diff.

The plan is the core's (``energy_core.plan.build`` on a small fleet); only the minion's view is
given: ``energy.config`` returns the merged configuration and ``energy.node`` that minion's part of
the plan, as the execution module does."""

import copy
import json

import pytest
import salt.config
import salt.loader
import salt.template
from energy_core import components, masking, plan, stack

from tests.conftest import formula_file_root

EVENTS = ["CPU_CLK_THREAD_UNHALTED:REF_P", "CPU_CLK_THREAD_UNHALTED:THREAD_P", "LLC_MISSES", "INSTRUCTIONS_RETIRED"]
FLEET = {"sensors": {"s1": {"cpu_name": "X", "pmu_events": EVENTS, "address": "10.0.0.1"}},
         "mongos": {"db": {"address": "10.0.0.9"}}, "formulas": {"fx": {"address": "10.0.0.8"}},
         "influxdbs": {"db": {"address": "10.0.0.9"}}, "grafana": {"gr": {"address": "10.0.0.7"}}}
FILE_FUNCTIONS = ("file.serialize", "file.managed")


@pytest.fixture
def conf(defaults):
    conf = copy.deepcopy(defaults)
    conf["roles"].update(mongos=["db"], formulas=["fx"], influxdbs=["db"], grafana=["gr"])
    conf["grafana"]["admin_password"] = "grafana-admin-pw"
    conf["mongo"].update(admin_password="mongo-admin-pw-1", sensor_password="mongo-sensor-pw-2",
                         formula_password="mongo-formula-pw-3")
    return conf


@pytest.fixture(scope="module")
def opts(tmp_path_factory):
    root = tmp_path_factory.mktemp("component-render")
    opts = salt.config.minion_config(None)
    opts.update({"file_client": "local", "file_roots": {"base": [str(formula_file_root(root / "srv"))]},
                 "cachedir": str(root / "cache"), "extension_modules": str(root / "cache" / "extmods"), "pki_dir": str(root / "pki"), "sock_dir": str(root / "sock")})
    return opts


def render(opts, conf, minion, component):
    full_plan = plan.build(conf, FLEET)
    functions = {
        "energy.config": lambda defaults=None, secrets=False: copy.deepcopy(conf),
        "energy.node": lambda conf, secrets=False: plan.node(full_plan, minion),
        "energy.empty_dir": lambda path: None,
        "energy.components": stack.rows,
        "energy_heal.held": lambda name, component: None,
    }
    opts = dict(opts, id=minion, grains=opts.get("grains") or {"id": minion})
    renderers = salt.loader.render(opts, functions)
    path = f"{opts['file_roots']['base'][0]}/energy/{component}.sls"
    high = salt.template.compile_template(path, renderers, opts["renderer"], opts["renderer_blacklist"],
                                          opts["renderer_whitelist"], saltenv="base", sls=f"energy.{component}")
    return full_plan, high


def files_of(high):
    """{path: (function, {argument: value})} of the file states."""
    found = {}
    for body in high.values():
        for function, args in body.items() if isinstance(body, dict) else ():
            if function in FILE_FUNCTIONS:
                merged = {k: v for a in args if isinstance(a, dict) for k, v in a.items()}
                found[merged["name"]] = (function, merged)
    return found


def secret_values(conf, full_plan):
    """The pillar's secrets and what the plan derives from them (the MongoDB users' passwords)."""
    derived = {u["password"] for host in full_plan["hosts"].values() for c in host["containers"]
               for u in (c["users"] or {}).get("users", [])}
    return masking.secrets(conf) | derived


@pytest.mark.parametrize("minion, component, version, secret_files, plain_files", [
    ("s1", "sensor", 1, 1, 0),
    ("gr", "grafana", 1, 0, 4),  # InfluxDB 1.x: no token in Grafana's datasources
    ("gr", "grafana", 2, 1, 3),  # InfluxDB 2: the datasources file holds the token
])
def test_every_file_with_a_secret_is_written_without_a_diff(opts, conf, minion, component, version, secret_files,
                                                          plain_files):
    if version == 2:
        conf["influxdb"].update(version=2, token="the-influx-token-1", password="influx-pw-1", org="lab")
        conf["formula"]["tag"] = "2.4.1"
    full_plan, high = render(opts, conf, minion, component)
    secrets = secret_values(conf, full_plan)
    files = files_of(high)
    holding = {path for path, (_, args) in files.items()
               if any(s in json.dumps(args.get("dataset")) for s in secrets)}
    assert len(holding) == secret_files and len(files) - len(holding) == plain_files, sorted(files)
    for path, (_, args) in files.items():
        # the core marks the files that hold a secret, and the macro turns that into show_changes
        entry = next(c["files"][path] for c in plan.node(full_plan, minion)["containers"] if path in c["files"])
        assert entry["secret"] == (path in holding), path
        if path in holding:
            assert args.get("show_changes") is False, path
        else:
            assert "show_changes" not in args, path  # a dashboard's diff is worth seeing


def test_the_sensor_config_holds_its_own_user_s_derived_password(opts, conf):
    full_plan, high = render(opts, conf, "s1", "sensor")
    ((_, args),) = files_of(high).values()
    uri = args["dataset"]["output"]["uri"]
    user = "energy-sensor-x"
    assert uri.startswith(f"mongodb://{user}:{components.mongo_password(conf, 'sensor', 'X', user)}@")
    assert "mongo-sensor-pw-2" not in uri and args["show_changes"] is False
    assert full_plan["cpus"]["X"]["collection"] == "hwpc"


@pytest.mark.parametrize("facts, mounts", [
    ({"cgroup_version": 1, "cgroup_perf_event": True, "perf_event_mounted": False}, True),
    ({"cgroup_version": 1, "cgroup_perf_event": True, "perf_event_mounted": True}, True),  # idempotent: mount says so
    ({"cgroup_version": 1, "cgroup_perf_event": False}, False),  # not enabled: nothing to mount
    ({"cgroup_version": 2, "cgroup_perf_event": True}, False),
])
def test_the_sensor_sls_mounts_an_enabled_perf_event_hierarchy_on_cgroup_v1(opts, conf, facts, mounts):
    """Where the perf_event controller is enabled but maybe not mounted (cgroup v1), the sensor SLS
    mounts it where the sensor looks, before any sensor container is touched."""
    opts = dict(opts, grains={"id": "s1", "energy": facts})
    _, high = render(opts, conf, "s1", "sensor")
    state = high.get("energy-sensor-mount-perf_event")
    assert bool(state) == mounts
    if mounts:
        args = {k: v for item in state["mount.mounted"] for k, v in item.items()}
        assert (args["name"], args["fstype"], args["opts"], args["persist"]) == (
            "/sys/fs/cgroup/perf_event", "cgroup", "perf_event", False)
        assert args["require_in"] == [{"energy": "energy-sensor-orphans-absent"}]
