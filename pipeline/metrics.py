"""Model metrics: ranking, probability quality, lift, stability and distance from the true probability.

Pure functions. ``y`` is a 0/1 array of outcomes (missed repayment = 1, shape (n,)), ``p`` an array
of predicted probabilities in [0, 1] of the same shape. Results are plain Python numbers, dicts
and DataFrames with plain columns, so ``json.dumps`` works after ``DataFrame.to_dict()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

LOG_LOSS_CLIP = 1e-15
PSI_SHARE_FLOOR = 1e-4  # keeps ln(a / e) finite when a bin is empty in one sample
PSI_WATCH = 0.10
PSI_SHIFTED = 0.25
MIN_PSI_ROWS = 200  # a PSI over fewer rows (10 bins) measures little but their sampling
MISSING = "missing"


def _sklearn():
    """scikit-learn's metrics, imported at first use: the scorer needs none of them, and with
    LightGBM imported without scikit-learn (``pipeline.lgbm``) it starts without scikit-learn."""
    from sklearn import metrics as sk

    return sk


# ---------------------------------------------------------------------------------------------
# Input handling and shared helpers


def _as_float(values: Any) -> np.ndarray:
    """A 1-D float array; pandas missing values (``pd.NA``) become NaN."""
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(values, dtype=float).reshape(-1)


def _pair(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes and scores as float arrays of the same, non-zero length."""
    y, p = _as_float(y), _as_float(p)
    if len(y) != len(p):
        raise ValueError(f"y and p must have the same length, got {len(y)} and {len(p)}")
    if len(y) == 0:
        raise ValueError("y and p must not be empty")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must contain only 0 and 1")
    return y, p


def _require_both_classes(y: np.ndarray) -> None:
    if y.min() == y.max():
        raise ValueError("y must contain both classes (0 and 1) for this metric")


def _rank_bins(p: np.ndarray, bins: int, descending: bool = False, split_ties: bool = True) -> np.ndarray:
    """Bin number 1..bins per row, equal counts by rank of ``p``.

    The sort is stable, so tied scores are split by original row order, never arbitrarily. With
    fewer rows than bins, each row is its own bin, numbered without gaps. Without ``split_ties``,
    tied scores share the bin of the first of them (numbered without gaps; counts then differ):
    a calibration table must not depend on row order, and an isotonic calibration gives many ties.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    bins = min(bins, len(p))
    key = -p if descending else p
    order = np.argsort(key, kind="stable")
    if not split_ties:
        first = np.searchsorted(key[order], key, side="left")
        return np.unique(first * bins // len(p), return_inverse=True)[1].astype(np.int64) + 1
    out = np.empty(len(p), dtype=np.int64)
    out[order] = np.arange(len(p)) * bins // len(p) + 1
    return out


def calibration_bins(p: np.ndarray, bins: int) -> np.ndarray:
    """Bin number per row of the ``bins`` equal-count bins by ascending ``p`` that ECE is measured
    over, tied probabilities in one bin (``_rank_bins`` without ``split_ties``)."""
    return _rank_bins(np.asarray(p, dtype=float), bins, split_ties=False)


def _binned(y: np.ndarray, p: np.ndarray, bins: int, descending: bool = False,
            split_ties: bool = True) -> pd.DataFrame:
    """Per equal-count bin: n, positives, observed rate and the mean, min and max score (ties
    split as ``_rank_bins`` says)."""
    frame = pd.DataFrame({"bin": _rank_bins(p, bins, descending, split_ties), "y": y, "p": p})
    table = frame.groupby("bin", sort=True).agg(
        n=("y", "size"), positives=("y", "sum"), observed_rate=("y", "mean"),
        mean_predicted=("p", "mean"), min_score=("p", "min"), max_score=("p", "max"))
    table["positives"] = table["positives"].astype(np.int64)
    return table.reset_index()


def _downsample(frame: pd.DataFrame, points: int) -> pd.DataFrame:
    """At most ``points`` evenly spaced rows, always keeping the first and the last."""
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    if len(frame) <= points:
        return frame.reset_index(drop=True)
    keep = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(np.int64))
    return frame.iloc[keep].reset_index(drop=True)


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Intercept, slope and R² of the least-squares line y = a + b * x."""
    design = np.column_stack([np.ones_like(x), x])
    (intercept, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = np.sum((y - intercept - slope * x) ** 2)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - residual / total if total > 0 else float("nan")
    return float(intercept), float(slope), float(r2)


def logistic_calibration(y: np.ndarray, p: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Intercept and slope of an unpenalised logistic regression of y on logit(p).

    Newton steps from (0, 1), i.e. from perfect calibration; a step is halved while it lowers the
    likelihood, which keeps the iteration stable far from the optimum. NaN if y has one class
    (no finite maximum) or p is constant (no slope); with perfectly separated data the result is
    large, not meaningful.
    """
    if y.min() == y.max() or p.min() == p.max():
        return float("nan"), float("nan")
    design = np.column_stack([np.ones_like(p), logit(np.clip(p, LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP))])

    def loglik(beta: np.ndarray) -> float:
        eta = design @ beta
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))

    beta = np.array([0.0, 1.0])
    current = loglik(beta)
    for _ in range(iterations):
        mu = expit(design @ beta)
        hessian = design.T @ (design * (mu * (1 - mu))[:, None])
        step = np.linalg.lstsq(hessian, design.T @ (y - mu), rcond=None)[0]
        for _ in range(30):
            candidate = loglik(beta + step)
            if candidate >= current - 1e-12:
                break
            step = step / 2
        beta, current = beta + step, candidate
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def logistic_calibration_slope_se(y: np.ndarray, p: np.ndarray, intercept: float, slope: float) -> float:
    """Standard error of ``logistic_calibration``'s slope at its estimate (intercept, slope): the
    square root of the slope's entry of the inverse Fisher information."""
    x = logit(np.clip(p, LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP))
    design = np.column_stack([np.ones_like(x), x])
    mu = expit(intercept + slope * x)
    information = design.T @ (design * (mu * (1 - mu))[:, None])
    return float(np.sqrt(np.linalg.inv(information)[1, 1]))


# ---------------------------------------------------------------------------------------------
# Ranking


def ranking(y: Any, p: Any) -> dict:
    """AUC, Gini, KS, average precision, base rate, row and positive counts (all unitless)."""
    y, p = _pair(y, p)
    _require_both_classes(y)
    auc = float(_sklearn().roc_auc_score(y, p))
    # All thresholds, so the maximum gap is exact (equal to the two-sample KS statistic).
    fpr, tpr, _ = _sklearn().roc_curve(y, p, drop_intermediate=False)
    return {
        "auc": auc,
        "gini": 2 * auc - 1,
        "ks": float(np.max(tpr - fpr)),
        "pr_auc": float(_sklearn().average_precision_score(y, p)),
        "base_rate": float(y.mean()),
        "n": int(len(y)),
        "positives": int(y.sum()),
    }


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an AUC from its value and the class counts (Hanley & McNeil, 1982,
    Radiology 143:29, their equation 1: the two classes' scores taken as exponential)."""
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc ** 2)
                + (negatives - 1) * (q2 - auc ** 2)) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def ks_curve(y: Any, p: Any, points: int = 101) -> pd.DataFrame:
    """TPR, FPR and their gap at ``points`` thresholds on evenly spaced quantiles of p.

    A row's rates count scores >= threshold. Shape (points, 4): threshold, tpr, fpr, gap.
    """
    y, p = _pair(y, p)
    _require_both_classes(y)
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    thresholds = np.quantile(p, np.linspace(0.0, 1.0, points))
    pos, neg = np.sort(p[y == 1]), np.sort(p[y == 0])
    tpr = 1.0 - np.searchsorted(pos, thresholds, side="left") / len(pos)
    fpr = 1.0 - np.searchsorted(neg, thresholds, side="left") / len(neg)
    return pd.DataFrame({"threshold": thresholds, "tpr": tpr, "fpr": fpr, "gap": tpr - fpr})


def roc_points(y: Any, p: Any, points: int = 201) -> pd.DataFrame:
    """ROC curve (columns fpr, tpr) from (0, 0) to (1, 1), at most ``points`` rows."""
    y, p = _pair(y, p)
    _require_both_classes(y)
    fpr, tpr, _ = _sklearn().roc_curve(y, p)
    return _downsample(pd.DataFrame({"fpr": fpr, "tpr": tpr}), points)


def pr_points(y: Any, p: Any, points: int = 201) -> pd.DataFrame:
    """Precision-recall curve (columns recall, precision), recall ascending, at most ``points`` rows."""
    y, p = _pair(y, p)
    _require_both_classes(y)
    precision, recall, _ = _sklearn().precision_recall_curve(y, p)
    # sklearn returns recall descending; plots and readers expect it ascending.
    frame = pd.DataFrame({"recall": recall[::-1], "precision": precision[::-1]})
    return _downsample(frame, points)


# ---------------------------------------------------------------------------------------------
# Probability quality


# the bins of the ECE every training run logs and the gates judge (``evaluate.bins`` sets the
# evaluation's own, which the card gives beside them)
ECE_BINS = 10


def probability_quality(y: Any, p: Any, bins: int = ECE_BINS) -> dict:
    """Brier score, log loss (nats), ECE over ``bins`` equal-count bins (tied probabilities in one
    bin: the figure and the gate's verdict on it do not depend on row order), calibration fit.

    ``calibration_intercept``/``calibration_slope`` come from a logistic regression of y on
    logit(p): 0 and 1 when calibrated; slope < 1 means p is too extreme, > 1 too timid.
    ``calibration_in_the_large`` = mean p - mean y (> 0: over-predicting).
    """
    y, p = _pair(y, p)
    clipped = np.clip(p, LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
    table = _binned(y, p, bins, split_ties=False)
    intercept, slope = logistic_calibration(y, p)
    return {
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "ece": _gap(table, len(y)),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
        "mean_predicted": float(p.mean()),
        "observed_rate": float(y.mean()),
        "calibration_in_the_large": float(p.mean() - y.mean()),
    }


def calibration_gap(rate: Any, p: Any, bins: int = 10) -> float:
    """ECE of ``p`` against ``rate``: outcomes (0/1, as in ``probability_quality``) or each row's
    true probability of a miss (the simulator's), which leaves out the sampling noise of outcomes.
    Equal-count bins by ascending p."""
    return _gap(rate_table(rate, p, bins), len(p))


def rate_table(rate: Any, p: Any, bins: int = 10) -> pd.DataFrame:
    """Equal-count bins by ascending p (bin 1 = lowest; tied p in one bin): n, mean_predicted and
    observed_rate, the mean of ``rate`` (outcomes or true probabilities)."""
    rate, p = _as_float(rate), _as_float(p)
    if len(rate) != len(p) or len(p) == 0:
        raise ValueError(f"rate and p must have the same, non-zero length, got {len(rate)} and {len(p)}")
    return _binned(rate, p, bins, split_ties=False)[["bin", "n", "mean_predicted", "observed_rate"]]


def _gap(table: pd.DataFrame, rows: int) -> float:
    return float(np.sum(table["n"] / rows * (table["mean_predicted"] - table["observed_rate"]).abs()))


def calibration_table(y: Any, p: Any, bins: int = 10) -> pd.DataFrame:
    """Equal-count bins by ascending p (bin 1 = lowest): n, mean_predicted, observed_rate."""
    y, p = _pair(y, p)
    return rate_table(y, p, bins)


# ---------------------------------------------------------------------------------------------
# Lift and flagging


def lift_table(y: Any, p: Any, bins: int = 10) -> pd.DataFrame:
    """Equal-count bins by descending p (decile 1 = riskiest), with misses, capture and lift.

    A score's ties are kept whole, in the decile of the first of them (deciles then differ in
    size, and fewer than ``bins`` may be left): rows of one score are not ordered by the model but
    by their order in the file, which had decided how many misses a decile caught. ``capture`` is
    the share of all misses in the decile, ``lift`` the decile's miss rate over the overall rate.
    """
    y, p = _pair(y, p)
    table = _binned(y, p, bins, descending=True, split_ties=False).rename(
        columns={"bin": "decile", "positives": "misses", "observed_rate": "miss_rate"})
    table["capture"] = table["misses"] / y.sum()
    table["cumulative_capture"] = table["capture"].cumsum()
    table["lift"] = table["miss_rate"] / y.mean()
    return table[["decile", "n", "misses", "miss_rate", "min_score", "max_score",
                  "capture", "cumulative_capture", "lift"]]


def lift_summary(y: Any, p: Any, bins: int = 10, top_share: float = 0.05) -> dict:
    """Miss rate and capture of the riskiest ``top_share`` of rows, and whether deciles rank-order.

    ``rank_order_breaks`` counts adjacent deciles of ``lift_table`` (a score's ties kept whole)
    whose miss rate rises going down the risk order; ``rank_ordered`` is True when there are none
    (equal rates are allowed). Deciles that split a score's ties had been ordered by the rows'
    order in the file (a model that scored every row 0.25 failed the check on a "lift" of 8 in one
    decile), and a rule that then skipped deciles sharing a score passed a model of 8 scores for
    796 rows whose deciles caught 0, 3, 6, 1, ... misses (outside checks).
    """
    y, p = _pair(y, p)
    top = flagged(p, top_share)
    table = lift_table(y, p, bins)
    breaks = int(np.sum(np.diff(table["miss_rate"].to_numpy()) > 0))
    return {
        "top_share": float(top_share),
        "top_miss_rate": float(y[top].mean()) if top.any() else float("nan"),
        "top_capture": float(y[top].sum() / y.sum()) if y.sum() > 0 else float("nan"),
        "top_decile_capture": float(table["capture"].iloc[0]),
        "rank_ordered": breaks == 0,
        "rank_order_breaks": breaks,
    }


def rate_with_half_added(events: int, trials: int) -> float:
    """(events + 0.5) / (trials + 1): a rate with half an event and half a non-event added (the
    mean under Jeffreys' prior), so a handful of trials, all of one kind, gives no certainty."""
    return (events + 0.5) / (trials + 1.0)


def flagged(p: Any, flag_rate: float) -> np.ndarray:
    """Boolean mask, shape (n,), of exactly round(flag_rate * n) rows with the highest p.

    Ties are broken by original row order (earlier rows first).
    """
    p = _as_float(p)
    if len(p) == 0:
        raise ValueError("p must not be empty")
    if not 0.0 <= flag_rate <= 1.0:
        raise ValueError(f"flag_rate must be in [0, 1], got {flag_rate}")
    mask = np.zeros(len(p), dtype=bool)
    mask[np.argsort(-p, kind="stable")[:int(round(flag_rate * len(p)))]] = True
    return mask


# ---------------------------------------------------------------------------------------------
# Stability


def _psi_edges(expected: np.ndarray, bins: int) -> np.ndarray:
    """Interior bin edges from quantiles of the non-missing ``expected`` values.

    Bins are right-closed, (lower, upper]. ``inverted_cdf`` keeps every edge an observed value
    and dropping edges at the maximum keeps the top bin non-empty, so a variable with few
    distinct values gets one bin per value (or group of values) and no empty bins.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    present = expected[~np.isnan(expected)]
    if len(present) == 0:
        return np.array([])
    quantiles = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf")
    edges = np.unique(quantiles)
    return edges[edges < present.max()]


def psi_reference(expected: Any, bins: int = 10) -> dict:
    """What PSI compares against: interior edges from ``expected`` and its count per bin (the
    last bin holds missing values). JSON-able, so it can travel with a model."""
    expected = _as_float(expected)
    if len(expected) == 0:
        raise ValueError("expected must not be empty")
    edges = _psi_edges(expected, bins)
    return {"edges": edges.tolist(), "counts": bin_counts(expected, edges).tolist()}


def bin_counts(values: Any, edges: Any) -> np.ndarray:
    """Rows per bin (lower, upper], then one bin of missing values."""
    values, edges = _as_float(values), np.asarray(edges, dtype=float)
    missing = np.isnan(values)
    counts = np.bincount(np.searchsorted(edges, values[~missing], side="left"), minlength=len(edges) + 1)
    return np.append(counts, missing.sum())


def psi_flag(value: float) -> str:
    if value < PSI_WATCH:
        return "stable"
    return "watch" if value < PSI_SHIFTED else "shifted"


def psi(expected: Any, actual: Any, bins: int = 10) -> dict:
    """Population stability index of ``actual`` against ``expected`` (unitless).

    Edges are quantiles of ``expected`` with outer edges -inf/+inf, so every value of ``actual``
    lands in a bin; NaN gets its own bin ``missing`` (bounds None) when either sample has one.
    Shares are floored at 1e-4. Flag: < 0.10 stable, < 0.25 watch, otherwise shifted.
    """
    actual = _as_float(actual)
    if len(actual) == 0:
        raise ValueError("expected and actual must not be empty")
    reference = psi_reference(expected, bins)
    return psi_from_counts(reference, bin_counts(actual, reference["edges"]))


def pooled_groups(groups: Any, min_rows: int = MIN_PSI_ROWS) -> np.ndarray:
    """Each row's group (labels that sort in time order: months), consecutive groups pooled until
    each holds at least ``min_rows`` rows, a short rest joined to the pool before it; one pool when
    all rows together hold fewer. A small portfolio's months each hold fewer rows than a PSI needs:
    unpooled, no month counted and every drift baseline read 0 (an outside check)."""
    labels, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    pool, size, k = np.empty(len(labels), dtype=np.int64), 0, 0
    for i, n in enumerate(counts):  # months, not borrowers: a few dozen
        pool[i], size = k, size + n
        if size >= min_rows:
            k, size = k + 1, 0
    if size and k:
        pool[pool == k] = k - 1
    return pool[inverse]


def largest_group_psi(reference: dict, values: Any, groups: Any, min_rows: int = MIN_PSI_ROWS) -> float:
    """The largest PSI of one group's ``values`` (a training month's, say) against ``reference``
    (``psi_reference``), over the groups of at least ``min_rows`` rows; 0 without one. How far a
    variable moves from group to group when nothing has changed: the calendar fractions of
    ``months_of_history``, seasonal inflows, the outage calendar."""
    values, groups = _as_float(values), pd.Series(np.asarray(groups))
    sizes = groups.groupby(groups.to_numpy()).indices.values()
    return max((psi_from_counts(reference, bin_counts(values[index], reference["edges"]))["psi"]
                for index in sizes if len(index) >= min_rows), default=0.0)


def psi_from_counts(reference: dict, actual_count: Any) -> dict:
    """PSI from a reference (``psi_reference``) and the actual count per bin, so a stream of
    batches can add up counts and ask once at the end."""
    edges = np.asarray(reference["edges"], dtype=float)
    e_count, a_count = np.asarray(reference["counts"]), np.asarray(actual_count)
    if e_count[-1] == 0 and a_count[-1] == 0:  # no missing values on either side: no such bin
        e_count, a_count = e_count[:-1], a_count[:-1]
    e_share = np.maximum(e_count / e_count.sum(), PSI_SHARE_FLOOR)
    a_share = np.maximum(a_count / max(a_count.sum(), 1), PSI_SHARE_FLOOR)
    contribution = (a_share - e_share) * np.log(a_share / e_share)
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    table = []
    for i in range(len(e_count)):
        is_missing = i == len(edges) + 1
        lower = None if is_missing else float(bounds[i])
        upper = None if is_missing else float(bounds[i + 1])
        table.append({
            "bin": MISSING if is_missing else f"({lower:.6g}, {upper:.6g}{')' if upper == np.inf else ']'}",
            "lower": lower, "upper": upper,
            "expected_count": int(e_count[i]), "actual_count": int(a_count[i]),
            "expected_share": float(e_share[i]), "actual_share": float(a_share[i]),
            "contribution": float(contribution[i]),
        })
    value = float(contribution.sum())
    return {"psi": value, "flag": psi_flag(value), "bins": table}


def csi(expected: pd.DataFrame, actual: pd.DataFrame, columns: Sequence[str], bins: int = 10,
        groups: Any = None) -> pd.DataFrame:
    """PSI of each column (characteristic stability index), highest first.

    Columns: feature, psi, baseline, flag, bins_used (number of bins including a ``missing``
    bin). With ``groups`` (the expected rows' months, say) the baseline is the column's largest
    PSI of one group (groups too small for a PSI pooled, ``pooled_groups``) against all of
    ``expected`` (``largest_group_psi``) and the flag is on the
    PSI beyond it, as scoring and the monitor judge drift; without, 0. A text column is compared
    by the codes of ``expected``'s categories (one the expected rows lack counts as missing).
    """
    rows = []
    # months too small for a PSI pooled, as scoring's reference pools them: unpooled, the model
    # card's baselines had all read 0 on a small portfolio and flagged features that were not moving
    pooled = None if groups is None else pooled_groups(groups)
    for column in columns:
        before, after = expected[column], actual[column]
        if not pd.api.types.is_numeric_dtype(before):
            categories = pd.Index(sorted(before.dropna().astype("str").unique()))
            codes = (categories.get_indexer(v.astype("str")) for v in (before, after))
            before, after = (np.where(c >= 0, c, np.nan) for c in codes)
        result = psi(before, after, bins)
        baseline = 0.0 if groups is None else largest_group_psi(psi_reference(before, bins), before, pooled)
        rows.append({"feature": column, "psi": result["psi"], "baseline": baseline,
                     "flag": psi_flag(result["psi"] - baseline), "bins_used": len(result["bins"])})
    frame = pd.DataFrame(rows, columns=["feature", "psi", "baseline", "flag", "bins_used"])
    return frame.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def gini_by_period(y: Any, p: Any, period: Any, min_rows: int = 200) -> dict:
    """Gini per period (ascending), its trend, mean and sample standard deviation.

    Periods with fewer than ``min_rows`` rows or a single class are skipped. ``slope`` is the
    least-squares change in Gini per kept period (NaN with fewer than two).
    """
    y, p = _pair(y, p)
    period = np.asarray(period)
    if len(period) != len(y):
        raise ValueError(f"period must have the same length as y, got {len(period)} and {len(y)}")
    kept = []
    frame = pd.DataFrame({"period": period, "y": y, "p": p})
    for value, group in frame.groupby("period", sort=True):
        if len(group) < min_rows or group["y"].nunique() < 2:
            continue
        gini = 2 * float(_sklearn().roc_auc_score(group["y"], group["p"])) - 1
        kept.append({"period": value.item() if isinstance(value, np.generic) else value,
                     "n": int(len(group)), "gini": gini})
    ginis = np.array([row["gini"] for row in kept])
    slope = _ols(np.arange(len(ginis), dtype=float), ginis)[1] if len(ginis) >= 2 else float("nan")
    return {
        "periods": kept,
        "slope": slope,
        "mean": float(ginis.mean()) if len(ginis) else float("nan"),
        "std": float(ginis.std(ddof=1)) if len(ginis) >= 2 else float("nan"),
    }


def bootstrap_auc_ks(y: Any, p: Any, replicates: int = 200, level: float = 0.95,
                     seed: int = 0) -> dict:
    """Percentile bootstrap intervals of AUC and KS: {"auc": {"low", "high"}, "ks": {...}}.

    Stratified: each replicate draws the misses and the repayments apart, as many of each as
    there are, with replacement (pROC's default for AUC), so every replicate has both classes.
    Resampling rows as a whole had drawn replicates without a miss on small test sets (1 miss
    in 40 rows), whose AUC is undefined, and turned the whole interval into null. Each replicate
    is a few array operations over the rows sorted once; tied scores count half, as in the AUC."""
    y, p = _pair(y, p)
    _require_both_classes(y)
    order = np.argsort(p, kind="stable")
    _, starts = np.unique(p[order], return_index=True)  # one group per distinct score
    positive = y[order] == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    rng = np.random.default_rng(seed)
    aucs, kss = [], []
    for chunk in np.array_split(np.arange(replicates), max(1, replicates * len(y) // 5_000_000)):
        weights = np.empty((len(chunk), len(y)))
        weights[:, positive] = rng.multinomial(n_pos, np.full(n_pos, 1 / n_pos), size=len(chunk))
        weights[:, ~positive] = rng.multinomial(n_neg, np.full(n_neg, 1 / n_neg), size=len(chunk))
        pos = np.add.reduceat(weights * positive, starts, axis=1)
        neg = np.add.reduceat(weights * ~positive, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        aucs.append((pos * (below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg))
        kss.append(np.abs(np.cumsum(pos, axis=1) / n_pos - np.cumsum(neg, axis=1) / n_neg).max(axis=1))
    tails = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    out = {}
    for name, values in (("auc", np.concatenate(aucs)), ("ks", np.concatenate(kss))):
        low, high = np.percentile(values, tails)
        out[name] = {"low": float(low), "high": float(high)}
    return {**out, "replicates": replicates, "level": level}


# ---------------------------------------------------------------------------------------------
# Distance from the true probability (simulated data only)


def truth_gap(y: Any, p_model: Any, p_true: Any) -> dict:
    """How far a model's probabilities are from the simulator's true ones.

    AUC and Brier of both against y, their AUC gap, the OLS line p_true = a + b * p_model
    (ideal a = 0, b = 1, R² = 1) and the mean absolute difference, in probability units (0..1).
    """
    y, p_model = _pair(y, p_model)
    _, p_true = _pair(y, p_true)
    _require_both_classes(y)
    auc_true, auc_model = (float(_sklearn().roc_auc_score(y, q)) for q in (p_true, p_model))
    intercept, slope, r2 = _ols(p_model, p_true)
    return {
        "auc_true": auc_true,
        "brier_true": float(np.mean((p_true - y) ** 2)),
        "auc_model": auc_model,
        "brier_model": float(np.mean((p_model - y) ** 2)),
        "auc_gap": auc_true - auc_model,
        "regression_intercept": intercept,
        "regression_slope": slope,
        "regression_r2": r2,
        "mean_abs_difference": float(np.mean(np.abs(p_model - p_true))),
    }


def watched_features(importance: dict[str, float], count: int) -> list[str]:
    """The ``count`` features of most ``importance`` (training gain), most important first, ties
    by name; 0: all. Scoring's drift report and the monitor choose by this one rule."""
    ranked = sorted(importance, key=lambda c: (-importance[c], c))
    return ranked[:count] if count else ranked
