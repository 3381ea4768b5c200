//! What the store commands share: the `--dir` option and opening the store.

use std::path::PathBuf;

use clap::Args;
use streamlog::{Store, StoreConfig};

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

/// Parses `key=value` (a `--config` argument).
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not key=value")),
    }
}
