"""pipeline.lgbm: LightGBM without scikit-learn at start-up, the Booster API intact, and
scikit-learn still importable afterwards."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

BOOSTER_THEN_SKLEARN = """
import sys
import numpy as np
from pipeline.lgbm import lgb
assert "sklearn" not in sys.modules, "scikit-learn was imported with LightGBM"
x = np.arange(200, dtype=float).reshape(-1, 1)
settings = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5}
booster = lgb.train(settings, lgb.Dataset(x, x[:, 0] > 100), 5)
p = booster.predict(x)
assert p[:50].max() < 0.5 < p[-50:].min(), "the booster did not learn a step"
from sklearn.metrics import roc_auc_score
assert roc_auc_score(x[:, 0] > 100, p) > 0.9
"""


def _run(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_lightgbm_trains_without_scikit_learn_which_stays_importable():
    _run(BOOSTER_THEN_SKLEARN)


def test_scikit_learn_imported_first_is_left_alone():
    _run("import sklearn, sys\nfrom pipeline.lgbm import lgb\n"
         "assert lgb.compat.SKLEARN_INSTALLED and sys.modules['sklearn'] is sklearn")
