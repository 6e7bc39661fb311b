"""Where a stage's MLflow run goes, as one value that every stage and flow passes on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from skinml.core.recipe import DEFAULT_EXPERIMENT


@dataclass(frozen=True)
class RunContext:
    """A stage run's experiment, and the run it nests under (None: a run of its own)."""

    experiment: str = DEFAULT_EXPERIMENT
    parent_run_id: str | None = None

    def under(self, parent_run_id: str) -> RunContext:
        """The same experiment, runs nested under `parent_run_id`."""
        return dataclasses.replace(self, parent_run_id=parent_run_id)
