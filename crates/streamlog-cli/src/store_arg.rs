//! What the store commands share: the `--dir` option and opening the store.

use std::path::{Path, PathBuf};

use clap::Args;
use streamlog::{ReadOnlyStore, Store, StoreConfig};

/// The store a command works on.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StoreDir {
    /// The store's directory (as given to `Store::open`)
    #[arg(long, short = 'd', value_name = "DIR")]
    pub dir: PathBuf,
}

impl StoreDir {
    /// Opens the store, without its background maintenance (a command is short-lived).
    /// The store must exist: a directory that holds none is refused, not made a store
    /// (a mistyped path, a Kafka log directory); it must not be open in another process
    /// (its lock refuses).
    pub fn open(&self) -> Result<Store, String> {
        open_store(&self.dir, None)
    }

    /// [`open`](Self::open), with the store's background maintenance (flushes by
    /// `flush.ms`, retention, compaction): for a command that runs as long as its
    /// input (`produce`).
    pub fn open_maintained(&self) -> Result<Store, String> {
        check_store_dir(&self.dir, None)?;
        Store::open(&self.dir).map_err(|e| format!("open {}: {e}", self.dir.display()))
    }

    /// [`open`](Self::open), or a new store in an empty directory (`topics create`,
    /// `import-kafka`).
    pub fn open_or_create(&self) -> Result<Store, String> {
        self.open_or_create_beside(&|_| false)
    }

    /// [`open_or_create`](Self::open_or_create), where a new store's directory may
    /// already hold entries `may_hold` accepts (by name): `import-kafka` without
    /// `--from` adopts the topic's partition directories put there first.
    pub fn open_or_create_beside(&self, may_hold: &dyn Fn(&str) -> bool) -> Result<Store, String> {
        open_store(&self.dir, Some(may_hold))
    }
}

/// Opens the store in `dir` as its writer, without background maintenance, once
/// [`check_store_dir`] lets it.
fn open_store(dir: &Path, create: Option<&dyn Fn(&str) -> bool>) -> Result<Store, String> {
    check_store_dir(dir, create)?;
    Store::open_with(dir, StoreConfig::default().background_maintenance(false))
        .map_err(|e| format!("open {}: {e}", dir.display()))
}

/// Whether a command may open `dir` as a store's writer: it must hold a store, or, if
/// the command may make one (`create`), hold nothing but entries `create` accepts.
/// Nothing is written where no store is (`Store::open` makes one anywhere: a mistyped
/// path, a Kafka log directory).
pub fn check_store_dir(dir: &Path, create: Option<&dyn Fn(&str) -> bool>) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{}: no such store directory", dir.display()));
    }
    if Store::open_read_only(dir).is_ok() {
        return Ok(());
    }
    let Some(may_hold) = create else {
        return Err(format!(
            "{}: no store in this directory (`streamlog topics create` makes one in an \
             empty directory)",
            dir.display()
        ));
    };
    let mut other = false;
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        other |= !entry.file_name().to_str().is_some_and(may_hold);
    }
    if other {
        return Err(format!(
            "{}: no store in this directory, which is not empty: a new store is made only \
             in an empty directory",
            dir.display()
        ));
    }
    Ok(())
}

impl StoreDir {
    /// Opens the store read-only: no lock, no write, so it works while the store's
    /// writer (another process) has it open.
    pub fn open_read_only(&self) -> Result<ReadOnlyStore, String> {
        Store::open_read_only(&self.dir).map_err(|e| match e {
            streamlog::Error::NotFound { .. } => {
                format!("{}: no store in this directory", self.dir.display())
            }
            e => format!("open {} read-only: {e}", self.dir.display()),
        })
    }
}

/// Parses `key=value` (a `--config` argument).
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not key=value")),
    }
}
