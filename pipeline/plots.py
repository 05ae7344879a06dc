"""PNG figures of the evaluation: the two models beside the simulator's true probability.

``render_all`` draws every figure from ``pipeline.evaluate.curves`` (``plot_data[model][kind]``)
and ``pipeline.evaluate.model_report`` (``reports[model]``). Figures are built on matplotlib's
Agg canvas without pyplot (no global state, no display) under the default style, and saved
without metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import style
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pipeline import io
from pipeline.metrics import PSI_SHIFTED, PSI_WATCH

DPI = 110
SIZE = (7.0, 5.0)  # inches
MODELS = ("scorecard", "lightgbm", "truth")
PRIMARY = "lightgbm"  # the model the single-model figures show
SCORE_MODELS = ("lightgbm", "scorecard")
TOP_FEATURES = 15
LABELS = {"scorecard": "scorecard (WoE logistic)", "lightgbm": "LightGBM (calibrated)",
          "truth": "truth (simulator p_true)"}
STYLES = {"scorecard": {"color": "#1f77b4", "linestyle": "-"},
          "lightgbm": {"color": "#d62728", "linestyle": "-"},
          "truth": {"color": "#333333", "linestyle": "--"}}
FLAG_COLOURS = {"stable": "#8c8c8c", "watch": "#ff9f1c", "shifted": "#d62728"}

# file name -> figure title, in the order render_all returns them
TITLES = {
    "roc.png": "ROC curve, out-of-time test",
    "precision_recall.png": "Precision-recall curve, out-of-time test",
    "calibration.png": "Calibration by decile of predicted probability",
    "lift.png": "Miss rate by decile, riskiest first",
    "ks.png": "KS: cumulative rates of misses and non-misses (LightGBM)",
    "score_distribution.png": "Score distribution, train vs out-of-time",
    "gini_by_month.png": "Gini by jump month, out-of-time test",
    "csi.png": f"Feature stability: top {TOP_FEATURES} features by CSI",
}


# ---------------------------------------------------------------------------------------------
# Shared helpers


def model_order(plot_data: dict) -> list[str]:
    """The models present, in the fixed order scorecard, lightgbm, truth (then any others)."""
    return [m for m in MODELS if m in plot_data] + sorted(set(plot_data) - set(MODELS))


def _style(model: str) -> dict:
    return {"label": LABELS.get(model, model), **STYLES.get(model, {"linestyle": "-"})}


def _axes(fig: Figure, title: str, xlabel: str, ylabel: str, position: int = 111) -> Axes:
    ax = fig.add_subplot(position)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return ax


def _figure(name: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    """A figure with one titled, labelled axes."""
    fig = Figure(figsize=SIZE, layout="constrained")
    return fig, _axes(fig, TITLES[name], xlabel, ylabel)


def _lines(ax: Axes, plot_data: dict, kind: str, x: str, y: str, marker: str | None = None) -> None:
    """One line per model from ``plot_data[model][kind]``; the truth dashed."""
    for model in model_order(plot_data):
        frame = plot_data[model][kind]
        ax.plot(frame[x], frame[y], marker=marker, markersize=4, linewidth=1.6, **_style(model))


def _reference(ax: Axes, value: float, label: str, horizontal: bool = True, color: str = "#7f7f7f") -> None:
    """A thin dotted reference line (base rate, PSI threshold)."""
    draw = ax.axhline if horizontal else ax.axvline
    draw(value, color=color, linestyle=":", linewidth=1.4, label=label)


def _diagonal(ax: Axes, label: str, top: float = 1.0) -> None:
    ax.plot([0, top], [0, top], color="#7f7f7f", linestyle=":", linewidth=1.4, label=label)


def _grouped_bars(ax: Axes, series: dict[str, np.ndarray], styles: dict[str, dict]) -> np.ndarray:
    """Side-by-side bars, one group per position; returns the group centres."""
    positions = np.arange(max(len(v) for v in series.values()))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(positions[:len(values)] + offset, values, width, **styles[name])
    return positions


def _bar_style(model: str) -> dict:
    """Bar colours of a model; the truth as an unfilled bar with a dashed edge."""
    style = _style(model)
    if style["linestyle"] == "--":
        return {"label": style["label"], "fill": False, "edgecolor": style["color"],
                "linestyle": "--", "linewidth": 1.2}
    return {"label": style["label"], "color": style["color"]}


def _legend_below(fig: Figure, ax: Axes, columns: int = 1) -> None:
    """The legend under the plot, where it cannot hide data."""
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=columns)


# ---------------------------------------------------------------------------------------------
# One function per figure: (plot_data, reports) -> Figure


def roc(plot_data: dict, reports: dict) -> Figure:
    fig, ax = _figure("roc.png", "false positive rate (share of non-misses flagged)",
                      "true positive rate (share of misses flagged)")
    _lines(ax, plot_data, "roc", "fpr", "tpr")
    _diagonal(ax, "random (AUC 0.5)")
    ax.legend(loc="lower right")
    return fig


def precision_recall(plot_data: dict, reports: dict) -> Figure:
    fig, ax = _figure("precision_recall.png", "recall (share of misses flagged)",
                      "precision (share of flagged that miss)")
    _lines(ax, plot_data, "pr", "recall", "precision")
    base_rate = next((r["ranking"]["base_rate"] for r in reports.values() if "ranking" in r), None)
    if base_rate is not None:
        _reference(ax, base_rate, f"base rate ({base_rate:.3f})")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper right")
    return fig


def calibration(plot_data: dict, reports: dict) -> Figure:
    fig, ax = _figure("calibration.png", "mean predicted probability in the decile",
                      "observed miss rate in the decile")
    _lines(ax, plot_data, "calibration", "mean_predicted", "observed_rate", marker="o")
    top = max(max(f["calibration"][["mean_predicted", "observed_rate"]].max()) for f in plot_data.values())
    _diagonal(ax, "perfect calibration", top)
    ax.legend(loc="upper left")
    return fig


def lift(plot_data: dict, reports: dict) -> Figure:
    fig, ax = _figure("lift.png", "decile of predicted probability (1 = riskiest 10%)",
                      "miss rate (share of rows that miss)")
    models = model_order(plot_data)
    series = {m: plot_data[m]["lift"]["miss_rate"].to_numpy() for m in models}
    positions = _grouped_bars(ax, series, {m: _bar_style(m) for m in models})
    # a score's ties are one decile, so a model of few scores may have fewer (metrics.lift_table)
    ax.set_xticks(positions, [str(d) for d in positions + 1])
    ax.legend(loc="upper right")
    return fig


def ks(plot_data: dict, reports: dict) -> Figure:
    model = PRIMARY if PRIMARY in plot_data else model_order(plot_data)[0]
    fig, ax = _figure("ks.png", "threshold (predicted probability; flagged if at or above)",
                      "cumulative share flagged")
    frame = plot_data[model]["ks"]
    ax.plot(frame["threshold"], frame["tpr"], color="#d62728", label="misses flagged (TPR)")
    ax.plot(frame["threshold"], frame["fpr"], color="#1f77b4", label="non-misses flagged (FPR)")
    best = frame.loc[frame["gap"].idxmax()]
    ax.vlines(best["threshold"], best["fpr"], best["tpr"], color="black", linewidth=2.0,
              label=f"KS = {best['gap']:.3f} at {best['threshold']:.3f}")
    ax.legend(loc="upper right", title=LABELS.get(model, model))
    return fig


def score_distribution(plot_data: dict, reports: dict) -> Figure:
    models = [m for m in SCORE_MODELS if m in plot_data] or model_order(plot_data)[:1]
    fig = Figure(figsize=(SIZE[0], 2.6 * len(models) + 0.6), layout="constrained")
    fig.suptitle(TITLES["score_distribution.png"], fontsize=11)
    styles = {"train": {"label": "train", "color": "#9ecae1"},
              "oot": {"label": "out-of-time test", "color": "#08519c"}}
    for i, model in enumerate(models):
        ax = _axes(fig, LABELS.get(model, model), "predicted probability bin (upper edge)", "share of rows",
                   position=len(models) * 100 + 10 + i + 1)
        frame = plot_data[model]["scores"]
        positions = _grouped_bars(ax, {"train": frame["train_share"].to_numpy(),
                                       "oot": frame["oot_share"].to_numpy()}, styles)
        ax.set_xticks(positions, [f"{e:.3f}" for e in frame["upper_edge"]], rotation=60, fontsize=7)
    _legend_below(fig, ax, columns=2)
    return fig


def gini_by_month(plot_data: dict, reports: dict) -> Figure:
    fig, ax = _figure("gini_by_month.png", "jump month (YYYY-MM)", "Gini (2·AUC − 1, unitless)")
    periods = {m: pd.DataFrame(reports[m]["stability"]["gini_by_month"]["periods"],
                               columns=["period", "n", "gini"]) for m in model_order(reports)}
    months = sorted({str(p) for frame in periods.values() for p in frame["period"]})
    index = {month: i for i, month in enumerate(months)}
    for model, frame in periods.items():
        slope = reports[model]["stability"]["gini_by_month"].get("slope")
        trend = (f"slope {slope:+.3f}/month" if _finite(slope) else
                 "no trend" if len(frame) else "not measured: no jump month of 200 rows")
        line = _style(model)
        ax.plot([index[str(p)] for p in frame["period"]], frame["gini"], marker="o", markersize=4,
                **{**line, "label": f"{line['label']}, {trend}"})
    ax.set_xticks(range(len(months)), months, rotation=45, fontsize=8)
    if not months:  # a blank chart had said "no trend"
        ax.text(0.5, 0.5, "not measured: no jump month has 200 rows", ha="center", va="center",
                transform=ax.transAxes)
    _legend_below(fig, ax)
    return fig


def csi(plot_data: dict, reports: dict) -> Figure:
    model = PRIMARY if PRIMARY in reports else model_order(reports)[0]
    fig, ax = _figure("csi.png", "CSI (population stability index of the feature, unitless)", "feature")
    table = pd.DataFrame(reports[model]["stability"]["csi"], columns=["feature", "psi", "flag"])
    top = table.sort_values("psi", ascending=False, kind="stable").head(TOP_FEATURES).iloc[::-1]
    ax.barh(np.arange(len(top)), top["psi"], color=[FLAG_COLOURS.get(f, "#8c8c8c") for f in top["flag"]])
    ax.set_yticks(np.arange(len(top)), top["feature"].astype(str), fontsize=8)
    for value, flag in ((PSI_WATCH, "watch"), (PSI_SHIFTED, "shifted")):
        _reference(ax, value, f"{value:.2f}: {flag}", horizontal=False, color=FLAG_COLOURS[flag])
    ax.legend(loc="lower right", title=f"CSI flag beyond its largest training month's (features of "
                                       f"{LABELS.get(model, model)})")
    return fig


def _finite(value) -> bool:
    return value is not None and bool(np.isfinite(value))


FIGURES: dict[str, Callable[[dict, dict], Figure]] = {
    "roc.png": roc, "precision_recall.png": precision_recall, "calibration.png": calibration,
    "lift.png": lift, "ks.png": ks, "score_distribution.png": score_distribution,
    "gini_by_month.png": gini_by_month, "csi.png": csi,
}


def render_all(plot_data: dict[str, dict[str, pd.DataFrame]], reports: dict[str, dict],
               out: Path) -> list[Path]:
    """Write every figure as a PNG under ``out`` and return the paths in the order of ``FIGURES``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with style.context("default"):  # ignore any user matplotlibrc
        for name, draw in FIGURES.items():
            paths.append(io.write_png(draw(plot_data, reports), out / name, DPI))
    return paths
