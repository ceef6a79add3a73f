//! Paging that ends. A CRM hands out "next page" tokens (Salesforce's
//! `nextRecordsUrl`, HubSpot's `after`, a keyset position); a broken or
//! hostile server can point a page at itself, cycle between pages or never
//! stop. A [`PageGuard`] travels with the cursor of the listing it guards
//! and refuses a next token it has just seen, or any page past its cap, so
//! every pull ends and the window is failed rather than read forever.

use serde::{Deserialize, Serialize};

/// Most pages one window (or listing) may take when its size is unknown:
/// two million records at 200 a page.
pub const MAX_PAGES: u32 = 10_000;

/// How many recent tokens are remembered to spot a cycle.
const REMEMBERED: usize = 4;

/// How many times in a row a listing may be started over because the CRM
/// refused a continuation (an expired query locator): more is a server
/// that hands out positions it will not take.
pub const MAX_RESTARTS: u32 = 3;

/// Pages read so far in one window or listing, and the latest tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageGuard {
    #[serde(default)]
    pub pages: u32,
    /// The tokens of the latest pages, newest last.
    #[serde(default)]
    pub recent: Vec<String>,
    /// Most pages expected (from the size the CRM announced), if known.
    #[serde(default)]
    pub cap: Option<u32>,
    /// Times this listing was started over since it last ended.
    #[serde(default)]
    pub restarts: u32,
}

impl PageGuard {
    /// Set the cap from the number of records the CRM says the listing
    /// holds and the size of its first page (a little slack for records
    /// that arrive while it is read).
    pub fn expect(&mut self, total: u64, page_len: usize) {
        if self.cap.is_none() && page_len > 0 {
            let pages = total.div_ceil(page_len as u64).saturating_add(2);
            self.cap = Some(u32::try_from(pages).unwrap_or(MAX_PAGES).min(MAX_PAGES));
        }
    }

    /// A page was read with `current` (its own token, if any) and names
    /// `next`. Refuses a `next` that is the page itself or one of the latest
    /// pages, and any page beyond the cap; the message says which.
    pub fn advance(&mut self, current: Option<&str>, next: &str) -> Result<(), String> {
        if current == Some(next) {
            return Err(format!("a page names itself as the next page ({next:?})"));
        }
        if self.recent.iter().any(|t| t == next) {
            return Err(format!("the pages run in a cycle: {next:?} was read a moment ago"));
        }
        self.pages = self.pages.saturating_add(1);
        let cap = self.cap.unwrap_or(MAX_PAGES);
        if self.pages >= cap {
            return Err(format!("more than {cap} pages and the server still names a next one"));
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
        self.cap = None;
        Ok(())
    }

    /// A keyset position moved from `last` to `next` on a full page: it must
    /// move forward, or the listing would return the same page forever.
    pub fn advance_keyset(&mut self, last: Option<u64>, next: Option<u64>) -> Result<(), String> {
        match (last, next) {
            (_, None) => Err("a full page holds no record to continue after".into()),
            (Some(l), Some(n)) if n <= l => {
                Err(format!("the next page starts at id {n}, not after {l}: the server ignores the position"))
            }
            (_, Some(n)) => {
                let current = last.map(|l| l.to_string());
                self.advance(current.as_deref(), &n.to_string())
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
        assert!(g.advance(None, "/q/1-200").is_ok());
        assert!(g.advance(Some("/q/1-200"), "/q/1-400").is_ok());
        assert!(g.advance(Some("/q/1-400"), "/q/1-400").unwrap_err().contains("names itself"));
        assert!(g.advance(Some("/q/1-400"), "/q/1-200").unwrap_err().contains("cycle"));
    }

    #[test]
    fn endless_pages_stop_at_the_cap() {
        let mut g = PageGuard::default();
        g.expect(1_000, 200);
        assert_eq!(g.cap, Some(7));
        let mut refused = None;
        for n in 0..100 {
            if let Err(e) = g.advance(Some(&format!("t{n}")), &format!("t{}", n + 1)) {
                refused = Some((n, e));
                break;
            }
        }
        let (n, e) = refused.expect("the guard stops an endless listing");
        assert_eq!(n, 6);
        assert!(e.contains("more than 7 pages"), "{e}");
        let mut unknown = PageGuard { pages: MAX_PAGES - 1, ..PageGuard::default() };
        assert!(unknown.advance(None, "x").is_err());
    }

    #[test]
    fn a_listing_restarted_over_and_over_is_refused_and_keeps_its_cycle_memory() {
        let mut g = PageGuard::default();
        assert!(g.advance(None, "self-1").is_ok());
        assert!(g.restart().is_ok());
        assert!(g.advance(None, "self-1").unwrap_err().contains("cycle"), "a restart does not forget the tokens");
        let mut g = PageGuard::default();
        for _ in 0..MAX_RESTARTS {
            assert!(g.restart().is_ok());
        }
        assert!(g.restart().unwrap_err().contains("refused"));
    }

    #[test]
    fn a_keyset_must_move_forward() {
        let mut g = PageGuard::default();
        assert!(g.advance_keyset(None, Some(10)).is_ok());
        assert!(g.advance_keyset(Some(10), Some(20)).is_ok());
        assert!(g.advance_keyset(Some(20), Some(20)).is_err());
        assert!(g.advance_keyset(Some(20), Some(5)).is_err());
        assert!(g.advance_keyset(Some(20), None).is_err());
    }
}
