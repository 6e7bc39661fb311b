"""Layer 5, evaluation: figures computed from probabilities and labels (metrics, the decisions, their plots,
Grad-CAM) and an Evaluation value of a classifier on a set of images. No MLflow: a run logs what this computes."""
