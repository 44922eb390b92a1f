//! Where the master key that seals secrets at rest comes from:
//! `RAMPHOOK_MASTER_KEY` (base64 of 32 bytes), `RAMPHOOK_MASTER_KEY_FILE`,
//! or — only on the default SQLite set-up — a key file generated beside the
//! database. PostgreSQL is shared by several instances and usually backed up
//! elsewhere, so there a key must be given explicitly.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::secrets::MasterKey;

/// Where the key will come from, decided before any file is touched.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Given on the command line or in the environment.
    Given,
    /// Read from this file (given explicitly).
    File(PathBuf),
    /// Read from, or first generated at, this file beside the SQLite database.
    BesideDatabase(PathBuf),
    /// An in-memory SQLite database: a key for this process only.
    Ephemeral,
}

/// Decides the key's source (pure): an explicit key or file wins; SQLite
/// falls back to `<database file>.key`; PostgreSQL refuses.
pub fn source(given: bool, file: Option<&Path>, database_url: &str) -> Result<KeySource, String> {
    if given {
        return Ok(KeySource::Given);
    }
    if let Some(file) = file {
        return Ok(KeySource::File(file.to_owned()));
    }
    if database_url.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(database_url)
            .map_err(|e| format!("bad database URL (--database-url / RAMPHOOK_DATABASE_URL): {e}"))?;
        let db = options.get_filename();
        let in_memory = database_url.contains(":memory:") || database_url.contains("mode=memory");
        if in_memory || db.as_os_str().is_empty() {
            return Ok(KeySource::Ephemeral);
        }
        let mut name = db.as_os_str().to_owned();
        name.push(".key");
        return Ok(KeySource::BesideDatabase(PathBuf::from(name)));
    }
    Err(
        "a master key is required with PostgreSQL: set RAMPHOOK_MASTER_KEY (base64 of 32 bytes, e.g. from \
         `openssl rand -base64 32`) or RAMPHOOK_MASTER_KEY_FILE"
            .into(),
    )
}

/// The master key, reading or generating the key file as the settings say.
pub fn load(given: Option<&MasterKey>, file: Option<&Path>, database_url: &str) -> Result<MasterKey, String> {
    match source(given.is_some(), file, database_url)? {
        KeySource::Given => Ok(given.expect("given").clone()),
        KeySource::File(path) => read(&path).map_err(|e| format!("--master-key-file (RAMPHOOK_MASTER_KEY_FILE): {e}")),
        KeySource::Ephemeral => Ok(MasterKey::generate()),
        KeySource::BesideDatabase(path) if path.exists() => read(&path),
        KeySource::BesideDatabase(path) => {
            let key = MasterKey::generate();
            write_new(&path, &key)?;
            tracing::warn!(
                key_file = %path.display(),
                "no master key was set: generated one beside the database; back it up apart from the \
                 database (without it the stored secrets cannot be read) or set RAMPHOOK_MASTER_KEY"
            );
            Ok(key)
        }
    }
}

/// Reads a key file: base64 of 32 bytes, surrounding white space ignored.
pub fn read(path: &Path) -> Result<MasterKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    MasterKey::from_base64(&text).map_err(|e| format!("key file {}: {e}", path.display()))
}

/// Writes a new key file readable by its owner only (0600); never replaces one.
fn write_new(path: &Path, key: &MasterKey) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create the key file {}: {e}", path.display()))?;
    writeln!(file, "{}", key.to_base64())
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("cannot write the key file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_key_or_file_wins_then_sqlite_gets_a_file_beside_it() {
        assert_eq!(source(true, None, "postgres://x/db").unwrap(), KeySource::Given);
        assert_eq!(
            source(false, Some(Path::new("/k")), "postgres://x/db").unwrap(),
            KeySource::File("/k".into())
        );
        assert_eq!(
            source(false, None, "sqlite:///var/lib/ramphook/ramphook.db").unwrap(),
            KeySource::BesideDatabase("/var/lib/ramphook/ramphook.db.key".into())
        );
        assert_eq!(
            source(false, None, "sqlite://ramphook.db").unwrap(),
            KeySource::BesideDatabase("ramphook.db.key".into())
        );
        assert_eq!(source(false, None, "sqlite::memory:").unwrap(), KeySource::Ephemeral);
        let refused = source(false, None, "postgres://x/db").unwrap_err();
        assert!(refused.contains("RAMPHOOK_MASTER_KEY"), "{refused}");
    }

    #[test]
    fn a_generated_key_file_is_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        let url = format!("sqlite://{}", db.display());
        let first = load(None, None, &url).unwrap();
        let path = dir.path().join("r.db.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = load(None, None, &url).unwrap();
        assert_eq!(first.to_base64(), again.to_base64());
        std::fs::write(&path, "garbage").unwrap();
        assert!(load(None, None, &url).unwrap_err().contains("r.db.key"));
    }
}
