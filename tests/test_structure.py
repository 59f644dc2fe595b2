"""The package's shape, as docs/ARCHITECTURE.md states it: which package may import which (parsed from
the source, every `import` and `from` at any depth), and size limits on functions and modules."""
import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "lumina_video"
DOC = Path(__file__).parents[1] / "docs" / "ARCHITECTURE.md"
HELPERS = {"files", "devices", "_checks"}


def documented_rule() -> dict[str, set[str]]:
    """{unit: units it may import}, read from the table under "## Import directions" of ARCHITECTURE.md:
    the first column names the units of a row, the second what they may import (names in backticks)."""
    text = DOC.read_text().split("## Import directions", 1)[1].split("\n## ", 1)[0]
    rule = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        units, allowed = re.findall(r"`([\w.]+)`", cells[0]), set(re.findall(r"`([\w.]+)`", cells[1]))
        for u in units:
            rule[u] = allowed
    return rule


ALLOWED = documented_rule()
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 80, 400


def modules():
    return sorted(p for p in SRC.rglob("*.py"))


def unit(path: Path) -> str:
    """The first name under lumina_video: 'model' for model/nextdit.py, 'pipeline' for pipeline.py."""
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def imported_units(path: Path) -> set[str]:
    """Units of lumina_video that a module imports (relative or absolute; `__version__` from the root
    is a constant, not a dependency)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(SRC).parent.parts
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names if a.name.startswith("lumina_video")]
            out.update(n[1] for n in names if len(n) > 1)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "lumina_video":
                    continue
                parts = parts[1:]
            else:
                base = list(package[: len(package) - (node.level - 1)])
                parts = base + (node.module.split(".") if node.module else [])
            if parts:
                out.add(parts[0])
            else:  # `from . import x` at the package root, or `from .. import x`
                out.update(a.name for a in node.names if a.name != "__version__")
    return out


def test_the_documented_rule_is_one_way():
    assert {"model", "pipeline", "training", "demo", "cli"} <= set(ALLOWED)
    assert ALLOWED["model"] == HELPERS and ALLOWED["encoders"] == HELPERS
    assert all("demo" not in deps for unit_, deps in ALLOWED.items() if unit_ != "demo")


def test_every_unit_has_a_rule():
    units = {unit(p) for p in modules()} - {"__init__", "__main__"}
    assert units <= set(ALLOWED), units - set(ALLOWED)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_the_allowed_way(path):
    me = unit(path)
    deps = imported_units(path) - {me}
    if me != "demo":
        assert "demo" not in deps, f"{path.relative_to(SRC)} imports the demo subpackage"
    if me in ("__init__", "__main__"):
        return
    assert deps <= ALLOWED[me], f"{path.relative_to(SRC)} ({me}) imports {sorted(deps - ALLOWED[me])}"


def test_model_imports_only_the_helpers():
    for path in (SRC / "model").rglob("*.py"):
        assert imported_units(path) - {"model"} <= HELPERS, path


def long_functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                yield f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)"


def test_no_function_over_80_lines():
    found = [f for p in modules() for f in long_functions(p)]
    assert not found, found


def test_no_module_over_400_lines():
    sizes = {p: len(p.read_text().splitlines()) for p in modules()}
    found = [f"{p.relative_to(SRC)} ({n})" for p, n in sizes.items() if n > MAX_MODULE_LINES]
    assert not found, found
