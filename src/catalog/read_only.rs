//! The topics of a store as another process reads them: from the metadata files, with
//! no lock and no write (see [`Store::open_read_only`](crate::Store::open_read_only)).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::meta::{Intent, TopicMeta};
use super::{METADATA_TMP, TOPICS_DIR, partition_dir_name};
use crate::error::{Error, Result, io_ctx};
use crate::topic::{TopicConfig, validate_topic_name};

/// Whether `dir` holds a store (its topic metadata directory).
pub(crate) fn is_store(dir: &Path) -> bool {
    dir.join(TOPICS_DIR).is_dir()
}

/// The store's topics now, by name, with their configs (the partition count that is
/// complete: partitions being added are left out, as are topics being created or
/// deleted). Internal topics included.
///
/// # Errors
/// `Io`; `Corruption` for a metadata file that does not parse.
pub(crate) fn read_topics(dir: &Path) -> Result<BTreeMap<String, TopicConfig>> {
    let meta_dir = dir.join(TOPICS_DIR);
    let entries =
        std::fs::read_dir(&meta_dir).map_err(io_ctx(format!("list {}", meta_dir.display())))?;
    let mut out = BTreeMap::new();
    for e in entries {
        let e = e.map_err(io_ctx(format!("list {}", meta_dir.display())))?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name == METADATA_TMP || validate_topic_name(&name).is_err() {
            continue;
        }
        let path = e.path();
        let text = match std::fs::read(&path) {
            Ok(bytes) => {
                String::from_utf8(bytes).map_err(|_| Error::corruption(&path, 0, "not UTF-8"))?
            }
            // Deleted since it was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_ctx(format!("read {}", path.display()))(e)),
        };
        let meta = TopicMeta::parse(&text).map_err(|reason| Error::corruption(&path, 0, reason))?;
        if matches!(meta.intent, Some(Intent::Create | Intent::Delete)) {
            continue;
        }
        out.insert(name, meta.config);
    }
    Ok(out)
}

/// The directory of `topic`'s partition `partition` in the store at `dir`.
pub(crate) fn partition_dir(dir: &Path, topic: &str, partition: i32) -> PathBuf {
    dir.join(partition_dir_name(topic, partition))
}
