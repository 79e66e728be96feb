"""The component table (energy_core.stack): every order, phase and set of components is derived
from its rows, in the core and in the SLS files."""

import jinja2

from energy_core import inventory, names, placement, stack, topology, verdict
from tests.conftest import ROOT


def test_the_table_has_one_row_per_component_and_ranks_without_ties():
    assert sorted(row.name for row in stack.TABLE) == sorted(names.COMPONENTS)
    for column in ("deploy", "clean", "stage"):
        ranks = [getattr(row, column) for row in stack.TABLE]
        assert sorted(ranks) == list(range(1, len(stack.TABLE) + 1)), column


def test_the_core_s_orders_are_the_table_s_own_objects():
    # not copies that could drift: the very tuples stack derives
    assert names.COMPONENTS is stack.COMPONENTS and topology.STAGES is stack.COMPONENTS
    assert names.CLEAN_ORDER is stack.CLEAN_ORDER and names.ORCH_PHASES is stack.ORCH_PHASES
    assert names.WATCHED is stack.WATCHED and verdict.WATCHED is stack.WATCHED
    assert names.DATA_COMPONENTS is stack.DATA_COMPONENTS and names.ROLE_OF is stack.ROLE_OF
    assert not hasattr(names, "DEPLOY_ORDER") and not hasattr(names, "SCHEDULE_NAME")  # dead constants gone


def test_the_derived_orders_follow_the_rows():
    by = {row.name: row for row in stack.TABLE}
    assert list(stack.DEPLOY_ORDER) == sorted(by, key=lambda c: by[c].deploy)
    assert list(stack.CLEAN_ORDER) == sorted(by, key=lambda c: by[c].clean)
    assert list(stack.COMPONENTS) == sorted(by, key=lambda c: by[c].stage)
    assert set(stack.WATCHED) == {c for c in by if by[c].watched}
    assert set(stack.DATA_COMPONENTS) == {c for c in by if by[c].data}
    for phase, members in stack.ORCH_PHASES:
        assert {c for c in by if by[c].phase == phase} == set(members)
    assert [c for _, members in stack.ORCH_PHASES for c in members] == list(stack.DEPLOY_ORDER)


def test_the_orch_phases_and_the_clean_order_come_from_the_table():
    targets = {role: f"G@{role}" for role in names.ROLES}
    phases = placement.orch_phases(targets, [], every="*")
    assert [p["name"] for p in phases] == [phase for phase, _ in stack.ORCH_PHASES]
    assert [s for p in phases for s in p["sls"] if s != "energy.heal"] == [f"energy.{c}" for c in stack.DEPLOY_ORDER]
    found = {c: {"Names": [f"/energy-m-{c}"], "Labels": {names.LABEL_COMPONENT: c, names.LABEL_MINION: "m"}}
             for c in stack.DEPLOY_ORDER}
    assert [c["component"] for c in inventory.containers(found)] == list(stack.CLEAN_ORDER)


def test_init_sls_and_the_watches_read_the_table():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT)))
    salt = {"energy.components": stack.rows}
    text = env.get_template("energy/init.sls").render(salt=salt, tpldir="energy")
    assert [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")] == \
        [f"energy.{c}" for c in stack.DEPLOY_ORDER]
    macros = (ROOT / "energy" / "macros.jinja").read_text()
    assert "energy.components" in macros and "'sensor', 'formula'" not in macros
