//! Deterministic synthetic org generation from an [`OrgConfig`].
//!
//! Everything is drawn from one ChaCha stream seeded with `cfg.seed`, in a
//! fixed order, and only integer ranges of fixed width are sampled (never
//! `usize`, whose sampling differs between 32- and 64-bit targets), so the
//! same config yields the same org on every run and platform. No hash maps
//! are involved in building the output.
//!
//! The shape of the org:
//! - a VP at the top, four regional managers (more for big orgs) reporting to
//!   the VP, and reps reporting to a manager of their region, spread over
//!   five time zones; reps 0–4 get one behaviour each so every behaviour is
//!   present, the rest draw from a fixed mix;
//! - two queues, "Inbound Queue" (routing) and "Nurture Pool" (weak leads);
//! - an org default calendar (New York, US holidays) and an EMEA one;
//! - leads arriving across the whole timeline, nights and weekends included,
//!   in index order; each rep behaviour turns into touches in the rep's local
//!   working hours and status changes, a few leads are reassigned, deleted
//!   or merged. Events after the end of the timeline are dropped, so a
//!   sandbox whose clock starts at the end shows the whole org;
//! - about one lead in four is enrolled in a sequence as it reaches its
//!   first rep: an automated email in the rep's name a little later (drawn
//!   from a stream of its own, so the rest of the org is what the seed
//!   always gave).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use handoff_model::{ActivityKind, BusinessCalendar, Holiday, WeeklyWindow};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::org::{
    EventKind, IntendedGrade, LeadStatus, OrgConfig, OrgEvent, OrgProfile, OwnerRef, RepBehaviour, Spike, SynthLead,
    SynthQueue, SynthUser, SyntheticOrg,
};

/// Index of "Inbound Queue" in [`SyntheticOrg::queues`].
pub const INBOUND_QUEUE: usize = 0;
/// Index of "Nurture Pool" in [`SyntheticOrg::queues`].
pub const NURTURE_POOL: usize = 1;

/// The reason codes reps use (the example policy's list).
pub const REASON_CODES: [&str; 7] = [
    "wrong_persona",
    "no_budget",
    "bad_timing",
    "bad_contact_data",
    "already_customer",
    "competitor",
    "did_not_meet_criteria",
];

/// Countries the example policy counts as a fit.
pub const FIT_COUNTRIES: [&str; 4] = ["US", "GB", "CA", "AU"];

/// Touches a diligent rep logs before closing a lead as unresponsive
/// (the example policy's cadence: 6 touches across 10 business days).
const FULL_CADENCE_TOUCHES: u32 = 6;

/// Leads per rep per month the org is staffed for.
const LEADS_PER_REP_MONTH: usize = 40;

struct Region {
    team: &'static str,
    zones: &'static [&'static str],
}

const REGIONS: [Region; 4] = [
    Region { team: "NA East", zones: &["America/New_York"] },
    Region { team: "NA West", zones: &["America/Los_Angeles"] },
    Region { team: "EMEA", zones: &["Europe/London"] },
    Region { team: "APAC", zones: &["Asia/Kolkata", "Australia/Sydney"] },
];

/// Rep `r`'s zone cycles through these, so even a six-rep org spans five zones.
const REP_ZONES: [(&str, usize); 5] = [
    ("America/New_York", 0),
    ("Europe/London", 2),
    ("America/Los_Angeles", 1),
    ("Asia/Kolkata", 3),
    ("Australia/Sydney", 3),
];

const ALL_BEHAVIOURS: [RepBehaviour; 5] = [
    RepBehaviour::Fast,
    RepBehaviour::Slow,
    RepBehaviour::Never,
    RepBehaviour::StopsEarly,
    RepBehaviour::SloppyRejecter,
];

const FIRST_NAMES: [&str; 32] = [
    "Ava", "Liam", "Maya", "Noah", "Priya", "Ethan", "Sofia", "Lucas", "Chloe", "Arjun", "Emma", "Oliver", "Zara",
    "Mateo", "Grace", "Kenji", "Hannah", "Diego", "Leila", "Samuel", "Isla", "Ravi", "Nora", "Felix", "Amara", "Jonah",
    "Mei", "Tomás", "Aisha", "Henry", "Freya", "Omar",
];
const LAST_NAMES: [&str; 32] = [
    "Patel", "Nguyen", "Smith", "Garcia", "Kim", "Okafor", "Müller", "Rossi", "Tanaka", "Johnson", "O'Brien", "Silva",
    "Cohen", "Larsen", "Singh", "Brown", "Dubois", "Kowalski", "Haddad", "Walker", "Ivanova", "Chen", "Murphy",
    "Alvarez", "Mensah", "Taylor", "Novak", "Fischer", "Reyes", "Clarke", "Sato", "Hughes",
];
const COMPANY_HEADS: [&str; 16] = [
    "Northwind",
    "Bluepeak",
    "Cobalt",
    "Ironleaf",
    "Lumen",
    "Harbor",
    "Quartz",
    "Redwood",
    "Summit",
    "Tidal",
    "Vertex",
    "Willow",
    "Atlas",
    "Beacon",
    "Crescent",
    "Granite",
];
const COMPANY_TAILS: [&str; 8] = ["Labs", "Systems", "Analytics", "Health", "Logistics", "Software", "Group", "Energy"];
const INDUSTRIES: [&str; 8] =
    ["Technology", "Healthcare", "Financial Services", "Manufacturing", "Retail", "Logistics", "Education", "Energy"];
const MANAGER_TITLES: [&str; 6] = [
    "VP of Marketing",
    "Director of Sales Operations",
    "Head of Growth",
    "Marketing Manager",
    "Chief Revenue Officer",
    "Senior Manager, Demand Generation",
];
const WEAK_TITLES: [&str; 4] = ["Marketing Coordinator", "Analyst", "Software Engineer", "Sales Associate"];
const STUDENT_TITLES: [&str; 2] = ["Student", "Graduate Student"];
const WEAK_COUNTRIES: [&str; 5] = ["DE", "FR", "BR", "IN", "JP"];
const FREEMAIL_DOMAINS: [&str; 2] = ["gmail.com", "yahoo.com"];
/// Domains of competitors, one of the example policy's disqualifiers.
pub const COMPETITOR_DOMAINS: [&str; 2] = ["rivalflow.example", "leadracer.example"];
/// Mail domain of the org's own users.
pub const ORG_DOMAIN: &str = "handoff-sandbox.example";

/// Generate the org for `cfg`; the same config always yields the same org.
pub fn generate(cfg: &OrgConfig) -> SyntheticOrg {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let users = generate_users(cfg, &mut rng);
    let reps: Vec<usize> = users.iter().filter(|u| u.behaviour.is_some()).map(|u| u.index).collect();
    let rep_zones: Vec<Tz> = users.iter().map(|u| u.time_zone.parse().unwrap_or(chrono_tz::UTC)).collect();
    let queues = vec![
        SynthQueue { index: INBOUND_QUEUE, name: "Inbound Queue".into() },
        SynthQueue { index: NURTURE_POOL, name: "Nurture Pool".into() },
    ];
    let calendars = calendars(cfg);

    let mut arrivals = arrival_times(cfg, &mut rng);
    if let Some(spike) = cfg.spike {
        arrivals.extend(spike_times(cfg, spike));
        arrivals.sort();
    }
    let time_off = leave_days(cfg, &reps, &rep_zones);
    let mut leads = Vec::with_capacity(arrivals.len());
    let mut events = Vec::with_capacity(arrivals.len() * 8);
    let mut removed = vec![false; arrivals.len()];
    let ctx = Ctx { users: &users, zones: &rep_zones, end_at: cfg.end_at(), profile: cfg.profile };
    // Follow-up activities come from a stream of their own, so the org
    // without them is exactly the org generated without the option.
    let mut extra = cfg.activities_per_lead.map(|per_lead| FollowUps {
        rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ FOLLOW_UP_STREAM),
        per_lead: u64::from(per_lead),
        touches: 0,
    });
    for (index, arrived_at) in arrivals.into_iter().enumerate() {
        let lead = generate_lead(index, &mut rng);
        // Round-robin over reps, like an assignment rule, so every rep (and
        // so every behaviour) gets leads as soon as there are as many leads
        // as reps.
        let rep = reps[index % reps.len()];
        let other_rep = reps[(index + 1 + rng.gen_range(0..reps.len() as u32) as usize) % reps.len()];
        let mut lead_events = Vec::new();
        plan_lead(&ctx, &lead, arrived_at, rep, other_rep, &mut rng, &mut lead_events);
        plan_sequence(&ctx, cfg.seed, index, &mut lead_events);
        plan_removal(&ctx, index, arrived_at, &mut removed, &mut rng, &mut lead_events);
        wait_for_leave(&time_off, &rep_zones, &mut lead_events);
        if cfg.opportunities && !removed[index] {
            plan_opportunity(&ctx, cfg.seed, index, &mut lead_events);
        }
        lead_events.retain(|e| e.at < ctx.end_at);
        if let Some(f) = extra.as_mut() {
            f.plan(&ctx, index, &removed, &mut lead_events);
        }
        events.extend(lead_events);
        leads.push(lead);
    }
    // Stable: ties keep generation order (created before its own touches).
    events.sort_by_key(|e| e.at);
    // The org is kept for the emulators' whole life: no spare capacity
    // (a quarter of the timeline's memory otherwise).
    events.shrink_to_fit();

    SyntheticOrg { config: cfg.clone(), users, queues, calendars, leads, events, time_off }
}

/// Seed offset of the spike's arrivals.
const SPIKE_STREAM: u64 = 0x5B1C_E0DA_7A11_0C47;

/// The spike's extra arrivals: its day, 14:00–20:00 UTC.
fn spike_times(cfg: &OrgConfig, spike: Spike) -> Vec<DateTime<Utc>> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ SPIKE_STREAM);
    let day = cfg.start_at + Duration::days(i64::from(spike.day));
    let day = day - Duration::seconds(i64::from(day.num_seconds_from_midnight()));
    (0..spike.leads)
        .map(|_| day + Duration::seconds(rng.gen_range(14 * 3600..20 * 3600)))
        .filter(|t| *t < cfg.end_at())
        .collect()
}

/// The reps' days away (user index, first and last day in their zone).
fn leave_days(cfg: &OrgConfig, reps: &[usize], zones: &[Tz]) -> Vec<(usize, NaiveDate, NaiveDate)> {
    cfg.leave
        .iter()
        .filter(|l| l.days > 0 && !reps.is_empty())
        .map(|l| {
            let rep = reps[l.rep % reps.len()];
            let first = cfg.start_at.with_timezone(&zones[rep]).date_naive() + Duration::days(i64::from(l.from_day));
            (rep, first, first + Duration::days(i64::from(l.days) - 1))
        })
        .collect()
}

/// A rep on leave touches nothing and decides nothing: the lead's events
/// from the first one that falls on a day of their leave wait, all shifted
/// alike, until the first working day after it.
fn wait_for_leave(time_off: &[(usize, NaiveDate, NaiveDate)], zones: &[Tz], events: &mut [OrgEvent]) {
    if time_off.is_empty() {
        return;
    }
    events.sort_by_key(|e| e.at);
    let mut owner: Option<usize> = None;
    let mut shift_from: Option<(usize, Duration)> = None;
    for (i, e) in events.iter().enumerate() {
        let actor = match &e.kind {
            EventKind::LeadCreated { owner: o, .. } | EventKind::Assigned { owner: o, .. } => {
                owner = match o {
                    OwnerRef::User(u) => Some(*u),
                    OwnerRef::Queue(_) => None,
                };
                None
            }
            EventKind::Touch { by, .. } => Some(*by),
            EventKind::StatusChanged { .. } => owner,
            EventKind::Deleted { .. }
            | EventKind::Merged { .. }
            | EventKind::OpportunityCreated { .. }
            | EventKind::OpportunityMeeting { .. } => None,
        };
        let Some(rep) = actor else { continue };
        let tz = zones[rep];
        let day = e.at.with_timezone(&tz).date_naive();
        if let Some((_, _, last)) =
            time_off.iter().find(|(r, first, last)| *r == rep && (*first..=*last).contains(&day))
        {
            let mut back = *last + Duration::days(1);
            while !is_workday(back) {
                back += Duration::days(1);
            }
            shift_from = Some((i, Duration::days((back - day).num_days())));
            break;
        }
    }
    if let Some((from, by)) = shift_from {
        for e in &mut events[from..] {
            e.at += by;
        }
    }
}

/// Seed offset of the follow-up activities' stream.
const FOLLOW_UP_STREAM: u64 = 0xF011_0A95_AC71_7135;
/// Most follow-up activities one lead gets.
const MAX_FOLLOW_UPS: u64 = 15;

/// Adds follow-up activities after leads close, keeping a running count so
/// the org's average approaches `per_lead`.
struct FollowUps {
    rng: ChaCha8Rng,
    per_lead: u64,
    /// Touches generated so far, the leads' own and the follow-ups.
    touches: u64,
}

impl FollowUps {
    /// Lead `index`'s events are `out` (already cut at the timeline's end).
    fn plan(&mut self, ctx: &Ctx<'_>, index: usize, removed: &[bool], out: &mut Vec<OrgEvent>) {
        self.touches += out.iter().filter(|e| matches!(e.kind, EventKind::Touch { .. })).count() as u64;
        // The lead's last status change, when it closes the lead.
        let closed_at = out.iter().rev().find_map(|e| match &e.kind {
            EventKind::StatusChanged { status, .. } => Some(
                matches!(
                    status,
                    LeadStatus::Rejected { .. } | LeadStatus::ClosedUnresponsive { .. } | LeadStatus::Converted
                )
                .then_some(e.at),
            ),
            _ => None,
        });
        let owner = out.iter().rev().find_map(|e| match e.kind {
            EventKind::LeadCreated { owner: OwnerRef::User(u), .. }
            | EventKind::Assigned { owner: OwnerRef::User(u), .. } => Some(Some(u)),
            EventKind::LeadCreated { .. } | EventKind::Assigned { .. } => Some(None),
            _ => None,
        });
        let (Some(Some(closed_at)), Some(Some(owner)), false) = (closed_at, owner, removed[index]) else { return };
        let wanted = self.per_lead * (index as u64 + 1);
        let count = wanted.saturating_sub(self.touches).min(MAX_FOLLOW_UPS);
        let tz = ctx.zones[owner];
        let mut at = closed_at;
        for _ in 0..count {
            at = working_day(at, tz, self.rng.gen_range(1..4), &mut self.rng);
            if at >= ctx.end_at {
                break;
            }
            out.push(event(
                at,
                EventKind::Touch { lead: index, by: owner, kind: touch_kind(&mut self.rng), automated: false },
            ));
            self.touches += 1;
        }
    }
}

struct Ctx<'a> {
    users: &'a [SynthUser],
    zones: &'a [Tz],
    end_at: DateTime<Utc>,
    profile: OrgProfile,
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len() as u32) as usize]
}

fn months(cfg: &OrgConfig) -> usize {
    (cfg.days as usize).div_ceil(30).max(1)
}

fn generate_users(cfg: &OrgConfig, rng: &mut ChaCha8Rng) -> Vec<SynthUser> {
    let rep_count = (cfg.leads / months(cfg)).div_ceil(LEADS_PER_REP_MONTH).max(6);
    let manager_count = rep_count.div_ceil(8).max(REGIONS.len());
    let mut users = Vec::with_capacity(1 + manager_count + rep_count);
    let user = |users: &mut Vec<SynthUser>, zone: &str, manager, team: &str, behaviour| {
        let index = users.len();
        let first = FIRST_NAMES[index % FIRST_NAMES.len()];
        let last = LAST_NAMES[(index / FIRST_NAMES.len() + index * 7) % LAST_NAMES.len()];
        users.push(SynthUser {
            index,
            first_name: first.to_string(),
            last_name: last.to_string(),
            email: format!("{}.{}{}@{ORG_DOMAIN}", ascii_slug(first), ascii_slug(last), index),
            time_zone: zone.to_string(),
            manager,
            team: team.to_string(),
            behaviour,
            ae: false,
        });
    };
    user(&mut users, "America/New_York", None, "Leadership", None);
    for m in 0..manager_count {
        let region = &REGIONS[m % REGIONS.len()];
        user(&mut users, region.zones[0], Some(0), region.team, None);
    }
    for r in 0..rep_count {
        let (zone, region) = REP_ZONES[r % REP_ZONES.len()];
        // Managers of region k sit at 1 + k, 1 + k + 4, …
        let managers_in_region = (manager_count - region).div_ceil(REGIONS.len());
        let manager = 1 + region + REGIONS.len() * ((r / REP_ZONES.len()) % managers_in_region);
        let behaviour = match cfg.profile {
            OrgProfile::Mixed if r < ALL_BEHAVIOURS.len() => ALL_BEHAVIOURS[r],
            OrgProfile::Mixed => draw_behaviour(rng),
            OrgProfile::Calibrated | OrgProfile::Steady => RepBehaviour::Fast,
        };
        user(&mut users, zone, Some(manager), REGIONS[region].team, Some(behaviour));
    }
    if cfg.opportunities {
        // One AE per region, reporting to the region's first manager.
        for (region, r) in REGIONS.iter().enumerate() {
            user(&mut users, r.zones[0], Some(1 + region), r.team, None);
            if let Some(ae) = users.last_mut() {
                ae.ae = true;
            }
        }
    }
    users
}

/// Seed offset of the opportunities' stream.
const OPPORTUNITY_STREAM: u64 = 0x0990_2717_AE5E_11E5;

/// The AE's side of a lead ([`OrgConfig::opportunities`]): its conversion
/// creates an opportunity owned by the AE of the last owner's region, and
/// three in four get a discovery meeting logged on it within four working
/// days (the rest never do). A random stream per lead of its own.
fn plan_opportunity(ctx: &Ctx<'_>, seed: u64, index: usize, out: &mut Vec<OrgEvent>) {
    let mut owner = None;
    let mut converted_at = None;
    for e in out.iter() {
        match &e.kind {
            EventKind::LeadCreated { owner: OwnerRef::User(u), .. }
            | EventKind::Assigned { owner: OwnerRef::User(u), .. } => owner = Some(*u),
            EventKind::StatusChanged { status: LeadStatus::Converted, .. } => converted_at = Some(e.at),
            _ => {}
        }
    }
    let (Some(rep), Some(at)) = (owner, converted_at) else { return };
    let team = &ctx.users[rep].team;
    let Some(ae) = ctx.users.iter().find(|u| u.ae && &u.team == team) else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ OPPORTUNITY_STREAM ^ (index as u64).rotate_left(29));
    out.push(event(at, EventKind::OpportunityCreated { lead: index, owner: ae.index }));
    if rng.gen_bool(0.75) {
        let tz = ctx.zones[ae.index];
        let met_at = working_day(at, tz, rng.gen_range(1..5), &mut rng);
        out.push(event(met_at, EventKind::OpportunityMeeting { lead: index, by: ae.index }));
    }
}

/// The fixed mix: 40 % fast, 20 % slow, 10 % never, 15 % stop early,
/// 15 % sloppy rejecters.
fn draw_behaviour(rng: &mut ChaCha8Rng) -> RepBehaviour {
    match rng.gen_range(0..100u32) {
        0..40 => RepBehaviour::Fast,
        40..60 => RepBehaviour::Slow,
        60..70 => RepBehaviour::Never,
        70..85 => RepBehaviour::StopsEarly,
        _ => RepBehaviour::SloppyRejecter,
    }
}

fn ascii_slug(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'a'..='z' | 'A'..='Z' => Some(c.to_ascii_lowercase()),
            'á' => Some('a'),
            'ü' => Some('u'),
            _ => None,
        })
        .collect()
}

fn calendars(cfg: &OrgConfig) -> Vec<BusinessCalendar> {
    let years: Vec<i32> = (cfg.start_at.year()..=cfg.end_at().year()).collect();
    let weekdays = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];
    let hours = |start: u32, end: u32| -> Vec<WeeklyWindow> {
        weekdays.iter().map(|&weekday| WeeklyWindow { weekday, start: hm(start, 0), end: hm(end, 0) }).collect()
    };
    vec![
        BusinessCalendar {
            id: "default".into(),
            time_zone: "America/New_York".into(),
            weekly: hours(9, 17),
            holidays: years.iter().flat_map(|&y| us_holidays(y)).collect(),
        },
        BusinessCalendar {
            id: "emea".into(),
            time_zone: "Europe/London".into(),
            weekly: hours(9, 17),
            holidays: years.iter().flat_map(|&y| uk_holidays(y)).collect(),
        },
    ]
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// The `n`th (1-based) `weekday` of a month; `n = 0` means the last one.
fn nth_weekday(y: i32, m: u32, weekday: Weekday, n: u8) -> NaiveDate {
    if n == 0 {
        let next_month = if m == 12 { ymd(y + 1, 1, 1) } else { ymd(y, m + 1, 1) };
        let mut d = next_month.pred_opt().unwrap_or(next_month);
        while d.weekday() != weekday {
            d = d.pred_opt().unwrap_or(d);
        }
        d
    } else {
        NaiveDate::from_weekday_of_month_opt(y, m, weekday, n).unwrap_or(NaiveDate::MIN)
    }
}

/// A fixed-date holiday falling on a weekend is observed on the nearest weekday.
fn observed(d: NaiveDate) -> NaiveDate {
    match d.weekday() {
        Weekday::Sat => d.pred_opt().unwrap_or(d),
        Weekday::Sun => d.succ_opt().unwrap_or(d),
        _ => d,
    }
}

fn holiday(date: NaiveDate, name: &str) -> Holiday {
    Holiday { date, name: Some(name.to_string()), start: None, end: None }
}

/// US federal holidays (observed dates) of `year`.
pub fn us_holidays(y: i32) -> Vec<Holiday> {
    vec![
        holiday(observed(ymd(y, 1, 1)), "New Year's Day"),
        holiday(nth_weekday(y, 1, Weekday::Mon, 3), "Martin Luther King Jr. Day"),
        holiday(nth_weekday(y, 2, Weekday::Mon, 3), "Presidents' Day"),
        holiday(nth_weekday(y, 5, Weekday::Mon, 0), "Memorial Day"),
        holiday(observed(ymd(y, 6, 19)), "Juneteenth"),
        holiday(observed(ymd(y, 7, 4)), "Independence Day"),
        holiday(nth_weekday(y, 9, Weekday::Mon, 1), "Labor Day"),
        holiday(nth_weekday(y, 11, Weekday::Thu, 4), "Thanksgiving Day"),
        holiday(observed(ymd(y, 12, 25)), "Christmas Day"),
    ]
}

/// The fixed-rule England bank holidays of `year` (Easter-dependent ones left out).
pub fn uk_holidays(y: i32) -> Vec<Holiday> {
    let new_year = ymd(y, 1, 1);
    let new_year = match new_year.weekday() {
        Weekday::Sat => new_year + Duration::days(2),
        Weekday::Sun => new_year + Duration::days(1),
        _ => new_year,
    };
    // Weekend Christmas and Boxing Day move to the next free weekdays.
    let christmas = ymd(y, 12, 25);
    let (christmas, boxing) = match christmas.weekday() {
        Weekday::Fri => (christmas, christmas + Duration::days(3)),
        Weekday::Sat => (christmas + Duration::days(2), christmas + Duration::days(3)),
        Weekday::Sun => (christmas + Duration::days(2), christmas + Duration::days(1)),
        _ => (christmas, christmas + Duration::days(1)),
    };
    vec![
        holiday(new_year, "New Year's Day"),
        holiday(nth_weekday(y, 5, Weekday::Mon, 1), "Early May bank holiday"),
        holiday(nth_weekday(y, 5, Weekday::Mon, 0), "Spring bank holiday"),
        holiday(nth_weekday(y, 8, Weekday::Mon, 0), "Summer bank holiday"),
        holiday(christmas, "Christmas Day"),
        holiday(boxing, "Boxing Day"),
    ]
}

/// Arrival instants in ascending order: about two thirds fall in US office
/// hours on weekdays, the rest anywhere (nights, weekends).
fn arrival_times(cfg: &OrgConfig, rng: &mut ChaCha8Rng) -> Vec<DateTime<Utc>> {
    let span_secs = i64::from(cfg.days.max(1)) * 86_400;
    let mut times: Vec<DateTime<Utc>> = (0..cfg.leads)
        .map(|_| {
            let mut t = cfg.start_at + Duration::seconds(rng.gen_range(0..span_secs));
            if rng.gen_bool(0.65) {
                let day_start = t - Duration::seconds(i64::from(t.num_seconds_from_midnight()));
                // 13:00–22:00 UTC covers 09:00–17:00 in New York (and 06:00–14:00 in LA).
                t = day_start + Duration::seconds(rng.gen_range(13 * 3600..22 * 3600));
                if matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
                    t += Duration::days(2);
                }
                if t >= cfg.end_at() {
                    t = cfg.end_at() - Duration::seconds(rng.gen_range(1..3600));
                }
            }
            t
        })
        .collect();
    times.sort();
    times
}

fn generate_lead(index: usize, rng: &mut ChaCha8Rng) -> SynthLead {
    let first = *pick(rng, &FIRST_NAMES);
    let last = *pick(rng, &LAST_NAMES);
    let company = format!("{} {}", pick(rng, &COMPANY_HEADS), pick(rng, &COMPANY_TAILS));
    let company_domain = format!("{}.example", ascii_slug(&company));
    let industry = *pick(rng, &INDUSTRIES);
    let grade = match rng.gen_range(0..100u32) {
        0..20 => IntendedGrade::A,
        20..50 => IntendedGrade::B,
        50..80 => IntendedGrade::C,
        _ => IntendedGrade::None,
    };
    let fit_employees = rng.gen_range(25..5_000u32);
    let mut email_domain = company_domain;
    let (title, employees, country, intent, score) = match grade {
        IntendedGrade::A => (
            *pick(rng, &MANAGER_TITLES),
            fit_employees,
            *pick(rng, &FIT_COUNTRIES),
            *pick(rng, &["demo_request", "pricing_view"]),
            rng.gen_range(70..=100u32),
        ),
        IntendedGrade::B => (
            *pick(rng, &MANAGER_TITLES),
            fit_employees,
            *pick(rng, &FIT_COUNTRIES),
            *pick(rng, &["content_download", "webinar"]),
            rng.gen_range(55..=90u32),
        ),
        IntendedGrade::C => {
            // Intent, but at least one fit criterion fails.
            let (title, employees, country) = match rng.gen_range(0..3u32) {
                0 => (*pick(rng, &WEAK_TITLES), fit_employees, *pick(rng, &FIT_COUNTRIES)),
                1 => (*pick(rng, &MANAGER_TITLES), rng.gen_range(1..25u32), *pick(rng, &FIT_COUNTRIES)),
                _ => (*pick(rng, &MANAGER_TITLES), fit_employees, *pick(rng, &WEAK_COUNTRIES)),
            };
            let intent = *pick(rng, &["demo_request", "pricing_view", "content_download", "webinar"]);
            (title, employees, country, intent, rng.gen_range(50..=80u32))
        }
        IntendedGrade::None => {
            let mut title = *pick(rng, &MANAGER_TITLES);
            let mut score = rng.gen_range(50..=95u32);
            match rng.gen_range(0..4u32) {
                0 => title = *pick(rng, &STUDENT_TITLES),
                1 => email_domain = pick(rng, &COMPETITOR_DOMAINS).to_string(),
                2 => email_domain = pick(rng, &FREEMAIL_DOMAINS).to_string(),
                _ => score = rng.gen_range(5..50u32),
            }
            let intent = *pick(rng, &["content_download", "webinar", "none"]);
            (title, rng.gen_range(1..5_000u32), *pick(rng, &FIT_COUNTRIES), intent, score)
        }
    };
    let source = match intent {
        "demo_request" => "Demo Request",
        "pricing_view" => "Web",
        "content_download" => "Content Download",
        "webinar" => "Event",
        _ => "Purchased List",
    };
    let phone = phone_for(country, rng);
    let mut lead = SynthLead {
        index,
        first_name: first.to_string(),
        last_name: Some(last.to_string()),
        email: format!("{}.{}.{index}@{email_domain}", ascii_slug(first), ascii_slug(last)),
        company: Some(company),
        title: Some(title.to_string()),
        employees: Some(employees),
        industry: Some(industry.to_string()),
        country: Some(country.to_string()),
        phone: Some(phone),
        source: source.to_string(),
        intent_action: intent.to_string(),
        score,
        intended_grade: grade,
        complete: true,
    };
    // About one lead in ten arrives missing a field the policy requires.
    if rng.gen_bool(0.10) {
        match rng.gen_range(0..3u32) {
            0 => lead.company = None,
            1 => lead.title = None,
            _ => lead.phone = None,
        }
        lead.complete = false;
    }
    lead
}

fn phone_for(country: &str, rng: &mut ChaCha8Rng) -> String {
    let n = rng.gen_range(0..10_000u32);
    match country {
        "US" | "CA" => format!("+1 415 555 {n:04}"),
        "GB" => format!("+44 20 7946 {n:04}"),
        "AU" => format!("+61 2 5550 {n:04}"),
        "DE" => format!("+49 30 5555 {n:04}"),
        "FR" => format!("+33 1 5555 {n:04}"),
        "BR" => format!("+55 11 5555 {n:04}"),
        "IN" => format!("+91 22 5555 {n:04}"),
        _ => format!("+81 3 5555 {n:04}"),
    }
}

fn event(at: DateTime<Utc>, kind: EventKind) -> OrgEvent {
    OrgEvent { at, kind }
}

/// Creation, routing, and what the owner(s) do with the lead.
fn plan_lead(
    ctx: &Ctx<'_>,
    lead: &SynthLead,
    arrived_at: DateTime<Utc>,
    rep: usize,
    other_rep: usize,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<OrgEvent>,
) {
    let index = lead.index;
    // Half the weak leads go straight to nurture and nobody works them.
    if lead.intended_grade == IntendedGrade::None && rng.gen_bool(0.5) {
        out.push(event(arrived_at, EventKind::LeadCreated { lead: index, owner: OwnerRef::Queue(NURTURE_POOL) }));
        return;
    }
    let assigned_at = if rng.gen_bool(0.6) {
        out.push(event(arrived_at, EventKind::LeadCreated { lead: index, owner: OwnerRef::Queue(INBOUND_QUEUE) }));
        // Routing usually takes a few minutes; one in ten is late.
        let delay_secs = match ctx.profile {
            OrgProfile::Mixed if rng.gen_bool(0.9) => rng.gen_range(60..300),
            OrgProfile::Mixed => rng.gen_range(360..3600),
            OrgProfile::Calibrated => rng.gen_range(400..1800),
            OrgProfile::Steady => rng.gen_range(60..240),
        };
        let at = arrived_at + Duration::seconds(delay_secs);
        out.push(event(at, EventKind::Assigned { lead: index, owner: OwnerRef::User(rep) }));
        at
    } else {
        out.push(event(arrived_at, EventKind::LeadCreated { lead: index, owner: OwnerRef::User(rep) }));
        arrived_at
    };

    if ctx.profile != OrgProfile::Mixed {
        plan_decisive(ctx, lead, rep, assigned_at, rng, out);
        return;
    }
    if other_rep != rep && rng.gen_bool(0.05) {
        // Reassigned a few hours to a day later; the first owner's work stops there.
        let reassigned_at = assigned_at + Duration::seconds(rng.gen_range(2 * 3600..30 * 3600));
        let mut first = Vec::new();
        plan_behaviour(ctx, lead, rep, assigned_at, rng, &mut first);
        out.extend(first.into_iter().filter(|e| e.at < reassigned_at));
        out.push(event(reassigned_at, EventKind::Assigned { lead: index, owner: OwnerRef::User(other_rep) }));
        plan_behaviour(ctx, lead, other_rep, reassigned_at, rng, out);
    } else {
        plan_behaviour(ctx, lead, rep, assigned_at, rng, out);
    }
}

/// A sequence email for about one lead in four, in the name of the first
/// rep the lead reaches, a few working minutes after it does. Its own
/// random stream per lead leaves every other draw of the org unchanged.
fn plan_sequence(ctx: &Ctx<'_>, seed: u64, index: usize, out: &mut Vec<OrgEvent>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (index as u64).rotate_left(17));
    if !rng.gen_bool(0.25) {
        return;
    }
    let first_user = out.iter().find_map(|e| match e.kind {
        EventKind::LeadCreated { owner: OwnerRef::User(u), .. }
        | EventKind::Assigned { owner: OwnerRef::User(u), .. } => Some((e.at, u)),
        _ => None,
    });
    let Some((at, rep)) = first_user else { return };
    let sent = working_after(at + Duration::minutes(rng.gen_range(2..15)), ctx.zones[rep], &mut rng, 20);
    out.push(event(sent, EventKind::Touch { lead: index, by: rep, kind: ActivityKind::Email, automated: true }));
}

/// A random reason code, or none when the rep skips it.
fn reason(rng: &mut ChaCha8Rng, p_given: f64, weak_lead: bool) -> Option<String> {
    if !rng.gen_bool(p_given) {
        return None;
    }
    let code = if weak_lead {
        *pick(rng, &["wrong_persona", "did_not_meet_criteria", "competitor"])
    } else {
        *pick(rng, &REASON_CODES)
    };
    Some(code.to_string())
}

/// Touch kinds: mostly calls and emails, the odd meeting.
fn touch_kind(rng: &mut ChaCha8Rng) -> ActivityKind {
    match rng.gen_range(0..10u32) {
        0..5 => ActivityKind::Call,
        5..9 => ActivityKind::Email,
        _ => ActivityKind::Meeting,
    }
}

/// The events rep `rep` produces for `lead` from `from_at` on, per the
/// rep's behaviour.
fn plan_behaviour(
    ctx: &Ctx<'_>,
    lead: &SynthLead,
    rep: usize,
    from_at: DateTime<Utc>,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<OrgEvent>,
) {
    let Some(behaviour) = ctx.users[rep].behaviour else { return };
    let tz = ctx.zones[rep];
    let index = lead.index;
    let weak = lead.intended_grade == IntendedGrade::None;
    let touch = |at: DateTime<Utc>, rng: &mut ChaCha8Rng, out: &mut Vec<OrgEvent>| {
        // Now and then a teammate logs the touch instead of the owner.
        let by = if rng.gen_bool(0.03) { teammate(ctx.users, rep) } else { rep };
        out.push(event(at, EventKind::Touch { lead: index, by, kind: touch_kind(rng), automated: false }));
    };
    let status = |at: DateTime<Utc>, status: LeadStatus, out: &mut Vec<OrgEvent>| {
        out.push(event(at, EventKind::StatusChanged { lead: index, status }));
    };

    match behaviour {
        RepBehaviour::Never => {}
        RepBehaviour::Fast | RepBehaviour::Slow => {
            let first_at = if behaviour == RepBehaviour::Fast {
                working_after(from_at + Duration::minutes(rng.gen_range(3..40)), tz, rng, 30)
            } else {
                working_day(from_at, tz, rng.gen_range(2..6), rng)
            };
            touch(first_at, rng, out);
            status(first_at + Duration::seconds(30), LeadStatus::Working, out);
            if weak {
                status(
                    first_at + Duration::minutes(rng.gen_range(5..120)),
                    LeadStatus::Rejected { reason: reason(rng, 1.0, true) },
                    out,
                );
                return;
            }
            // Diligent: a full cadence over at least ten business days
            // unless the lead is accepted or converted on the way.
            let outcome = rng.gen_range(0..100u32);
            let mut at = first_at;
            for n in 2..=FULL_CADENCE_TOUCHES {
                at = working_day(at, tz, 2, rng);
                touch(at, rng, out);
                if n == 2 && outcome < 40 {
                    status(at + Duration::minutes(10), LeadStatus::Accepted, out);
                    return;
                }
                if n == 3 && outcome < 60 {
                    status(at + Duration::minutes(10), LeadStatus::Accepted, out);
                    status(working_day(at, tz, 3, rng), LeadStatus::Converted, out);
                    return;
                }
            }
            let closed_at = working_day(at, tz, 1, rng);
            if outcome < 85 {
                status(closed_at, LeadStatus::ClosedUnresponsive { reason: Some("bad_timing".into()) }, out);
            } else {
                status(closed_at, LeadStatus::Rejected { reason: reason(rng, 1.0, false) }, out);
            }
        }
        RepBehaviour::StopsEarly => {
            let mut at = working_after(from_at + Duration::minutes(rng.gen_range(3..60)), tz, rng, 30);
            touch(at, rng, out);
            status(at + Duration::seconds(30), LeadStatus::Working, out);
            for _ in 0..rng.gen_range(0..3u32) {
                at = working_day(at, tz, 1, rng);
                touch(at, rng, out);
            }
            let closed_at = working_day(at, tz, 1, rng);
            status(closed_at, LeadStatus::ClosedUnresponsive { reason: reason(rng, 0.5, weak) }, out);
        }
        RepBehaviour::SloppyRejecter => {
            let mut decided_at = working_after(from_at + Duration::minutes(rng.gen_range(10..240)), tz, rng, 120);
            if rng.gen_bool(0.5) {
                touch(decided_at, rng, out);
                decided_at += Duration::minutes(rng.gen_range(1..30));
            }
            status(decided_at, LeadStatus::Rejected { reason: reason(rng, 0.3, weak) }, out);
        }
    }
}

/// The quick, decisive reps of the [`OrgProfile::Calibrated`] and
/// [`OrgProfile::Steady`] orgs: a touch within minutes of assignment (a
/// working day late in a Steady org's every fourth week), a decision the
/// next working day.
fn plan_decisive(
    ctx: &Ctx<'_>,
    lead: &SynthLead,
    rep: usize,
    from_at: DateTime<Utc>,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<OrgEvent>,
) {
    let tz = ctx.zones[rep];
    let index = lead.index;
    let ny_week = |at: DateTime<Utc>| at.with_timezone(&chrono_tz::America::New_York).iso_week().week();
    let slow = ctx.profile == OrgProfile::Steady && ny_week(from_at) % 4 == 3;
    let first_at = if slow {
        working_day(from_at, tz, 1, rng)
    } else {
        working_after(from_at + Duration::minutes(1), tz, rng, 10)
    };
    out.push(event(first_at, EventKind::Touch { lead: index, by: rep, kind: touch_kind(rng), automated: false }));
    out.push(event(
        first_at + Duration::seconds(30),
        EventKind::StatusChanged { lead: index, status: LeadStatus::Working },
    ));
    if lead.intended_grade == IntendedGrade::None {
        let status = LeadStatus::Rejected { reason: reason(rng, 1.0, true) };
        out.push(event(first_at + Duration::minutes(5), EventKind::StatusChanged { lead: index, status }));
        return;
    }
    let decided_at = working_day(first_at, tz, 1, rng);
    let status = match ctx.profile {
        OrgProfile::Calibrated if index % 8 == 0 => LeadStatus::Rejected { reason: Some("wrong_persona".into()) },
        OrgProfile::Steady if index % 10 < 3 => {
            let code = REASON_CODES[ny_week(decided_at) as usize % REASON_CODES.len()];
            LeadStatus::Rejected { reason: Some(code.into()) }
        }
        _ => LeadStatus::Accepted,
    };
    let accepted = status == LeadStatus::Accepted;
    out.push(event(decided_at, EventKind::StatusChanged { lead: index, status }));
    if accepted && index % 5 == 1 {
        out.push(event(
            working_day(decided_at, tz, 3, rng),
            EventKind::StatusChanged { lead: index, status: LeadStatus::Converted },
        ));
    }
}

/// Another rep with the same manager and zone, so the touch still falls in
/// the toucher's working hours (or the rep itself when there is none).
fn teammate(users: &[SynthUser], rep: usize) -> usize {
    let manager = users[rep].manager;
    let zone = &users[rep].time_zone;
    users
        .iter()
        .skip(rep + 1)
        .chain(users.iter().take(rep))
        .find(|u| u.behaviour.is_some() && u.manager == manager && &u.time_zone == zone)
        .map_or(rep, |u| u.index)
}

fn is_workday(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn local_instant(tz: Tz, date: NaiveDate, minutes_after_nine: i64) -> DateTime<Utc> {
    let naive = date.and_time(hm(9, 0)) + Duration::minutes(minutes_after_nine);
    // 09:00–17:00 never falls in a DST gap in the zones used here.
    tz.from_local_datetime(&naive).earliest().map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc))
}

/// `at` itself if it is within the rep's local working hours (Mon–Fri
/// 09:00–17:00), else the next opening plus up to `jitter_mins`.
fn working_after(at: DateTime<Utc>, tz: Tz, rng: &mut ChaCha8Rng, jitter_mins: i64) -> DateTime<Utc> {
    let local = at.with_timezone(&tz);
    let date = local.date_naive();
    let hour = local.hour();
    if is_workday(date) && (9..17).contains(&hour) {
        return at;
    }
    let mut day = if is_workday(date) && hour < 9 { date } else { date + Duration::days(1) };
    while !is_workday(day) {
        day += Duration::days(1);
    }
    local_instant(tz, day, rng.gen_range(0..jitter_mins.max(1)))
}

/// A random working-hours instant `days` working days after `at`'s local date.
fn working_day(at: DateTime<Utc>, tz: Tz, days: u32, rng: &mut ChaCha8Rng) -> DateTime<Utc> {
    let mut day = at.with_timezone(&tz).date_naive();
    let mut left = days;
    while left > 0 {
        day += Duration::days(1);
        if is_workday(day) {
            left -= 1;
        }
    }
    local_instant(tz, day, rng.gen_range(0..8 * 60))
}

/// A few percent of leads are deleted, and a few merged into an earlier
/// surviving lead; the lead's own later events are cut at that moment.
fn plan_removal(
    ctx: &Ctx<'_>,
    index: usize,
    arrived_at: DateTime<Utc>,
    removed: &mut [bool],
    rng: &mut ChaCha8Rng,
    out: &mut Vec<OrgEvent>,
) {
    let roll = rng.gen_range(0..100u32);
    let at = arrived_at + Duration::seconds(rng.gen_range(3600..5 * 86_400));
    let kind = match roll {
        0..2 => EventKind::Deleted { lead: index },
        2..4 if index > 0 => {
            let into = rng.gen_range(0..index as u64) as usize;
            if removed[into] {
                return;
            }
            EventKind::Merged { lead: index, into }
        }
        _ => return,
    };
    if at >= ctx.end_at {
        return;
    }
    removed[index] = true;
    out.retain(|e| e.at < at);
    out.push(event(at, kind));
}
