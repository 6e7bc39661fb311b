"""Layer 12 (the top), app: the `skinml` command, its options and console, `mlflow run`'s entry point, the
temporary Prefect server. The only layer that imports `flows`; nothing imports it."""
