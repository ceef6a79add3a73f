//! Where a rotated refresh token is kept, so the next start can use it.
//!
//! A CRM that rotates refresh tokens voids the old one as it hands out the
//! new one: losing the new one locks handoff out. So the new token is saved
//! (durably, atomically) before the session it came with is used, and the
//! saved token wins over the configured one at the next start.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use handoff_model::Secret;

/// Keeps the newest refresh token.
pub trait TokenStore: Send + Sync {
    /// The refresh token saved last, if any.
    fn load(&self) -> Result<Option<Secret>, String>;
    /// Save a new refresh token durably; the old one stays until this
    /// returns `Ok`.
    fn save(&self, refresh_token: &Secret) -> Result<(), String>;
}

/// A [`TokenStore`] in memory, for tests and one-shot commands.
#[derive(Default)]
pub struct MemoryTokenStore {
    token: Mutex<Option<Secret>>,
    saves: Mutex<u32>,
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times a token was saved.
    pub fn saves(&self) -> u32 {
        *self.saves.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<Secret>, String> {
        Ok(self.token.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn save(&self, refresh_token: &Secret) -> Result<(), String> {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(refresh_token.clone());
        *self.saves.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Ok(())
    }
}

/// The daemon's token store: one file per CRM under `secrets/` in the state
/// directory (directory 0700, file 0600, replaced atomically). It is the
/// only secret handoff ever writes; never the state database, a log or an
/// error.
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    /// `state_dir/secrets/{crm}-refresh-token`.
    pub fn new(state_dir: &Path, crm: &str) -> FileTokenStore {
        FileTokenStore { path: state_dir.join("secrets").join(format!("{crm}-refresh-token")) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> Result<Option<Secret>, String> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => Ok(Some(Secret::new(text.trim_end_matches(['\r', '\n'])))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!(
                "cannot read the saved refresh token {}: {e}; check that the daemon's user owns the state directory",
                self.path.display()
            )),
        }
    }

    /// Writes the token to a temporary file, syncs it, renames it over the
    /// old one and syncs the directory: a crash leaves the old or the new
    /// token, never half of one.
    fn save(&self, token: &Secret) -> Result<(), String> {
        let dir = self.path.parent().ok_or_else(|| "the token path has no directory".to_string())?;
        let fail = |what: &str, e: std::io::Error| format!("cannot {what} in {}: {e}", dir.display());
        create_private_dir(dir).map_err(|e| fail("create the secrets directory", e))?;
        let tmp = dir.join(".refresh-token.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| fail("write the token", e))?;
        file.write_all(token.expose().as_bytes()).map_err(|e| fail("write the token", e))?;
        file.sync_all().map_err(|e| fail("sync the token", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail("replace the token", e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Best effort: the rename is durable on the file systems that matter once the directory is synced.
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Creates `dir` (and its parents) readable by the owner only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_round_trips_privately_and_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let f = FileTokenStore::new(dir.path(), "salesforce");
        assert_eq!(f.load().unwrap(), None);
        f.save(&Secret::new("rt-000001")).unwrap();
        f.save(&Secret::new("rt-000002")).unwrap();
        assert_eq!(f.load().unwrap().map(|s| s.expose().to_string()), Some("rt-000002".to_string()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
            let file = mode(&dir.path().join("secrets/salesforce-refresh-token"));
            assert_eq!(file & 0o077, 0, "only the daemon's user may read it: {file:o}");
            let secrets = mode(&dir.path().join("secrets"));
            assert_eq!(secrets & 0o077, 0, "nor list the directory: {secrets:o}");
        }
        assert!(!dir.path().join("secrets/.refresh-token.tmp").exists());
    }

    #[test]
    fn the_memory_store_counts_saves() {
        let s = MemoryTokenStore::new();
        s.save(&Secret::new("a-token-1")).unwrap();
        assert_eq!(s.saves(), 1);
        assert_eq!(s.load().unwrap().map(|t| t.expose().to_string()), Some("a-token-1".into()));
    }
}
