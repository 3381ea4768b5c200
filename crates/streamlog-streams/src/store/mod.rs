//! State stores: in-memory key-value and window stores whose every change is also
//! recorded for a compacted changelog topic (sent by the runtime in the same commit as
//! the outputs and input offsets), restored from it when a task starts, and readable
//! from the application (interactive queries).

mod kv;
mod registry;
mod window;

use std::any::Any;
use std::sync::Arc;

pub use kv::KvStore;
pub(crate) use registry::Registry;
pub use window::WindowStore;

/// A change to a store: key bytes, value bytes (`None` = deleted), and the changelog
/// record's timestamp (a value's own: the latest of the records it was made from).
pub(crate) type Change = (Vec<u8>, Option<Vec<u8>>, i64);

/// A task's view of one of its stores, whatever its types.
pub(crate) trait StoreHandle: Send {
    /// Applies one changelog record (its timestamp is the value's).
    fn restore(&self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<(), String>;
    /// Called once the changelog is read.
    fn restored(&self) {}
    /// The changelog records since the last call (the latest value per key).
    ///
    /// # Errors
    /// The value serde's message.
    fn take_changes(&self) -> Result<Vec<Change>, String>;
    /// The store itself, for typed lookups and queries.
    fn shared(&self) -> Arc<dyn Any + Send + Sync>;
}

/// A store shared by a task's processors and the application's queries.
pub type Shared<S> = Arc<parking_lot::RwLock<S>>;

/// The name of a store's changelog topic.
pub(crate) fn changelog_topic(app_id: &str, store: &str) -> String {
    format!("{app_id}-{store}-changelog")
}
