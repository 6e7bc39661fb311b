"""Layer 6, training: a classifier fitted on a labelled split (the cached-feature and end-to-end paths, the head's
epochs, calibration), returned as a TrainingResult value. No MLflow: each epoch's figures go to a callback."""
