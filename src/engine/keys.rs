//! Deterministic action keys.
//!
//! A key is built only from facts that identify *what* the action is about —
//! the lead, the clock, when that clock started, the threshold or rung, who
//! answers for the clock, and the policy version — never from the evaluation
//! time, so evaluating the same facts again (a minute or a day later) yields
//! the same key and the daemon's ledger makes the action happen once.
//!
//! | action | key |
//! |---|---|
//! | a task for the user a clock started with | `{lead}:{clock}:{start}:{what}:v{version}` |
//! | a task for a later holder of the same clock | `{lead}:{clock}:{start}:{what}:{holder}:v{version}` |
//! | a reassignment to a pool (a ladder rung) | `{lead}:{clock}:{start}:{what}:v{version}` |
//! | a move above the rep's daily cap (`policy.capacity`) | `{lead}:ft:{sales start}:cap:v{version}` |
//! | closing a task handoff created | `{task key}:done` |
//! | the SLA-field write-back | `{lead}:sla:{values hash}:v{version}` |
//! | a weekly scorecard escalation | `sc:{commitment}:{streak start}:{leader}:v{version}` |
//!
//! `{what}` is `rem` (reminder), `esc1`, `esc2` … (escalation rungs), `flag`
//! (a close the policy does not allow) or `fup` (a deferral's follow-up).
//!
//! **Later holders.** A clock that follows its owner under `on_reassign =
//! "continue"` keeps its start, so a task for the new owner needs a key of
//! its own: it names that holder (a user, or a queue's intake seat). The
//! user a clock started with keeps the key without a holder, which is the
//! key every earlier version of handoff wrote: an upgrade does not send an
//! open reminder again. Under `"restart"` a new owner restarts the clock, so
//! the start already tells the incarnations apart. A pool reassignment never
//! names a holder: a lead is moved to the pool once per clock, whoever had it.

use chrono::{DateTime, Utc};
use handoff_model::ActionKey;
use sha2::{Digest, Sha256};

/// Longest key a CRM external-id field accepts comfortably.
pub const MAX_KEY_LEN: usize = 80;

/// First `len` hex characters of the SHA-256 of `input`.
pub fn short_hash(input: &str, len: usize) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..len.min(hex.len())].to_string()
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// The lead id as a key segment. Ids made only of allowed characters (every
/// Salesforce and HubSpot id) are used as they are; anything else is replaced
/// by a hash so two different ids can never share a key.
pub fn lead_segment(lead_id: &str) -> String {
    if !lead_id.is_empty() && lead_id.len() <= 40 && lead_id.chars().all(|c| allowed(c) && c != ':') {
        lead_id.to_string()
    } else {
        format!("h{}", short_hash(lead_id, 16))
    }
}

/// `{lead}:{clock}:{start epoch secs}:{what}:v{version}`, at most
/// [`MAX_KEY_LEN`] characters of `[A-Za-z0-9_.:-]`.
pub fn clock_key(lead_id: &str, clock: &str, started_at: DateTime<Utc>, what: &str, version: u32) -> ActionKey {
    finish(format!("{}:{}:{}:{}:v{}", lead_segment(lead_id), clock, started_at.timestamp(), what, version))
}

/// A task for `holder`, who took over a clock that started with someone
/// else: `{lead}:{clock}:{start}:{what}:{holder}:v{version}`.
pub fn holder_key(
    lead_id: &str,
    clock: &str,
    started_at: DateTime<Utc>,
    what: &str,
    holder: &str,
    version: u32,
) -> ActionKey {
    finish(format!(
        "{}:{}:{}:{}:{}:v{}",
        lead_segment(lead_id),
        clock,
        started_at.timestamp(),
        what,
        lead_segment(holder),
        version
    ))
}

/// The key closing the task created under `task_key`: `{task key}:done`.
pub fn completion_key(task_key: &ActionKey) -> ActionKey {
    finish(format!("{}:done", task_key.as_str()))
}

/// Every key about `lead_id` starts with this (scorecard keys never do).
pub fn lead_prefix(lead_id: &str) -> String {
    format!("{}:", lead_segment(lead_id))
}

/// `{lead}:sla:{hash}:v{version}`, for the SLA field write-back.
pub fn fields_key(lead_id: &str, values_hash: &str, version: u32) -> ActionKey {
    finish(format!("{}:sla:{}:v{}", lead_segment(lead_id), values_hash, version))
}

/// `sc:{commitment}:{streak's first week}:{leader}:v{version}`, for a
/// weekly scorecard escalation: one per streak and leader.
pub fn scorecard_key(commitment: &str, streak_start: chrono::NaiveDate, leader: &str, version: u32) -> ActionKey {
    finish(format!("sc:{}:{}:{}:v{}", commitment, streak_start.format("%Y%m%d"), lead_segment(leader), version))
}

fn finish(raw: String) -> ActionKey {
    let clean: String = raw.chars().map(|c| if allowed(c) { c } else { '_' }).collect();
    if clean.len() <= MAX_KEY_LEN && clean == raw {
        return ActionKey(clean);
    }
    // Too long or altered: keep a readable prefix and make it unique again.
    let hash = short_hash(&raw, 16);
    let keep = MAX_KEY_LEN - hash.len() - 1;
    let prefix: String = clean.chars().take(keep).collect();
    ActionKey(format!("{prefix}-{hash}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn valid(key: &ActionKey) -> bool {
        key.as_str().len() <= MAX_KEY_LEN && key.as_str().chars().all(allowed)
    }

    #[test]
    fn keys_are_stable_and_valid() {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap();
        let a = clock_key("00Q5g00000AbCdEFGH", "ft", at, "esc1", 3);
        assert_eq!(a.as_str(), "00Q5g00000AbCdEFGH:ft:1772460000:esc1:v3");
        assert_eq!(a, clock_key("00Q5g00000AbCdEFGH", "ft", at, "esc1", 3));
        assert!(valid(&a));
    }

    #[test]
    fn a_later_holder_gets_a_key_of_its_own_and_the_first_keeps_the_old_one() {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap();
        let first = clock_key("00Q5g00000AbCdEFGH", "ft", at, "rem", 1);
        let later = holder_key("00Q5g00000AbCdEFGH", "ft", at, "rem", "005Hs00000A0VpSAAV", 1);
        assert_eq!(later.as_str(), "00Q5g00000AbCdEFGH:ft:1772460000:rem:005Hs00000A0VpSAAV:v1");
        assert_ne!(first, later);
        assert_ne!(later, holder_key("00Q5g00000AbCdEFGH", "ft", at, "rem", "005Hs00000A0VpMAAV", 1));
        assert!(valid(&later));
        let done = completion_key(&later);
        assert_eq!(done.as_str(), "00Q5g00000AbCdEFGH:ft:1772460000:rem:005Hs00000A0VpSAAV:v1:done");
        assert!(valid(&done) && done.as_str().starts_with(&lead_prefix("00Q5g00000AbCdEFGH")));
    }

    #[test]
    fn scorecard_keys_name_the_streak_and_the_leader() {
        let week = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let k = scorecard_key("sales.first_touch_in_window", week, "005Hs00000A0VpSAAV", 1);
        assert_eq!(k.as_str(), "sc:sales.first_touch_in_window:20260302:005Hs00000A0VpSAAV:v1");
        assert!(valid(&k));
        assert_ne!(k, scorecard_key("sales.first_touch_in_window", week, "005Hs00000A0VpMAAV", 1));
    }

    #[test]
    fn odd_or_long_ids_are_hashed_not_truncated_into_collisions() {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap();
        let long_a = "x".repeat(200) + "a";
        let long_b = "x".repeat(200) + "b";
        let ka = clock_key(&long_a, "ft", at, "rem", 1);
        let kb = clock_key(&long_b, "ft", at, "rem", 1);
        assert_ne!(ka, kb);
        assert!(valid(&ka) && valid(&kb));
        let odd = clock_key("lead with spaces/and:colons", "ft", at, "rem", 1);
        assert!(valid(&odd));
        assert_ne!(odd, clock_key("lead with spaces/and:colonz", "ft", at, "rem", 1));
    }
}
