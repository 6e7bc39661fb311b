"""The served model's side of a request's form: where the images are in what MLflow's scoring server parsed, and the
errors the model answers with: one short line naming the problem (and the row), never the request's data nor a stack
trace. The size limits and the checks of each image are in skinml.serving.classifier."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

IMAGE_COLUMN = "image"
# MLflow names a column by its position where the model has no input schema: spark_udf's first argument is "0"
POSITIONAL_COLUMN = "0"


class ServingError(MlflowException):
    """An error the served model answers with, its message kept as skinml wrote it."""

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        # MLflow's scoring server rewrites the message as "Failed to predict data '<the whole request>'. Error: ...":
        # megabytes of the client's own base64 sent back. The first message, ours, is the one kept.
        if not hasattr(self, "_message"):
            self._message = value


class InvalidImageError(ServingError):
    """A request, or a row of it, that is not a usable image (served as HTTP 400)."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class RequestTooLargeError(InvalidImageError):
    """A request over one of the size limits (served as HTTP 413, naming the limit)."""

    def get_http_status_code(self) -> int:
        return 413


class ModelFailure(ServingError):
    """An unexpected error of the model on a request (served as HTTP 500; the traceback goes to the server's log)."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INTERNAL_ERROR)


def image_values(model_input: object) -> list:
    """The request's images, one value per row. The model has no input schema, so MLflow passes the request as it
    parsed it: a DataFrame (`dataframe_records`, `dataframe_split`, CSV, Parquet, a spark_udf batch), a dict of
    columns (`inputs`, `instances`), a list of records, or an array for a bare list of images. The images are the
    column `image`, else the column MLflow named `0` (spark_udf's first argument: `udf("content")`)."""
    if isinstance(model_input, list) and model_input and all(isinstance(row, dict) for row in model_input):
        model_input = pd.DataFrame(model_input)  # `inputs` given as records
    if isinstance(model_input, pd.DataFrame):
        columns = [str(name) for name in model_input.columns]
        if columns and columns[0].lstrip().startswith(("{", "[")):  # pandas read a JSON body as a CSV header
            raise InvalidImageError("the request is JSON sent as text/csv: send it as Content-Type: application/json")
        if len(model_input) == 0:
            raise InvalidImageError("no images in the request")
        if columns.count(IMAGE_COLUMN) > 1:
            raise InvalidImageError(f"more than one column '{IMAGE_COLUMN}' in the request")
        if IMAGE_COLUMN in columns:
            column = model_input[IMAGE_COLUMN]
        elif POSITIONAL_COLUMN in columns:  # spark_udf's udf("content"); pandas' name for a bare list
            column = model_input.iloc[:, columns.index(POSITIONAL_COLUMN)]
        else:
            column = None
    elif isinstance(model_input, dict):
        column = model_input.get(IMAGE_COLUMN)
    elif isinstance(model_input, (list, np.ndarray)):
        column = model_input  # a list of images is the image column, as MLflow reads it for a one-column model
    else:
        column = None
    if column is None:
        raise InvalidImageError(
            f"no column '{IMAGE_COLUMN}' in the request: send base64-encoded JPEG/PNG files in "
            f"a column '{IMAGE_COLUMN}'"
        )
    if isinstance(column, (str, bytes)) or (isinstance(column, np.ndarray) and column.ndim == 0):
        column = [column]  # one image, not in a list
    values = [value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value for value in column]
    if not values:
        raise InvalidImageError("no images in the request")
    return values
