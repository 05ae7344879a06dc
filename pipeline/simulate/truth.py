"""The label and the true probability of the label.

The label is read off the performance-window slots the dynamics fill in. The true probability is
estimated by Monte Carlo: the complete state at the scoring date (start of cycle 0) is replicated
R times and the performance window is simulated again with fresh randomness.

Technical misses are Rao-Blackwellised: a replicate draws no broken agreement or outage; at each
due date it records the probability q_j that one would have made the payment fail (and stay
unpaid long enough to count), and continues on the path where none did. Any bad miss ends the
question, so P(label | replicate) = 1 - prod_j (1 - q_j)(1 - m_j), with m_j the replicate's own
(cash-shortfall) bad miss. p_true is the mean of that over replicates, unbiased and with less
variance than counting labels. The standard error stored beside it is the sample standard
deviation of the per-replicate probabilities over sqrt(R).
"""

from __future__ import annotations

import numpy as np

from pipeline.config import CAMPAIGN_GAP_DAYS, CAUSES, LabelSettings, needs_lasting_shortfall
from pipeline.simulate.dynamics import World, advance, cycle_start
from pipeline.simulate.outages import expected_block
from pipeline.simulate.state import State

MAX_REPLICATED_ROWS = 50_000  # borrowers x replicates simulated at once, to bound memory
# p_true's decimals, far finer than its Monte-Carlo error: probabilities equal in exact arithmetic
# but summed in another order, or by another CPU's vector maths, then tie exactly, so the truth
# ranks borrowers (its ROC and PR curves) the same on every machine
DECIMALS = 9


def add_label_slots(s: State, cycles: int) -> None:
    """Empty performance-window slots, added to the state at the scoring date."""
    n = len(s)
    s["slot_due"] = np.zeros((cycles, n), dtype="int32")
    s["slot_paid"] = np.full((cycles, n), -1, dtype="int32")
    s["slot_missed"] = np.zeros((cycles, n), dtype=bool)
    s["slot_cause"] = np.full((cycles, n), -1, dtype="int8")
    s["slot_tech"] = np.full((cycles, n), -1, dtype="int8")
    s["slot_technical_risk"] = np.zeros((cycles, n))
    s["slot_technical_risk_foreseen"] = np.zeros((cycles, n))  # were no unannounced outage to come
    s["slot_weight"] = np.ones((cycles, n))
    s["slot_shortfall"] = np.zeros((2, cycles, n))  # closed-form credit, liquidity shortfalls


def outcome(s: State, label: LabelSettings, end_day: np.ndarray) -> dict[str, np.ndarray]:
    """Label, first bad slot, its cause and its days past due (censored at ``end_day``)."""
    paid = np.where(s.slot_paid < 0, end_day, s.slot_paid)
    dpd = paid - s.slot_due
    bad = s.slot_missed & (dpd >= label.dpd_threshold)
    has = bad.any(axis=0)
    first = np.argmax(bad, axis=0)
    rows = np.arange(len(s))
    return dict(
        label=has,
        first=first,
        cause=np.where(has, s.slot_cause[first, rows], -1),
        tech=np.where(has, s.slot_tech[first, rows], -1),
        due=np.where(has, s.slot_due[first, rows], 0),
        dpd=np.where(has, dpd[first, rows], 0),
    )


def expected_outcome(s: State, label: LabelSettings, end_day: np.ndarray,
                     foreseen_only: bool = False) -> np.ndarray:
    """Per replicate, P(first bad miss has each cause), shape (causes, n); their sum is
    P(label)."""
    return first_miss_by_slot(s, label, end_day, foreseen_only).sum(axis=0)


def first_miss_by_slot(s: State, label: LabelSettings, end_day: np.ndarray,
                       foreseen_only: bool = False) -> np.ndarray:
    """Per replicate, P(the first bad miss is at due date j and has each cause), shape
    (slots, causes, n). Uses what a replicate run with integrate_technical recorded: at each due
    date j, on the path so far, a closed-form shortfall probability (when every shortfall counts),
    then the likelihood ratio w_j of the path's draws, then w_j q_j (a technical block) or w_j (a
    bad shortfall on the path); the path survives with w_j (1 - q_j) when neither happened.

    When a shortfall must last (``config.needs_lasting_shortfall``) the w_j
    are likelihood ratios of importance-sampled draws, and whether a miss lasts the label's days
    may be settled by a later cycle's draws (arrears paid at the next due date): slot j's terms
    then also carry the ratios of the later slots due before it is settled
    (``later_ratios``; at dpd 90 leaving them out put mean p_true 5% above the miss rate). Up to
    that threshold w_j is the closed-form chance of no shortfall, which only later slots carry.
    With ``foreseen_only`` q_j counts only the outages announced by the scoring date: P given that
    none unknown then comes, which the realism report judges the spared borrowers by."""
    paid = np.where(s.slot_paid < 0, end_day, s.slot_paid)
    bad = s.slot_missed & (paid - s.slot_due >= label.dpd_threshold)
    technical = np.where(bad, 0.0, s.slot_technical_risk_foreseen if foreseen_only else s.slot_technical_risk)
    survive = np.ones(len(s))
    probs = np.zeros((bad.shape[0], len(CAUSES), len(s)))
    tech = CAUSES.index("technical")
    credit, liquidity = CAUSES.index("credit"), CAUSES.index("liquidity")
    for j in range(bad.shape[0]):
        probs[j, credit] = survive * s.slot_shortfall[0, j]
        probs[j, liquidity] = survive * s.slot_shortfall[1, j]
        survive = survive * s.slot_weight[j]
        probs[j, tech] = survive * technical[j]
        other = survive * (1.0 - technical[j]) * bad[j]
        for i in range(len(CAUSES)):
            if i != tech:
                probs[j, i] += other * (s.slot_cause[j] == i)
        survive *= (1.0 - technical[j]) * ~bad[j]
    if needs_lasting_shortfall(label):
        probs *= later_ratios(s, label.dpd_threshold)[:, None, :]
    return probs


def later_ratios(s: State, dpd_threshold: int) -> np.ndarray:
    """Per slot j, shape (slots, n): the product of the weights of the later slots whose due date
    comes before slot j's due date plus ``dpd_threshold`` days. Arrears are paid at a due date or
    after it, so only those slots' draws can still decide whether slot j's miss (or an earlier
    one) lasts the label's days. A ratio averages 1 given the past: the term stays unbiased, and
    the slots that cannot matter add no noise."""
    weights, settled = s.slot_weight, s.slot_due + dpd_threshold
    later = np.ones_like(weights)
    for j in range(len(weights)):
        for i in range(j + 1, len(weights)):
            later[j] *= np.where(s.slot_due[i] < settled[j], weights[i], 1.0)
    return later


def true_probability(snapshot: State, world: World, rng: np.random.Generator,
                     replicates: int) -> dict[str, np.ndarray]:
    """p_true overall and per cause for every borrower of ``snapshot`` (state at scoring)."""
    n = len(snapshot)
    add_known_outages(snapshot, world)
    by_cause = np.zeros((len(CAUSES), n))
    se, spared = np.zeros(n), np.zeros(n)
    chunk = max(1, MAX_REPLICATED_ROWS // replicates)
    for lo in range(0, n, chunk):
        part = snapshot.take(np.arange(lo, min(lo + chunk, n))).tile(replicates)
        redraw_unannounced(part, world, rng)
        for k in range(world.horizon + 1):
            advance(part, k, world, rng, None, integrate_technical=True, label_only=k == world.horizon)
        end_day = cycle_start(part, world.horizon + 1) - 1
        probs = expected_outcome(part, world.label, end_day).reshape(len(CAUSES), replicates, -1)
        hi = lo + probs.shape[2]
        by_cause[:, lo:hi] = probs.mean(axis=1)
        spared[lo:hi] = expected_outcome(part, world.label, end_day, foreseen_only=True).sum(axis=0).reshape(
            replicates, -1).mean(axis=0)
        se[lo:hi] = probs.sum(axis=0).std(axis=0, ddof=1 if replicates > 1 else 0) / np.sqrt(replicates)
    return {**probabilities(by_cause), "p_true_se": se,
            "p_true_spared": np.round(np.clip(spared, 0.0, 1.0), DECIMALS)}


def probabilities(by_cause: np.ndarray) -> dict[str, np.ndarray]:
    """p_true and p_true_<cause> from P(first miss by each cause), shape (causes, borrowers), to
    ``DECIMALS``; p_true is the causes' sum (at most 1)."""
    by_cause = np.round(by_cause, DECIMALS)
    out = {"p_true": np.round(np.clip(by_cause.sum(axis=0), 0.0, 1.0), DECIMALS)}
    for i, name in enumerate(CAUSES):
        out[f"p_true_{name}"] = by_cause[i]
    return out


def add_known_outages(s: State, world: World, known_until: np.ndarray | None = None,
                      first_cycle: int = 0) -> None:
    """P(an outage blocks each due date of the truth's cycles), per payment channel, given the
    windows announced before ``known_until`` (default: the scoring date); the rest of the calendar
    is averaged out. Row k is cycle k, and a cycle before the scoring date (from ``first_cycle``,
    the counterfactual's) sits at row -k from the end, so Python's indexing finds every cycle."""
    offset = world.settings.calendar.due_day_offset
    cycles = [*range(world.horizon + 1), *range(first_cycle, 0)]
    due = np.stack([cycle_start(s, k) + offset for k in cycles])
    known = s.scoring_day if known_until is None else known_until
    for unforeseen, suffix in ((True, ""), (False, "_foreseen")):
        s["outage_auto" + suffix] = expected_block(world.outages, due, known, False, unforeseen)
        s["outage_manual" + suffix] = expected_block(world.outages, due, known, True, unforeseen)


def redraw_unannounced(s: State, world: World, rng: np.random.Generator,
                       known_until: np.ndarray | None = None) -> None:
    """Each replicate's own draw of the platform's events not announced at ``known_until``
    (default: its scoring date), from what was known then: the platform's own history.

    The configured campaigns and rule change are the ones the world happened to have; before one
    is announced, nobody can know its date, share or notice, nor how many more will come. A
    replicate draws the next campaign as the first arrival of a Poisson process at the rate of
    the campaigns announced before the scoring date (per day since the calendar began), copying
    the share and notice of one of them picked at random; with none announced yet, none comes.
    A rule change not in force is not known to be coming (the history holds none): no replicate
    has it. Announced ones stay as they are. Drawn from the whole configuration instead, the
    rate, the share and the thresholds had let a campaign configured after every scoring date
    move p_true by up to 0.07 (an outside check, 2026-12-07)."""
    n = len(s)
    scoring = (s.scoring_day if known_until is None else known_until).astype("int64")
    never = np.iinfo("int32").max
    s.rule_change_day = np.where(s.rule_change_day > scoring, never, s.rule_change_day).astype("int32")

    campaigns = np.array(world.campaigns, dtype=float).reshape(-1, 3)
    campaigns = campaigns[np.argsort(campaigns[:, 0], kind="stable")]
    known = np.searchsorted(campaigns[:, 0], scoring, side="left")  # announced before the scoring day
    elapsed = np.maximum(scoring - world.outages.first_day, 1)
    # the next campaign comes at least CAMPAIGN_GAP_DAYS after the last announced one's deadline,
    # for every borrower: one it did not cover, or who renewed already, has no deadline of their own
    last_deadline = campaigns[np.maximum(known - 1, 0), 1] if len(campaigns) else np.zeros(n)
    clock = np.maximum(scoring, np.where(known > 0, last_deadline + CAMPAIGN_GAP_DAYS, 0)).astype("int64")
    wait = np.floor(rng.exponential(1.0, n) * elapsed / np.maximum(known, 1)).astype("int64")
    pick = campaigns[np.floor(rng.random(n) * known).astype("int64")] if len(campaigns) else np.zeros((n, 3))
    comes = known > 0
    s["campaign_announce"] = np.where(comes, clock + wait, never).astype("int32")
    s["campaign_deadline"] = np.where(comes, clock + wait + (pick[:, 1] - pick[:, 0]), never).astype("int32")
    s["campaign_share"] = np.where(comes, pick[:, 2], 0.0)
