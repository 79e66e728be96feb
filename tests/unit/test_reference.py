"""docs/reference.md is generated from the docstrings (scripts/reference.py, `make reference`):
it must be current, and every public function of the Salt layers (_modules, _states, _runners)
must show how it is called, as saltext modules do (a CLI example; an SLS example for a state)."""

import importlib.util

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("reference", ROOT / "scripts" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_is_current(reference):
    path = ROOT / "docs" / "reference.md"
    assert path.exists(), "docs/reference.md is missing: run `make reference`"
    assert path.read_text() == reference.render(), (
        "docs/reference.md is stale: run `make reference` (scripts/reference.py) and commit it")


def test_every_public_function_of_the_salt_layers_has_a_cli_example(reference):
    assert reference.missing_examples() == [], (
        "add a 'CLI Example:' with a `salt-call <module>.<function>` (runners: `salt-run ...`; states: an "
        "SLS example or `salt-call state.single ...`) to the docstring of each")


def test_every_salt_file_is_in_the_reference_under_its_salt_name(reference):
    text = reference.render()
    for kind, _, _ in reference.KINDS:
        files = reference.salt_files(kind)
        assert files, f"no file found in {kind}"
        for path in files:
            info = reference.module_info(path)
            assert f"### `{info['name']}` (`{kind}/{path.name}`)" in text
            for name, args, _, _ in info["functions"]:
                assert f"#### `{info['name']}.{name}({args})`" in text
    for path in reference.sls_files():
        assert f"`{path.relative_to(ROOT)}`" in text


@pytest.mark.parametrize("kind, doc, found", [
    ("_modules", "Does it.\n\nCLI Example:\n\n.. code-block:: bash\n\n    salt-call energy.plan\n", True),
    ("_modules", "Does it.\n\nCLI Example:\n\n.. code-block:: bash\n\n    salt '*' energy.plan\n", True),
    ("_modules", "Does it: energy.plan, see salt-call energy.plan.", False),
    ("_modules", "Does it.\n\nCLI Example:\n\n.. code-block:: bash\n\n    salt-call energy.planner\n", False),
    ("_runners", "Does it.\n\nCLI Example:\n\n.. code-block:: bash\n\n    salt-run energy.plan\n", True),
    ("_runners", "Does it.\n\nCLI Example:\n\n.. code-block:: bash\n\n    salt-call energy.plan\n", False),
    ("_states", "Does it.\n\n.. code-block:: yaml\n\n    some-id:\n      energy.plan:\n        - name: x\n", True),
    ("_states", "Does it.\n\nCLI Example:\n\n.. code-block:: bash\n\n    salt-call state.single energy.plan name=x\n",
     True),
    ("_states", "Does it, as energy.plan: name", False),
])
def test_the_cli_example_check_tells_one_from_none(reference, kind, doc, found):
    assert reference.cli_example(kind, "energy", "plan", doc) is found


def test_rst_becomes_markdown(reference):
    doc = "Uses ``energy:roles`` for <component>.\n\n.. code-block:: bash\n\n    salt-call energy.plan\n\nAfter."
    assert reference.markdown(doc) == ("Uses `energy:roles` for &lt;component&gt;.\n\n```bash\nsalt-call energy.plan\n```"
                                       "\n\nAfter.")
