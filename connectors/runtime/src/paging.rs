//! Paging that ends. A CRM hands out "next page" tokens (Salesforce's
//! `nextRecordsUrl`, HubSpot's `after`, a keyset position); a broken or
//! hostile server can point a page at itself, cycle between pages or never
//! stop. A [`PageGuard`] travels with the cursor of the listing it guards
//! and refuses, with the reason:
//! - a next token that is the page's own or one of the latest ones;
//! - another page once more records came than the CRM announced for the
//!   listing (with some slack), or after several empty pages in a row;
//! - any page past the cap ([`MAX_PAGES`], or a listing's own);
//! - a listing started over too often because the CRM refused the
//!   continuations it had handed out.
//!
//! So every pull ends, and the window is failed rather than read forever.

use serde::{Deserialize, Serialize};

/// Most pages one window (or listing) may take: two million records at
/// 200 a page.
pub const MAX_PAGES: u32 = 10_000;

/// Most records the listing of a whole object may deliver (a portal's
/// every contact, no window bounding it): ten million.
pub const MAX_LISTING_RECORDS: u64 = 10_000_000;

/// How many recent tokens are remembered to spot a cycle.
const REMEMBERED: usize = 4;

/// How many times in a row a listing may be started over because the CRM
/// refused a continuation (an expired query locator): more is a server
/// that hands out positions it will not take.
pub const MAX_RESTARTS: u32 = 3;

/// Empty pages in a row that may still name a next page.
const MAX_EMPTY_PAGES: u32 = 3;

/// The page cap of a whole-object listing read `page_size` records a page.
pub fn listing_cap(page_size: u32) -> u32 {
    u32::try_from(MAX_LISTING_RECORDS / u64::from(page_size.max(1))).unwrap_or(u32::MAX)
}

/// Pages read so far in one window or listing, and the latest tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageGuard {
    #[serde(default)]
    pub pages: u32,
    /// The tokens of the latest pages, newest last.
    #[serde(default)]
    pub recent: Vec<String>,
    /// Most pages this listing may take (`None`: [`MAX_PAGES`]).
    #[serde(default)]
    pub cap: Option<u32>,
    /// Times this listing was started over since it last ended.
    #[serde(default)]
    pub restarts: u32,
    /// Records the CRM announced for the listing, when it says.
    #[serde(default)]
    pub total: Option<u64>,
    /// Records delivered so far.
    #[serde(default)]
    pub delivered: u64,
    /// Empty pages in a row.
    #[serde(default)]
    pub empty: u32,
}

impl PageGuard {
    /// A guard for the listing of a whole object read `page_size` records a
    /// page: it may take the pages [`MAX_LISTING_RECORDS`] fill, not
    /// [`MAX_PAGES`] (at 50 a page, those end at half a million records).
    pub fn for_listing(page_size: u32) -> PageGuard {
        PageGuard { cap: Some(listing_cap(page_size)), ..PageGuard::default() }
    }

    /// The CRM announced `total` records for the listing (on its first page).
    pub fn expect(&mut self, total: u64) {
        self.total.get_or_insert(total);
    }

    /// A page of `rows` records was read with `current` (its own token, if
    /// any) and names `next`.
    pub fn advance(&mut self, current: Option<&str>, next: &str, rows: usize) -> Result<(), String> {
        if current == Some(next) {
            return Err(format!("a page names itself as the next page ({next:?})"));
        }
        if self.recent.iter().any(|t| t == next) {
            return Err(format!("the pages run in a cycle: {next:?} was read a moment ago"));
        }
        self.pages = self.pages.saturating_add(1);
        self.delivered = self.delivered.saturating_add(rows as u64);
        self.empty = if rows == 0 { self.empty.saturating_add(1) } else { 0 };
        let cap = self.cap.unwrap_or(MAX_PAGES);
        if self.pages >= cap {
            return Err(format!("more than {cap} pages and the server still names a next one"));
        }
        if let Some(total) = self.total {
            // Slack for records that arrive while a live listing is read.
            if self.delivered > total.saturating_add(total / 10).saturating_add(10) {
                return Err(format!(
                    "{} records came of the {total} announced, and the server still names a next page",
                    self.delivered
                ));
            }
        }
        if self.empty >= MAX_EMPTY_PAGES {
            return Err(format!("{} empty pages in a row still name a next page", self.empty));
        }
        if let Some(c) = current {
            self.recent.push(c.to_string());
        }
        self.recent.push(next.to_string());
        let excess = self.recent.len().saturating_sub(REMEMBERED);
        self.recent.drain(..excess);
        Ok(())
    }

    /// The CRM refused the continuation: the listing starts over from its
    /// first page, remembering how often that happened and the recent
    /// tokens (a server that refuses every position it hands out is a cycle).
    pub fn restart(&mut self) -> Result<(), String> {
        self.restarts = self.restarts.saturating_add(1);
        if self.restarts > MAX_RESTARTS {
            return Err(format!(
                "the CRM refused {} continuations of this listing in a row; it hands out positions it does not take",
                self.restarts
            ));
        }
        self.pages = 0;
        self.delivered = 0;
        self.empty = 0;
        self.total = None;
        Ok(())
    }

    /// A keyset position moved from `last` to `next` on a full page of
    /// `rows`: it must move forward, or the listing would return the same
    /// page forever.
    pub fn advance_keyset(&mut self, last: Option<u64>, next: Option<u64>, rows: usize) -> Result<(), String> {
        match (last, next) {
            (_, None) => Err("a full page holds no record to continue after".into()),
            (Some(l), Some(n)) if n <= l => {
                Err(format!("the next page starts at id {n}, not after {l}: the server ignores the position"))
            }
            (_, Some(n)) => {
                let current = last.map(|l| l.to_string());
                self.advance(current.as_deref(), &n.to_string(), rows)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_naming_itself_or_a_recent_page_is_refused() {
        let mut g = PageGuard::default();
        assert!(g.advance(None, "/q/1-200", 200).is_ok());
        assert!(g.advance(Some("/q/1-200"), "/q/1-400", 200).is_ok());
        assert!(g.advance(Some("/q/1-400"), "/q/1-400", 200).unwrap_err().contains("names itself"));
        assert!(g.advance(Some("/q/1-400"), "/q/1-200", 200).unwrap_err().contains("cycle"));
    }

    #[test]
    fn pages_beyond_the_records_announced_are_refused_whatever_their_size() {
        // Pages of 1,000 parent rows or of 100 (child rows take room): either way 100,000 records end it.
        for per_page in [1_000usize, 100] {
            let mut g = PageGuard::default();
            g.expect(100_000);
            for n in 0..(100_000 / per_page) - 1 {
                g.advance(Some(&format!("t{n}")), &format!("t{}", n + 1), per_page).unwrap();
            }
        }
        let mut g = PageGuard::default();
        g.expect(220);
        assert!(g.advance(None, "e-1", 220).is_ok());
        let e = g.advance(Some("e-1"), "e-2", 220).unwrap_err();
        assert!(e.contains("440 records came of the 220 announced"), "{e}");
    }

    #[test]
    fn endless_empty_pages_and_pages_past_the_cap_are_refused() {
        let mut g = PageGuard::default();
        let mut refused = None;
        for n in 0..10 {
            if let Err(e) = g.advance(Some(&format!("t{n}")), &format!("t{}", n + 1), 0) {
                refused = Some(e);
                break;
            }
        }
        assert!(refused.is_some_and(|e| e.contains("empty pages")));
        let mut capped = PageGuard { cap: Some(3), ..PageGuard::default() };
        assert!(capped.advance(None, "a", 5).is_ok());
        assert!(capped.advance(Some("a"), "b", 5).is_ok());
        assert!(capped.advance(Some("b"), "c", 5).unwrap_err().contains("more than 3 pages"));
        let mut unknown = PageGuard { pages: MAX_PAGES - 1, ..PageGuard::default() };
        assert!(unknown.advance(None, "x", 1).is_err());
    }

    #[test]
    fn a_whole_object_listing_runs_past_the_windows_cap_to_its_own() {
        // At 50 a page, the windows' ten thousand pages are half a million
        // contacts: a portal's listing may take ten million records.
        assert_eq!(listing_cap(50), 200_000);
        let mut listing = PageGuard { pages: MAX_PAGES, ..PageGuard::for_listing(50) };
        assert!(listing.advance(Some("p"), "q", 50).is_ok());
        let mut at_cap = PageGuard { pages: listing_cap(50) - 1, ..PageGuard::for_listing(50) };
        assert!(at_cap.advance(Some("p"), "q", 50).unwrap_err().contains("more than 200000 pages"));
    }

    #[test]
    fn a_listing_restarted_over_and_over_is_refused_and_keeps_its_cycle_memory() {
        let mut g = PageGuard::default();
        assert!(g.advance(None, "self-1", 5).is_ok());
        assert!(g.restart().is_ok());
        assert!(g.advance(None, "self-1", 5).unwrap_err().contains("cycle"), "a restart does not forget the tokens");
        let mut g = PageGuard::default();
        for _ in 0..MAX_RESTARTS {
            assert!(g.restart().is_ok());
        }
        assert!(g.restart().unwrap_err().contains("refused"));
    }

    #[test]
    fn a_keyset_must_move_forward() {
        let mut g = PageGuard::default();
        assert!(g.advance_keyset(None, Some(10), 200).is_ok());
        assert!(g.advance_keyset(Some(10), Some(20), 200).is_ok());
        assert!(g.advance_keyset(Some(20), Some(20), 200).is_err());
        assert!(g.advance_keyset(Some(20), Some(5), 200).is_err());
        assert!(g.advance_keyset(Some(20), None, 200).is_err());
    }
}
