//! An answer is validated before anything is built on it: it must be whole
//! JSON of the shape the API promises. HTML from a proxy, an empty or
//! truncated body, an error envelope sent with a 200, a field of the wrong
//! type in the envelope: each is refused with what was wrong, so the window
//! it belongs to fails and its cursor stays where it was.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::RuntimeError;

/// How much of a refused answer a message quotes.
const SNIPPET_CHARS: usize = 120;

/// The start of `body` for a message, redacted.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(SNIPPET_CHARS * 4)]);
    let cut: String = text.chars().take(SNIPPET_CHARS).collect();
    handoff_model::redact(&cut)
}

/// Read `body` as `T`. `error_in` recognises the CRM's error envelope in a
/// body that came with a success status (and says what it reports).
pub fn json<T: DeserializeOwned>(
    endpoint: &str,
    body: &[u8],
    error_in: &dyn Fn(&Value) -> Option<String>,
) -> Result<T, RuntimeError> {
    let refuse = |message: String| RuntimeError::Protocol { endpoint: endpoint.to_string(), message };
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
    let trimmed = body.get(start..).unwrap_or_default();
    let trimmed = trimmed.strip_prefix("\u{feff}".as_bytes()).unwrap_or(trimmed);
    match trimmed.first() {
        None => return Err(refuse("the answer is empty".into())),
        Some(b'{') | Some(b'[') => {}
        Some(_) => return Err(refuse(format!("the answer is not JSON: it starts {:?}", snippet(trimmed)))),
    }
    let value: Value = serde_json::from_slice(trimmed).map_err(|e| {
        let how = if e.is_eof() { "cut off (truncated JSON)" } else { "not well-formed JSON" };
        refuse(format!("the answer is {how}: {e}"))
    })?;
    if let Some(reported) = error_in(&value) {
        return Err(refuse(format!(
            "the answer came with a success status but is an error: {}",
            handoff_model::redact(&reported)
        )));
    }
    serde_path_to_error::deserialize(value)
        .map_err(|e| refuse(format!("the answer is not the expected shape at `{}`: {}", e.path(), e.inner())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Page {
        done: bool,
        records: Vec<Value>,
    }

    fn none(_: &Value) -> Option<String> {
        None
    }

    fn message(r: Result<Page, RuntimeError>) -> String {
        match r {
            Err(RuntimeError::Protocol { message, .. }) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn whole_json_of_the_right_shape_is_read() {
        let p: Page = json("q", b" \n{\"done\": true, \"records\": [1]}", &none).unwrap();
        assert!(p.done);
        assert_eq!(p.records.len(), 1);
    }

    #[test]
    fn html_empty_truncated_and_wrong_shapes_are_refused_by_name() {
        assert!(message(json("q", b"<html><body>Bad gateway</body></html>", &none)).contains("not JSON"));
        assert!(message(json("q", b"   ", &none)).contains("empty"));
        assert!(message(json("q", b"{\"done\": true, \"recor", &none)).contains("truncated"));
        let m = message(json("q", b"{\"done\": \"yes\", \"records\": []}", &none));
        assert!(m.contains("`done`"), "{m}");
        assert!(message(json("q", b"{\"records\": []}", &none)).contains("done"));
    }

    #[test]
    fn an_error_envelope_with_a_200_is_refused() {
        let sf = |v: &Value| v.as_array()?.first()?.get("errorCode").and_then(Value::as_str).map(|c| c.to_string());
        let m = message(json("q", br#"[{"errorCode":"QUERY_TIMEOUT","message":"x"}]"#, &sf));
        assert!(m.contains("QUERY_TIMEOUT") && m.contains("success status"), "{m}");
    }

    #[test]
    fn a_quoted_answer_never_carries_a_secret() {
        let m = message(json("q", b"<html>grant_type=refresh_token&refresh_token=5Aep861TSESvWeug</html>", &none));
        assert!(!m.contains("5Aep861TSESvWeug"), "{m}");
    }
}
