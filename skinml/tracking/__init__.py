"""Layer 8, tracking: MLflow records. Runs of stages, the logged model and what it carries, the split manifest,
evaluations and training results logged, the UI's compare views and the parent run's summary."""
