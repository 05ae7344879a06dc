"""The promotion gate: when a new LightGBM may replace the champion. Pure: figures in, verdict out."""

from __future__ import annotations

from pipeline.config import RegisterSettings


def gate(challenger: dict[str, float], scorecard: dict[str, float], champion_auc: float | None,
         challenger_auc_on_champion_rows: float, settings: RegisterSettings) -> dict:
    """Every gate with its value, threshold and verdict, and the decision. ``challenger`` and
    ``scorecard`` hold each model's out-of-time ``test_auc`` and ``test_ece``; ``champion_auc``
    is the current champion's AUC on the same out-of-time rows (None if there is none)."""
    gates = {
        "min_oot_auc": _check(challenger["test_auc"], settings.min_oot_auc, ">="),
        "max_calibration_error": _check(challenger["test_ece"], settings.max_calibration_error, "<="),
        "beats_scorecard": _check(challenger["test_auc"] - scorecard["test_auc"],
                                  settings.min_gain_over_scorecard, ">="),
    }
    if champion_auc is not None:
        gates["not_worse_than_champion"] = _check(challenger_auc_on_champion_rows - champion_auc,
                                                  -settings.max_loss_vs_champion, ">=")
    failed = [name for name, g in gates.items() if not g["passed"]]
    return {"gates": gates, "failed": failed, "decision": "refused" if failed else "promoted"}


def _check(value: float, threshold: float, op: str) -> dict:
    passed = value >= threshold if op == ">=" else value <= threshold
    return {"value": float(value), "threshold": float(threshold), "rule": f"value {op} threshold",
            "passed": bool(passed)}
