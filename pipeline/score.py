"""Scoring a batch of borrowers: probability, risk band, reasons in the article's terms and the
action a lender should take. Pure functions over one batch; the CLI streams batches through them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import metrics
from pipeline.catalog import BY_NAME, CAUSE_CATEGORIES
from pipeline.model import CalibratedLightGBM

ACTIONS = {
    "technical": "remind the borrower and repair the auto-debit agreement; do not lower the limit",
    "liquidity": "offer a repayment plan and check repayment capacity before any further increase",
    "credit": "stop further limit increases and contact the borrower early",
    "none": "none",
}
OUTPUT_COLUMNS = ["borrower_id", "scoring_date", "probability", "risk_band", "leading_cause",
                  *[f"reason_{i}" for i in range(1, 5)], "action", "model_version"]


def risk_band(p: np.ndarray, bands: dict[str, float]) -> np.ndarray:
    """The first band whose upper bound the probability does not exceed (bands in order)."""
    names, uppers = list(bands), np.array(list(bands.values()))
    return np.array(names, dtype=object)[np.minimum(np.searchsorted(uppers, p, side="left"), len(names) - 1)]


def _membership(features: list[str], key) -> tuple[list[str], np.ndarray]:
    """Groups of features by ``key`` (a function of the catalogue entry; None = no group) as a
    (features, groups) 0/1 matrix, so per-group sums are one matrix product."""
    keys = [key(BY_NAME[f]) if f in BY_NAME else None for f in features]
    groups = list(dict.fromkeys(k for k in keys if k))
    matrix = np.array([[k == g for g in groups] for k in keys], dtype=float).reshape(len(features), -1)
    return groups, matrix


def cause_contributions(contrib: np.ndarray, features: list[str]) -> pd.DataFrame:
    """Log-odds contributions summed by the catalogue's cause category (features the catalogue
    does not know belong to no category and are left out)."""
    names, matrix = _membership(features, lambda f: f.cause)
    sums = contrib[:, :-1] @ matrix
    return pd.DataFrame({c: sums[:, names.index(c)] if c in names else 0.0 for c in CAUSE_CATEGORIES})


def reasons(contrib: np.ndarray, features: list[str], max_reasons: int) -> list[np.ndarray]:
    """Up to ``max_reasons`` reasons per borrower: contributions summed per reason (features that
    share a reason share its sum), the ones that raised the risk most, in the catalogue's words."""
    texts, matrix = _membership(features, lambda f: f.reason or None)
    raised = np.maximum(contrib[:, :-1] @ matrix, 0.0)
    order = np.argsort(-raised, axis=1, kind="stable")[:, :max_reasons]
    texts = np.array(texts, dtype=object)
    out = []
    for rank in range(min(max_reasons, len(texts))):
        chosen = order[:, rank]
        out.append(np.where(raised[np.arange(len(chosen)), chosen] > 0, texts[chosen], None))
    return out


def leading_cause(by_cause: pd.DataFrame) -> np.ndarray:
    """The cause (credit, liquidity or technical) that raised the risk most."""
    causes = by_cause[["credit", "liquidity", "technical"]]
    return causes.columns.to_numpy()[np.argmax(causes.to_numpy(), axis=1)]


def score_batch(model: CalibratedLightGBM, frame: pd.DataFrame, bands: dict[str, float],
                quiet_bands: tuple[str, ...], version: str, max_reasons: int = 4,
                explain_risky: bool = True) -> pd.DataFrame:
    """One output row per borrower of ``frame`` (a features frame with borrower_id and
    scoring_date). Reasons and the leading cause are worked out only for borrowers outside the
    quiet bands (and not at all without ``explain_risky``): TreeSHAP costs far more than the
    prediction and low risk needs no explanation."""
    p = model.predict(frame)
    band = risk_band(p, bands)
    explain = ~np.isin(band, quiet_bands) & explain_risky
    # a risky borrower left unexplained has no cause and no action (not "none": that means safe)
    cause = np.where(np.isin(band, quiet_bands), "none", None).astype(object)
    text = [np.full(len(frame), None, dtype=object) for _ in range(4)]
    if explain.any():
        contrib = model.contributions(frame[explain])
        cause[explain] = leading_cause(cause_contributions(contrib, model.features))
        for i, column in enumerate(reasons(contrib, model.features, max_reasons)):
            text[i][explain] = column
    out = pd.DataFrame({"borrower_id": frame["borrower_id"].to_numpy(),
                        "scoring_date": frame["scoring_date"].to_numpy(),
                        "probability": p, "risk_band": band, "leading_cause": cause})
    for i in range(4):
        out[f"reason_{i + 1}"] = text[i]
    out["action"] = np.vectorize(ACTIONS.get, otypes=[object])(cause)
    out["model_version"] = version
    for col in ("risk_band", "leading_cause", "action", "model_version",
                *[f"reason_{i}" for i in range(1, 5)]):
        out[col] = out[col].astype("str")
    return out[OUTPUT_COLUMNS]


class Drift:
    """Adds up, batch after batch, how scores and watched features fall into the training
    reference's bins; PSI at the end."""

    def __init__(self, reference: dict):
        self.reference = reference
        self.counts = {name: np.zeros(len(ref["counts"]), dtype="int64") for name, ref in reference.items()}

    def add(self, values: dict[str, np.ndarray]) -> None:
        for name, ref in self.reference.items():
            self.counts[name] += metrics.bin_counts(values[name], ref["edges"])

    def summary(self) -> dict:
        out = {}
        for name, ref in self.reference.items():
            if self.counts[name].sum() == 0:
                continue
            result = metrics.psi_from_counts(ref, self.counts[name])
            out[name] = {"psi": result["psi"], "flag": result["flag"]}
        return out
