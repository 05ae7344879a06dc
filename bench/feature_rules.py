"""The rules both independent references of the features (features_duckdb.py, features_polars.py)
restate from the feature descriptions and the data contract, written once for the two of them and
never imported from the pipeline, so that a disagreement points at a definition."""

DAYS_PER_MONTH = 30.44
RATIO_FLOOR = 1e-9  # a denominator at most this large gives a missing ratio
TOLERANCE_CENTS = 100  # unpaid cents that still count as paid in full
FORGOTTEN_MAX_DAYS_LATE = 7  # paid in full within this many days of a due date left untouched
AGREEMENT_EVENTS = ("autodebit_authorised", "autodebit_revoked", "autodebit_cancelled")
# Within one day, platform events take effect in this order (authorised last: an agreement
# fixed the day it failed is fixed).
EVENT_ORDER = ("reauth_required", "autodebit_revoked", "debit_failed", "autodebit_cancelled",
               "autodebit_authorised")
