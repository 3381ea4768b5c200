//! [`StreamsBuilder`] and the [`Topology`] it builds: sources, stores, repartition
//! topics and the sub-topologies (groups of operators connected without a
//! repartition topic, which run together in one task per partition).

use std::any::TypeId;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;

use super::kstream::{KStream, encode};
use super::ktable::KTable;
use super::node::{Children, Instantiate, SourceFactory, SourceNode};
use super::options::Consumed;
use crate::context::Ctx;
use crate::error::{Result, StreamsError};
use crate::serdes::Serde;
use crate::store::KvStore;

pub(crate) struct SourceDef {
    pub(crate) topic: String,
    pub(crate) internal: bool,
    pub(crate) sub: usize,
    pub(crate) factory: SourceFactory,
}

/// The build-time state shared by every stream of one builder.
#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) sources: Vec<SourceDef>,
    /// Stores: name, sub-topology, and what it holds (`KvStore<K, V>` or
    /// `WindowStore<K, V>`).
    pub(crate) stores: Vec<(String, usize, TypeId)>,
    /// Repartition topics: suffix, writing sub-topology, reading sub-topology.
    pub(crate) repartitions: Vec<(String, usize, usize)>,
    /// Output topics (`to`).
    pub(crate) outputs: Vec<String>,
    /// Union-find of sub-topologies (joins and merges connect them).
    parents: Vec<usize>,
    names: usize,
    pub(crate) errors: Vec<String>,
}

impl Inner {
    pub(crate) fn new_sub(&mut self) -> usize {
        self.parents.push(self.parents.len());
        self.parents.len() - 1
    }

    fn root(&self, mut s: usize) -> usize {
        while let Some(&p) = self.parents.get(s) {
            if p == s {
                break;
            }
            s = p;
        }
        s
    }

    pub(crate) fn union(&mut self, a: usize, b: usize) -> usize {
        let (ra, rb) = (self.root(a), self.root(b));
        if let Some(p) = self.parents.get_mut(rb) {
            *p = ra;
        }
        ra
    }

    pub(crate) fn next_name(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}-{:010}", self.names)
    }

    pub(crate) fn add_store(&mut self, name: &str, sub: usize, contents: TypeId) {
        if self.stores.iter().any(|(n, _, _)| n == name) {
            self.errors.push(format!("two stores are named `{name}`"));
        }
        self.stores.push((name.to_string(), sub, contents));
    }
}

/// A source: decoding with the serdes, then the processors downstream.
struct SourceFn<F>(F);

impl<F> SourceNode for SourceFn<F>
where
    F: FnMut(&mut Ctx, Option<&[u8]>, Option<&[u8]>, i64) -> Result<()> + Send,
{
    fn process(
        &mut self,
        ctx: &mut Ctx,
        k: Option<&[u8]>,
        v: Option<&[u8]>,
        ts: i64,
    ) -> Result<()> {
        (self.0)(ctx, k, v, ts)
    }
}

/// Decodes `bytes`, or skips (`Ok(None)`) or fails on bad bytes by the policy.
pub(crate) fn decode<T>(
    ctx: &Ctx,
    serde: &Serde<T>,
    bytes: &[u8],
    part: &'static str,
    skip_bad: bool,
) -> Result<Option<T>> {
    match serde.deserialize(bytes) {
        Ok(v) => Ok(Some(v)),
        Err(_) if skip_bad => {
            ctx.skip();
            Ok(None)
        }
        Err(reason) => Err(StreamsError::Deserialize {
            topic: ctx.topic.to_string(),
            partition: ctx.partition,
            offset: ctx.offset,
            part,
            reason,
        }),
    }
}

/// A source pushing records with a key and a value to `children` (records without
/// either are skipped and counted).
pub(crate) fn stream_source<K: 'static, V: 'static>(
    key_serde: Serde<K>,
    value_serde: Serde<V>,
    children: Children<K, V>,
) -> SourceFactory {
    Arc::new(move |inst: &mut Instantiate| {
        let mut next = children.instantiate(inst)?;
        let (ks, vs, skip) = (
            key_serde.clone(),
            value_serde.clone(),
            inst.skip_bad_records,
        );
        Ok(Box::new(SourceFn(
            move |ctx: &mut Ctx, k: Option<&[u8]>, v: Option<&[u8]>, ts| {
                let (Some(k), Some(v)) = (k, v) else {
                    ctx.skip();
                    return Ok(());
                };
                let Some(key) = decode(ctx, &ks, k, "key", skip)? else {
                    return Ok(());
                };
                let Some(value) = decode(ctx, &vs, v, "value", skip)? else {
                    return Ok(());
                };
                next.process(ctx, &key, &value, ts)
            },
        )) as Box<dyn SourceNode>)
    })
}

/// Builds a topology with Kafka Streams' DSL.
///
/// ```
/// use std::time::Duration;
/// use streamlog_streams::{serdes, Consumed, Materialized, Produced, StreamsBuilder, TimeWindows};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("raw-events", Consumed::with(serdes::string(), serdes::string()))
///     .filter(|_user, event| event.starts_with("purchase"))
///     .map_values(|event| event.to_uppercase())
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(300)))
///     .count(Materialized::named("purchase-counts-store"))
///     .to_stream()
///     .to("purchase-counts", Produced::with(serdes::windowed(serdes::string(), 300_000), serdes::i64()));
/// let topology = builder.build()?;
/// assert!(topology.describe().contains("raw-events"));
/// # Ok::<(), streamlog_streams::StreamsError>(())
/// ```
#[derive(Default)]
pub struct StreamsBuilder {
    inner: Rc<RefCell<Inner>>,
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn add_source(&self, topic: &str, internal: bool, sub: usize, factory: SourceFactory) {
        let mut b = self.inner.borrow_mut();
        if b.sources.iter().any(|s| s.topic == topic) {
            b.errors
                .push(format!("topic `{topic}` is read by two sources"));
        }
        if let Err(e) = streamlog::validate_topic_name(topic) {
            b.errors.push(format!("source topic: {e}"));
        }
        b.sources.push(SourceDef {
            topic: topic.to_string(),
            internal,
            sub,
            factory,
        });
    }

    /// A stream of `topic`'s records. Records without a key or value are skipped and
    /// counted ([`MetricsSnapshot::skipped`](crate::MetricsSnapshot)).
    pub fn stream<K: 'static, V: 'static>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let sub = self.inner.borrow_mut().new_sub();
        let children = Children::new();
        let factory = stream_source(
            consumed.key_serde.clone(),
            consumed.value_serde.clone(),
            children.clone(),
        );
        self.add_source(topic, false, sub, factory);
        KStream {
            b: Rc::clone(&self.inner),
            children,
            sub,
            key_serde: Some(consumed.key_serde),
            value_serde: Some(consumed.value_serde),
            key_changed: false,
        }
    }

    /// A table of `topic` (usually compacted): the latest value per key, in a key-value
    /// store named `<topic>-table` (queryable, and with its own changelog); a record
    /// with a null value deletes its key.
    pub fn table<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> KTable<K, V>
    where
        K: Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let sub = self.inner.borrow_mut().new_sub();
        let store = format!("{topic}-table");
        if let Err(e) = streamlog::validate_topic_name(&format!("x-{store}-changelog")) {
            self.inner.borrow_mut().errors.push(format!(
                "table of `{topic}`: its store's changelog topic name is invalid: {e}"
            ));
        }
        self.inner
            .borrow_mut()
            .add_store(&store, sub, TypeId::of::<KvStore<K, V>>());
        let children: Children<K, V> = Children::new();
        let (ks, vs) = (consumed.key_serde.clone(), consumed.value_serde.clone());
        let (down, name) = (children.clone(), store.clone());
        let store_topic: Arc<str> = Arc::from(topic);
        let factory: SourceFactory = Arc::new(move |inst: &mut Instantiate| {
            let st = inst.kv_store::<K, V>(&name, &ks, &vs)?;
            let mut next = down.instantiate(inst)?;
            let (ks, vs, skip) = (ks.clone(), vs.clone(), inst.skip_bad_records);
            let store_topic = Arc::clone(&store_topic);
            Ok(Box::new(SourceFn(
                move |ctx: &mut Ctx, k: Option<&[u8]>, v: Option<&[u8]>, ts| {
                    let Some(k) = k else {
                        ctx.skip();
                        return Ok(());
                    };
                    let Some(key) = decode(ctx, &ks, k, "key", skip)? else {
                        return Ok(());
                    };
                    // Stored under the key as its serde writes it, as Kafka's store
                    // serializes the typed key: joins and queries look keys up that way,
                    // and a serde need not write back the bytes it read (JSON objects).
                    let kb = encode(&ks, &key, &store_topic)?;
                    let Some(v) = v else {
                        st.write().delete_bytes(&kb, ts);
                        return Ok(());
                    };
                    let Some(value) = decode(ctx, &vs, v, "value", skip)? else {
                        return Ok(());
                    };
                    st.write().put_bytes(&kb, value.clone(), ts);
                    next.process(ctx, &key, &value, ts)
                },
            )) as Box<dyn SourceNode>)
        });
        self.add_source(topic, false, sub, factory);
        KTable {
            b: Rc::clone(&self.inner),
            children,
            sub,
            key_serde: Some(consumed.key_serde),
            value_serde: Some(consumed.value_serde),
            store: Some(store),
        }
    }

    /// The topology, checked: every grouping and output has its serdes, store and topic
    /// names are valid, windows are valid.
    ///
    /// # Errors
    /// `Topology` naming the first problem found.
    pub fn build(self) -> Result<Topology> {
        let b = std::mem::take(&mut *self.inner.borrow_mut());
        if let Some(e) = b.errors.first() {
            return Err(StreamsError::Topology { reason: e.clone() });
        }
        if b.sources.is_empty() {
            return Err(StreamsError::Topology {
                reason: "the topology reads no topic".into(),
            });
        }
        // Number the sub-topologies 0.. by their roots, in order of first appearance.
        let mut roots: Vec<usize> = Vec::new();
        let mut number = |s: usize| {
            let r = b.root(s);
            match roots.iter().position(|&x| x == r) {
                Some(i) => i,
                None => {
                    roots.push(r);
                    roots.len() - 1
                }
            }
        };
        let sources: Vec<SourceSpec> = b
            .sources
            .iter()
            .map(|s| SourceSpec {
                topic: s.topic.clone(),
                internal: s.internal,
                sub: number(s.sub),
                factory: Arc::clone(&s.factory),
            })
            .collect();
        let stores = b
            .stores
            .iter()
            .map(|(n, s, t)| (n.clone(), number(*s), *t))
            .collect();
        let repartitions = b
            .repartitions
            .iter()
            .map(|(t, from, to)| (t.clone(), number(*from), number(*to)))
            .collect();
        let mut outputs = b.outputs.clone();
        outputs.sort();
        outputs.dedup();
        Ok(Topology {
            sources,
            stores,
            repartitions,
            outputs,
            subtopologies: roots.len(),
        })
    }
}

/// A source of a built topology.
pub(crate) struct SourceSpec {
    /// The topic, or for an internal topic its name after `<application_id>-`.
    pub(crate) topic: String,
    pub(crate) internal: bool,
    pub(crate) sub: usize,
    pub(crate) factory: SourceFactory,
}

/// A built topology: what [`Streams`](crate::Streams) runs. Its sub-topologies are the
/// groups of operators that run together, one task per partition of their inputs.
pub struct Topology {
    pub(crate) sources: Vec<SourceSpec>,
    /// Stores: name, sub-topology, and what it holds.
    pub(crate) stores: Vec<(String, usize, TypeId)>,
    /// Repartition topics: suffix, writing sub-topology, reading sub-topology.
    pub(crate) repartitions: Vec<(String, usize, usize)>,
    /// Output topics, which must exist when the application starts.
    pub(crate) outputs: Vec<String>,
    pub(crate) subtopologies: usize,
}

impl Topology {
    /// A readable summary: each sub-topology's sources, stores and repartition topics.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for sub in 0..self.subtopologies {
            let _ = writeln!(s, "sub-topology {sub}:");
            for src in self.sources.iter().filter(|x| x.sub == sub) {
                let kind = if src.internal { " (internal)" } else { "" };
                let _ = writeln!(s, "  source {}{kind}", src.topic);
            }
            for (name, _, _) in self.stores.iter().filter(|x| x.1 == sub) {
                let _ = writeln!(s, "  store {name}");
            }
            for (t, _, to) in self.repartitions.iter().filter(|x| x.1 == sub) {
                let _ = writeln!(s, "  repartition {t} -> sub-topology {to}");
            }
        }
        for t in &self.outputs {
            let _ = writeln!(s, "output {t}");
        }
        s
    }

    /// The sub-topology reading `topic` (full names, with the application id).
    pub(crate) fn source_topic_name(&self, app_id: &str, spec: &SourceSpec) -> String {
        if spec.internal {
            format!("{app_id}-{}", spec.topic)
        } else {
            spec.topic.clone()
        }
    }
}
