//! Logs: where they go, how they look, and the redactor in front of them.
//!
//! Every log line, whoever emits it (handoff, a connector, a library), is
//! formatted in full and then passed through [`handoff_model::redact`]
//! before one byte reaches standard error: the writer is the only way out,
//! so no event, field or span can bypass the redactor.
//!
//! - **Level**: `RUST_LOG` (tracing's `EnvFilter` syntax, e.g.
//!   `handoff=debug,warn`) when set; otherwise `info` for `handoff run`
//!   (one line per tick, warnings and errors for problems) and `warn` for
//!   the commands whose output is on standard output.
//! - **Format**: `text` (one human line per event; colours only at a
//!   terminal) or `json` (one JSON object per line, for a log shipper),
//!   chosen with `--log-format` or `HANDOFF_LOG_FORMAT`.

use std::io::{self, IsTerminal as _, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per event and line.
    Json,
}

/// Library targets that say too much at `info` for a journal.
const QUIET_LIBRARIES: &str = "sled=warn,hyper=warn,hyper_util=warn,reqwest=warn,h2=warn,rustls=warn,tower=warn";

/// The filter used when `RUST_LOG` is not set.
pub fn default_filter(service: bool) -> String {
    let level = if service { "info" } else { "warn" };
    format!("{level},{QUIET_LIBRARIES}")
}

/// Installs the global subscriber: logs to standard error, through the
/// redactor. `service`: the command is `handoff run` (info by default).
pub fn init(format: LogFormat, service: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter(service)));
    let writer = RedactingStderr;
    // Colours only for a person at a terminal, never in the journal or a pipe.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).flatten_event(true).with_current_span(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("warning: logging was already set up: {e}");
    }
}

/// Makes one [`RedactingLine`] per event.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingLine<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingLine::new(io::stderr())
    }
}

/// Collects one formatted event and writes it, redacted, when dropped (or
/// flushed). The formatter makes one writer per event, so the redactor
/// always sees a whole line: a secret cannot be split across two writes.
pub struct RedactingLine<W: Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: Write> RedactingLine<W> {
    pub fn new(inner: W) -> Self {
        RedactingLine { inner, buffer: Vec::with_capacity(256) }
    }

    fn emit(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let clean = handoff_model::redact(&text);
        self.buffer.clear();
        self.inner.write_all(clean.as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Write for RedactingLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()
    }
}

impl<W: Write> Drop for RedactingLine<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write to.
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reaches_the_writer_only_redacted() {
        handoff_model::redact::register("log-secret-7Hq2Zp9Lw");
        let mut out = Vec::new();
        {
            let mut line = RedactingLine::new(&mut out);
            // Written in pieces that split the secret, as a formatter may.
            line.write_all(b"WARN token endpoint said: log-secret-").unwrap();
            line.write_all(b"7Hq2Zp9Lw and refresh_token=abcdefgh123\n").unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("7Hq2Zp9Lw") && !text.contains("abcdefgh123"), "{text}");
        assert!(text.starts_with("WARN token endpoint said: [redacted]"), "{text}");
    }

    #[test]
    fn the_service_logs_at_info_and_commands_at_warn() {
        assert!(default_filter(true).starts_with("info,"));
        assert!(default_filter(false).starts_with("warn,"));
    }
}
