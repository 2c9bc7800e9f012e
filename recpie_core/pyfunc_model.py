"""MLflow models-from-code entry point: MLflow copies this file into the model and runs it on load.

The logic lives in ``recpie_core.serving`` (the ``recpie`` package must be installed where the
model is loaded); this file only wraps it as a ``PythonModel`` and hands it to ``set_model``.
"""

import mlflow
import pandas as pd

from recpie_core.serving import RecommenderModel


class RecommenderPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.model = RecommenderModel()
        self.model.load(context.artifacts)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict(model_input)


mlflow.models.set_model(RecommenderPyfunc())
