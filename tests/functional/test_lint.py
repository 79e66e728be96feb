"""yamllint on the SLS files as Salt renders them: yamllint reads a Jinja tag as YAML, so `make lint`
checks only the plain YAML files, and here every SLS file with Jinja is rendered by Salt's own jinja
renderer (the minion's with the stubs of test_hostile_render.py, the master's orchestrate files with
test_orch_render.py's master), then linted with the repository's .yamllint.

Two rules are off for rendered text: line-length (Jinja's ``| json`` writes a value on one line) and
empty-lines (Jinja's blank lines between blocks); and sequences may be indented or not, as Salt's
``- require:`` lists are written."""

import copy
import io
import subprocess
import sys

import pytest
import salt.loader
import yaml

from tests.conftest import ROOT
from tests.functional import test_hostile_render as minion_render
from tests.functional.test_hostile_render import conf, opts  # noqa: F401  pylint: disable=unused-import
from tests.functional.test_orch_render import PILLARS, Master, master_opts, matchers  # noqa: F401  pylint: disable=unused-import

RENDERED = """
rules:
  line-length: disable
  empty-lines: disable
  indentation:
    spaces: consistent
    indent-sequences: whatever
"""

SLS = sorted(str(p.relative_to(ROOT)) for root in ("energy", "examples") for p in (ROOT / root).rglob("*.sls"))
ORCH = ("energy/orch.sls", "energy/clean_orch.sls")
# the minion whose part of the stack each SLS file needs to render something: the sensor host of
# test_hostile_render's fleet (an id that needs quoting), or its database host
MINION_FILES = {path: minion_render.ODD for path in SLS if path not in ORCH}
MINION_FILES.update({f"energy/{c}.sls": "db" for c in ("mongo", "influxdb", "formula", "grafana", "init")})


def _merged():
    base = yaml.safe_load((ROOT / ".yamllint").read_text())
    base["rules"].update(yaml.safe_load(RENDERED)["rules"])
    return yaml.safe_dump(base)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("yamllint") / "rendered.yamllint"
    path.write_text(_merged())
    return path


def _text(rendered):
    return rendered.getvalue() if isinstance(rendered, io.StringIO) else rendered


def _problems(config, text):
    """yamllint's findings, from a process of its own: importing yamllint changes PyYAML's int
    resolver for every later YAML load in the process (yamllint.rules.quoted_strings)."""
    path = config.parent / "rendered.sls"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "yamllint", "-c", str(config), "-f", "parsable", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr
    lines = text.splitlines()
    return [f"{line.split(':', 3)[3].strip()}: {lines[int(line.split(':')[1]) - 1].strip()[:100]!r}"
            for line in done.stdout.splitlines() if line.strip()]


def test_every_sls_file_is_linted_here():
    with_jinja = [p for p in SLS if "{%" in (ROOT / p).read_text() or "{{" in (ROOT / p).read_text()]
    assert with_jinja and set(with_jinja) <= set(MINION_FILES) | set(ORCH)


@pytest.mark.parametrize("path", [p for p in sorted(MINION_FILES) if not (ROOT / p).read_text().startswith("#!py")])
def test_a_minion_sls_file_renders_to_clean_yaml(path, config, monkeypatch, conf, opts):
    monkeypatch.setattr(minion_render, "ODD", MINION_FILES[path])
    loader_render = salt.loader.render

    def render_with_extra_functions(opts, functions, *args, **kwargs):
        # the example app asks where its power is: the sensor host's InfluxDB
        extra = {"energy.hostname_to_influx": lambda: {minion_render.ODD: {"url": "http://10.0.0.9:8086",
                                                                           "database": "power_x", "sensor": minion_render.ODD}},
                 "pillar.get": lambda key, default="": default}
        return loader_render(opts, {**extra, **functions}, *args, **kwargs)

    monkeypatch.setattr(salt.loader, "render", render_with_extra_functions)
    sls = path[:-len(".sls")].replace("/", ".")
    text = _text(minion_render.render(dict(opts, renderer="jinja"), conf, sls))
    assert text.strip(), f"{path} rendered to nothing"
    assert _problems(config, text) == []


@pytest.mark.parametrize("path", ORCH)
@pytest.mark.parametrize("case", ["roles-as-lists", "dedicated"])
def test_an_orchestrate_file_renders_to_clean_yaml(path, case, config, master_opts, matchers):  # noqa: F811
    master = Master(dict(copy.deepcopy(master_opts), renderer="jinja"), matchers, PILLARS[case])
    text = _text(master.render(path[:-len(".sls")].replace("/", ".")))
    assert "salt.state" in text
    assert _problems(config, text) == []


def test_the_check_finds_a_problem(config):
    assert _problems(config, "a:\n  - b\n  - b\na: 1\n") != []
