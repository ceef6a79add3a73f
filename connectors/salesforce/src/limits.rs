//! `Sforce-Limit-Info` parsing.
//!
//! Salesforce counts API calls over a rolling 24 hours per org, shared by
//! every integration. The header on each response says where the org
//! stands; the shared runtime's daily budget stops (not fails) at the
//! operator's share and asks again after a pause, because the rolling
//! window only frees calls gradually.

/// The parts of one `Sforce-Limit-Info` header value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitInfo {
    /// `api-usage=used/limit`: the org's daily count.
    pub api_usage: Option<(u64, u64)>,
    /// `per-app-api-usage=used/limit(appName=…)`: this connected app's share, when capped.
    pub per_app_usage: Option<(u64, u64)>,
    /// `api-bursts=used/limit`: the newer short-window burst counter.
    pub api_bursts: Option<(u64, u64)>,
}

/// Parse a header value such as
/// `api-usage=10018/100000; per-app-api-usage=17/250(appName=x); api-bursts=1/750`.
///
/// Tolerant by design: elements are split on `;`, unknown elements are
/// skipped, and a malformed element only loses itself. A strict whole-value
/// pattern is how other clients lost their quota guard when `api-bursts`
/// appeared.
pub fn parse_limit_info(value: &str) -> LimitInfo {
    let mut info = LimitInfo::default();
    for part in value.split(';') {
        let Some((name, rest)) = part.trim().split_once('=') else { continue };
        let counts = rest.split('(').next().unwrap_or(rest);
        let Some(pair) = parse_pair(counts) else { continue };
        match name.trim() {
            "api-usage" => info.api_usage = Some(pair),
            "per-app-api-usage" => info.per_app_usage = Some(pair),
            "api-bursts" => info.api_bursts = Some(pair),
            _ => {}
        }
    }
    info
}

fn parse_pair(s: &str) -> Option<(u64, u64)> {
    let (used, limit) = s.trim().split_once('/')?;
    Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(parse_limit_info("api-usage=10018/100000").api_usage, Some((10018, 100000)));
        let full = parse_limit_info("api-usage=18/5000; per-app-api-usage=17/250(appName=sample-connected-app)");
        assert_eq!(full.api_usage, Some((18, 5000)));
        assert_eq!(full.per_app_usage, Some((17, 250)));
        let bursts = parse_limit_info("api-usage=10018/100000; api-bursts=1/750");
        assert_eq!(bursts.api_usage, Some((10018, 100000)));
        assert_eq!(bursts.api_bursts, Some((1, 750)));
    }

    #[test]
    fn malformed_parts_lose_only_themselves() {
        let info = parse_limit_info("api-usage=abc/100; api-bursts=2/750;;junk");
        assert_eq!(info.api_usage, None);
        assert_eq!(info.api_bursts, Some((2, 750)));
        assert_eq!(parse_limit_info(""), LimitInfo::default());
    }
}
