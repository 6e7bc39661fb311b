"""The import rule of skinml's layers (docs/architecture.md), checked on the code's own imports (an AST walk):

- a module imports only from its own layer and the layers below it (so nothing imports the app layer, and only the
  app layer imports `flows`);
- the compute layers (core, data, model, features, evaluation, audit, training) import neither MLflow, Prefect nor
  Optuna; only `flows` and the app layer import Prefect; only the stages import Optuna;
- no import circle between modules;
- a function-local import says why it is there (a comment: it saves start-up time, or breaks nothing else).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = (
    "core",
    "data",
    "model",
    "features",
    "evaluation",
    "audit",
    "training",
    "serving",
    "tracking",
    "stages",
    "registry",
    "flows",
    "app",
)
COMPUTE = LAYERS[:7]
FORBIDDEN = {  # third-party package -> the layers that must not import it
    "mlflow": COMPUTE,
    "prefect": tuple(layer for layer in LAYERS if layer not in ("flows", "app")),
    "optuna": tuple(layer for layer in LAYERS if layer != "stages"),
}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """`skinml.tracking.runs` -> tracking, `flows.pipeline` -> flows, the package `skinml` itself -> core."""
    parts = module.split(".")
    if parts[0] == "flows":
        return "flows"
    return parts[1] if len(parts) > 1 else "core"


def imports_of(path: Path, module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import statement of a file, relative ones resolved."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    local = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in local) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, node.lineno, id(node) in local))
            found += [(f"{base}.{alias.name}", node.lineno, id(node) in local) for alias in node.names]
    return found


def project_modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for folder in ("skinml", "flows") for path in (root / folder).rglob("*.py")}


def violations(root: Path) -> list[str]:
    """Every break of the rules above in the tree at `root`, one line each."""
    modules = project_modules(root)
    problems, edges = [], {name: set() for name in modules}
    for name, path in modules.items():
        lines = path.read_text().splitlines()
        own = LAYERS.index(layer_of(name))
        for target, line, in_function in imports_of(path, name):
            where = f"{path.relative_to(root)}:{line}"
            top = target.split(".")[0]
            if top in FORBIDDEN and layer_of(name) in FORBIDDEN[top]:
                problems.append(f"{where}: the {layer_of(name)} layer imports {top}")
            if target in modules and target != name:
                edges[name].add(target)
                if LAYERS.index(layer_of(target)) > own:
                    problems.append(
                        f"{where}: {name} ({layer_of(name)}) imports {target} ({layer_of(target)}), a layer above it"
                    )
            if in_function and not explained(lines, line):
                problems.append(f"{where}: a function-local import without a comment saying why")
    problems += [f"import circle: {' -> '.join(circle)}" for circle in circles(edges)]
    return sorted(set(problems))


def explained(lines: list[str], line: int) -> bool:
    """Whether the import at `line` (from 1) carries a comment, or the comment that heads its run of imports (the
    lines above it that are imports or blank)."""
    if "#" in lines[line - 1]:
        return True
    above = line - 2
    while above >= 0 and (not lines[above].strip() or lines[above].strip().startswith(("import ", "from "))):
        above -= 1
    return above >= 0 and "#" in lines[above]


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules that import each other (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_skinml_and_flows_keep_the_import_rule():
    assert violations(ROOT) == []


def test_every_module_is_in_a_layer():
    modules = [name for name in project_modules(ROOT) if name not in ("skinml", "flows")]
    assert [name for name in modules if layer_of(name) not in LAYERS] == []


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("skinml/core/bad.py", "import mlflow\n", "the core layer imports mlflow"),
        ("skinml/data/bad.py", "from skinml.tracking.runs import stage_run\n", "a layer above it"),
        ("skinml/registry/bad.py", "import flows.pipeline\n", "a layer above it"),
        ("skinml/stages/bad.py", "import prefect\n", "the stages layer imports prefect"),
        ("skinml/core/bad.py", "def f():\n    import json\n", "without a comment"),
        ("skinml/core/bad.py", "from skinml.core import other\n", "import circle"),
    ],
)
def test_a_broken_rule_is_found(tmp_path, module, source, broken):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows/__init__.py").write_text("")
    (tmp_path / "flows/pipeline.py").write_text("")
    for package in ("skinml", "skinml/core", "skinml/data", "skinml/registry", "skinml/stages", "skinml/tracking"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "skinml/tracking/runs.py").write_text("def stage_run():\n    pass\n")
    (tmp_path / "skinml/core/other.py").write_text("from skinml.core import bad  # noqa\n")
    (tmp_path / module).write_text(source)
    assert any(broken in problem for problem in violations(tmp_path)), violations(tmp_path)
