"""skinml/mlflow_names.py names every skinml.* tag and every artifact skinml writes, and docs/mlflow.md describes each
of them."""

import itertools
import re
from pathlib import Path

from skinml.mlflow_names import all_artifacts, all_tags

ROOT = Path(__file__).resolve().parents[1]


def expanded(name: str) -> set[str]:
    """`skinml.split_{n_train,n_val}` -> {skinml.split_n_train, skinml.split_n_val}."""
    parts = re.split(r"\{([^}]*)\}", name)
    choices = [[part] if i % 2 == 0 else part.split(",") for i, part in enumerate(parts)]
    return {"".join(combination) for combination in itertools.product(*choices)}


def test_docs_describe_exactly_the_tags_skinml_writes():
    modules = {p.stem for p in (ROOT / "skinml").rglob("*.py")} | {"data"}
    text = (ROOT / "docs/mlflow.md").read_text()
    documented = set().union(*(expanded(name) for name in re.findall(r"skinml\.[a-z0-9_]+(?:\{[a-z0-9_,]+\})?", text)))
    documented = {name for name in documented if name.split(".", 1)[1] not in modules and not name.endswith("_")}
    assert documented == all_tags()


def test_no_module_spells_a_tag_itself():
    sources = [p for folder in ("skinml", "flows") for p in (ROOT / folder).rglob("*.py")
               if p.name != "mlflow_names.py"]
    spelled = {f"{p.relative_to(ROOT)}: {m}" for p in sources
               for m in re.findall(r"""["'](skinml\.[a-z0-9_]+)["']""", p.read_text())
               if m.split(".", 1)[1] not in {q.stem for q in (ROOT / "skinml").rglob("*.py")} | {"data"}}
    assert spelled == set()


def test_docs_name_every_artifact_and_no_module_spells_one_itself():
    text = (ROOT / "docs/mlflow.md").read_text()
    assert [path for path in sorted(all_artifacts()) if f"`{path}`" not in text and f"{path}`" not in text] == []
    sources = [p for folder in ("skinml", "flows") for p in (ROOT / folder).rglob("*.py")
               if p.name != "mlflow_names.py"]
    spelled = {f"{p.relative_to(ROOT)}: {path}" for p in sources for path in all_artifacts()
               if f'"{path}"' in p.read_text()}
    assert spelled == set()
