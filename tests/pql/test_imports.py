"""The compiler's modules import one another without cycles, and pql and the engines stay apart.

Every ``import`` statement counts, wherever it is: at the top, inside a function (the usual way a cycle
is hidden) or under ``if TYPE_CHECKING`` (a cycle for readers and type checkers all the same).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules(package: str) -> dict[str, Path]:
    """Module name -> file, for ``package`` and everything under it."""
    root = SRC.joinpath(*package.split("."))
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


ALL = _modules("openseg")


def imports(module: str) -> set[str]:
    """The openseg modules ``module`` imports (``from p import m`` is an import of ``p.m`` when ``m`` is one)."""
    path = ALL[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in ALL)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in ALL else base)
    return {name for name in found if name in ALL and name != module}


def cycles(modules: set[str]) -> Iterator[list[str]]:
    """Each import cycle among ``modules`` (one path per strongly connected group)."""
    graph = {m: imports(m) & modules for m in modules}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> Iterator[list[str]]:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                yield [*path[path.index(target):], target]
            elif target not in state:
                yield from visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            yield from visit(module)


def test_the_walk_finds_the_compiler_and_its_imports() -> None:
    assert {"openseg.pql.to_sql", "openseg.pql._sql_calls", "openseg.pql.derived"} <= set(ALL)
    assert {"openseg.pql._sql_calls", "openseg.pql._sql_chain", "openseg.pql.derived"} <= imports("openseg.pql.to_sql")


def test_a_cycle_is_found_wherever_its_imports_are(tmp_path: Path) -> None:
    # The check itself: a function-level import back into a module that imports it at the top.
    one = tmp_path / "one.py"
    two = tmp_path / "two.py"
    one.write_text("from openseg.pql import two\n", encoding="utf-8")
    two.write_text("def f():\n    from openseg.pql.one import g\n", encoding="utf-8")
    ALL["openseg.pql.one"], ALL["openseg.pql.two"] = one, two
    try:
        assert list(cycles({"openseg.pql.one", "openseg.pql.two"})) == [
            ["openseg.pql.one", "openseg.pql.two", "openseg.pql.one"]]
    finally:
        del ALL["openseg.pql.one"], ALL["openseg.pql.two"]


def test_pql_modules_import_one_another_without_cycles() -> None:
    pql = {name for name in ALL if name == "openseg.pql" or name.startswith("openseg.pql.")}
    assert list(cycles(pql)) == []


def test_pql_imports_no_engine_and_the_engines_no_pql() -> None:
    pql = {name for name in ALL if name.startswith("openseg.pql.") or name == "openseg.pql"}
    engines = {name for name in ALL if name.startswith("openseg.engines")}
    outside = {target for module in pql for target in imports(module)} - pql
    assert {t for t in outside if not t.startswith("openseg.xdm")} == set()  # pql reads only XDM schemas
    assert {t for module in engines for t in imports(module) if t.startswith("openseg.pql")} == set()
