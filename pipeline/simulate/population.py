"""Drawing the borrowers of one shard: observable profile, hidden traits and the starting state."""

from __future__ import annotations

import numpy as np

from pipeline.catalog import SCORE_RANGE
from pipeline.config import EMPLOYMENT_TYPES, LabelSettings, SimulateSettings
from pipeline.simulate.calendar import add_months, day_in_month, day_number, month_index
from pipeline.simulate.events import EventLog
from pipeline.simulate.state import (
    INQUIRY_RING,
    OUTSIDE_RING,
    OWN_RING,
    SCORE_RING,
    State,
    annuity_factor,
    schedule,
)

MEDIAN_INCOME = np.array([9000.0, 10000.0, 6000.0, 2500.0])  # CNY/month by employment type
TIER_INCOME = np.array([1.5, 1.15, 0.9, 0.75])  # multiplier by city tier 1..4
DECLARED_BIAS = np.array([0.02, 0.15, 0.10, 0.20])  # mean log over-statement by employment type
DECLARED_NOISE = np.array([0.08, 0.25, 0.20, 0.30])


def draw_scoring_days(settings: SimulateSettings, n: int, rng: np.random.Generator) -> np.ndarray:
    """Scoring dates spread evenly over the configured range, on days 1..28 of a month."""
    cal = settings.calendar
    days = rng.integers(day_number(cal.first_scoring_date), day_number(cal.last_scoring_date) + 1, n)
    return (days - np.maximum(day_in_month(days) - 27, 0)).astype("int32")


def cycle_containing(scoring_day: np.ndarray, day: np.ndarray, lowest: int = -8) -> np.ndarray:
    """Index k of the cycle [add_months(S, k), add_months(S, k+1)) that contains ``day``."""
    k = np.full(scoring_day.shape, lowest, dtype="int64")
    for cand in range(lowest + 1, 2):
        k = np.where(add_months(scoring_day, cand) <= day, cand, k)
    return k


def last_full_cycle(scoring_day: np.ndarray, export_end: int) -> np.ndarray:
    """Largest k whose cycle ends on or before the export end."""
    months = (np.int64(export_end).astype("datetime64[D]").astype("datetime64[M]").astype("int64")
              - scoring_day.astype("datetime64[D]").astype("datetime64[M]").astype("int64"))
    k = months
    for _ in range(3):
        k = np.where(add_months(scoring_day, k + 1) - 1 > export_end, k - 1, k)
    return k


def draw_population(ids: np.ndarray, settings: SimulateSettings, label: LabelSettings,
                    horizon: int, rng: np.random.Generator, log: EventLog) -> State:
    """The starting state of every borrower in ``ids``; logs their onboarding rows. The helpers
    draw from ``rng`` in turn, in this order: the same seed gives the same borrowers."""
    n = ids.size
    dates = _draw_dates(settings, label, horizon, n, rng)
    profile = _draw_profile(settings, n, rng)
    habits = _draw_habits(settings, n, rng)
    credit = _draw_credit(dates["new_user"], habits["propensity"], profile, n, rng)
    state = _starting_state(ids, settings, dates, profile, habits, credit, rng)
    outside_monthly = _add_outside_debt(state, dates["onboard_cycle"], dates["onboard_day"],
                                        settings.population.outside_debt_share, settings.lending.loan_apr,
                                        rng, log)
    living = 1.0 - habits["purchase_share"] - habits["saving_share"] - outside_monthly / profile["income"]
    state["living_share"] = np.clip(living, 0.3, 0.95)
    _log_onboarding(state, dates["onboard_day"], profile["age"], profile["tier"], profile["employment"],
                    profile["declared"], log)
    return state


def _draw_dates(settings: SimulateSettings, label: LabelSettings, horizon: int, n: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each borrower's scoring and jump days, whether they are new, and the cycles they joined in
    and are followed to."""
    pop, cal = settings.population, settings.calendar
    scoring = draw_scoring_days(settings, n, rng)
    jump = scoring - label.observation_days
    k_jump = cycle_containing(scoring, jump)
    new_user = rng.random(n) < pop.new_user_share
    tenure = 4 + np.floor(rng.exponential(30.0, n)).astype("int64")
    hist = np.where(new_user, rng.integers(1, 4, n), np.minimum(tenure, cal.history_months))
    onboard_cycle = k_jump - hist
    last_cycle = np.minimum(k_jump + cal.months_after_jump,
                            last_full_cycle(scoring, day_number(cal.export_end)))
    return {"scoring": scoring, "jump": jump, "k_jump": k_jump,
            "jump_offset": jump - add_months(scoring, k_jump), "new_user": new_user,
            "onboard_cycle": onboard_cycle, "onboard_day": add_months(scoring, onboard_cycle),
            "last_cycle": np.maximum(last_cycle, horizon)}


def _draw_profile(settings: SimulateSettings, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Employment, age, city tier, permanent income (log) and the income the borrower declares."""
    pop = settings.population
    mix = np.array([pop.employment_mix[e] for e in EMPLOYMENT_TYPES])
    employment = rng.choice(len(EMPLOYMENT_TYPES), n, p=mix)
    student = employment == EMPLOYMENT_TYPES.index("student")
    age = np.where(student, rng.integers(18, 25, n),
                   np.round(rng.triangular(22, 30, 60, n)).astype("int64"))
    tier = rng.choice(4, n, p=np.array(pop.city_tier_mix)) + 1
    age_gain = 0.015 * np.clip(age - 25, 0, 20)
    log_perm = (np.log(MEDIAN_INCOME[employment] * TIER_INCOME[tier - 1]) + age_gain
                + rng.normal(0.0, 0.45, n))
    income = np.exp(log_perm)
    declared = np.round(income * np.exp(rng.normal(DECLARED_BIAS[employment],
                                                   DECLARED_NOISE[employment])), -2)
    return {"employment": employment, "age": age, "tier": tier, "log_perm": log_perm, "income": income,
            "declared": declared}


def _draw_habits(settings: SimulateSettings, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Propensity to spend, the months of income kept as a buffer, the shares of income spent on
    purchases and saved, and the chance to forget a manual payment."""
    propensity = rng.beta(2.0, 4.0, n)
    buffer_months = np.maximum(np.exp(rng.normal(np.log(1.2), 0.7, n)) * (1.0 - 0.6 * propensity), 0.3)
    purchase_share = np.clip(np.exp(rng.normal(np.log(0.12), 0.5, n)) * (0.6 + 1.2 * propensity),
                             0.02, 0.5)
    saving_share = rng.uniform(0.02, 0.12, n)
    forget_prob = _draw_forgetfulness(n, settings.technical.forget_prob_mean,
                                      settings.technical.forget_repeat_prob, rng)
    return {"propensity": propensity, "buffer_months": buffer_months, "purchase_share": purchase_share,
            "saving_share": saving_share, "forget_prob": forget_prob}


def _draw_credit(new_user: np.ndarray, propensity: np.ndarray, profile: dict[str, np.ndarray], n: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The bureau score's anchor, the score at onboarding and the first limit: a small one for a
    new user, else one from the declared income and the score."""
    anchor = (665.0 + rng.normal(0.0, 45.0, n) - 150.0 * (propensity - 1 / 3)
              + 20.0 * (profile["age"] > 30) + 25.0 * (profile["log_perm"] - np.log(7000.0)))
    anchor = np.clip(anchor, 380.0, 900.0)
    score = np.clip(anchor + rng.normal(0.0, np.where(new_user, 35.0, 20.0)), *SCORE_RANGE)
    full_limit = (profile["declared"] * np.clip((score - 450.0) / 100.0, 0.3, 3.0)
                  * np.exp(rng.normal(0, 0.25, n)))
    limit = np.where(new_user, np.round(rng.uniform(500, 2000, n), -2),
                     np.clip(np.round(full_limit / 500.0) * 500.0, 1000.0, 80000.0))
    return {"anchor": anchor, "score": score, "limit": limit}


def _starting_state(ids: np.ndarray, settings: SimulateSettings, dates: dict, profile: dict, habits: dict,
                    credit: dict, rng: np.random.Generator) -> State:
    """The borrowers' state at onboarding. The keyword arguments are evaluated in order, so the
    draws among them (observed share, payday, cash, mandate) come in that order."""
    n, scoring, employment, limit = ids.size, dates["scoring"], profile["employment"], credit["limit"]
    return State(
        borrower_id=ids.astype("int64"), scoring_day=scoring, jump_day=dates["jump"].astype("int32"),
        scoring_month=month_index(scoring), scoring_day_in_month=day_in_month(scoring),
        k_jump=dates["k_jump"].astype("int16"), jump_offset=dates["jump_offset"].astype("int16"),
        onboard_cycle=dates["onboard_cycle"].astype("int16"), last_cycle=dates["last_cycle"].astype("int16"),
        new_user=dates["new_user"], employment=employment.astype("int8"), age=profile["age"],
        city_tier=profile["tier"], declared_income=profile["declared"], observed_share=rng.beta(8.0, 2.0, n),
        propensity=habits["propensity"], buffer_months=habits["buffer_months"],
        purchase_share=habits["purchase_share"],
        payday=np.where(employment == 0, _draw_payday(n, settings.calendar.due_day_offset, rng),
                        -1).astype("int16"),
        score_anchor=credit["anchor"], transitory_sd=np.array([settings.income.transitory_sd[e]
                                                               for e in EMPLOYMENT_TYPES])[employment],
        job_loss_hazard=np.array([settings.income.job_loss_hazard[e]
                                  for e in EMPLOYMENT_TYPES])[employment],
        log_perm=profile["log_perm"], employed=np.ones(n, dtype=bool),
        cash=habits["buffer_months"] * profile["income"] * rng.uniform(0.5, 1.5, n),
        limit=limit, pre_restriction_limit=limit.copy(), restricted=np.zeros(n, dtype=bool),
        forget_prob=habits["forget_prob"], score=credit["score"],
        mandate=(rng.random(n) < settings.population.autodebit_share).astype("int8"),
        **_blank_history(settings, n, credit["score"]),
    )


def _blank_history(settings: SimulateSettings, n: int, score: np.ndarray) -> dict[str, np.ndarray]:
    """The state the months to come fill in: debts, inquiries, arrears, the jump's figures."""
    return dict(
        reauth_since=np.zeros(n, dtype="int32"), reauth_deadline=np.zeros(n, dtype="int32"),
        rule_change_day=np.full(n, day_number(settings.risk_rules.rule_change_date), dtype="int32"),
        own_due=np.zeros(n), own_changes=np.zeros((OWN_RING, n)), own_remaining=np.zeros(n),
        outside_due=np.zeros(n), outside_changes=np.zeros((OUTSIDE_RING, n)),
        outside_new_due=np.zeros(n), outside_new_changes=np.zeros((OUTSIDE_RING, n)),
        inquiries=np.zeros((INQUIRY_RING, n), dtype="int16"), past_score=np.tile(score, (SCORE_RING, 1)),
        arrears=np.zeros(n), arrears_since=np.full(n, -1, dtype="int32"),
        clean_cycles=np.zeros(n, dtype="int16"), restricted_burden=np.zeros(n),
        trigger=np.full(n, -1, dtype="int8"), increase=np.zeros(n), m12=np.zeros(n),
        draw_tau=np.full(n, settings.drawdown.decay_months), drawn_since_jump=np.zeros(n),
        score_at_jump=np.zeros(n), util_at_jump=np.zeros(n),
        drawn_q1=np.full(n, np.nan), drawn_12m=np.full(n, np.nan),
        inquiries_since_jump=np.zeros(n, dtype="int16"), eligible=np.ones(n, dtype=bool),
        line_test=np.zeros(n, dtype=bool), forced_amount=np.full(n, np.nan),
    )


def _draw_forgetfulness(n: int, mean: float, repeat: float, rng: np.random.Generator) -> np.ndarray:
    """Each borrower's chance to forget a manual payment, from ``forgetfulness_prior``. The
    published repeat rate is about 20% a month for manual payers after a late fee, while autopay
    all but ends late fees (Gathergood, Sakaguchi, Stewart & Weber 2021, Management Science,
    doi:10.1287/mnsc.2019.3568): forgetting, not a lack of money, is what autopay removes."""
    if mean == 0:
        return np.zeros(n)
    return rng.beta(*forgetfulness_prior(mean, repeat), n)


def forgetfulness_prior(mean: float, repeat: float) -> tuple[float, float]:
    """(a, b) of the Beta the chance to forget is drawn from: mean a / (a + b) = ``mean`` and
    P(forget again | forgot) = E[p^2] / E[p] = (a + 1) / (a + b + 1) = ``repeat``."""
    total = (1.0 - repeat) / (repeat - mean)
    return mean * total, (1.0 - mean) * total


def _draw_payday(n: int, due_offset: int, rng: np.random.Generator) -> np.ndarray:
    """Day of the cycle salary arrives: most borrowers chose a due date after their payday."""
    late = rng.random(n) < 0.15
    return np.where(late, rng.integers(due_offset, 28, n), rng.integers(0, due_offset, n))


def _add_outside_debt(state: State, onboard_cycle: np.ndarray, onboard_day: np.ndarray,
                      share: float, apr: float, rng: np.random.Generator, log: EventLog) -> np.ndarray:
    """Loans some borrowers already have elsewhere when they join; returns the monthly
    installment of each borrower (0 for most)."""
    n = len(state)
    has = np.flatnonzero(rng.random(n) < share)
    income = np.exp(state.log_perm[has])
    monthly = income * rng.uniform(0.05, 0.25, has.size)
    tenor = rng.choice(np.array([12, 24]), has.size)
    remaining = rng.integers(1, tenor + 1)
    principal = monthly / annuity_factor(apr / 12.0, tenor)
    schedule(state.outside_changes, onboard_cycle[has], monthly, remaining, has)
    log.add("bureau_loans", borrower_id=state.borrower_id[has],
            open_date=add_months(onboard_day[has], remaining - tenor),
            lender_type=rng.choice(np.array(["bank", "consumer_finance"]), has.size),
            amount=principal, tenor_months=tenor, monthly_installment=monthly)
    per_borrower = np.zeros(n)
    per_borrower[has] = monthly
    return per_borrower


def _log_onboarding(state: State, onboard_day: np.ndarray, age: np.ndarray, tier: np.ndarray,
                    employment: np.ndarray, declared: np.ndarray, log: EventLog) -> None:
    ids, n = state.borrower_id, len(state)
    log.add("borrowers", borrower_id=ids, onboard_date=onboard_day, age=age, city_tier=tier,
            employment_type=np.array(EMPLOYMENT_TYPES)[employment], declared_monthly_income=declared)
    log.add("limit_events", borrower_id=ids, event_date=onboard_day,
            event_type=np.full(n, "initial"), trigger=np.full(n, None, dtype=object),
            old_limit=np.zeros(n), new_limit=state.limit, test_cell=np.full(n, None, dtype=object))
    auto = state.mandate == 1
    log.add("platform_events", borrower_id=ids[auto], event_date=onboard_day[auto],
            event_type=np.full(auto.sum(), "autodebit_authorised"),
            detail=np.full(auto.sum(), "onboarding"))
