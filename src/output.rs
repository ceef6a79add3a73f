//! A command's answer on standard output, without `print!`'s panic when
//! the reader has gone (`handoff report | head`). Below every module that
//! prints, so none of them needs the CLI.

/// Writes a command's answer to standard output. `print!` would panic
/// when the reader has gone (`handoff report | head`); this returns the
/// error, and `main` ends quietly on it (see [`is_closed_pipe`]).
pub fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether `e` is standard output's reader having gone away: the answer
/// was not wanted any more, which is no failure.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
