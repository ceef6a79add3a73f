//! The clocks of one lead: when each starts, who answers for it over time,
//! when it is due on whose calendar, and what stopped it.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use handoff_model::{Activity, ActivityKind, OwnerKind};

use super::history::{first_opportunity, holder_at, value_at, Holder, HolderSpan};
use super::{rfc3339, window, Clock, ClockKind, ClockStatus, Ctx, Decision, EngineError, Rung, StatusClass, StopCause};
use crate::calendar::Schedule;
use crate::policy::{ClockStart, CompiledSegment, EscalationTarget, OnReassign, TouchBy, Window};

/// What stopped a clock, found from some instant on.
pub(super) struct Stop {
    pub at: DateTime<Utc>,
    pub cause: StopCause,
    /// In words, for the clock's reason.
    pub reason: String,
    /// The obligation ended rather than being met (status `ended`).
    pub ends: bool,
}

/// The course of a clock: who had it, from when, and the pauses.
struct Course {
    /// When the clock counts from: its start, or its last restart.
    received_at: DateTime<Utc>,
    /// The user the clock (re)started with.
    first_user: Option<String>,
    /// Who answers at the end point (the stop, or now).
    holder: Holder,
    /// Since when that holder has had the clock.
    since: DateTime<Utc>,
    /// Whose calendar: the holder's user, else the last user before a
    /// pause, else the first user.
    calendar_user: Option<String>,
    /// Paused spans after `received_at`: (from, until; `None` while paused).
    pauses: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    stop: Option<Stop>,
}

/// Follows a clock from `start` through the lead's holders: a hand-over to
/// another user restarts it (`restart`) or not (`continue`); a seatless
/// queue pauses it. `stop_from(t)` finds what stops the clock counted from `t`.
fn follow(
    ctx: &mut Ctx<'_, '_>,
    kind: ClockKind,
    start: DateTime<Utc>,
    on_reassign: OnReassign,
    stop_from: &dyn Fn(DateTime<Utc>) -> Option<Stop>,
) -> Course {
    let label = kind.as_str();
    let mut holder = holder_at(&ctx.holders, start);
    let mut pauses = Vec::new();
    let first_user = match &holder {
        Holder::User(u) | Holder::Seat { user: u, .. } => Some(u.clone()),
        Holder::Unrouted => ctx.ownership.user_for(start).map(str::to_string),
        Holder::Paused { .. } => {
            pauses.push((start, None));
            None
        }
    };
    let mut course = Course {
        received_at: start,
        calendar_user: first_user.clone(),
        first_user: first_user.clone(),
        holder: holder.clone(),
        since: start,
        pauses,
        stop: None,
    };
    let mut last_user = first_user;
    let mut seen = start;
    loop {
        let stop = stop_from(course.received_at);
        let end = stop.as_ref().map_or(ctx.now, |s| s.at).min(ctx.now);
        let next = ctx.holders.iter().find(|s| s.from > seen && s.from <= end).cloned();
        let Some(span) = next else {
            course.stop = stop;
            break;
        };
        seen = span.from;
        match &span.holder {
            Holder::User(u) | Holder::Seat { user: u, .. } => {
                if let Some(open) = course.pauses.last_mut().filter(|p| p.1.is_none()) {
                    open.1 = Some(span.from);
                    ctx.notes.add(|| {
                        format!("{label}: {u} owns the lead again at {}; the clock resumes", rfc3339(span.from))
                    });
                }
                match last_user.as_deref() {
                    Some(prev) if prev != u => {
                        match on_reassign {
                            OnReassign::Restart => {
                                ctx.notes.add(|| format!(
                                    "{label}: reassigned to {u} at {} while running; the clock restarts (on_reassign = restart)",
                                    rfc3339(span.from)
                                ));
                                course.received_at = span.from;
                                course.first_user = Some(u.clone());
                                course.pauses.clear();
                            }
                            OnReassign::Continue => ctx.notes.add(|| format!(
                                "{label}: reassigned to {u} at {}; the clock keeps its start and now belongs to {u} (on_reassign = continue)",
                                rfc3339(span.from)
                            )),
                        }
                        course.since = span.from;
                    }
                    Some(_) => {}
                    None => {
                        if course.first_user.is_none() {
                            course.first_user = Some(u.clone());
                        }
                        course.since = span.from;
                    }
                }
                if let Holder::Seat { queue, .. } = &span.holder {
                    ctx.notes.add(|| {
                        format!(
                            "{label}: queue {queue} holds the lead from {}; its intake seat {u} answers for it",
                            rfc3339(span.from)
                        )
                    });
                }
                last_user = Some(u.clone());
                course.calendar_user = Some(u.clone());
            }
            Holder::Paused { queue } => {
                ctx.notes.add(|| format!(
                    "{label}: queue {queue} holds the lead from {} and has no intake seat; the clock pauses until a user owns it again",
                    rfc3339(span.from)
                ));
                course.pauses.push((span.from, None));
                course.since = span.from;
            }
            Holder::Unrouted => {}
        }
        holder = span.holder.clone();
        course.holder = holder.clone();
    }
    course
}

/// What the daemon's decision for a lead's arrival changes in its clocks.
#[derive(Default)]
struct ArrivalTerms<'p> {
    /// Relaxed first-touch windows: kept above the rep's cap with
    /// `overflow = "relax"`.
    over_cap: Option<&'p std::collections::BTreeMap<String, Window>>,
    /// The detected surge it arrived in, by name.
    detected_surge: Option<String>,
}

/// Finds the lead's arrival (the user holding it at the sales start, on
/// the business day its clock starts counting) when the policy decides
/// arrivals (`policy.capacity`, `policy.surge.detect`), and notes the
/// daemon's decision for it.
fn arrival<'p>(ctx: &mut Ctx<'_, 'p>, base_start: DateTime<Utc>) -> Result<ArrivalTerms<'p>, EngineError> {
    let policy = ctx.policy;
    if !policy.counts_arrivals() || !policy.enforcement.enforces(base_start) {
        return Ok(ArrivalTerms::default());
    }
    let user = match holder_at(&ctx.holders, base_start) {
        Holder::User(u) => Some(u),
        Holder::Unrouted => ctx.ownership.user_for(base_start).map(str::to_string),
        Holder::Seat { .. } | Holder::Paused { .. } => None,
    };
    let Some(owner_id) = user else { return Ok(ArrivalTerms::default()) };
    let schedule = super::schedule_for(policy, &ctx.lead.id, Some(&owner_id), ctx.owners, &mut ctx.notes)?;
    let opens = schedule.next_open(base_start).map_err(|source| EngineError::Calendar {
        lead_id: ctx.lead.id.clone(),
        clock: ClockKind::FirstTouch.as_str(),
        source,
    })?;
    let zone = schedule.time_zone();
    let day = opens.with_timezone(&zone).date_naive();
    // Away: a day off of theirs falls between the arrival and the day it counts for.
    let arrived_on = base_start.with_timezone(&zone).date_naive();
    let away = policy.time_off.get(&owner_id).is_some_and(|days| days.iter().any(|d| (arrived_on..day).contains(d)));
    let found = super::capacity::Arrival { at: base_start, owner_id, day, away };
    let decided = ctx.intake.filter(|i| i.is_for(&found));
    ctx.arrival = Some(found);
    let Some(intake) = decided else { return Ok(ArrivalTerms::default()) };
    if policy.capacity.is_on() {
        ctx.notes.add(|| intake.describe());
    }
    let over_cap = match (&intake.outcome, &policy.capacity.overflow) {
        (super::capacity::Outcome::Relaxed, Some(crate::policy::Overflow::Relax { first_touch })) => Some(first_touch),
        _ => None,
    };
    Ok(ArrivalTerms { over_cap, detected_surge: intake.surge.clone() })
}

/// Status of a clock from its times.
fn judge(
    due: DateTime<Utc>,
    remind: Option<DateTime<Utc>>,
    stopped: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (ClockStatus, Option<DateTime<Utc>>) {
    match stopped {
        Some(stop) if stop <= due => (ClockStatus::Met, None),
        Some(_) => (ClockStatus::Breached, Some(due)),
        None if now >= due => (ClockStatus::Breached, Some(due)),
        None if remind.is_some_and(|r| now >= r) => (ClockStatus::AtRisk, None),
        None => (ClockStatus::Pending, None),
    }
}

/// What a timed clock needs to know.
struct Timed<'f> {
    kind: ClockKind,
    start: DateTime<Utc>,
    window: Window,
    on_reassign: OnReassign,
    stop_from: &'f dyn Fn(DateTime<Utc>) -> Option<Stop>,
    /// Why it still runs, in words.
    running: String,
}

/// Moves `at` past the pauses before it: the clock time left when a pause
/// began is counted again from its end. `None` when `at` falls after a
/// pause that has not ended.
fn through_pauses(
    schedule: &Schedule,
    window: &Window,
    pauses: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
    at: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, crate::calendar::CalendarError> {
    let mut t = at;
    for (from, until) in pauses {
        if *from >= t {
            continue;
        }
        match until {
            Some(until) => {
                let left = window::elapsed(schedule, window, *from, t);
                t = window::advance(schedule, window, *until, left)?;
            }
            None => return Ok(None),
        }
    }
    Ok(Some(t))
}

/// A timed clock: its course, its due time on the holder's calendar, its
/// status and, while it runs past due, its escalation rungs.
fn timed_clock(ctx: &mut Ctx<'_, '_>, spec: Timed<'_>) -> Result<Clock, EngineError> {
    let Timed { kind, start, window, on_reassign, stop_from, running } = spec;
    let mut course = follow(ctx, kind, start, on_reassign, stop_from);
    let schedule = ctx.schedule(course.calendar_user.as_deref())?;
    let err = ctx.calendar_error(kind);
    let received = course.received_at;
    let started = window::effective_start(&schedule, received, &window).map_err(&err)?;
    let plain_due = window::deadline(&schedule, received, &window).map_err(&err)?;
    let plain_remind =
        window::remind_at(&schedule, &window, started, plain_due, &ctx.policy.escalation.remind).map_err(&err)?;
    // A clock stopped while paused counts its pause up to the stop.
    if let Some(stop) = &course.stop {
        if let Some(open) = course.pauses.last_mut().filter(|p| p.1.is_none()) {
            open.1 = Some(stop.at.max(open.0));
        }
    }
    let pauses = course.pauses.clone();
    let shifted = |at: DateTime<Utc>| through_pauses(&schedule, &window, &pauses, at).map_err(&err);
    let due = shifted(plain_due)?;
    let remind = match plain_remind {
        Some(r) => shifted(r)?,
        None => None,
    };
    let paused_since = pauses.iter().find(|p| p.1.is_none()).map(|p| p.0);
    // The due time as far as the clock ran before the current pause.
    let due_before_pause = match paused_since {
        Some(_) => through_pauses(&schedule, &window, &pauses[..pauses.len() - 1], plain_due).map_err(&err)?,
        None => due,
    };

    let mut clock = Clock {
        kind,
        owner_id: course.holder.user().map(str::to_string),
        first_owner_id: course.first_user.clone(),
        last_owner_id: course.calendar_user.clone(),
        owner_since: Some(course.since),
        held_by: match &course.holder {
            Holder::Seat { queue, .. } | Holder::Paused { queue } => Some(queue.clone()),
            _ => None,
        },
        paused_since,
        calendar: Some(Ctx::calendar_label(&schedule)),
        received_at: Some(received),
        started_at: Some(started),
        due_at: due,
        remind_at: remind,
        status: ClockStatus::Pending,
        ..Clock::waived(kind, "")
    };
    if started != received {
        ctx.notes.add(|| {
            format!(
                "{}: arrived {} outside business hours; counting starts at the next opening {}",
                kind.as_str(),
                rfc3339(received),
                rfc3339(started)
            )
        });
    }
    match (course.stop.take(), due, due_before_pause) {
        // Ended before its due time: the obligation is gone, neither met nor
        // breached. After it, the breach had already happened.
        (Some(stop), due, _) if stop.ends && due.is_none_or(|d| stop.at <= d) => {
            clock.status = ClockStatus::Ended;
            clock.stopped_at = Some(stop.at);
            clock.reason = stop.reason;
            clock.stopped_by = Some(stop.cause);
        }
        (Some(stop), Some(due), _) if stop.ends => {
            clock.status = ClockStatus::Breached;
            clock.breached_at = Some(due);
            clock.stopped_at = Some(stop.at);
            clock.reason =
                format!("{running}; due {} passed, then {}", rfc3339(due), stop.reason.trim_start_matches("ended: "));
            clock.stopped_by = Some(stop.cause);
        }
        (Some(stop), Some(due), _) => {
            let (status, breached_at) = judge(due, None, Some(stop.at), ctx.now);
            clock.status = status;
            clock.breached_at = breached_at;
            clock.stopped_at = Some(stop.at);
            clock.reason = if status == ClockStatus::Met {
                format!("{} at {} (due {})", stop.reason, rfc3339(stop.at), rfc3339(due))
            } else {
                format!("{} at {}, after the due time {}", stop.reason, rfc3339(stop.at), rfc3339(due))
            };
            clock.stopped_by = Some(stop.cause);
        }
        (_, None, before) => {
            // Paused now: breached already if the due time came first.
            let since = paused_since.unwrap_or(ctx.now);
            let queue = clock.held_by.clone().unwrap_or_default();
            match before.filter(|d| *d <= since) {
                Some(d) => {
                    clock.status = ClockStatus::Breached;
                    clock.breached_at = Some(d);
                    clock.due_at = Some(d);
                    clock.reason = format!(
                        "{running}; due {} had passed when queue {queue} took the lead at {} (paused: no intake seat)",
                        rfc3339(d),
                        rfc3339(since)
                    );
                }
                None => {
                    let left = before.map(|d| window::elapsed(&schedule, &window, since, d)).unwrap_or_default();
                    clock.reason = format!(
                        "paused: queue {queue} holds the lead since {} and has no intake seat; the clock resumes with {} of clock time left when a user owns it again",
                        rfc3339(since),
                        describe_duration(left)
                    );
                }
            }
            clock.remind_at = None;
        }
        (None, Some(due), _) => {
            let (status, breached_at) = judge(due, remind, None, ctx.now);
            clock.status = status;
            clock.breached_at = breached_at;
            clock.reason = match status {
                ClockStatus::Breached => format!("{running}; due {} has passed", rfc3339(due)),
                ClockStatus::AtRisk => format!(
                    "{running}; reminder point {} has passed, due {}",
                    remind.map(rfc3339).unwrap_or_default(),
                    rfc3339(due)
                ),
                _ => format!("{running}; due {}", rfc3339(due)),
            };
            if let (Some(owner), Some(first)) = (&clock.owner_id, &clock.first_owner_id) {
                if owner != first {
                    clock.reason.push_str(&format!(
                        "; with {owner} since {}",
                        clock.owner_since.map(rfc3339).unwrap_or_default()
                    ));
                }
            }
            if clock.paused_since.is_none() {
                let rungs = ladder(ctx, &schedule, &window, &clock, started, plain_due)?;
                let mut shifted_rungs = Vec::with_capacity(rungs.len());
                for mut rung in rungs {
                    if let Some(at) = through_pauses(&schedule, &window, &pauses, rung.at).map_err(&err)? {
                        rung.at = at;
                        let later_holder = clock.owner_id.is_some() && clock.owner_id != clock.first_owner_id;
                        let since = clock.owner_since.unwrap_or(received);
                        rung.fired = ctx.now >= at && (!later_holder || at >= since);
                        shifted_rungs.push(rung);
                    }
                }
                clock.escalations = shifted_rungs;
            }
        }
    }
    Ok(clock)
}

fn describe_duration(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().max(0);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The escalation rungs of a running clock, from its unpaused times. A rung
/// without a target hands its turn to the next rung that has one.
fn ladder(
    ctx: &mut Ctx<'_, '_>,
    schedule: &Schedule,
    window: &Window,
    clock: &Clock,
    started: DateTime<Utc>,
    due: DateTime<Utc>,
) -> Result<Vec<Rung>, EngineError> {
    let owner = clock.owner_id.as_deref();
    let policy = ctx.policy;
    let targets: Vec<Option<(String, bool)>> = policy
        .escalation
        .levels
        .iter()
        .map(|level| match &level.to {
            EscalationTarget::Manager => owner.and_then(|o| ctx.owners.manager_of(o, policy)).map(|m| (m, false)),
            EscalationTarget::ManagerOfManager => owner
                .and_then(|o| ctx.owners.manager_of(o, policy))
                .and_then(|m| ctx.owners.manager_of(&m, policy))
                .map(|m| (m, false)),
            EscalationTarget::Pool(pool) => Some((pool.clone(), true)),
        })
        .collect();
    let mut consumed = BTreeSet::new();
    let mut rungs = Vec::new();
    for (index, level) in policy.escalation.levels.iter().enumerate() {
        if consumed.contains(&index) {
            continue;
        }
        let at =
            window::rung_at(schedule, window, started, due, &level.after).map_err(ctx.calendar_error(clock.kind))?;
        let chosen = (index..targets.len()).find(|j| !consumed.contains(j) && targets[*j].is_some());
        let Some(j) = chosen else {
            ctx.notes.add(|| {
                format!(
                    "{}: escalation level {} has no one to go to (owner {} has no manager and no later rung exists)",
                    clock.kind.as_str(),
                    index + 1,
                    owner.unwrap_or("(none)")
                )
            });
            break;
        };
        if j != index {
            ctx.notes.add(|| {
                format!(
                    "{}: escalation level {} has no one to go to ({}); level {} takes its turn",
                    clock.kind.as_str(),
                    index + 1,
                    describe_target(&level.to),
                    j + 1
                )
            });
        }
        consumed.insert(j);
        let Some((to, reassign)) = targets[j].clone() else { continue };
        let level_number = u8::try_from(j + 1).unwrap_or(u8::MAX);
        rungs.push(Rung { level: level_number, at, to, reassign, fired: ctx.now >= at });
    }
    Ok(rungs)
}

fn describe_target(target: &EscalationTarget) -> String {
    match target {
        EscalationTarget::Manager => "the owner's manager".to_string(),
        EscalationTarget::ManagerOfManager => "the manager's manager".to_string(),
        EscalationTarget::Pool(pool) => format!("pool {pool}"),
    }
}

/// A status decision in words, for a clock's reason.
fn decided(d: &Decision) -> String {
    format!("status became `{}`", d.status)
}

/// Every sales clock of a lead in `segment`.
pub(super) fn sales_clocks(
    ctx: &mut Ctx<'_, '_>,
    segment: &CompiledSegment,
    grade: Option<&str>,
) -> Result<Vec<Clock>, EngineError> {
    let obligation_at = ctx.obligation_at;
    let first_user: Option<(String, DateTime<Utc>)> =
        ctx.ownership.user_assignments().first().map(|(id, at)| (id.to_string(), *at));
    let all_decided = ctx.decisions();
    let current_status = ctx.current_status().map(str::to_string);
    let current_class = current_status.as_deref().and_then(|s| super::classify(&ctx.policy.statuses, s));
    let mut clocks = Vec::new();

    // The sales start: MQL time, the first assignment to a user, or SAL
    // acceptance — never before the lead qualified.
    let base_start = match segment.clock_start {
        ClockStart::Mql => Some(obligation_at),
        ClockStart::Assignment => first_user.as_ref().map(|(_, at)| (*at).max(obligation_at)),
        ClockStart::Acceptance => all_decided.iter().find(|d| d.class == StatusClass::Accepted).map(|d| d.at),
    };
    let Some(base_start) = base_start else {
        let why = match segment.clock_start {
            ClockStart::Acceptance => "waiting for SAL acceptance (clock_start = acceptance)",
            _ => "waiting for assignment to a user (clock_start = assignment)",
        }
        .to_string();
        clocks.push(Clock::not_started(ClockKind::FirstTouch, None, why.clone()));
        if segment.sal_decision.is_some() {
            clocks.push(Clock::not_started(ClockKind::SalDecision, None, why.clone()));
        }
        clocks.push(Clock::not_started(ClockKind::Disposition, None, why));
        return Ok(clocks);
    };
    // The decisions that count once the clocks run (the acceptance that
    // started an acceptance segment's clocks is their start, not a decision).
    let acceptance_start = segment.clock_start == ClockStart::Acceptance;
    let decided: Vec<Decision> = all_decided
        .iter()
        .filter(|d| d.at >= base_start)
        .filter(|d| !(acceptance_start && d.at == base_start && d.class == StatusClass::Accepted))
        .cloned()
        .collect();
    if let Some(owner) = ctx.ownership.user_for(base_start).map(str::to_string) {
        if ctx.owners.get(&owner).is_none() {
            ctx.notes.add(|| format!("owner {owner} is unknown to the CRM pull; default calendar, no manager"));
        }
    }
    let touches = ctx.touches(segment);
    let terms = arrival(ctx, base_start)?;

    // First touch: only a logged call, email or meeting meets it; a
    // rejection, close or conversion before any touch ends it.
    // A lead whose clock starts inside a declared surge gets the surge's
    // window for its grade, when the protocol relaxes that grade; one its
    // rep took above their cap with `overflow = "relax"`, the capacity's.
    let declared = ctx.policy.surge.at(base_start);
    let surge = declared.map(|s| s.name.clone()).or(terms.detected_surge);
    match grade.and_then(|g| segment.first_touch.get(g)) {
        Some(window) => {
            let over_cap = grade.and_then(|g| terms.over_cap?.get(g));
            let relaxed = surge.as_ref().and(grade).and_then(|g| ctx.policy.surge.first_touch.get(g));
            if let Some(relaxed) = relaxed {
                let why = match declared {
                    Some(s) => format!("during the declared surge `{}` ({})", s.name, s.reason),
                    None => format!(
                        "in a detected surge ({} new MQLs or more an hour, policy.surge.detect)",
                        ctx.policy.surge.detect.map_or(0, |d| d.mqls_per_hour)
                    ),
                };
                ctx.notes.add(|| {
                    format!("first_touch: the lead arrived {why}, so its window is {relaxed} instead of {window}")
                });
            }
            if let Some(relaxed) = over_cap {
                ctx.notes.add(|| format!(
                    "first_touch: its rep took it above their daily cap (overflow = relax), so its window is {relaxed} instead of {window}"
                ));
            }
            let window = *over_cap.or(relaxed).unwrap_or(window);
            let stop_from = |from: DateTime<Utc>| -> Option<Stop> {
                let touch = touches.iter().find(|a| a.occurred_at >= from).copied();
                let ended = decided
                    .iter()
                    .filter(|d| d.at >= from && d.class.ends_first_touch())
                    .find(|d| touch.is_none_or(|t| d.at < t.occurred_at));
                match (ended, touch) {
                    (Some(d), _) => Some(Stop {
                        at: d.at,
                        cause: StopCause::Status { status: d.status.clone() },
                        reason: format!(
                            "ended: the lead was {} (status `{}`) at {} before any touch",
                            class_word(d.class),
                            d.status,
                            rfc3339(d.at)
                        ),
                        ends: true,
                    }),
                    (None, Some(a)) => Some(Stop {
                        at: a.occurred_at,
                        cause: StopCause::Touch { activity_id: a.id.clone() },
                        reason: format!(
                            "touched: {} {} by {}",
                            a.kind.as_str(),
                            a.id,
                            a.owner_id.as_deref().unwrap_or("(unknown)")
                        ),
                        ends: false,
                    }),
                    (None, None) => None,
                }
            };
            let running = match segment.touch_by {
                TouchBy::Owner => "no call, email or meeting by the owner yet",
                TouchBy::Anyone => "no call, email or meeting yet",
            };
            let mut clock = timed_clock(
                ctx,
                Timed {
                    kind: ClockKind::FirstTouch,
                    start: base_start,
                    window,
                    on_reassign: segment.on_reassign,
                    stop_from: &stop_from,
                    running: running.to_string(),
                },
            )?;
            if clock.stopped_at.is_none() {
                explain_non_touches(ctx, segment, clock.received_at.unwrap_or(base_start));
            }
            clock.surge = surge;
            clocks.push(clock);
        }
        None => {
            let why = match grade {
                Some(g) => format!("segment `{}` sets no first-touch window for grade {g}", segment.name),
                None => "the lead has no grade, so no first-touch window applies".to_string(),
            };
            ctx.notes.add(|| format!("first_touch: {why}"));
            clocks.push(Clock::not_started(
                ClockKind::FirstTouch,
                ctx.ownership.user_for(base_start).map(str::to_string),
                why,
            ));
        }
    }

    // Both the SAL decision and the disposition stop at the first decision
    // from their start: accepted, rejected, deferred or converted, or closed
    // as unresponsive.
    let stop_from = |from: DateTime<Utc>| -> Option<Stop> {
        decided.iter().find(|d| d.at >= from).map(|d| Stop {
            at: d.at,
            cause: StopCause::Status { status: d.status.clone() },
            reason: decided_word(d),
            ends: false,
        })
    };

    // SAL decision: from the first assignment to a user.
    if let Some(window) = segment.sal_decision {
        match &first_user {
            Some((_, at)) => {
                let start = (*at).max(base_start);
                clocks.push(timed_clock(
                    ctx,
                    Timed {
                        kind: ClockKind::SalDecision,
                        start,
                        window,
                        on_reassign: segment.on_reassign,
                        stop_from: &stop_from,
                        running: "not yet accepted or rejected".to_string(),
                    },
                )?);
            }
            None => clocks.push(Clock::not_started(
                ClockKind::SalDecision,
                None,
                "starts at the first assignment to a user; none yet".to_string(),
            )),
        }
    }

    // Cadence: judged when the lead is closed as unresponsive.
    clocks.push(cadence_clock(ctx, segment, base_start, &touches, &decided, current_class)?);

    // Disposition: the first disposition inside the window.
    clocks.push(timed_clock(
        ctx,
        Timed {
            kind: ClockKind::Disposition,
            start: base_start,
            window: segment.disposition_within,
            on_reassign: segment.on_reassign,
            stop_from: &stop_from,
            running: "not yet accepted, rejected, deferred, closed or converted".to_string(),
        },
    )?);

    // Reason code: a rejection or unresponsive close owes an agreed code
    // within the grace period; only then does a missing one breach.
    if let Some(class) = current_class.filter(|c| c.needs_reason()) {
        if let Some(rejected) = decided.iter().rev().find(|d| d.class == class).cloned() {
            clocks.push(reason_code_clock(ctx, segment, &rejected)?);
        }
    }
    clocks.extend(ae_clocks(ctx, segment, &all_decided, base_start)?);
    Ok(clocks)
}

/// The AE's commitments (`discovery_within`, `opportunity_within`), both
/// from SAL acceptance, on the calendar of whoever holds the lead (the AE
/// it went to, and from its creation the opportunity's owner): a discovery
/// meeting booked — a meeting on the lead or on its opportunity, counted
/// from when it was logged or took place, whichever came first — and the
/// opportunity created (the opportunity record, or the lead's conversion,
/// whichever comes first). A rejection or close ends both; a conversion
/// does not end the discovery clock, a meeting does.
fn ae_clocks(
    ctx: &mut Ctx<'_, '_>,
    segment: &CompiledSegment,
    all_decided: &[Decision],
    base_start: DateTime<Utc>,
) -> Result<Vec<Clock>, EngineError> {
    let windows =
        [(ClockKind::Discovery, segment.discovery_within), (ClockKind::Opportunity, segment.opportunity_within)];
    let accepted = all_decided.iter().find(|d| d.class == StatusClass::Accepted && d.at >= base_start).map(|d| d.at);
    let Some(start) = accepted else {
        return Ok(windows
            .iter()
            .filter(|(_, w)| w.is_some())
            .map(|(kind, _)| Clock::not_started(*kind, None, "starts at SAL acceptance; not accepted yet".to_string()))
            .collect());
    };
    let lead = ctx.lead;
    let activities = ctx.activities;
    // The opportunity the lead became (the first one still there), and
    // the meetings on the lead or on any of its opportunities.
    let live: Vec<&handoff_model::Opportunity> = lead.opportunities.iter().filter(|o| !o.deleted).collect();
    let opportunity = first_opportunity(lead);
    let on_opportunity = |a: &Activity| a.opportunity_id.as_ref().is_some_and(|id| live.iter().any(|o| &o.id == id));
    let meetings: Vec<&Activity> = activities
        .iter()
        .filter(|a| {
            a.kind == ActivityKind::Meeting
                && !a.deleted
                && a.handoff_key.is_none()
                && (a.lead_id == lead.id || on_opportunity(a))
        })
        .collect();
    // Once the opportunity exists, its owner answers for the AE's clocks:
    // reminders go to them, escalations up their line.
    let lead_holders = match opportunity.and_then(|o| o.owner_id.clone().map(|owner| (o.created_at, owner))) {
        Some((from, owner)) => {
            let mut spans: Vec<HolderSpan> = ctx.holders.iter().filter(|s| s.from < from).cloned().collect();
            spans.push(HolderSpan { from, holder: Holder::User(owner) });
            Some(std::mem::replace(&mut ctx.holders, spans))
        }
        None => None,
    };
    let out = ae_timed_clocks(ctx, segment, all_decided, start, &meetings, opportunity);
    if let Some(holders) = lead_holders {
        ctx.holders = holders;
    }
    out
}

/// The discovery and opportunity clocks from SAL acceptance at `start`.
fn ae_timed_clocks(
    ctx: &mut Ctx<'_, '_>,
    segment: &CompiledSegment,
    all_decided: &[Decision],
    start: DateTime<Utc>,
    meetings: &[&Activity],
    opportunity: Option<&handoff_model::Opportunity>,
) -> Result<Vec<Clock>, EngineError> {
    let ended_from = |from: DateTime<Utc>| {
        all_decided
            .iter()
            .find(|d| d.at >= from && matches!(d.class, StatusClass::Rejected | StatusClass::ClosedUnresponsive))
    };
    let ended = |d: &Decision, before: &str| Stop {
        at: d.at,
        cause: StopCause::Status { status: d.status.clone() },
        reason: format!("ended: the lead was {} at {} before {before}", class_word(d.class), rfc3339(d.at)),
        ends: true,
    };
    let mut out = Vec::new();
    if let Some(window) = segment.discovery_within {
        let stop_from = |from: DateTime<Utc>| -> Option<Stop> {
            let booked = meetings
                .iter()
                .filter(|a| a.occurred_at >= from)
                .map(|a| (a.occurred_at.min(a.modified_at).max(from), *a))
                .min_by_key(|(at, _)| *at);
            // A conversion is not a discovery meeting: the clock runs on
            // until one is logged on the lead or its opportunity.
            match (booked, ended_from(from)) {
                (Some((at, a)), end) if end.is_none_or(|e| at <= e.at) => Some(Stop {
                    at,
                    cause: StopCause::Touch { activity_id: a.id.clone() },
                    reason: format!(
                        "booked: meeting {} on {} by {}",
                        a.id,
                        rfc3339(a.occurred_at),
                        a.owner_id.as_deref().unwrap_or("(unknown)")
                    ),
                    ends: false,
                }),
                (_, Some(e)) => Some(ended(e, "a discovery meeting")),
                (_, None) => None,
            }
        };
        out.push(timed_clock(
            ctx,
            Timed {
                kind: ClockKind::Discovery,
                start,
                window,
                on_reassign: segment.on_reassign,
                stop_from: &stop_from,
                running: "no discovery meeting booked yet".to_string(),
            },
        )?);
    }
    if let Some(window) = segment.opportunity_within {
        let stop_from = |from: DateTime<Utc>| -> Option<Stop> {
            let decision = all_decided.iter().find(|d| {
                d.at >= from
                    && matches!(
                        d.class,
                        StatusClass::Converted | StatusClass::Rejected | StatusClass::ClosedUnresponsive
                    )
            });
            // The opportunity record, when it came first, meets the clock
            // (HubSpot's deal may come before the lifecycle stage moves).
            let created = opportunity.filter(|o| o.created_at >= from && decision.is_none_or(|d| o.created_at < d.at));
            if let Some(o) = created {
                return Some(Stop {
                    at: o.created_at,
                    cause: StopCause::Opportunity { opportunity_id: o.id.clone() },
                    reason: format!(
                        "opportunity {} created at {} (owner {})",
                        o.id,
                        rfc3339(o.created_at),
                        o.owner_id.as_deref().unwrap_or("(none)")
                    ),
                    ends: false,
                });
            }
            let decision = decision?;
            Some(match decision.class {
                StatusClass::Converted => Stop {
                    at: decision.at,
                    cause: StopCause::Status { status: decision.status.clone() },
                    reason: format!("converted at {}: the opportunity exists", rfc3339(decision.at)),
                    ends: false,
                },
                _ => ended(decision, "an opportunity"),
            })
        };
        out.push(timed_clock(
            ctx,
            Timed {
                kind: ClockKind::Opportunity,
                start,
                window,
                on_reassign: segment.on_reassign,
                stop_from: &stop_from,
                running: "not converted to an opportunity yet".to_string(),
            },
        )?);
    }
    Ok(out)
}

fn class_word(class: StatusClass) -> &'static str {
    match class {
        StatusClass::Rejected => "rejected",
        StatusClass::ClosedUnresponsive => "closed as unresponsive",
        StatusClass::Converted => "converted",
        StatusClass::Accepted => "accepted",
        StatusClass::Deferred => "deferred",
        StatusClass::Nurture => "put in nurture",
        StatusClass::Open | StatusClass::Working => "reopened",
    }
}

fn decided_word(d: &Decision) -> String {
    decided(d)
}

/// When the reason-code field first held an agreed code at or after `from`
/// (from its history; a code already there at `from` counts from `from`).
pub fn reason_code_given(
    lead: &handoff_model::Lead,
    field: &str,
    codes: &BTreeSet<String>,
    from: DateTime<Utc>,
) -> Option<(DateTime<Utc>, String)> {
    let agreed = |v: Option<&serde_json::Value>| -> Option<String> {
        v.and_then(|v| v.as_str()).map(str::trim).filter(|c| codes.contains(*c)).map(str::to_string)
    };
    if let Some(code) = agreed(value_at(lead, field, from)) {
        return Some((from, code));
    }
    match lead.field_history.get(field).filter(|h| !h.is_empty()) {
        Some(history) => {
            history.iter().filter(|c| c.at > from).find_map(|c| agreed(Some(&c.value)).map(|code| (c.at, code)))
        }
        // No history: all that is known is the code the lead holds now.
        None => None,
    }
}

fn reason_code_clock(
    ctx: &mut Ctx<'_, '_>,
    segment: &CompiledSegment,
    rejected: &Decision,
) -> Result<Clock, EngineError> {
    let field = ctx.policy.fields.reason_code.clone();
    let codes = ctx.policy.reason_codes.clone();
    let lead = ctx.lead;
    let current = lead.field_str(&field).map(str::trim).map(str::to_string);
    let stop_from = |from: DateTime<Utc>| -> Option<Stop> {
        reason_code_given(lead, &field, &codes, from).map(|(at, code)| Stop {
            at,
            reason: format!("agreed reason code `{code}` in `{field}`"),
            cause: StopCause::ReasonCode { code },
            ends: false,
        })
    };
    let running = match &current {
        None => format!("status `{}` needs a reason code in `{field}`, which is empty", rejected.status),
        Some(code) => format!(
            "reason code `{code}` in `{field}` is not one of the agreed codes ({})",
            codes.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut clock = timed_clock(
        ctx,
        Timed {
            kind: ClockKind::ReasonCode,
            start: rejected.at,
            window: segment.reason_code_grace,
            on_reassign: segment.on_reassign,
            stop_from: &stop_from,
            running,
        },
    )?;
    // Silent during the grace: no reminder, no ladder; a flag once it passed.
    clock.remind_at = None;
    if clock.status == ClockStatus::AtRisk {
        clock.status = ClockStatus::Pending;
    }
    clock.escalations.clear();
    clock.flagged = clock.status == ClockStatus::Breached && clock.stopped_at.is_none();
    Ok(clock)
}

/// Says why each activity and status change since `start` did not stop the
/// first-touch clock, so a disputed breach can be read off the notes.
fn explain_non_touches(ctx: &mut Ctx<'_, '_>, segment: &CompiledSegment, start: DateTime<Utc>) {
    if !ctx.notes.keep {
        return;
    }
    let mut lines = Vec::new();
    for a in ctx.activities.iter().filter(|a| a.lead_id == ctx.lead.id && a.occurred_at >= start) {
        let why = if a.deleted {
            "it was deleted".to_string()
        } else if a.handoff_key.is_some() {
            "handoff created it".to_string()
        } else if !segment.touch_kinds.contains(&a.kind) || a.kind == ActivityKind::Task {
            format!("a {} is not a touch", a.kind.as_str())
        } else if a.automated && !segment.automated_touches {
            "it was sent by automation (a sequence, cadence or list email), which is not a touch (automated_touches = false)"
                .to_string()
        } else if segment.touch_by == TouchBy::Owner {
            match ctx.ownership.owner_at(a.occurred_at) {
                Some((owner, OwnerKind::User)) if a.owner_id.as_deref() != Some(owner) => format!(
                    "it was logged by {}, not by the owner {owner} (touch_by = owner)",
                    a.owner_id.as_deref().unwrap_or("(nobody)")
                ),
                _ => continue,
            }
        } else {
            continue;
        };
        lines.push(format!(
            "first_touch: {} {} at {} does not count: {why}",
            a.kind.as_str(),
            a.id,
            rfc3339(a.occurred_at)
        ));
    }
    for change in ctx.lead.status_changes.iter().filter(|c| c.at >= start) {
        lines.push(format!(
            "first_touch: the status change to `{}` at {} does not count: a status change is not a touch",
            change.status,
            rfc3339(change.at)
        ));
    }
    ctx.notes.extend(lines);
}

fn cadence_clock(
    ctx: &mut Ctx<'_, '_>,
    segment: &CompiledSegment,
    start: DateTime<Utc>,
    touches: &[&Activity],
    decided: &[Decision],
    current_class: Option<StatusClass>,
) -> Result<Clock, EngineError> {
    let needed_touches = segment.cadence.touches;
    let needed_days = segment.cadence.business_days;
    let closed_at = (current_class == Some(StatusClass::ClosedUnresponsive))
        .then(|| decided.iter().rev().find(|d| d.class == StatusClass::ClosedUnresponsive).map(|d| d.at))
        .flatten();
    let stop_from = |from: DateTime<Utc>| -> Option<Stop> {
        closed_at.filter(|c| *c >= from).map(|at| Stop {
            at,
            cause: StopCause::Status { status: String::new() },
            reason: String::new(),
            ends: false,
        })
    };
    let course = follow(ctx, ClockKind::Cadence, start, segment.on_reassign, &stop_from);
    let counted_from = course.received_at;
    // A deferral rests the cadence until its follow-up date.
    let follow_up = ctx.follow_up_at();
    let deferral = decided
        .iter()
        .rev()
        .find(|d| d.class == StatusClass::Deferred)
        .and_then(|d| follow_up.filter(|f| *f > d.at).map(|f| (d.at, f)));
    let resting = |at: DateTime<Utc>| deferral.is_some_and(|(from, until)| at >= from && at < until);
    let until = closed_at.unwrap_or(ctx.now);
    let counted: Vec<&Activity> = touches
        .iter()
        .copied()
        .filter(|a| a.occurred_at >= counted_from && a.occurred_at <= until && !resting(a.occurred_at))
        .collect();
    let schedule = ctx.schedule(course.calendar_user.as_deref())?;
    let days = match (counted.first(), counted.last()) {
        (Some(first), Some(last)) => {
            let spanned = business_days_spanned(&schedule, first.occurred_at, last.occurred_at);
            let rested = match deferral {
                Some((from, to)) if from < last.occurred_at && to > first.occurred_at => {
                    business_days_inside(&schedule, from.max(first.occurred_at), to.min(last.occurred_at))
                }
                _ => 0,
            };
            spanned.saturating_sub(rested)
        }
        _ => 0,
    };
    let tally = format!("{} of {needed_touches} touches across {days} of {needed_days} business days", counted.len());
    let mut clock = Clock {
        kind: ClockKind::Cadence,
        owner_id: course.holder.user().map(str::to_string),
        first_owner_id: course.first_user.clone(),
        last_owner_id: course.calendar_user.clone(),
        owner_since: Some(course.since),
        held_by: match &course.holder {
            Holder::Seat { queue, .. } | Holder::Paused { queue } => Some(queue.clone()),
            _ => None,
        },
        paused_since: course.pauses.iter().find(|p| p.1.is_none()).map(|p| p.0),
        calendar: Some(Ctx::calendar_label(&schedule)),
        received_at: Some(counted_from),
        started_at: Some(counted_from),
        status: ClockStatus::Pending,
        reason: format!("{tally} so far; judged when the lead is closed as unresponsive"),
        ..Clock::waived(ClockKind::Cadence, "")
    };
    if let Some((from, to)) = deferral {
        if current_class == Some(StatusClass::Deferred) {
            clock.resumes_at = Some(to);
            clock.reason = if ctx.now < to {
                format!(
                    "deferred at {} until {}: the cadence rests and resumes then ({tally} so far)",
                    rfc3339(from),
                    rfc3339(to)
                )
            } else {
                format!("deferred until {}, which has come: the cadence resumes ({tally} so far)", rfc3339(to))
            };
        }
    }
    if let Some(closed) = closed_at {
        clock.stopped_at = Some(closed);
        clock.stopped_by = Some(StopCause::Status { status: ctx.current_status().unwrap_or("closed").to_string() });
        let enough = counted.len() as u64 >= u64::from(needed_touches) && days >= needed_days;
        if enough {
            clock.status = ClockStatus::Met;
            clock.reason = format!("closed as unresponsive after {tally}");
        } else {
            clock.status = ClockStatus::Breached;
            clock.breached_at = Some(closed);
            clock.flagged = true;
            clock.reason = format!("closed as unresponsive after only {tally}");
        }
    }
    Ok(clock)
}

/// Business days (local dates with open time in `schedule`) from the day of
/// `first` through the day of `last`, inclusive.
fn business_days_spanned(schedule: &Schedule, first: DateTime<Utc>, last: DateTime<Utc>) -> u32 {
    let tz = schedule.time_zone();
    let day_start = |date: chrono::NaiveDate| tz.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN)).earliest();
    let first_date = first.with_timezone(&tz).date_naive();
    let last_date = last.with_timezone(&tz).date_naive();
    let (Some(from), Some(to)) = (day_start(first_date), last_date.succ_opt().and_then(day_start)) else {
        return 0;
    };
    let dates: BTreeSet<chrono::NaiveDate> = schedule
        .open_intervals(from.with_timezone(&Utc), to.with_timezone(&Utc))
        .into_iter()
        .map(|(open, _)| open.with_timezone(&tz).date_naive())
        .collect();
    u32::try_from(dates.len()).unwrap_or(u32::MAX)
}

/// Business days lying wholly inside `[from, to)`: a deferral's rest.
fn business_days_inside(schedule: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
    let tz = schedule.time_zone();
    let mut n = 0u32;
    let mut date = from.with_timezone(&tz).date_naive();
    let last = to.with_timezone(&tz).date_naive();
    while date <= last {
        let start = tz.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN)).earliest();
        let end = date.succ_opt().and_then(|d| tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN)).earliest());
        if let (Some(s), Some(e)) = (start, end) {
            let (s, e) = (s.with_timezone(&Utc), e.with_timezone(&Utc));
            if s >= from && e <= to && !schedule.open_intervals(s, e).is_empty() {
                n += 1;
            }
        }
        match date.succ_opt() {
            Some(next) => date = next,
            None => break,
        }
    }
    n
}

/// Marketing's routing clock: from when the lead qualified to the first
/// assignment to a user.
pub(super) fn routing_clock(ctx: &mut Ctx<'_, '_>) -> Result<Clock, EngineError> {
    let mql_at = ctx.obligation_at;
    let assigned = ctx.ownership.user_assignments().first().map(|(id, at)| (id.to_string(), *at));
    let window = ctx.policy.marketing.routing_within;
    let stop_from = |_: DateTime<Utc>| -> Option<Stop> {
        assigned.as_ref().map(|(id, at)| Stop {
            at: (*at).max(mql_at),
            cause: StopCause::Assignment { owner_id: id.clone() },
            reason: format!("assigned to {id}"),
            ends: false,
        })
    };
    // Routing is marketing's: it does not follow the sales owner.
    let schedule = ctx.schedule(None)?;
    let err = ctx.calendar_error(ClockKind::Routing);
    let started = window::effective_start(&schedule, mql_at, &window).map_err(&err)?;
    let due = window::deadline(&schedule, mql_at, &window).map_err(&err)?;
    let stop = stop_from(mql_at);
    let (status, breached_at) = judge(due, None, stop.as_ref().map(|s| s.at), ctx.now);
    let reason = match (&stop, status) {
        (Some(s), ClockStatus::Met) => format!("{} at {} (due {})", s.reason, rfc3339(s.at), rfc3339(due)),
        (Some(s), _) => format!("{} at {}, after the due time {}", s.reason, rfc3339(s.at), rfc3339(due)),
        (None, ClockStatus::Breached) => format!("not yet assigned to a user; due {} has passed", rfc3339(due)),
        (None, _) => format!("not yet assigned to a user; due {}", rfc3339(due)),
    };
    Ok(Clock {
        kind: ClockKind::Routing,
        calendar: Some(Ctx::calendar_label(&schedule)),
        received_at: Some(mql_at),
        started_at: Some(started),
        due_at: Some(due),
        stopped_at: stop.as_ref().map(|s| s.at),
        breached_at,
        status,
        reason,
        stopped_by: stop.map(|s| s.cause),
        ..Clock::waived(ClockKind::Routing, "")
    })
}
