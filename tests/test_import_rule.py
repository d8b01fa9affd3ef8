"""The engine and the converter run headless: importing them must never import Qt."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_engine_and_models_do_not_import_qt() -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for folder in ("app/engine", "models")
        for p in (ROOT / folder).glob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "qt = sorted(m for m in sys.modules if m.startswith('PySide6'))\n"
        "print(','.join(qt))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"Qt imported by the engine: {result.stdout}"


def test_ruff_bans_qt_outside_ui() -> None:
    """The rule in pyproject.toml is what keeps new engine code honest; prove it bites."""
    probe = ROOT / "app" / "engine" / "_qt_probe_for_test.py"
    probe.write_text("import PySide6\n")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--select", "TID251", str(probe)],
            cwd=ROOT, capture_output=True, text=True,
        )
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert "Qt belongs in app/ui only" in result.stdout


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of app/ and models/ it imports, read with ast: imports inside
    functions and under TYPE_CHECKING count too (a circle a lazy import hides is still one)."""
    modules: dict[str, Path] = {}
    for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("models/**/*.py")]:
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the package, up level - 1
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, node.module] if node.module else base)
                else:
                    module = node.module or ""
                imported.add(module)
                imported.update(f"{module}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while (top := stack.pop()) != module:
                component.append(top)
            if component:
                found.append(sorted([module, *component]))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle_in_app_or_models() -> None:
    graph = import_graph()
    assert {"app.engine.loader", "models.checkpoint", "app.ui.menus"} <= graph.keys()
    assert circles(graph) == []


def test_circles_are_found() -> None:
    """The check above passes only because there is no circle: one made up is caught."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_the_engine_never_imports_the_converter() -> None:
    """app/engine runs a converted model; the converter (models/) may read the engine's model-file
    format (app.engine.model_files, errors, tokenizer), never the other way."""
    graph = import_graph()
    offending = {module: sorted(m for m in imported if m.split(".")[0] == "models")
                 for module, imported in graph.items() if module.startswith("app.engine")}
    assert {module: found for module, found in offending.items() if found} == {}
