"""skinml/core/names.py names every metric, skinml.* tag and artifact skinml writes, and docs/mlflow.md describes each
of them."""

import itertools
import re
from pathlib import Path

import numpy as np

from skinml.core.names import (
    AUDIT_METRICS,
    BEST_PARAMETER_PREFIX,
    BEST_VALUE_METRIC,
    PROMOTE_METRICS,
    TEST,
    all_artifacts,
    all_tags,
    metric_name,
    version_tags,
)
from skinml.evaluation.decisions import choose, chosen_thresholds, decision_metrics, score
from skinml.evaluation.metrics import (
    classification_metrics,
    flat_metrics,
    headline_metrics,
    interval_metrics,
    lesion_bootstrap_intervals,
)

ROOT = Path(__file__).resolve().parents[2]
NAMES = ROOT / "skinml/core/names.py"
# what `skinml.<word>` names when it is not a tag: a module or package of skinml (or a logger named after one)
MODULES = {p.stem for p in (ROOT / "skinml").rglob("*.py")} | {
    p.name for p in (ROOT / "skinml").iterdir() if p.is_dir()
}


def expanded(name: str) -> set[str]:
    """`skinml.split_{n_train,n_val}` -> {skinml.split_n_train, skinml.split_n_val}."""
    parts = re.split(r"\{([^}]*)\}", name)
    choices = [[part] if i % 2 == 0 else part.split(",") for i, part in enumerate(parts)]
    return {"".join(combination) for combination in itertools.product(*choices)}


def test_docs_describe_exactly_the_tags_skinml_writes():
    text = (ROOT / "docs/mlflow.md").read_text()
    documented = set().union(*(expanded(name) for name in re.findall(r"skinml\.[a-z0-9_]+(?:\{[a-z0-9_,]+\})?", text)))
    documented = {name for name in documented if name.split(".", 1)[1] not in MODULES and not name.endswith("_")}
    assert documented == all_tags()


def test_no_module_spells_a_tag_itself():
    sources = [p for folder in ("skinml", "flows") for p in (ROOT / folder).rglob("*.py") if p != NAMES]
    spelled = {
        f"{p.relative_to(ROOT)}: {m}"
        for p in sources
        for m in re.findall(r"""["'](skinml\.[a-z0-9_]+)["']""", p.read_text())
        if m.split(".", 1)[1] not in MODULES
    }
    assert spelled == set()


def test_docs_name_every_artifact_and_no_module_spells_one_itself():
    text = (ROOT / "docs/mlflow.md").read_text()
    assert [path for path in sorted(all_artifacts()) if f"`{path}`" not in text and f"{path}`" not in text] == []
    sources = [p for folder in ("skinml", "flows") for p in (ROOT / folder).rglob("*.py") if p != NAMES]
    spelled = {
        f"{p.relative_to(ROOT)}: {path}" for p in sources for path in all_artifacts() if f'"{path}"' in p.read_text()
    }
    assert spelled == set()


def spelled_names(text: str) -> set[str]:
    """Every name spelled in backticks, braces expanded (`<class>` left as it is)."""
    spans = [name.strip() for span in re.findall(r"`([^`]+)`", text) for name in re.split(r",\s*(?![^{]*\})", span)]
    return set().union(*(expanded(name) for name in spans if re.fullmatch(r"[a-z0-9_{},/<>]+", name)))


def documented_metrics() -> set[str]:
    """The names docs/mlflow.md spells, less those of its rows of parameters."""
    lines = (ROOT / "docs/mlflow.md").read_text().splitlines()
    params = [line for line in lines if line.startswith("|") and "params" in line.split("|")[1]]
    return spelled_names("\n".join(lines)) - spelled_names("\n".join(params))


def test_docs_name_every_metric_the_writers_log():
    classes = ("akiec", "mel", "nv")
    rng = np.random.default_rng(0)
    y_true = np.tile([0, 1, 2], 20)
    probs = rng.dirichlet(np.ones(3), len(y_true))
    lesions = np.arange(len(y_true)) // 2
    decisions = choose(
        probs, y_true, classes, positive_classes=["mel"], target_sensitivities=[0.9], target_balanced_accuracy=0.8
    )
    scored = classification_metrics(y_true, probs, classes)
    logged = {
        **flat_metrics(scored, TEST),
        metric_name(TEST, "ece"): 0.1,
        **interval_metrics(lesion_bootstrap_intervals(y_true, probs, lesions, classes, n_resamples=20), TEST),
        **decision_metrics(score(probs, y_true, classes, decisions, lesions, n_resamples=20), TEST),
        **chosen_thresholds(decisions),
        **headline_metrics(scored, {}),
    }
    logged = {re.sub(r"/(akiec|mel|nv)$", "/<class>", name) for name in logged}
    logged |= {
        *AUDIT_METRICS,
        *PROMOTE_METRICS,
        BEST_VALUE_METRIC,
        *(BEST_PARAMETER_PREFIX + p for p in ("dropout", "learning_rate")),
    }
    assert "test_recall_ci95_low/<class>" in logged and "test_sens90_ppv_ci95_high" in logged
    assert logged - documented_metrics() == set()


def test_no_module_spells_a_metric_name_itself():
    documented = {name for name in documented_metrics() if re.match(r"(train|val|test)_", name)}
    sources = [p for folder in ("skinml", "flows") for p in (ROOT / folder).rglob("*.py") if p != NAMES]
    spelled = {
        f"{p.relative_to(ROOT)}: {m}"
        for p in sources
        for m in re.findall(r"""["']((?:train|val|test)_[a-z_]+)["']|\{(?:prefix|split)\}_""", p.read_text())
        if m in documented or m == ""
    }
    assert spelled == set()


def test_docs_name_every_tag_of_a_registered_version():
    text = (ROOT / "docs/mlflow.md").read_text()
    paragraph = text[text.index("Registered model `skinml`") :]
    assert {tag for tag in version_tags() if f"{tag}," not in paragraph and f"`{tag}`" not in paragraph} == set()
