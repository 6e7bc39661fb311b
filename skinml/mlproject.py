"""Entry for the MLproject file: MLflow passes every parameter, empty strings meaning 'not set'.

Drops options whose value is empty and forwards the rest to the `skinml` command.
"""

from __future__ import annotations

import sys

from skinml.cli import main


def drop_empty_options(argv: list[str]) -> list[str]:
    """['train', '--epochs', '', '--dropout', '0.3'] -> ['train', '--dropout', '0.3']."""
    kept: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i].startswith("--") and i + 1 < len(argv) and argv[i + 1] == "":
            i += 2
            continue
        kept.append(argv[i])
        i += 1
    return kept


if __name__ == "__main__":
    sys.exit(main(drop_empty_options(sys.argv[1:])))
