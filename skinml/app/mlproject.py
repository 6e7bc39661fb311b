"""Entry for the MLproject file: turns what `mlflow run` passes into options of the `skinml` command.

MLflow passes every declared parameter, an empty string meaning 'not set', and appends each undeclared one
(`-P fine_tune_epochs=16`) as `--fine_tune_epochs 16`. So every `skinml` option is reachable from `mlflow run`:
`-P name=value`, with the option's name in snake case, and `true`/`false` for a flag (`-P feature_cache=false`).

A user error ends the command as `skinml` ends it: one line, exit status 2. `mlflow run` then adds its own line,
"=== Run (ID '...') failed ===", and exits 1: MLflow 3.17 keeps only whether its command's status was 0.
"""

from __future__ import annotations

import sys

from skinml.app.cli import main


def skinml_arguments(argv: list[str]) -> list[str]:
    """['train', '--epochs', '', '--fine_tune_epochs', '16', '--feature_cache', 'false']
    -> ['train', '--fine-tune-epochs', '16', '--no-feature-cache']: unset options dropped, names in the command's
    form, true/false values turned into the flag or its --no- form."""
    kept: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if not word.startswith("--") or i + 1 == len(argv) or argv[i + 1].startswith("--"):
            kept.append(word.replace("_", "-") if word.startswith("--") else word)
            i += 1
            continue
        option, value = word.replace("_", "-"), argv[i + 1]
        if value.lower() == "true":
            kept.append(option)
        elif value.lower() == "false":
            kept.append("--no-" + option[2:])
        elif value != "":
            kept += [option, value]
        i += 2
    return kept


if __name__ == "__main__":
    sys.exit(main(skinml_arguments(sys.argv[1:])))
