//! Files under the data dir are private to Latchkey's user (SPEC §1): folders 0700, files 0600.
//! SQLite creates a database's `-wal` and `-shm` files with the database file's own mode, so a
//! database file made private before SQLite opens it keeps its companions private too.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) with mode 0700, and makes an existing `dir` 0700 where
/// Latchkey may (a folder someone else owns is left as it is, with a warning).
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0
        && let Err(e) = std::fs::set_permissions(dir, Permissions::from_mode(0o700))
    {
        tracing::warn!(dir = %dir.display(), error = %e, "could not make the folder private (mode 0700)");
    }
    Ok(())
}

/// Makes sure `file` exists with mode 0600, creating it empty if it is missing (an empty file is
/// an empty SQLite database), and tightens the mode of the file and of its SQLite companions if
/// an earlier version left them readable by others.
pub fn private_file(file: &Path) -> io::Result<()> {
    OpenOptions::new().append(true).create(true).mode(0o600).open(file)?;
    std::fs::set_permissions(file, Permissions::from_mode(0o600))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut companion = file.as_os_str().to_owned();
        companion.push(suffix);
        match std::fs::set_permissions(&companion, Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
