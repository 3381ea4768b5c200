//! What the store commands share: the `--dir` option and opening the store.

use std::path::PathBuf;

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
    /// The store must exist; it must not be open in another process (its lock refuses).
    pub fn open(&self) -> Result<Store, String> {
        if !self.dir.is_dir() {
            return Err(format!("{}: no such store directory", self.dir.display()));
        }
        Store::open_with(
            &self.dir,
            StoreConfig::default().background_maintenance(false),
        )
        .map_err(|e| format!("open {}: {e}", self.dir.display()))
    }
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
