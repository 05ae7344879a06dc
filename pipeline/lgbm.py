"""LightGBM, imported without scikit-learn.

LightGBM imports scikit-learn, when installed, only for its scikit-learn estimator wrappers; that
is 1.0 s of the 1.4 s LightGBM costs each command at start-up (``python -X importtime``). The
pipeline uses the Booster API alone (``lgb.train``, ``lgb.Booster``), so the first import hides
scikit-learn from LightGBM; scikit-learn stays importable for the rest of the process.
"""

import sys

_hide = "lightgbm" not in sys.modules and "sklearn" not in sys.modules
if _hide:
    sys.modules["sklearn"] = None  # an import of it fails: LightGBM takes it as not installed
try:
    import lightgbm as lgb
finally:
    if _hide:
        del sys.modules["sklearn"]

__all__ = ["lgb"]
