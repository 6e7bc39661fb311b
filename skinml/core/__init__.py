"""Layer 1, core: the recipe (TrainConfig, presets), settings (SKINML_*), names of everything skinml writes to
MLflow, label-set arithmetic, the error root, processes and memory. Imports nothing of skinml's other layers."""
