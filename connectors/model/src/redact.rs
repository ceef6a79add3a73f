//! The one redactor between text that came from outside and every output.
//!
//! A CRM or token endpoint may answer an error with a page that echoes what
//! was sent to it: a form holding the refresh token and the client secret, a
//! JSON body holding an access token. Such text must never reach a log line,
//! the state database, `handoff state`, systemd's `STATUS=` line or a metric.
//! Every external text passes through [`redact`] before it goes anywhere.
//!
//! Two rules, both applied:
//!
//! 1. **Known values.** Every [`Secret`](crate::Secret) handoff holds is
//!    registered here when it is made (config secrets, tokens the CRM issued,
//!    rotated refresh tokens). Each value is removed wherever it appears, also
//!    percent-encoded, and so is any fragment of it of at least
//!    [`MIN_FRAGMENT_CHARS`] characters (a truncated echo leaves the first half
//!    of a secret at the end of a text).
//! 2. **Secret-named fields.** The value after a field whose name says it is a
//!    credential ([`SECRET_FIELD_NAMES`], in form `name=value`, JSON
//!    `"name": "value"` or header-like `name: value`) is removed even when
//!    handoff never saw it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{OnceLock, RwLock};

/// What a removed value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The shortest part of a known secret that is still removed.
pub const MIN_FRAGMENT_CHARS: usize = 8;

/// Secrets shorter than this are not registered: removing every `abc` from a
/// text would garble it without protecting anything.
const MIN_SECRET_CHARS: usize = 6;

/// How many distinct values the registry keeps (the newest win). Access
/// tokens are renewed hourly; a year of them is well under this.
const MAX_REGISTERED: usize = 16_384;

/// Field names whose values are credentials, compared case-insensitively.
pub const SECRET_FIELD_NAMES: &[&str] = &[
    "client_secret",
    "refresh_token",
    "access_token",
    "id_token",
    "assertion",
    "client_assertion",
    "code",
    "password",
    "authorization",
    "token",
    "private_key",
    "secret",
    "api_key",
];

/// A stretch of [`MIN_FRAGMENT_CHARS`] bytes of a secret.
type Gram = [u8; MIN_FRAGMENT_CHARS];

/// Known secrets with an index of every [`Gram`] of each (and of its
/// percent-encoded form), so a text is checked in time linear in its length
/// rather than once per known secret.
#[derive(Default)]
struct Known {
    next_id: u64,
    order: VecDeque<u64>,
    values: HashMap<u64, String>,
    ids: HashMap<String, u64>,
    grams: HashMap<Gram, BTreeSet<u64>>,
    /// Ids of values shorter than a gram (checked on every text).
    short: BTreeSet<u64>,
}

/// The grams of `text` worth matching on: a stretch where one character
/// fills half (`Hs000000` of a Salesforce org id at the head of a session
/// token) also fills every record id of that org, and says nothing secret.
fn grams_of(text: &str) -> impl Iterator<Item = Gram> + '_ {
    text.as_bytes().windows(MIN_FRAGMENT_CHARS).filter_map(|w| w.try_into().ok()).filter(informative)
}

fn informative(g: &Gram) -> bool {
    g.iter().all(|c| g.iter().filter(|d| *d == c).count() < MIN_FRAGMENT_CHARS / 2)
}

impl Known {
    fn from_values(values: &[String]) -> Known {
        let mut known = Known::default();
        for v in values {
            known.insert(v);
        }
        known
    }

    fn contains(&self, value: &str) -> bool {
        self.ids.contains_key(value)
    }

    fn insert(&mut self, value: &str) {
        if value.is_empty() || self.contains(value) {
            return;
        }
        if self.order.len() >= MAX_REGISTERED {
            if let Some(old) = self.order.pop_front() {
                self.remove(old);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let encoded = percent_encode(value);
        for g in grams_of(value).chain(grams_of(&encoded)) {
            self.grams.entry(g).or_default().insert(id);
        }
        if value.len() < MIN_FRAGMENT_CHARS {
            self.short.insert(id);
        }
        self.values.insert(id, value.to_string());
        self.ids.insert(value.to_string(), id);
        self.order.push_back(id);
    }

    fn remove(&mut self, id: u64) {
        let Some(value) = self.values.remove(&id) else {
            return;
        };
        self.ids.remove(&value);
        let encoded = percent_encode(&value);
        for g in grams_of(&value).chain(grams_of(&encoded)) {
            if let Some(ids) = self.grams.get_mut(&g) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.grams.remove(&g);
                }
            }
        }
        self.short.remove(&id);
    }

    /// Secrets that share a gram with `text`, plus the short ones.
    fn candidates(&self, text: &str) -> Vec<&str> {
        let mut ids: BTreeSet<u64> = self.short.clone();
        for g in grams_of(text) {
            if let Some(found) = self.grams.get(&g) {
                ids.extend(found.iter().copied());
            }
        }
        ids.iter().filter_map(|id| self.values.get(id).map(String::as_str)).collect()
    }

    /// Whether a run of token characters holds a part of a known secret.
    fn overlaps(&self, run: &str) -> bool {
        grams_of(run).any(|g| self.grams.contains_key(&g))
            || self.short.iter().any(|id| run.contains(self.values[id].as_str()))
    }

    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        if !self.values.is_empty() {
            for secret in self.candidates(text) {
                for form in [secret.to_string(), percent_encode(secret)] {
                    if !form.is_empty() && out.contains(&form) {
                        out = out.replace(&form, REDACTED);
                    }
                }
            }
            out = redact_fragments(&out, self);
        }
        redact_named_fields(&out)
    }
}

fn registry() -> &'static RwLock<Known> {
    static REGISTRY: OnceLock<RwLock<Known>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(Known::default()))
}

/// Remembers `value` as a secret, so [`redact`] removes it from any text.
pub fn register(value: &str) {
    let value = value.trim();
    if value.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut known = match registry().write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    known.insert(value);
}

/// `text` without any registered secret, fragment of one, or value of a
/// secret-named field.
pub fn redact(text: &str) -> String {
    match registry().read() {
        Ok(guard) => guard.redact(text),
        Err(poisoned) => poisoned.into_inner().redact(text),
    }
}

/// [`redact`] against an explicit list of secret values (and the field-name
/// rule), without the process-wide registry.
pub fn redact_with(text: &str, secrets: &[String]) -> String {
    Known::from_values(secrets).redact(text)
}

/// Characters a token is made of; a run of them is a candidate fragment.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '!' | '*' | '$' | '#' | '@' | '^')
}

/// Removes every run of token characters that shares at least
/// [`MIN_FRAGMENT_CHARS`] consecutive characters with a known secret at the
/// run's edge or inside it (a truncated or spliced echo).
fn redact_fragments(text: &str, known: &Known) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= MIN_FRAGMENT_CHARS && known.overlaps(run) {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Removes the values of secret-named fields in form, query, JSON and
/// header-like text.
fn redact_named_fields(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < text.len() {
        let Some((name_len, value_start)) = secret_field_at(&lower, i) else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let value_end = value_end(bytes, value_start);
        if value_end > value_start {
            out.push_str(&text[copied..value_start]);
            out.push_str(REDACTED);
            copied = value_end;
            i = value_end;
        } else {
            i += name_len;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// When a secret-named field starts at byte `i` of `lower` (and is a whole
/// word), its name length and where its value starts.
fn secret_field_at(lower: &str, i: usize) -> Option<(usize, usize)> {
    // The name must start a field: at the start of the text or after a
    // separator, an HTML tag's end included (`/token: ...` in a URL path is
    // not a field).
    let before = lower[..i].chars().next_back();
    if before
        .is_some_and(|c| !matches!(c, ' ' | '\t' | '\r' | '\n' | '"' | '\'' | '{' | ',' | '&' | '?' | ';' | '(' | '>'))
    {
        return None;
    }
    let rest = &lower[i..];
    let name = SECRET_FIELD_NAMES.iter().filter(|n| rest.starts_with(**n)).max_by_key(|n| n.len())?;
    let mut j = i + name.len();
    let bytes = lower.as_bytes();
    // JSON: `"name"` then `:`; form/query: `=`; header-like: `:`.
    if bytes.get(j) == Some(&b'"') || bytes.get(j) == Some(&b'\'') {
        j += 1;
    }
    while bytes.get(j).is_some_and(|b| *b == b' ' || *b == b'\t') {
        j += 1;
    }
    match bytes.get(j) {
        Some(b'=') | Some(b':') => j += 1,
        _ => return None,
    }
    while bytes.get(j).is_some_and(|b| *b == b' ' || *b == b'\t') {
        j += 1;
    }
    // `Authorization: Bearer xyz` keeps its scheme word visible.
    if lower[j..].starts_with("bearer ") || lower[j..].starts_with("basic ") {
        j += lower[j..].find(' ').map_or(0, |p| p + 1);
    }
    // A table or list (`private_key = { file = "…" }`) names where a secret
    // is, not the secret.
    if matches!(bytes.get(j), Some(b'{') | Some(b'[')) {
        return None;
    }
    if bytes.get(j) == Some(&b'"') || bytes.get(j) == Some(&b'\'') {
        j += 1;
    }
    Some((name.len(), j))
}

/// Where a field value that starts at `start` ends: at a quote, `&`, `,`,
/// `;`, whitespace, a closing bracket or the end of the text.
fn value_end(bytes: &[u8], start: usize) -> usize {
    let mut j = start;
    while let Some(b) = bytes.get(j) {
        if matches!(b, b'"' | b'\'' | b'&' | b',' | b';' | b' ' | b'\t' | b'\r' | b'\n' | b'}' | b']' | b'<' | b'>') {
            break;
        }
        j += 1;
    }
    j
}

/// `value` as `application/x-www-form-urlencoded` would send it.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Vec<String> {
        vec!["5Aep861TSESvWeug_ztpnAk6BGQxRdovMLhHso6".to_string(), "s3cr3t+client/value==".to_string()]
    }

    #[test]
    fn removes_known_values_and_their_encoded_form() {
        let text = "token 5Aep861TSESvWeug_ztpnAk6BGQxRdovMLhHso6 and s3cr3t%2Bclient%2Fvalue%3D%3D sent";
        let out = redact_with(text, &secrets());
        assert!(!out.contains("5Aep861"), "{out}");
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(out.starts_with("token [redacted] and [redacted] sent"), "{out}");
    }

    #[test]
    fn removes_a_truncated_echo() {
        // The page was cut after the first 20 characters of the token.
        let text = "<html><body>grant_type=refresh_token&foo=bar&x=5Aep861TSESvWeug_ztp";
        let out = redact_with(text, &secrets());
        assert!(!out.contains("5Aep861TSESv"), "{out}");
        // A spliced fragment in the middle of a longer run goes too.
        let out = redact_with("zzzzTSESvWeug_ztpnAk6zzzz", &secrets());
        assert_eq!(out, REDACTED);
    }

    #[test]
    fn removes_secret_named_fields_in_every_form() {
        let cases = [
            ("grant_type=refresh_token&refresh_token=abc123xyz&client_secret=qq11ww22", "abc123xyz"),
            (r#"{"access_token": "00Dxx!AQ0AQH", "instance_url": "https://x"}"#, "00Dxx!AQ0AQH"),
            ("Authorization: Bearer eyJhbGciOi.body.sig", "eyJhbGciOi"),
            ("https://x/cb?code=aPrx9sd8&state=1", "aPrx9sd8"),
            ("assertion=eyJ0eXAi.payload.signature", "eyJ0eXAi"),
            (r#"{'password': 'hunter22'}"#, "hunter22"),
        ];
        for (text, secret) in cases {
            let out = redact_with(text, &[]);
            assert!(!out.contains(secret), "{text} -> {out}");
            assert!(out.contains(REDACTED), "{text} -> {out}");
        }
        let out = redact_with("grant_type=refresh_token&refresh_token=abc123xyz", &[]);
        assert_eq!(out, "grant_type=refresh_token&refresh_token=[redacted]");
        assert_eq!(redact_with("Authorization: Bearer abc.def", &[]), "Authorization: Bearer [redacted]");
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let text =
            "HTTP 503 from /services/oauth2/token: Service Unavailable; the token endpoint is down (retry in 30 s)";
        assert_eq!(redact_with(text, &secrets()), text);
        let json = r#"{"status":"error","message":"Not found","category":"OBJECT_NOT_FOUND","tokenize":true}"#;
        assert_eq!(redact_with(json, &secrets()), json);
    }

    #[test]
    fn removes_a_token_endpoint_page_echoing_its_form() {
        let secrets = vec!["hs-refresh-9c1f2e77-aa41-4d0b".to_string(), "cs_4f9a8b7c6d5e4f3a2b1c".to_string()];
        let page = "<html><body><h1>502 Bad Gateway</h1><p>upstream said no to \
                    grant_type=refresh_token&client_id=app&client_secret=cs_4f9a8b7c6d5e4f3a2b1c&\
                    refresh_token=hs-refresh-9c1f2e77-aa41-4d0b</p></body></html>";
        let out = redact_with(page, &secrets);
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "{out}");
            assert!(!out.contains(&s[..12]), "{out}");
        }
        assert!(out.contains("502 Bad Gateway") && out.contains("client_id=app"), "{out}");
    }

    #[test]
    fn config_lines_keep_their_shape() {
        assert_eq!(
            redact_with(r#"private_key = { credential = "salesforce-jwt-key" }"#, &[]),
            r#"private_key = { credential = "salesforce-jwt-key" }"#
        );
        assert_eq!(redact_with(r#"client_secret = "inline-value""#, &[]), r#"client_secret = "[redacted]""#);
        assert_eq!(redact_with("token = 12345678", &[]), "token = [redacted]");
    }

    #[test]
    fn an_org_id_at_the_head_of_a_token_does_not_hide_record_ids() {
        let token = "00DHs0000000001EAA!AR8AQJm4nB7xTq2pLw9ZsKe".to_string();
        let out = redact_with("lead 00QHs0000000042IAA owner 005Hs0000000008IAA", std::slice::from_ref(&token));
        assert_eq!(out, "lead 00QHs0000000042IAA owner 005Hs0000000008IAA");
        let out = redact_with("echo: AR8AQJm4nB7xTq2p", &[token]);
        assert_eq!(out, "echo: [redacted]");
    }

    #[test]
    fn the_index_forgets_the_oldest_values() {
        let mut known = Known::default();
        for i in 0..(MAX_REGISTERED + 5) {
            known.insert(&format!("value-{i:08}-secret"));
        }
        assert_eq!(known.values.len(), MAX_REGISTERED);
        assert!(!known.contains("value-00000000-secret"));
        assert!(known.contains(&format!("value-{:08}-secret", MAX_REGISTERED + 4)));
        let text = format!("echo value-{:08}-secret", MAX_REGISTERED + 4);
        assert_eq!(known.redact(&text), "echo [redacted]");
    }

    #[test]
    fn registry_feeds_redact() {
        register("registered-value-9f8e7d6c");
        register("abc"); // too short to be worth removing
        let out = redact("echo: registered-value-9f8e7d6c / abc");
        assert_eq!(out, "echo: [redacted] / abc");
    }
}
