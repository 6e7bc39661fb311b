"""The promotion rule: `promote` compares challenger and champion on the champion's test split, image by image
(their logged predictions when they were scored on exactly those images, else one evaluation each), and moves
`champion` only when the challenger's gain in balanced accuracy is above `margin` beyond the noise: the lower end of
its 95% paired lesion-bootstrap interval must exceed `margin`. It refuses to compare on a leaky split: one whose
lesions cross its own boundaries, or whose test lesions the challenger saw in training. The decision is a value
(PromotionDecision, by `decide`) before it is recorded."""

from __future__ import annotations

from dataclasses import dataclass, field

import mlflow
import pandas as pd
from mlflow import MlflowClient

from skinml.core.errors import DataError, OptionError
from skinml.core.names import PROMOTE_METRICS, PROMOTED_TAG, PROMOTION_ARTIFACT, VERSION_PROMOTION
from skinml.core.recipe import DEFAULT_MODEL_NAME
from skinml.core.run_context import RunContext
from skinml.data.split import lesions_crossing
from skinml.features.cache import FeatureCache
from skinml.registry.evidence import compare, predictions_for
from skinml.registry.versions import CHALLENGER, CHAMPION, describe_version, mark_champion, version_by_alias
from skinml.stages.evaluate import evaluate
from skinml.tracking.runs import stage_run
from skinml.tracking.splits import run_manifest


class LeakySplitError(DataError):
    """Champion and challenger cannot be compared honestly on the champion's test split."""


@dataclass
class PromotionDecision:
    """What the promotion rule decided for a challenger against the champion, and why."""

    name: str
    champion_version: str
    challenger_version: str
    margin: float
    promoted: bool
    reason: str
    evidence: dict = field(default_factory=dict)  # skinml.registry.evidence.compare's figures; {} when not compared
    test_split_run_id: str | None = None
    evaluation_run_ids: dict[str, str] | None = None

    def as_dict(self, promotion_run_id: str) -> dict:
        """The decision as `promotion.json` holds it and `skinml promote` prints it."""
        compared = (
            {"test_split_run_id": self.test_split_run_id, "evaluation_run_ids": self.evaluation_run_ids}
            if self.evidence
            else {}
        )
        return {
            "name": self.name,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "margin": self.margin,
            "promotion_run_id": promotion_run_id,
            "promoted": self.promoted,
            **self.evidence,
            **compared,
            "reason": self.reason,
        }


def check_comparable(champion_run_id: str, challenger_run_id: str) -> pd.DataFrame:
    """The champion's test split (image_id, lesion_id, dx); LeakySplitError unless it is honest for both models."""
    champion_split = run_manifest(champion_run_id)
    if lesions_crossing(champion_split):
        raise LeakySplitError(
            f"the champion's split (run {champion_run_id}) has "
            f"{lesions_crossing(champion_split)} lesions on both sides: not a fair test"
        )
    test_lesions = set(champion_split.loc[champion_split["split"] == "test", "lesion_id"])
    challenger_split = run_manifest(challenger_run_id)
    seen = set(challenger_split.loc[challenger_split["split"] != "test", "lesion_id"])
    leaked = test_lesions & seen
    if leaked:
        raise LeakySplitError(
            f"the challenger (run {challenger_run_id}) trained on {len(leaked)} lesions of the "
            f"champion's test split, e.g. {sorted(leaked)[:3]}"
        )
    test = champion_split.loc[champion_split["split"] == "test", ["image_id", "lesion_id", "dx"]]
    return test.reset_index(drop=True)


def decide(
    name: str, champion_version: str, challenger_version: str, *, margin: float, evidence: dict | None
) -> PromotionDecision:
    """The rule itself: promoted when the lower end of the gain's 95% interval is above `margin`. Without evidence
    (the challenger is the champion already) nothing is compared."""
    if not evidence:
        return PromotionDecision(
            name,
            champion_version,
            challenger_version,
            margin,
            promoted=False,
            reason=f"v{champion_version} is the champion already (a version registered when "
            f"there is none becomes champion): nothing to compare",
        )
    low, high = evidence["difference_ci95"]
    promoted = low > margin
    reason = (
        f"v{challenger_version} {'became' if promoted else 'did not become'} champion: "
        f"balanced accuracy {evidence['challenger_balanced_accuracy']:.3f} against "
        f"v{champion_version}'s {evidence['champion_balanced_accuracy']:.3f} on "
        f"v{champion_version}'s test split ({evidence['n_images']} images, "
        f"{evidence['n_lesions']} lesions), gain {evidence['difference']:+.3f} "
        f"[95% paired lesion bootstrap {low:+.3f}, {high:+.3f}], whose lower end is "
        f"{'above' if promoted else 'not above'} the margin {margin}"
    )
    return PromotionDecision(
        name, champion_version, challenger_version, margin, promoted=promoted, reason=reason, evidence=evidence
    )


def record_promotion(decision: PromotionDecision, run_id: str) -> dict:
    """Record `decision` in the active promote run (figures, `promotion.json`, the `promoted` tag) and on both
    versions (a tag, the challenger's description), and move `champion` when promoted; returns its dict."""
    client = MlflowClient()
    name = decision.name
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, decision.challenger_version)
        mark_champion(
            client.get_model_version(name, decision.challenger_version),
            client.get_model_version(name, decision.champion_version),
        )
    evidence = decision.evidence
    if evidence:
        mlflow.log_metrics(
            dict(
                zip(
                    PROMOTE_METRICS,
                    (
                        evidence["champion_balanced_accuracy"],
                        evidence["challenger_balanced_accuracy"],
                        evidence["difference"],
                        *evidence["difference_ci95"],
                    ),
                )
            )
        )
    recorded = decision.as_dict(run_id)
    mlflow.log_dict(recorded, PROMOTION_ARTIFACT)
    mlflow.set_tag(PROMOTED_TAG, str(decision.promoted))
    for version in {decision.champion_version, decision.challenger_version}:
        client.set_model_version_tag(
            name,
            version,
            VERSION_PROMOTION,
            f"{'promoted' if decision.promoted else 'kept champion'} (run {run_id}): {decision.reason}",
        )
    describe_version(name, decision.challenger_version, decision.reason)
    return recorded


def promote(
    name: str = DEFAULT_MODEL_NAME,
    margin: float = 0.0,
    *,
    context: RunContext = RunContext(),
    cache: FeatureCache | None = None,
) -> dict:
    """Apply the promotion rule to the current challenger; record the decision; return it."""
    challenger = version_by_alias(name, CHALLENGER)
    champion = version_by_alias(name, CHAMPION)
    if challenger is None or champion is None:
        raise OptionError(f"registered model {name!r} needs both a {CHALLENGER!r} and a {CHAMPION!r} alias")
    with stage_run("promote", context, name=f"promote v{challenger.version} vs v{champion.version}") as run:
        evidence, sources = {}, None
        if challenger.version != champion.version:
            images = check_comparable(champion.run_id, challenger.run_id)

            def score(model_uri: str) -> str:  # a version not yet scored on these images: evaluated once
                return evaluate(
                    model_uri, context=context.under(run.info.run_id), cache=cache, manifest_run_id=champion.run_id
                )["run_id"]

            (champion_predicted, champion_source), (challenger_predicted, challenger_source) = (
                predictions_for(name, version, images, score) for version in (champion, challenger)
            )
            evidence = compare(images, champion_predicted, challenger_predicted)
            sources = {CHAMPION: champion_source, CHALLENGER: challenger_source}
        decision = decide(name, champion.version, challenger.version, margin=margin, evidence=evidence)
        if evidence:
            decision.test_split_run_id, decision.evaluation_run_ids = champion.run_id, sources
        return record_promotion(decision, run.info.run_id)
