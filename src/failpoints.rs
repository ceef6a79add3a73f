//! Named crash points in pull, evaluate and write (and in a compaction of
//! the state database), for the crash tests.
//!
//! Each point marks a place where a crash matters to exactly-once: between
//! reading a page and committing it, between deciding and committing, and
//! around the write the CRM answered but handoff has not recorded yet.
//! They are compiled in only with the `failpoints` cargo feature (the
//! tests turn it on; a release build has none) and armed by the
//! environment:
//!
//! ```text
//! HANDOFF_FAILPOINTS="write.answered=2"   # SIGKILL at the 2nd pass through write.answered
//! ```
//!
//! At the chosen pass the process prints `failpoint NAME reached (pass N):
//! killing the process` to standard error and sends itself SIGKILL: no
//! destructor, flush or signal handler runs, exactly as when the machine
//! loses power at that line.

/// A page was read from the CRM; nothing of it is committed.
pub const PULL_FETCHED: &str = "pull.fetched";
/// A page and its cursor are committed; the next page is not asked for.
pub const PULL_COMMITTED: &str = "pull.committed";
/// Leads were judged and their actions queued in a batch not yet committed.
pub const EVALUATE_DECIDED: &str = "evaluate.decided";
/// An evaluation batch is committed.
pub const EVALUATE_COMMITTED: &str = "evaluate.committed";
/// Actions are about to be sent to the CRM.
pub const WRITE_SENDING: &str = "write.sending";
/// The CRM answered a write; the outcome is not recorded yet.
pub const WRITE_ANSWERED: &str = "write.answered";
/// A write's outcomes are recorded in the ledger.
pub const WRITE_RECORDED: &str = "write.recorded";

/// Every crash point, in the order a tick passes them.
pub const ALL: [&str; 7] =
    [PULL_FETCHED, PULL_COMMITTED, EVALUATE_DECIDED, EVALUATE_COMMITTED, WRITE_SENDING, WRITE_ANSWERED, WRITE_RECORDED];

/// A compaction's copy is whole and closed; nothing marks it whole yet.
pub const COMPACT_COPIED: &str = "compact.copied";
/// The copy is marked whole; the database has not moved.
pub const COMPACT_MARKED: &str = "compact.marked";
/// The old database is moved aside; the copy is not in its place yet.
pub const COMPACT_MOVED: &str = "compact.moved";

/// The crash points of `handoff state --compact`, in the order it passes them.
pub const COMPACTION: [&str; 3] = [COMPACT_COPIED, COMPACT_MARKED, COMPACT_MOVED];

/// The environment variable that arms crash points.
pub const ENV: &str = "HANDOFF_FAILPOINTS";

/// Passes through crash point `name` (a no-op unless compiled in and armed).
#[inline]
pub fn hit(name: &'static str) {
    #[cfg(feature = "failpoints")]
    fail::fail_point!(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Parses `NAME=PASS[,NAME=PASS…]`: which points kill at which pass (1 =
/// the first time through).
pub fn parse(spec: &str) -> Result<Vec<(&'static str, u64)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, pass) = item.split_once('=').unwrap_or((item, "1"));
            let name = ALL.iter().chain(&COMPACTION).copied().find(|n| *n == name.trim()).ok_or_else(|| {
                format!("{ENV}: unknown crash point `{name}`; known: {}, {}", ALL.join(", "), COMPACTION.join(", "))
            })?;
            let pass: u64 = pass
                .trim()
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{ENV}: `{item}`: the pass must be a whole number from 1"))?;
            Ok((name, pass))
        })
        .collect()
}

/// Arms the crash points [`ENV`] names. Without the `failpoints` feature a
/// set variable is an error: the points it names do not exist in this build.
pub fn arm_from_env() -> Result<(), String> {
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(());
    };
    let points = parse(&spec)?;
    #[cfg(feature = "failpoints")]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        for (name, kill_at) in points {
            let passes = Arc::new(AtomicU64::new(0));
            fail::cfg_callback(name, move || {
                let pass = passes.fetch_add(1, Ordering::SeqCst) + 1;
                if pass == kill_at {
                    kill_self(name, pass);
                }
            })?;
        }
        Ok(())
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = points;
        Err(format!("{ENV} is set, but this handoff was built without crash points (the `failpoints` feature)"))
    }
}

#[cfg(feature = "failpoints")]
fn kill_self(name: &str, pass: u64) -> ! {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "failpoint {name} reached (pass {pass}): killing the process");
    let _ = err.flush();
    #[cfg(unix)]
    {
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
    // SIGKILL to oneself lands before the call returns; should it not,
    // never go on past the point.
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_known_points_and_passes() {
        assert_eq!(parse("write.answered=2, pull.fetched").unwrap(), vec![(WRITE_ANSWERED, 2), (PULL_FETCHED, 1)]);
        assert!(parse("write.nowhere=1").unwrap_err().contains("unknown crash point"));
        assert!(parse("pull.fetched=0").unwrap_err().contains("whole number"));
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
