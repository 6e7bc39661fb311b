"""The code of a logged skinml model, as MLflow's models-from-code stores it: loading the model runs this file,
so the logged model holds no pickled Python object (MLflow may refuse pickles: MLFLOW_ALLOW_PICKLE_DESERIALIZATION)."""

import mlflow

from skinml.serving.classifier import SkinLesionClassifier

mlflow.models.set_model(SkinLesionClassifier())
