"""Layer 9, stages: one module per pipeline stage (split, train, evaluate, sweep). Each computes its value with
the layers below, then logs it with skinml.tracking."""
