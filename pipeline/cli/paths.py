"""Where the DVC stages read and write, relative to the project directory: every stage's outputs in
one place, so a stage module imports the paths of another stage's outputs without importing that
stage's libraries (and without making dvc.yaml list that stage's code as its own dependency)."""

from pathlib import Path

RAW_DIR = Path("data/raw")
TRUTH_DIR = Path("data/truth")
COUNTERFACTUAL_DIR = Path("data/counterfactual")
FEATURES_DIR = Path("data/features")
SPLIT_DIR = Path("data/split")
SPLIT_REPORT = Path("reports/split.json")  # rows, misses and dates of each split
INCOMING_DIR = Path("data/incoming")
MODELS = Path("models")
REPORTS = Path("reports")
PARAMS_REPORT = REPORTS / "params_valid.json"  # check_params's
SIMULATION_REPORT = REPORTS / "simulation.json"  # the realism checks of the simulated data
SPLIT_TIMELINE = REPORTS / "split_timeline.png"
TRAIN_REPORTS = REPORTS / "train"  # each model's figures and the training diagnostics
EVALUATION_PLOTS = REPORTS / "plots"  # the plots' data, for `dvc plots`
EVALUATION_FIGURES = REPORTS / "figures"
MODEL_CARD = REPORTS / "model_card.html"
EVALUATION_REPORT = REPORTS / "evaluation.json"  # every figure of the evaluation
METRICS = REPORTS / "metrics.json"  # the headline figures, for `dvc metrics`
GATES = REPORTS / "gates.json"
# register's mark that the registry holds the model: not in git, so that a fresh clone registers
# (reports/gates.json is in git, and alone would let DVC skip the registration); in DVC's cache, so
# that a team's clone pulls it with the models it registered on the shared server
REGISTERED = MODELS / "registered.json"
TUNE_BEST = REPORTS / "tune" / "best.json"  # the tune stage's, read by train@lightgbm
STREAM_DIR = Path("data/stream")
MONITOR_DIR = REPORTS / "monitor"
DECISION_MODEL = MODELS / "decision"  # the decide stage's, read by recommend and evaluate's card
DECISION_REPORT = REPORTS / "decision.json"
DECISION_PLOTS = REPORTS / "decision"
# the split stage's: how often a debit stopped by announced maintenance became a miss, as the
# history showed it when the test period began (the LightGBM's maintenance floor)
MAINTENANCE_HISTORY = SPLIT_DIR / "maintenance.json"
