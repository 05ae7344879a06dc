"""Typed settings for every stage: the only reader of ``params.yaml``.

Each stage gets one frozen pydantic model. Unknown keys, wrong types and out-of-range values fail
at load time, before any work, with the dotted key in the message (``simulate.n_borrowers``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0.0)]
EMPLOYMENT_TYPES = ("salaried", "self_employed", "gig_worker", "student")
TRIGGERS = ("new_user", "score_improvement", "marketing_campaign", "user_request")
CAUSES = ("credit", "liquidity", "technical")
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"  # a Dask scheduler's address, over engine.scheduler


class ConfigError(ValueError):
    """A params file that cannot be used; the message names every offending key."""


class Settings(BaseModel):
    # no NaN or infinity: no setting means either, and a comparison with NaN is always false
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _as_written(cls, value: object, info: ValidationInfo) -> object:
        """A number or flag as YAML writes one: pydantic would read true as the number 1, the text
        "0.6" as 0.6 and "off" as false, so a mistyped value would pass for another."""
        kind = cls.model_fields[info.field_name].annotation
        if kind in (int, float) and isinstance(value, bool | str):
            raise ValueError(f"must be a number, not {value!r}")
        if kind is bool and not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value


def _check_mix(mix: dict[str, float], keys: tuple[str, ...], name: str) -> None:
    if set(mix) != set(keys):
        raise ValueError(f"{name} must have exactly the keys {list(keys)}")
    if abs(sum(mix.values()) - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, got {sum(mix.values()):.6f}")


class LabelSettings(Settings):
    """What is predicted: scoring date = jump date + observation window; label = an installment due
    in the next ``performance_cycles`` billing cycles left unpaid for ``dpd_threshold`` days or more."""

    observation_days: Annotated[int, Field(ge=1, le=120)]
    performance_cycles: Annotated[int, Field(ge=1, le=12)]
    dpd_threshold: Annotated[int, Field(ge=1, le=90)]


def as_trained(p: Params, label: LabelSettings | None, features: FeatureSettings | None) -> Params:
    """``p`` with the label a model was trained for and the settings its features were computed
    with (``model.LABEL_FILE``, ``model.FEATURE_SETTINGS_FILE``; None keeps p's own). A scorer
    takes features the model's observation window after the jump, computed as they were for its
    training: a window or a decay changed in params.yaml since would feed it other features (a
    registered version had scored borrowers up to 0.22 apart, in two checkouts)."""
    update = {"label": label, "features": features}
    return p.model_copy(update={k: v for k, v in update.items() if v is not None})


def label_horizon(label: LabelSettings, due_day_offset: int) -> int:
    """Last cycle to simulate so that every due date of the window is either paid or seen
    ``dpd_threshold`` days past due. A cycle lasts at least 28 days, so the end of cycle h is at
    least (h - j + 1) * 28 - due_day_offset - 1 days after the due date of cycle j."""
    extra = -(-(label.dpd_threshold + due_day_offset + 1) // 28)  # ceiling division
    return label.performance_cycles - 2 + extra


def days_to_observe_label(label: LabelSettings, due_day_offset: int) -> int:
    """Days after the last scoring date the export must run for its label to be observed:
    cycles 0 .. ``label_horizon``, of at most 31 days each."""
    return 31 * (label_horizon(label, due_day_offset) + 1)


# The simulator's: a cash shortfall is paid this many days after the due date at the earliest,
# so a label of more days past due needs a lasting shortfall, which the truth importance-samples
SHORTFALL_MIN_DAYS_PAST_DUE = 3
# simulate.truth_replicates "auto": where every shortfall counts (closed form), where only a
# lasting one does (importance-sampled, noisier)
AUTO_TRUTH_REPLICATES = {"closed_form": 64, "importance_sampled": 128}


def needs_lasting_shortfall(label: LabelSettings) -> bool:
    """Whether only a lasting shortfall makes a label's miss: the truth then importance-samples
    shortfalls and rare events rather than integrating them in closed form."""
    return label.dpd_threshold > SHORTFALL_MIN_DAYS_PAST_DUE


def truth_replicates(simulate: SimulateSettings, label: LabelSettings) -> int:
    """``simulate.truth_replicates``, "auto" resolved for the label. Importance sampling a lasting
    shortfall is noisy, and Monte-Carlo noise flattens the truth's calibration slope against the
    label: on the defaults (150,000 borrowers) 64 replicates gave 0.913 at dpd 7 and 0.868 at
    dpd 30 (0.902 with 96), 128 gave 0.961 and 0.940 (2026-12-05). In closed form 64 suffice:
    at dpd 1 the slope is 1.05 over the borrowers no unforeseen outage struck, and 0.90 over every
    row (``realism._truth_quality``: the rest is the world's own outage days, which no number of
    replicates changes). The importance-sampled noise grows with the window: at dpd 14 over 6
    cycles (4,000 borrowers, three seeds) 128 replicates gave slopes of 0.77-0.89, 256 0.86-0.95,
    512 0.91-0.97 (2026-12-07), so beyond three cycles the count grows with them."""
    if simulate.truth_replicates != "auto":
        return simulate.truth_replicates
    if not needs_lasting_shortfall(label):
        return AUTO_TRUTH_REPLICATES["closed_form"]
    return AUTO_TRUTH_REPLICATES["importance_sampled"] * -(-label.performance_cycles // 3)


class CalendarSettings(Settings):
    first_scoring_date: dt.date
    last_scoring_date: dt.date
    export_end: dt.date
    history_months: Annotated[int, Field(ge=1, le=60)]
    months_after_jump: Annotated[int, Field(ge=0, le=36)]
    due_day_offset: Annotated[int, Field(ge=1, le=20)]
    statement_min_grace_days: Annotated[int, Field(ge=1, le=21)]

    @model_validator(mode="after")
    def _ordered(self) -> CalendarSettings:
        if self.last_scoring_date <= self.first_scoring_date:
            raise ValueError("last_scoring_date must be after first_scoring_date")
        if self.export_end <= self.last_scoring_date:
            raise ValueError("export_end must be after last_scoring_date")
        if self.statement_min_grace_days > self.due_day_offset + 1:
            raise ValueError("statement_min_grace_days must be at most due_day_offset + 1: a statement "
                             "comes at the latest on the last day of the cycle before")
        return self


class PopulationSettings(Settings):
    new_user_share: Probability
    autodebit_share: Probability
    outside_debt_share: Probability
    employment_mix: dict[str, Probability]
    city_tier_mix: Annotated[list[Probability], Field(min_length=4, max_length=4)]

    @model_validator(mode="after")
    def _mixes(self) -> PopulationSettings:
        _check_mix(self.employment_mix, EMPLOYMENT_TYPES, "employment_mix")
        _check_mix(dict(enumerate(self.city_tier_mix)), (0, 1, 2, 3), "city_tier_mix")
        return self


class IncomeSettings(Settings):
    permanent_sd: NonNegative
    transitory_sd: dict[str, NonNegative]
    job_loss_hazard: dict[str, Probability]
    reemployment_rate: Probability
    unemployed_income_share: Probability
    spring_festival_bonus_months: Annotated[float, Field(ge=0.0, le=6.0)]
    late_salary_prob: Probability
    emergency_prob: Probability
    emergency_months: Annotated[float, Field(gt=0.0, le=24.0)]

    @model_validator(mode="after")
    def _keys(self) -> IncomeSettings:
        for name in ("transitory_sd", "job_loss_hazard"):
            if set(getattr(self, name)) != set(EMPLOYMENT_TYPES):
                raise ValueError(f"{name} must have exactly the keys {list(EMPLOYMENT_TYPES)}")
        return self


class JumpSettings(Settings):
    max_increase: Annotated[float, Field(gt=0, le=1_000_000)]
    trigger_weights: dict[str, NonNegative]
    score_selection: NonNegative
    need_selection: NonNegative
    line_test_share: Annotated[float, Field(ge=0.0, lt=1.0)]
    line_test_amounts: Annotated[list[NonNegative], Field(min_length=2, max_length=20)]

    @model_validator(mode="after")
    def _keys(self) -> JumpSettings:
        if set(self.trigger_weights) != set(TRIGGERS[1:]):
            raise ValueError(f"trigger_weights must have exactly the keys {list(TRIGGERS[1:])}")
        return self

    @model_validator(mode="after")
    def _grid(self) -> JumpSettings:
        grid = self.line_test_amounts
        if grid != sorted(set(grid)) or grid[0] != 0 or grid[-1] > self.max_increase:
            raise ValueError("line_test_amounts must start at 0 (no increase: the policy's fallback "
                             "and the counterfactual's reference), be distinct, in increasing order "
                             "and at most max_increase")
        if not all(float(a).is_integer() for a in grid):  # the outputs name a column per amount in CNY
            raise ValueError(f"line_test_amounts must be whole CNY, found {[a for a in grid if a % 1]}")
        return self


class CounterfactualSettings(Settings):
    """The true miss probability and profit of every line-test amount, for a sample of borrowers."""

    share: Probability  # of the borrowers scored from ``since`` on, drawn at random
    since: dt.date  # the out-of-time cohorts the decision is evaluated on; earlier ones need none
    replicates: Annotated[int, Field(ge=1, le=1024)]  # per amount, common random numbers across them


class DrawdownSettings(Settings):
    """Drawing down the new limit: share of the increase drawn within 12 months, logistic in the
    borrower's state (anchors: Gross-Souleles 10-14%, Agarwal et al. 59% vs ~0 by score)."""

    intercept: float
    low_score_effect: float
    near_limit_effect: float
    propensity_effect: float
    thin_buffer_effect: float
    user_request_effect: float
    max_share: Probability
    decay_months: Annotated[float, Field(gt=0)]
    large_spend_prob: Probability
    apr: dict[int, Annotated[float, Field(ge=0, le=1)]]

    @model_validator(mode="after")
    def _tenors(self) -> DrawdownSettings:
        if set(self.apr) != {3, 6, 12}:
            raise ValueError("apr must give the rates of the 3, 6 and 12-month tenors")
        return self


class LendingSettings(Settings):
    """Other lenders: inquiries (Poisson) and new outside loans (the multi-lending spiral)."""

    inquiry_rate: NonNegative
    post_approval_boost: NonNegative
    post_approval_decay_months: Annotated[float, Field(gt=0)]
    stress_multiplier: NonNegative
    approval_midpoint_score: Annotated[float, Field(ge=300, le=950)]
    loan_apr: Annotated[float, Field(ge=0, le=1)]


class RiskRuleSettings(Settings):
    """The platform's line restriction rule, and the date it is tightened (a regime change)."""

    restrict_below_score: Annotated[float, Field(ge=300, le=950)]
    restrict_below_score_after_change: Annotated[float, Field(ge=300, le=950)]
    restrict_inquiries_after_change: PositiveInt
    rule_change_date: dt.date


class OutageSettings(Settings):
    planned_per_year: NonNegative
    unplanned_per_year: NonNegative


class Campaign(Settings):
    """A re-authorisation campaign: a share of active auto-debit agreements must be renewed
    between the announcement and the deadline, or they lapse."""

    announce_date: dt.date
    deadline: dt.date
    share: Probability

    @model_validator(mode="after")
    def _order(self) -> Campaign:
        if self.deadline <= self.announce_date:
            raise ValueError("deadline must be after announce_date")
        return self


# a borrower follows one re-authorisation campaign at a time: the next is announced at least this
# many days (two cycles) after the last one's deadline, in the configuration and in the truth's draws
CAMPAIGN_GAP_DAYS = 62


class TechnicalSettings(Settings):
    """Auto-debit agreements and the platform's systems: misses that are not credit risk."""

    known_lapse_rate: Probability
    silent_failure_rate: Probability
    fix_before_due_prob: Probability
    reauthorise_after_miss_prob: Probability
    reauthorise_prob_per_cycle: Probability
    reauthorisation_campaigns: list[Campaign]
    outages: OutageSettings
    forget_prob_mean: Annotated[float, Field(ge=0.0, lt=1.0)]
    forget_repeat_prob: Annotated[float, Field(gt=0.0, lt=1.0)]

    @model_validator(mode="after")
    def _forgetting(self) -> TechnicalSettings:
        # a Beta law of the trait with this mean and repeat probability needs repeat > mean
        if self.forget_prob_mean >= self.forget_repeat_prob:
            raise ValueError("forget_repeat_prob must be above forget_prob_mean (forgetting runs in "
                             "some borrowers more than in others)")
        return self

    @model_validator(mode="after")
    def _campaigns_apart(self) -> TechnicalSettings:
        campaigns = self.reauthorisation_campaigns
        for earlier, later in zip(campaigns, campaigns[1:], strict=False):
            if (later.announce_date - earlier.deadline).days < CAMPAIGN_GAP_DAYS:
                raise ValueError("reauthorisation_campaigns must be in date order and start at "
                                 f"least {CAMPAIGN_GAP_DAYS} days after the previous deadline")
        return self


class SimulateSettings(Settings):
    seed: Annotated[int, Field(ge=0)]
    n_borrowers: PositiveInt
    shard_size: PositiveInt
    # see truth_replicates(); at least 2: one replicate has no spread, so p_true_se would read 0
    truth_replicates: Literal["auto"] | Annotated[int, Field(ge=2, le=4096)]
    counterfactual: CounterfactualSettings
    calendar: CalendarSettings
    population: PopulationSettings
    income: IncomeSettings
    jump: JumpSettings
    drawdown: DrawdownSettings
    lending: LendingSettings
    risk_rules: RiskRuleSettings
    technical: TechnicalSettings


class FeatureSettings(Settings):
    large_draw_share: Annotated[float, Field(gt=0.0, le=1.0)]
    decay_days: Annotated[float, Field(gt=0.0)]
    bureau_lag_days: Annotated[int, Field(ge=0, le=120)]
    debit_batch_hour: Annotated[float, Field(ge=0.0, lt=24.0)]
    paying_hours: tuple[Annotated[float, Field(ge=0.0, le=24.0)], Annotated[float, Field(ge=0.0, le=24.0)]]

    @model_validator(mode="after")
    def _hours(self) -> FeatureSettings:
        if self.paying_hours[0] >= self.paying_hours[1]:
            raise ValueError("paying_hours: the first hour must come before the second")
        return self


class SplitSettings(Settings):
    """Out-of-time shares of borrowers by jump date: oldest train, then valid, newest test."""

    train: Annotated[float, Field(gt=0.0, lt=1.0)]
    valid: Annotated[float, Field(gt=0.0, lt=1.0)]
    test: Annotated[float, Field(gt=0.0, lt=1.0)]

    @model_validator(mode="after")
    def _sum(self) -> SplitSettings:
        if abs(self.train + self.valid + self.test - 1.0) > 1e-6:
            raise ValueError("train + valid + test must be 1")
        return self

    @property
    def fractions(self) -> tuple[float, float, float]:
        return self.train, self.valid, self.test


class LightGBMSettings(Settings):
    seed: Annotated[int, Field(ge=0)]
    monotone: bool  # monotone constraints from the feature catalogue's directions
    # auto: isotonic with at least isotonic_min_misses validation misses, else Platt
    calibration: Literal["auto", "isotonic", "platt"]
    isotonic_min_misses: PositiveInt
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)]
    num_leaves: Annotated[int, Field(ge=2, le=4096)]
    min_data_in_leaf: Literal["auto"] | PositiveInt  # auto: scaled with the training rows
    lambda_l2: Literal["auto"] | NonNegative  # auto: scaled with the leaf size
    cat_smooth: Literal["auto"] | NonNegative  # pseudo-rows of a text category; auto: by leaf size
    # the cause model's tree sizes to try, every pair of the two: it learns from the misses
    # alone, a tenth of the rows, so the main model's need not suit it; validation log loss chooses
    cause_leaf_sizes: Annotated[list[PositiveInt], Field(min_length=1)]
    cause_num_leaves: Annotated[list[Annotated[int, Field(ge=2, le=4096)]], Field(min_length=1)]
    feature_fraction: Annotated[float, Field(gt=0.0, le=1.0)]
    bagging_fraction: Annotated[float, Field(gt=0.0, le=1.0)]
    bagging_freq: Annotated[int, Field(ge=0)]
    max_bin: Annotated[int, Field(ge=2, le=65535)]
    num_boost_round: PositiveInt
    early_stopping_rounds: PositiveInt
    num_threads: PositiveInt
    monotone_constraints_method: Literal["basic", "intermediate", "advanced"]


class ScorecardSettings(Settings):
    min_iv: NonNegative
    max_n_bins: Annotated[int, Field(ge=2, le=50)]
    min_bin_size: Annotated[float, Field(gt=0.0, lt=0.5)]
    max_correlation: Annotated[float, Field(gt=0.0, le=1.0)]
    regularisation: Annotated[float, Field(gt=0.0)]  # inverse L2 strength (sklearn's C)
    pdo: Annotated[float, Field(gt=0.0)]
    base_points: float
    base_odds: Annotated[float, Field(gt=0.0)]


class TrainSettings(Settings):
    lightgbm: LightGBMSettings
    scorecard: ScorecardSettings


class TuneSettings(Settings):
    """Optuna's search of the LightGBM's parameters (the tune stage, pipeline/tune.py); off, the
    train stage uses train.lightgbm as it is."""

    enabled: bool
    n_trials: Annotated[int, Field(ge=1, le=10_000)]  # the binding limit when results must repeat
    # no trial starts after this many seconds (a running one finishes); null: n_trials alone
    timeout_seconds: Annotated[int, Field(gt=0)] | None
    seed: Annotated[int, Field(ge=0)]  # the sampler's; LightGBM keeps train.lightgbm.seed
    metric: Literal["log_loss", "auc"]  # on the validation split, of the booster before calibration


TRACKING_SCHEMES = ("http", "https", "sqlite", "file", "postgresql", "mysql", "mssql", "databricks", "")


def tracking_uri_problem(uri: str) -> str | None:
    """Why MLflow could not keep runs at ``uri`` (a scheme it has no store for, a server address
    without a host), or None."""
    parsed = urlparse(uri)
    if parsed.scheme.split("+")[0] not in TRACKING_SCHEMES:  # a database's driver after the '+'
        known = ", ".join(TRACKING_SCHEMES[:-1])
        return f"malformed MLflow tracking URI {uri!r} (MLflow keeps runs in {known} or a folder)"
    if parsed.scheme in ("http", "https") and not parsed.hostname:
        return f"malformed MLflow tracking URI {uri!r} (no host)"
    return None


class MlflowSettings(Settings):
    """Where runs and the registry live. A relative sqlite path is anchored at the repository
    root ($DVC_ROOT under `dvc exp run`), so temporary experiment copies log to the same store."""

    tracking_uri: Annotated[str, Field(min_length=1)]
    experiment: Annotated[str, Field(min_length=1)]
    registered_model: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]

    @field_validator("tracking_uri")
    @classmethod
    def _known_store(cls, uri: str) -> str:
        # here as well as when a command connects, so a typo stops check_params, not train
        problem = tracking_uri_problem(uri)
        if problem:
            raise ValueError(problem)
        return uri

    @property
    def decision_model(self) -> str:
        """The registered name of the limit-increase decision model."""
        return f"{self.registered_model}-decision"


class RegisterSettings(Settings):
    """The gates a new LightGBM must pass to be promoted: its own (checked when it is registered)
    and the comparison with the current champion (checked by ``limitjump promote``)."""

    min_oot_auc: Probability
    max_calibration_error: Probability
    min_gain_over_scorecard: Annotated[float, Field(ge=-1.0, le=1.0)]
    # out-of-time misses the figures above are measured on: on fewer they say little (at 100 the
    # AUC's 95% interval spans about +-0.05); 0 judges any number
    min_test_misses: Annotated[int, Field(ge=0)]
    # a challenger must beat the champion by this much on the same rows; a smaller gain, a tie
    # included, keeps the champion: changing production needs evidence
    min_gain_over_champion: Annotated[float, Field(ge=0.0, le=1.0)]


class EvaluateSettings(Settings):
    bins: Annotated[int, Field(ge=2, le=100)]  # deciles for lift, calibration, PSI
    top_share: Annotated[float, Field(gt=0.0, le=1.0)]  # the riskiest share whose capture is reported
    # share flagged when asking which causes are caught: none flagged would catch nothing (0/0)
    flag_rate: Annotated[float, Field(gt=0.0, le=1.0)]
    min_rows_per_month: PositiveInt  # for Gini per jump month
    regime_change_date: dt.date  # PSI is reported for rows scored before and after it
    bootstrap_replicates: Annotated[int, Field(ge=20, le=10_000)]  # for AUC and KS intervals


class ScoreSettings(Settings):
    bands: dict[str, Probability]  # band name -> upper bound of the probability, ascending
    quiet_bands: list[str]  # bands that need no action
    batch_borrowers: PositiveInt  # borrowers read, scored and written at a time
    drift_features: Annotated[int, Field(ge=0)]  # most important features watched for drift; 0: all
    explain: bool  # reasons and actions (TreeSHAP, ~100x a prediction); off: probability and band only
    max_rejected_share: Probability  # more rejected borrowers than this: the command exits 1

    @model_validator(mode="after")
    def _bands(self) -> ScoreSettings:
        uppers = list(self.bands.values())
        if not uppers or any(b <= a for a, b in pairwise(uppers)) or uppers[-1] != 1.0:
            raise ValueError("bands must ascend (no two with the same upper bound) and the last must "
                             "end at 1.0")
        if not set(self.quiet_bands) <= set(self.bands):
            raise ValueError("quiet_bands must be names of bands")
        return self


class IncomingSettings(Settings):
    """The batch of new borrowers the pipeline simulates and scores end to end."""

    seed: Annotated[int, Field(ge=0)]
    n_borrowers: PositiveInt
    first_scoring_date: dt.date
    last_scoring_date: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> IncomingSettings:
        if self.last_scoring_date < self.first_scoring_date:
            raise ValueError("last_scoring_date must be on or after first_scoring_date")
        return self


class MonitorAlertSettings(Settings):
    """Rules that raise an alert for a month; each compares one monitored figure with a limit."""

    score_psi: NonNegative  # PSI of the score against training (0.10: watch, 0.25: shifted)
    feature_csi: NonNegative  # CSI of any watched feature against training
    estimated_auc_drop: NonNegative  # estimated AUC (before labels) below the validation AUC by this
    realised_auc_drop: NonNegative  # realised AUC below the validation AUC by this
    realised_ece: NonNegative  # realised calibration error above this
    calibration_in_the_large: NonNegative  # |mean predicted - miss rate| above this


class MonitorSettings(Settings):
    """A monthly stream of new borrowers after the training period, monitored month by month, and
    the backtest of the retraining policies over it."""

    seed: Annotated[int, Field(ge=0)]
    # first day of the first monthly batch; 'auto': the month after the validation split's last
    # scoring date, so that any label or split keeps the stream out of the months the model was fitted on
    first_month: dt.date | Literal["auto"]
    months: Annotated[int, Field(ge=2, le=36)]
    borrowers_per_month: PositiveInt
    # p_true of the stream, for evaluation; at least 2, as simulate's: one has no spread
    truth_replicates: Annotated[int, Field(ge=2, le=1024)]
    watched_features: Annotated[int, Field(ge=0)]  # the most important features whose CSI is watched; 0: all
    bins: Annotated[int, Field(ge=2, le=100)]  # ECE and PSI bins
    # fewer rows in a month: shown, not judged (no alert), and nothing fitted or gated on fewer
    min_batch_rows: PositiveInt
    alerts: MonitorAlertSettings
    recalibration_months: PositiveInt  # latest matured months a recalibration is fitted on
    retrain_months: Annotated[int, Field(ge=3)]  # rolling window of matured months a retrain uses
    retrain_cooldown_months: PositiveInt  # at most one retrain in this many months

    @model_validator(mode="after")
    def _first_day(self) -> MonitorSettings:
        if self.first_month != "auto" and self.first_month.day != 1:
            raise ValueError("first_month must be the first day of a month, or auto")
        return self


class TlsSettings(Settings):
    """PEM files for a tls:// Dask scheduler: the authority that signed the cluster's certificates,
    and this client's certificate and key. Empty: Dask's own configuration (its environment
    variables DASK_DISTRIBUTED__COMM__TLS__CA_FILE, __CLIENT__CERT, __CLIENT__KEY)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @model_validator(mode="after")
    def _together(self) -> TlsSettings:
        if any((self.ca_file, self.cert_file, self.key_file)) and not all(
                (self.ca_file, self.cert_file, self.key_file)):
            raise ValueError("ca_file, cert_file and key_file are set together or not at all")
        return self


class EngineSettings(Settings):
    """Where per-shard work runs. It never changes what is produced, so no stage lists it as a
    DVC param: switching engines does not re-run anything."""

    kind: Literal["local", "dask"]
    workers: Annotated[int, Field(ge=1, le=256)]  # local processes, or LocalCluster workers
    scheduler: str  # Dask scheduler address (tls://host:8786); empty: a LocalCluster on 127.0.0.1
    retries: Annotated[int, Field(ge=0, le=10)]  # times a Dask task is retried after a failure
    batch_borrowers: Annotated[int, Field(ge=1)]  # borrowers whose raw rows a features worker holds at once
    # the features stage's local workers: threads of one process (the least memory) or processes,
    # which Python's lock does not hold back but which each load their own libraries
    features_workers: Literal["threads", "processes"]
    tls: TlsSettings = TlsSettings()
    # what set ``scheduler``, for the engine's messages: params.yaml, or the environment
    # (``scheduler_from_environment``); not a setting, so never read from params.yaml or dumped
    _scheduler_origin: str = PrivateAttr("engine.scheduler")

    @property
    def scheduler_origin(self) -> str:
        return self._scheduler_origin


def scheduler_from_environment(engine: EngineSettings, environ: Mapping[str, str]) -> EngineSettings:
    """``engine`` with $DASK_SCHEDULER_ADDRESS, when ``environ`` sets it, in place of
    engine.scheduler: a cluster's address belongs to the machine, not to the params in git."""
    address = environ.get(SCHEDULER_ENV)
    if not address:
        return engine
    resolved = engine.model_copy(update={"scheduler": address})
    resolved._scheduler_origin = f"${SCHEDULER_ENV}"
    return resolved


class TablesSettings(Settings):
    """A team's own features: one row per borrower, the label beside the features."""

    features: Annotated[str, Field(min_length=1)]  # Parquet or CSV file, or a folder of them
    score: Annotated[str, Field(min_length=1)]  # the borrowers to score, same columns but the label
    id_column: Annotated[str, Field(min_length=1)]  # whole numbers, one row each
    label_column: Annotated[str, Field(min_length=1)]  # 1 missed, 0 did not
    date_column: Annotated[str, Field(min_length=1)]  # the scoring date: the out-of-time split's
    # columns that are the feature catalogue's features (same meaning and unit): only these get its
    # monotone constraint, range checks, reasons and cause; any other column with a catalogue name
    # is refused rather than silently constrained
    catalogue: list[Annotated[str, Field(min_length=1)]]

    @model_validator(mode="after")
    def _one_role_each(self) -> TablesSettings:
        # one column named for two roles had passed, and the data was blamed ("column
        # 'customer_id' must be 0 or 1") for what params said
        roles = {"id_column": self.id_column, "label_column": self.label_column,
                 "date_column": self.date_column}
        for i, (key, column) in enumerate(roles.items()):
            other = [k for k, c in list(roles.items())[i + 1:] if c == column]
            if other:
                raise ValueError(f"{key} and {other[0]} both name column '{column}': each names its own")
        listed = sorted(set(roles.values()) & set(self.catalogue))
        if listed:
            raise ValueError(f"catalogue lists {listed}, named as the id, label or date column")
        return self


class SourceSettings(Settings):
    """Where borrowers come from: the simulator (the test bench) or a team's own tables."""

    kind: Literal["simulator", "tables"]
    tables: TablesSettings


class BoostSettings(Settings):
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)]
    num_leaves: Annotated[int, Field(ge=2, le=1024)]
    min_data_in_leaf: PositiveInt
    lambda_l2: NonNegative
    num_boost_round: PositiveInt


class DecisionSettings(Settings):
    """How much to raise: the economics, the risk appetite and the decision models."""

    appetite: Probability  # the highest miss probability at which an increase is granted
    yield_per_year: NonNegative  # interest and fees earned on the balance
    funding_cost_per_year: NonNegative
    loss_given_miss: Probability  # share of the exposure a miss loses in the end
    # no increase for a borrower past due at the decision date (a default: a model saved before
    # the rule loads, and decides with it)
    no_increase_when_past_due: bool = True
    observational: BoostSettings  # learns from every increase
    correction: BoostSettings  # learns from the line tests what the observational model gets wrong
    num_threads: PositiveInt
    seed: Annotated[int, Field(ge=0)]


class Params(Settings):
    """The whole of ``params.yaml``."""

    source: SourceSettings
    engine: EngineSettings
    label: LabelSettings
    simulate: SimulateSettings
    features: FeatureSettings
    split: SplitSettings
    train: TrainSettings
    tune: TuneSettings
    mlflow: MlflowSettings
    # "register" would shadow pydantic's (ABC) register method, so the field is named gate
    gate: RegisterSettings = Field(alias="register")
    evaluate: EvaluateSettings
    score: ScoreSettings
    incoming: IncomingSettings
    monitor: MonitorSettings
    decision: DecisionSettings

    @model_validator(mode="after")
    def _label_observable(self) -> Params:
        cal, label = self.simulate.calendar, self.label
        needed = days_to_observe_label(label, cal.due_day_offset)
        if (cal.export_end - cal.last_scoring_date).days < needed:
            raise ValueError(
                f"simulate.calendar.export_end must be at least {needed} days after last_scoring_date "
                f"so that the label of the last cohort is observed (label.performance_cycles "
                f"{label.performance_cycles}, label.dpd_threshold {label.dpd_threshold}): move it, "
                "or simulate.calendar.last_scoring_date, or shorten the label")
        return self

    @model_validator(mode="after")
    def _tuning_can_bag(self) -> Params:
        if self.tune.enabled and self.train.lightgbm.bagging_freq == 0:
            raise ValueError("tune.enabled searches bagging_fraction, which LightGBM ignores with "
                             "train.lightgbm.bagging_freq 0: set bagging_freq to 1 or more")
        return self


TOP_LEVEL = re.compile(r"Value error, (?P<key>[a-z_]+(?:\.[a-z_]+)+) (?P<rest>.*)", re.DOTALL)


def parse_params(raw: dict, source: str = "params") -> Params:
    """Validate a params mapping; raise ConfigError naming every bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        lines = [f"{source}: invalid params"]
        for e in err.errors():
            key, message = ".".join(str(p) for p in e["loc"]), e["msg"]
            # a check across sections has no place of its own: it names the key it is about first
            named = TOP_LEVEL.fullmatch(message)
            if not key and named:
                key, message = named["key"], named["rest"]
            lines.append(f"  {key or '(top level)'}: {message}")
        raise ConfigError("\n".join(lines)) from err


def project_dir(remedy: str = "set MLFLOW_TRACKING_URI", start: Path | None = None) -> Path:
    """The checkout the code works in: the nearest directory at or above ``start`` (the working
    directory) holding dvc.yaml and params.yaml (an experiment's temporary copy under ``dvc exp
    run``). Outside one, the error tells the caller's ``remedy``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "params.yaml").is_file():
            return folder
    raise ConfigError(f"{here} is not inside a limitjump repository (no dvc.yaml and params.yaml "
                      f"here or above): run from the repository, or {remedy}")


def repo_root() -> Path:
    """The repository that keeps the MLflow store and the promotion log: $DVC_ROOT (DVC sets it to
    the main repository, even in an experiment's temporary copy), else ``project_dir()``. Never
    the working directory itself, so no stray store is created elsewhere."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    return project_dir()


def anchor_at(params: Path) -> None:
    """Started outside any repository with the params file of one (a scheduled job run from
    elsewhere), a command keeps that repository's MLflow store and registry (``repo_root``)."""
    if os.environ.get("DVC_ROOT"):
        return
    try:
        project_dir()
        return
    except ConfigError:
        pass
    try:
        os.environ["DVC_ROOT"] = str(project_dir(start=params.resolve().parent))
    except ConfigError:
        pass


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; raise ConfigError naming every bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read params: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return parse_params(raw, str(path))

