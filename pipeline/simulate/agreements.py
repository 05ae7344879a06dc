"""Auto-debit agreements: lapses the platform sees, silent card failures, fixes, and
re-authorisation campaigns with a deadline. Truth replicates condition on a working agreement."""

from __future__ import annotations

import numpy as np

from pipeline.simulate.cycle import (
    ACTIVE,
    KNOWN_LAPSE,
    MANDATE_CURE_MAX,
    MANDATE_CURE_P,
    MANUAL,
    OUTAGE_SECOND_DAY,
    SILENT_FAILURE,
    Cycle,
    World,
    cycle_start,
)
from pipeline.simulate.events import EventLog
from pipeline.simulate.state import State


def update_agreements(s: State, c: Cycle, world: World, rng: np.random.Generator,
                       log: EventLog | None) -> None:
    """Auto-debit agreements lapse (the platform sees it) or fail silently (a changed card);
    a known lapse may be fixed before the due date; a re-authorisation campaign asks borrowers to
    renew by a deadline and lapses those who do not."""
    tech = world.settings.technical
    n = len(s)
    u = rng.random(n)
    active = s.mandate == ACTIVE
    lapse_rate = tech.known_lapse_rate + tech.silent_failure_rate
    known = active & (u < tech.known_lapse_rate)
    silent = active & ~known & (u < lapse_rate)
    lapse_day = c.start + rng.integers(0, world.settings.calendar.due_day_offset, n)

    announced = _announce_campaigns(s, c, world, rng, active)
    pending = s.reauth_deadline > 0
    window_start = np.maximum(c.start, s.reauth_since)
    window_end = np.minimum(c.end + 1, s.reauth_deadline)
    in_window = pending & (window_start < window_end)
    reauthorised = in_window & (rng.random(n) < tech.reauthorise_prob_per_cycle)
    prev_due = cycle_start(s, c.k - 1) + world.settings.calendar.due_day_offset
    at_deadline = pending & (prev_due < s.reauth_deadline) & (s.reauth_deadline <= c.due_day)
    if c.integrate_technical:
        _condition_on_working_agreement(s, c, tech, lapse_rate, active, in_window, at_deadline,
                                        reauthorised)
        return
    deadline_lapse = at_deadline & ~reauthorised & active
    done = reauthorised | at_deadline
    deadline_day = s.reauth_deadline.copy()
    s.reauth_since = np.where(done, 0, s.reauth_since).astype("int32")
    s.reauth_deadline = np.where(done, 0, s.reauth_deadline).astype("int32")

    fixed = (s.mandate == KNOWN_LAPSE) & (rng.random(n) < tech.fix_before_due_prob)
    s.mandate = np.select([known | deadline_lapse, silent, fixed],
                          [KNOWN_LAPSE, SILENT_FAILURE, ACTIVE], s.mandate).astype("int8")
    if log is None:
        return
    window_days = np.maximum(window_end - window_start, 1)
    reauth_day = window_start + np.floor(rng.random(n) * window_days).astype("int32")
    fix_day = c.start + rng.integers(0, world.settings.calendar.due_day_offset, n)
    why = np.where(rng.random(n) < 0.5, "expired", "user_action")
    campaign = "reauthorisation_campaign"
    log_platform(log, s, known, lapse_day, "autodebit_revoked", why)
    log_platform(log, s, deadline_lapse, deadline_day, "autodebit_revoked", "campaign_deadline")
    log_platform(log, s, announced >= 0, announced, "reauth_required", campaign)
    log_platform(log, s, reauthorised, reauth_day, "autodebit_authorised", campaign)
    log_platform(log, s, fixed, fix_day, "autodebit_authorised", "user_action")


def _announce_campaigns(s: State, c: Cycle, world: World, rng: np.random.Generator,
                        active: np.ndarray) -> np.ndarray:
    """Start the campaigns announced in this cycle for the share of active agreements they
    cover; returns the announcement day per borrower (-1 if none). Truth replicates follow their
    own draw of the campaigns not announced at scoring (``truth.redraw_unannounced``)."""
    announced = np.full(len(s), -1, dtype="int32")
    if c.integrate_technical:
        day = s.campaign_announce
        covered = rng.random(len(s)) < s.campaign_share
        rows = np.flatnonzero(active & (c.start <= day) & (day <= c.end) & covered)
        _start_campaign(s, announced, rows, day[rows], s.campaign_deadline[rows])
        return announced
    for announce, deadline, share in world.campaigns:
        rows = np.flatnonzero(active & (c.start <= announce) & (announce <= c.end))
        if rows.size:
            rows = rows[rng.random(rows.size) < share]
            _start_campaign(s, announced, rows, announce, deadline)
    return announced


def _start_campaign(s: State, announced: np.ndarray, rows: np.ndarray, announce, deadline) -> None:
    announced[rows] = announce
    s.reauth_since[rows] = announce
    s.reauth_deadline[rows] = deadline


def _condition_on_working_agreement(s: State, c: Cycle, tech, lapse_rate: float, active,
                                    in_window, at_deadline, reauthorised) -> None:
    """Truth replicates: the probability that the agreement is broken at the due date, and the
    path on which it is not (lapses that did not happen, fixes and renewals that did)."""
    deadline_lapse = np.where(at_deadline & active,
                              np.where(in_window, 1.0 - tech.reauthorise_prob_per_cycle, 1.0), 0.0)
    works = np.select([active, s.mandate == KNOWN_LAPSE, s.mandate == SILENT_FAILURE],
                      [(1.0 - lapse_rate) * (1.0 - deadline_lapse), tech.fix_before_due_prob, 0.0],
                      1.0)
    c.p_broken = 1.0 - works
    done = reauthorised | at_deadline
    s.reauth_since = np.where(done, 0, s.reauth_since).astype("int32")
    s.reauth_deadline = np.where(done, 0, s.reauth_deadline).astype("int32")
    s.mandate = np.where(s.mandate == MANUAL, MANUAL, ACTIVE).astype("int8")


def technical_bad_share(dpd_threshold: int) -> tuple[float, float]:
    """P(a technical miss stays unpaid dpd_threshold days or more): broken agreement, outage."""
    mandate = (1.0 - MANDATE_CURE_P) ** (dpd_threshold - 1) * (dpd_threshold <= MANDATE_CURE_MAX)
    outage = 1.0 if dpd_threshold <= 1 else (OUTAGE_SECOND_DAY if dpd_threshold == 2 else 0.0)
    return mandate, outage


def log_platform(log: EventLog, s: State, rows: np.ndarray, day: np.ndarray, kind: str,
                  detail: str | np.ndarray) -> None:
    if not rows.any():
        return
    detail = np.broadcast_to(np.asarray(detail, dtype=object), rows.shape)[rows]
    log.add("platform_events", borrower_id=s.borrower_id[rows], event_date=day[rows],
            event_type=np.full(rows.sum(), kind), detail=detail)
