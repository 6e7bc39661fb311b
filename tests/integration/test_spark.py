"""The registered model on a real Spark (PySpark in local mode): `mlflow.pyfunc.spark_udf` over Spark's own image
reader, in each way an MLflow user would first call it, answers what `pyfunc.predict` answers."""

import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from skinml.core.recipe import TrainConfig
from skinml.data.dataset import HAM10000_CLASSES as CLASSES
from skinml.registry.versions import register
from skinml.stages.train import train
from skinml.tracking.model_store import load_model, request_frame

from ..conftest import IMAGE_SIZE

pyspark = pytest.importorskip("pyspark", reason="PySpark is the optional extra skinml[spark]")
pytestmark = pytest.mark.skipif(
    shutil.which("java") is None, reason="Spark needs Java: apt-get install default-jre-headless"
)
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

MODEL = "models:/skinml@champion"


@pytest.fixture
def spark(monkeypatch):
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # the workers run this environment (env_manager="local")
    monkeypatch.setenv("SKINML_ENGINE", "auto")  # OpenVINO on a CPU, as for users
    session = (
        SparkSession.builder.master("local[2]")
        .appName("skinml-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_udf_scores_binary_files_in_every_natural_form(synthetic_dir, test_weights, spark, subtests):
    import mlflow

    trained = train(
        TrainConfig(
            weights=test_weights, image_size=IMAGE_SIZE, epochs=1, cached_views=1, target_balanced_accuracy=0.05
        ),
        synthetic_dir,
    )
    register(trained["model_uri"])
    images = spark.read.format("binaryFile").option("pathGlobFilter", "*.jpg").load(str(synthetic_dir / "images"))
    images = images.repartition(1).sortWithinPartitions("path").cache()  # 84 rows in one batch: over the HTTP limit
    files = images.select("path", "content").toPandas()
    assert len(files) == 84
    expected = load_model(MODEL).predict(request_frame(files["content"].tolist()))  # one call: any number of rows
    assert len(expected) == 84

    udf = mlflow.pyfunc.spark_udf(spark, MODEL, env_manager="local")  # the result type from the signature

    def answers(frame) -> pd.DataFrame:
        return frame.select("path", "prediction.*").toPandas().sort_values("path").reset_index(drop=True)

    def check(answer: pd.DataFrame) -> None:
        assert answer["path"].tolist() == files["path"].tolist()
        assert answer["label"].tolist() == expected["label"].tolist()
        np.testing.assert_allclose(answer[list(CLASSES)].to_numpy(), expected[list(CLASSES)].to_numpy(), atol=1e-6)
        for column in ("p_positive", "refer", "defer", "familiarity_distance", "unfamiliar"):
            assert column in answer.columns

    with subtests.test('udf("content"): the bytes column'):
        check(answers(images.withColumn("prediction", udf("content"))))
    with subtests.test('udf(col("content").alias("image"))'):
        check(answers(images.withColumn("prediction", udf(F.col("content").alias("image")))))
    with subtests.test("base64 as Spark writes it (MIME line breaks), by name and in a struct"):
        encoded = images.withColumn("image", F.base64("content"))
        assert "\r\n" in encoded.first()["image"]
        check(answers(encoded.withColumn("prediction", udf("image"))))
        check(answers(encoded.withColumn("prediction", udf(F.struct("image")))))
    with subtests.test('result_type="string": the label'):
        labels = mlflow.pyfunc.spark_udf(spark, MODEL, env_manager="local", result_type="string")
        answer = images.withColumn("label", labels("content")).select("path", "label").toPandas()
        assert answer.sort_values("path")["label"].tolist() == expected["label"].tolist()
    with subtests.test("a bad image or a missing one is named by its row"):  # the first three rows, in one batch
        broken = images.limit(3).withColumn(
            "content", F.when(F.col("path") == files["path"][1], F.lit(b"x")).otherwise(F.col("content"))
        )
        with pytest.raises(Exception, match=r"InvalidImageError: row 1: not a JPEG/PNG image"):
            broken.withColumn("prediction", udf("content")).collect()
        missing = images.limit(3).withColumn("content", F.when(F.col("path") == files["path"][1], F.col("content")))
        with pytest.raises(Exception, match=r"InvalidImageError: row 0: no image \(null\)"):
            missing.withColumn("prediction", udf("content")).collect()
