//! What the store writes about its topics: a topic's metadata file in `.topics/` (its
//! config, its id, and the change under way) and Kafka's `partition.metadata` file in
//! each partition directory.
//!
//! Every topic incarnation has an id (Kafka's topic id: a random UUID, shown as 22
//! characters of URL-safe base64). Committed offsets carry it, so an offset never
//! applies to another topic of the same name; each partition directory names it, so the
//! store recognises its own directories and never removes anyone else's.
//!
//! A topic change first records its intent in the metadata file (`intent=create`,
//! `intent=delete` or `intent=grow:<total>`), durably, then creates or removes
//! directories, then records the outcome. An open that finds an intent completes a
//! deletion or rolls back a creation, touching only directories whose
//! `partition.metadata` names the topic's id (or that are still empty).

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;

use crate::error::{Error, Result, io_ctx};
use crate::fs::FileSystem;
use crate::topic::TopicConfig;

/// Kafka's per-partition file naming the topic id.
pub(crate) const PARTITION_METADATA: &str = crate::log::PARTITION_METADATA_FILE;

/// A topic incarnation's id: Kafka's topic id (a version 4 UUID).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId([u8; 16]);

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl TopicId {
    /// A fresh random id (never all zeros, which Kafka reserves).
    pub(crate) fn random() -> TopicId {
        // The standard library's RandomState carries keys drawn from the operating
        // system's random source; hashing a counter and the time under two fresh states
        // gives 128 unpredictable bits without another dependency.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut bytes = [0u8; 16];
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(n);
            h.write_u128(now);
            h.write_u32(std::process::id());
            half.copy_from_slice(&h.finish().to_be_bytes());
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        TopicId(bytes)
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// From 16 bytes (`None` for all zeros, Kafka's "no id").
    pub fn from_bytes(bytes: &[u8]) -> Option<TopicId> {
        let b: [u8; 16] = bytes.try_into().ok()?;
        (b != [0; 16]).then_some(TopicId(b))
    }

    /// Parses Kafka's text form: 22 characters of URL-safe base64 without padding.
    pub fn parse(text: &str) -> Option<TopicId> {
        let digit = |c: u8| BASE64URL.iter().position(|&x| x == c).map(|v| v as u128);
        let text = text.as_bytes();
        let (last, head) = text.split_last().filter(|_| text.len() == 22)?;
        // 21 characters carry 126 bits; the last one the final 2 bits and 4 zero bits.
        let mut acc: u128 = 0;
        for &c in head {
            acc = (acc << 6) | digit(c)?;
        }
        let tail = digit(*last)?;
        if tail & 0xf != 0 {
            return None;
        }
        TopicId::from_bytes(&((acc << 2) | (tail >> 4)).to_be_bytes())
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = u128::from_be_bytes(self.0);
        let mut out = [0u8; 22];
        for (i, c) in out.iter_mut().enumerate().take(21) {
            *c = BASE64URL[((x >> (122 - 6 * i)) & 0x3f) as usize];
        }
        out[21] = BASE64URL[((x & 0x3) << 4) as usize];
        f.write_str(std::str::from_utf8(&out).expect("base64 is ASCII"))
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

/// A topic change under way, recorded before it touches any directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Its partition directories are being created.
    Create,
    /// It is being deleted.
    Delete,
    /// Partitions from `partitions` up to this total are being added.
    Grow(i32),
}

/// The metadata file of a topic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicMeta {
    pub(crate) config: TopicConfig,
    /// `None` only for a topic written before ids existed (given one at open).
    pub(crate) id: Option<TopicId>,
    pub(crate) intent: Option<Intent>,
    /// The id was given at an open and committed offsets written before ids existed
    /// may still lack it: they belong to this topic until they are written again with
    /// it (then this is cleared).
    pub(crate) adopting: bool,
}

impl TopicMeta {
    /// The file's text: the config's properties plus `topic.id` and `intent`.
    pub(crate) fn render(&self) -> String {
        let mut s = self.config.to_properties();
        if let Some(id) = self.id {
            s.push_str(&format!("topic.id={id}\n"));
        }
        if self.adopting {
            s.push_str("ids.adopting=true\n");
        }
        match self.intent {
            None => {}
            Some(Intent::Create) => s.push_str("intent=create\n"),
            Some(Intent::Delete) => s.push_str("intent=delete\n"),
            Some(Intent::Grow(total)) => s.push_str(&format!("intent=grow:{total}\n")),
        }
        s
    }

    /// Parses [`render`](Self::render)'s text; `Err(reason)` if malformed.
    pub(crate) fn parse(text: &str) -> std::result::Result<TopicMeta, String> {
        let mut id = None;
        let mut intent = None;
        let mut adopting = false;
        let mut rest = String::with_capacity(text.len());
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("topic.id=") {
                id = Some(
                    TopicId::parse(v)
                        .ok_or_else(|| format!("topic.id: `{v}` is not a topic id"))?,
                );
            } else if line == "ids.adopting=true" {
                adopting = true;
            } else if let Some(v) = line.strip_prefix("intent=") {
                intent = Some(match v {
                    "create" => Intent::Create,
                    "delete" => Intent::Delete,
                    _ => Intent::Grow(
                        v.strip_prefix("grow:")
                            .and_then(|n| n.parse().ok())
                            .ok_or_else(|| format!("intent: `{v}` is not a known change"))?,
                    ),
                });
            } else {
                rest.push_str(line);
                rest.push('\n');
            }
        }
        let config = TopicConfig::from_properties(&rest)?;
        if let Some(Intent::Grow(total)) = intent
            && (total <= config.partitions || total > crate::topic::MAX_PARTITIONS)
        {
            return Err(format!(
                "intent: growing to {total} partitions, but the topic has {} (and may \
                 have at most {})",
                config.partitions,
                crate::topic::MAX_PARTITIONS
            ));
        }
        Ok(TopicMeta {
            config,
            id,
            intent,
            adopting,
        })
    }
}

/// Kafka's `partition.metadata` text.
pub(crate) fn partition_metadata_text(id: TopicId) -> String {
    format!("version: 0\ntopic_id: {id}\n")
}

/// The topic id in a partition directory's `partition.metadata`: `Ok(None)` if the
/// file is missing, `Err` if it cannot be read or parsed.
pub(crate) fn read_partition_topic_id(fs: &dyn FileSystem, dir: &Path) -> Result<Option<TopicId>> {
    let path = dir.join(PARTITION_METADATA);
    let Some(bytes) = crate::log::read_small_file(fs, &path)
        .map_err(io_ctx(format!("read {}", path.display())))?
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut version_ok = false;
    let mut id = None;
    for line in text.lines() {
        match line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("version", "0")) => version_ok = true,
            Some(("topic_id", v)) => id = TopicId::parse(v),
            _ => {}
        }
    }
    match id {
        Some(id) if version_ok => Ok(Some(id)),
        _ => Err(Error::corruption(
            &path,
            0,
            "not Kafka's `version: 0` / `topic_id: <id>` partition metadata",
        )),
    }
}

/// Writes `partition.metadata` naming `id` into `dir` (tmp + fsync + rename + directory
/// fsync).
pub(crate) fn write_partition_metadata(fs: &dyn FileSystem, dir: &Path, id: TopicId) -> Result<()> {
    crate::log::write_file_atomically_via(
        fs,
        dir,
        PARTITION_METADATA,
        &format!("{PARTITION_METADATA}.tmp"),
        partition_metadata_text(id).as_bytes(),
    )
    .map_err(io_ctx(format!(
        "write {}/{PARTITION_METADATA}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_print_as_kafka_does_and_parse_back() {
        // Kafka's Uuid.toString of 0x0000..01: 22 chars of URL-safe base64, no padding.
        let one = TopicId::from_bytes(&1u128.to_be_bytes()).unwrap();
        assert_eq!(one.to_string(), "AAAAAAAAAAAAAAAAAAAAAQ");
        let id = TopicId::from_bytes(&u128::MAX.to_be_bytes()).unwrap();
        assert_eq!(id.to_string(), "_____________________w");
        for _ in 0..100 {
            let id = TopicId::random();
            assert_eq!(TopicId::parse(&id.to_string()), Some(id));
        }
        assert_ne!(TopicId::random(), TopicId::random());
        assert_eq!(TopicId::parse("AAAAAAAAAAAAAAAAAAAAAA"), None, "all zeros");
        assert_eq!(
            TopicId::parse("AAAAAAAAAAAAAAAAAAAAAB"),
            None,
            "padding bits set"
        );
        assert_eq!(TopicId::parse("short"), None);
        assert_eq!(TopicId::parse("AAAAAAAAAAAAAAAAAAAA*Q"), None);
    }

    #[test]
    fn metadata_round_trips_with_id_and_intent() {
        for intent in [
            None,
            Some(Intent::Create),
            Some(Intent::Delete),
            Some(Intent::Grow(9)),
        ] {
            for adopting in [false, true] {
                let meta = TopicMeta {
                    config: TopicConfig::default().partitions(3),
                    id: Some(TopicId::random()),
                    intent,
                    adopting,
                };
                assert_eq!(TopicMeta::parse(&meta.render()), Ok(meta));
            }
        }
        let legacy = TopicConfig::default().to_properties();
        assert_eq!(TopicMeta::parse(&legacy).unwrap().id, None);
        assert!(TopicMeta::parse(&format!("{legacy}intent=grow:1\n")).is_err());
        // A damaged count is refused, not walked (open looks for each new directory).
        assert!(TopicMeta::parse(&format!("{legacy}intent=grow:2147483647\n")).is_err());
        assert!(TopicMeta::parse(&format!("{legacy}intent=grow:100000\n")).is_ok());
        assert!(TopicMeta::parse(&format!("{legacy}intent=explode\n")).is_err());
        assert!(TopicMeta::parse(&format!("{legacy}topic.id=nope\n")).is_err());
    }
}
