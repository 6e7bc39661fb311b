"""Layer 7, serving: the pyfunc model MLflow loads and serves (skinml.serving.classifier), the request's form and
the check of a served model's files."""

# A model logged before the layers (its MLmodel's code, model_code.py) imports the class from here: it must stay.
from skinml.serving.classifier import SkinLesionClassifier

__all__ = ["SkinLesionClassifier"]
