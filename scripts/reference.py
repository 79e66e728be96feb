"""docs/reference.md from the formula's own text: the leading comment of every SLS file, the
docstrings of every execution module, state module, runner and grains module, and each public
function's signature.

    .venv/bin/python scripts/reference.py           # write docs/reference.md (`make reference`)
    .venv/bin/python scripts/reference.py --check   # exit 1 when docs/reference.md is stale

Nothing is imported: the files are parsed (``ast``), so the script needs neither Salt nor the
core, and it finds the modules by their folders, so a new file appears without a change here.
tests/unit/test_reference.py fails while docs/reference.md is stale, and checks that every public
function of the Salt layers shows how it is called (a CLI example, or an SLS example for a state).
"""

import ast
import inspect
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "reference.md"
# (folder, heading, how Salt calls the functions there); any other Salt folder (``_<kind>``, but the
# core in ``_utils``) is found too, under its own name
KNOWN_KINDS = (
    ("_modules", "Execution modules", "salt-call"),
    ("_states", "State modules", "state"),
    ("_runners", "Runners", "salt-run"),
    ("_grains", "Grains", "grains"),
    ("_pillar", "External pillars", "ext_pillar"),
    ("_engines", "Engines", "engine"),
)


def kinds():
    known = {k for k, _, _ in KNOWN_KINDS}
    found = sorted(p.name for p in ROOT.glob("_*") if p.is_dir() and p.name != "_utils" and p.name not in known
                   and any(p.glob("*.py")))
    return KNOWN_KINDS + tuple((k, f"{k[1:].capitalize()} modules", k[1:]) for k in found)


KINDS = kinds()
SLS_ROOTS = ("energy", "examples")
HOOKS = ("mod_watch", "mod_init", "mod_aggregate", "mod_beacon")  # called by Salt, not by users


def salt_files(kind):
    """The Python files of one Salt layer, sorted: every file, so that a new module is found."""
    return sorted(p for p in (ROOT / kind).glob("*.py") if not p.name.startswith("_"))


def sls_files():
    return sorted(p for root in SLS_ROOTS for p in (ROOT / root).rglob("*.sls"))


def _constant(tree, name):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def module_info(path):
    """What a Salt-facing file offers: its Salt name, docstring and public functions as
    ``(salt name, signature, docstring, line)``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    virtualname = _constant(tree, "__virtualname__") or path.stem
    aliases = _constant(tree, "__func_alias__") or {}
    functions = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            args = ast.unparse(node.args)
            functions.append((aliases.get(node.name, node.name), args, ast.get_docstring(node) or "", node.lineno))
    return {"name": virtualname, "doc": ast.get_docstring(tree) or "", "functions": functions}


def sls_doc(path):
    """The leading Jinja comment of an SLS file (``{#- ... #}``), or a ``#!py`` file's docstring."""
    text = path.read_text()
    if text.startswith("#!py"):
        return ast.get_docstring(ast.parse(text.split("\n", 1)[1])) or ""
    match = re.match(r"\{#-?(.*?)-?#\}", text, re.S)
    return inspect.cleandoc(match.group(1)) if match else ""


def sls_name(path):
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "init":
        parts.pop()
    if "reactor" in parts:  # a reaction, named by its path in the master's reactor config
        return str(path.relative_to(ROOT))
    return ".".join(parts)


def _prose(line):
    """One line of text: ``literals`` as Markdown code, ``<`` and ``>`` outside code escaped (Markdown
    would take ``<component>`` for an HTML tag and drop it), a command line (``salt-run ...``) as code."""
    if re.match(r"\s*salt(-run|-call)?\s", line):
        return f"`{line.strip()}`"
    parts = re.sub(r"``(.+?)``", r"`\1`", line).split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def markdown(doc):
    """reStructuredText docstrings as Markdown: code blocks fenced, ``literals`` single-quoted."""
    lines, out, i = doc.splitlines(), [], 0
    while i < len(lines):
        block = re.match(r"\s*\.\. code-block::\s*(\w*)", lines[i])
        if not block:
            out.append(_prose(lines[i]))
            i += 1
            continue
        i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        out += ["```" + block.group(1), inspect.cleandoc("\n".join(body)), "```", ""]
    return "\n".join(out).strip()


def cli_example(kind, module, function, doc):
    """Whether a public function's docstring shows how it is called: after ``CLI Example`` a
    ``salt``/``salt-call`` (modules) or ``salt-run`` (runners) line calling it (a runner may show
    the public name that calls it, ``energy.backup`` for ``energy_archive.backup``); for a state,
    an SLS example using it or a ``state.single`` line."""
    full = re.escape(f"{module}.{function}")
    if kind == "_states":
        return bool(re.search(rf"^\s+{full}:\s*$|state\.single\s+{full}\b", doc, re.M))
    after = doc.partition("CLI Example")[2]
    command = {"_modules": rf"^\s+salt(-call)?\s.*\b{full}\b", "_runners": rf"^\s+salt-run\s+[\w.]*\b{re.escape(function)}\b"}[kind]
    return bool(re.search(command, after, re.M))


def missing_examples():
    """``path:line module.function`` for each public function of the Salt layers without one."""
    missing = []
    for kind in ("_modules", "_states", "_runners"):
        for path in salt_files(kind):
            info = module_info(path)
            for name, _, doc, line in info["functions"]:
                if name not in HOOKS and not cli_example(kind, info["name"], name, doc):
                    missing.append(f"{path.relative_to(ROOT)}:{line} {info['name']}.{name}")
    return missing


def render():
    out = ["# Reference", "",
           "<!-- Generated by scripts/reference.py from the docstrings (`make reference`); do not edit:"
           " tests/unit/test_reference.py fails when this file is stale. -->", "",
           "Every SLS file, execution module, state module, runner and grain of the formula, as its own",
           "docstrings describe it.", ""]
    toc = ["- [SLS files](#sls-files)"] + [f"- [{heading}](#{heading.lower().replace(' ', '-')})"
                                            for _, heading, _ in KINDS]
    out += toc + ["", "## SLS files", ""]
    for path in sls_files():
        out += [f"### `{sls_name(path)}`", "", f"`{path.relative_to(ROOT)}`", "", markdown(sls_doc(path)), ""]
    for kind, heading, _ in KINDS:
        out += [f"## {heading}", ""]
        for path in salt_files(kind):
            info = module_info(path)
            out += [f"### `{info['name']}` (`{path.relative_to(ROOT)}`)", "", markdown(info["doc"]), ""]
            for name, args, doc, _ in info["functions"]:
                out += [f"#### `{info['name']}.{name}({args})`", "", markdown(doc) or "(no docstring)", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            sys.exit(f"{OUTPUT.relative_to(ROOT)} is stale: run `make reference` and commit it")
        return
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
