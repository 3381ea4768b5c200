//! [`KStream`]: a typed stream of records and its stateless operators, outputs,
//! groupings (with a repartition topic when the key changed) and stream-table joins.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::builder::{Inner, stream_source};
use super::grouped::KGroupedStream;
use super::ktable::KTable;
use super::node::{Children, Factory, Instantiate, Node, NodeFn};
use super::options::{Grouped, Produced};
use crate::context::{Ctx, OutRecord};
use crate::error::StreamsError;
use crate::serdes::Serde;

/// A predicate over a record, for [`KStream::branch`].
pub type Predicate<K, V> = Box<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A stream of key-value records with timestamps (Kafka Streams' `KStream`). Operators
/// take closures over references and return new streams; nothing runs until the
/// topology is built and started. Handles are cheap to clone and build-time only.
///
/// ```
/// use streamlog_streams::{serdes, Consumed, Grouped, Materialized, Produced, StreamsBuilder};
/// let builder = StreamsBuilder::new();
/// let orders = builder.stream("orders", Consumed::with(serdes::string(), serdes::string()));
/// let (big, small) = orders.split(|_customer, order| order.len() > 10);
/// big.merge(&small.filter(|_, o| o.starts_with("rush")))
///     .flat_map_values(|o| o.split(',').map(str::to_string).collect::<Vec<_>>())
///     .to("items", Produced::with(serdes::string(), serdes::string()));
/// // Re-keyed by item: counted through a repartition topic.
/// orders
///     .group_by(|_, o| o.clone(), Grouped::with(serdes::string(), serdes::string()))
///     .count(Materialized::named("per-order-text"));
/// let profiles = builder.table("profiles", Consumed::with(serdes::string(), serdes::string()));
/// orders
///     .left_join(&profiles, |o, p| format!("{o} for {}", p.map_or("?", String::as_str)))
///     .to("enriched", Produced::with(serdes::string(), serdes::string()));
/// assert!(builder.build()?.describe().contains("repartition"));
/// # Ok::<(), streamlog_streams::StreamsError>(())
/// ```
pub struct KStream<K, V> {
    pub(crate) b: Rc<RefCell<Inner>>,
    pub(crate) children: Children<K, V>,
    pub(crate) sub: usize,
    pub(crate) key_serde: Option<Serde<K>>,
    pub(crate) value_serde: Option<Serde<V>>,
    /// The key was changed since the source (a grouping must repartition).
    pub(crate) key_changed: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            b: Rc::clone(&self.b),
            children: self.children.clone(),
            sub: self.sub,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            key_changed: self.key_changed,
        }
    }
}

/// Serializes `value`, naming `topic` on failure.
pub(crate) fn encode<T>(serde: &Serde<T>, value: &T, topic: &str) -> Result<Vec<u8>, StreamsError> {
    serde
        .serialize(value)
        .map_err(|reason| StreamsError::Serialize {
            topic: topic.to_string(),
            reason,
        })
}

impl<K: 'static, V: 'static> KStream<K, V> {
    fn derive<K2: 'static, V2: 'static>(
        &self,
        key_serde: Option<Serde<K2>>,
        value_serde: Option<Serde<V2>>,
        key_changed: bool,
    ) -> KStream<K2, V2> {
        KStream {
            b: Rc::clone(&self.b),
            children: Children::new(),
            sub: self.sub,
            key_serde,
            value_serde,
            key_changed,
        }
    }

    /// Adds an operator below this stream: `make` builds, for one task, the function
    /// that handles one record given the processors below the new stream.
    fn attach<K2: 'static, V2: 'static, F>(
        &self,
        out: &KStream<K2, V2>,
        make: impl Fn(super::node::Fanout<K2, V2>) -> F + Send + Sync + 'static,
    ) where
        F: FnMut(&mut Ctx, &K, &V, i64) -> crate::Result<()> + Send + 'static,
    {
        let down = out.children.clone();
        let f: Factory<K, V> = Arc::new(move |inst: &mut Instantiate| {
            let next = down.instantiate(inst)?;
            Ok(Box::new(NodeFn(make(next))) as Box<dyn Node<K, V>>)
        });
        self.children.push(f);
    }

    /// The records for which `predicate` holds.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        let out = self.derive(
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.key_changed,
        );
        let p = Arc::new(predicate);
        self.attach(&out, move |mut next| {
            let p = Arc::clone(&p);
            move |ctx: &mut Ctx, k: &K, v: &V, ts| {
                if p(k, v) {
                    next.process(ctx, k, v, ts)
                } else {
                    Ok(())
                }
            }
        });
        out
    }

    /// The records for which `predicate` does not hold.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Each record with a new value (the key, and its serde, are kept).
    pub fn map_values<V2: 'static>(
        &self,
        f: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let out = self.derive(self.key_serde.clone(), None, self.key_changed);
        let f = Arc::new(f);
        self.attach(&out, move |mut next| {
            let f = Arc::clone(&f);
            move |ctx: &mut Ctx, k: &K, v: &V, ts| next.process(ctx, k, &f(v), ts)
        });
        out
    }

    /// Each record with a new key and value (a later grouping repartitions).
    pub fn map<K2: 'static, V2: 'static>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let out = self.derive(None, None, true);
        let f = Arc::new(f);
        self.attach(&out, move |mut next| {
            let f = Arc::clone(&f);
            move |ctx: &mut Ctx, k: &K, v: &V, ts| {
                let (k2, v2) = f(k, v);
                next.process(ctx, &k2, &v2, ts)
            }
        });
        out
    }

    /// Each record with a new key (a later grouping repartitions).
    pub fn select_key<K2: 'static>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        let out = self.derive(None, self.value_serde.clone(), true);
        let f = Arc::new(f);
        self.attach(&out, move |mut next| {
            let f = Arc::clone(&f);
            move |ctx: &mut Ctx, k: &K, v: &V, ts| next.process(ctx, &f(k, v), v, ts)
        });
        out
    }

    /// Zero or more values per record, each with the record's key.
    pub fn flat_map_values<V2: 'static, I>(
        &self,
        f: impl Fn(&V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let out = self.derive(self.key_serde.clone(), None, self.key_changed);
        let f = Arc::new(f);
        self.attach(&out, move |mut next| {
            let f = Arc::clone(&f);
            move |ctx: &mut Ctx, k: &K, v: &V, ts| {
                for v2 in f(v) {
                    next.process(ctx, k, &v2, ts)?;
                }
                Ok(())
            }
        });
        out
    }

    /// Zero or more records per record (a later grouping repartitions).
    pub fn flat_map<K2: 'static, V2: 'static, I>(
        &self,
        f: impl Fn(&K, &V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let out = self.derive(None, None, true);
        let f = Arc::new(f);
        self.attach(&out, move |mut next| {
            let f = Arc::clone(&f);
            move |ctx: &mut Ctx, k: &K, v: &V, ts| {
                for (k2, v2) in f(k, v) {
                    next.process(ctx, &k2, &v2, ts)?;
                }
                Ok(())
            }
        });
        out
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        let out = self.derive(
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.key_changed,
        );
        let f = Arc::new(f);
        self.attach(&out, move |mut next| {
            let f = Arc::clone(&f);
            move |ctx: &mut Ctx, k: &K, v: &V, ts| {
                f(k, v);
                next.process(ctx, k, v, ts)
            }
        });
        out
    }

    /// Calls `f` on each record (a terminal operation).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let _ = self.peek(f);
    }

    /// Splits the stream: each record goes to the first branch whose predicate holds,
    /// or nowhere (Kafka's `branch`).
    pub fn branch(&self, predicates: Vec<Predicate<K, V>>) -> Vec<KStream<K, V>> {
        let outs: Vec<KStream<K, V>> = predicates
            .iter()
            .map(|_| {
                self.derive(
                    self.key_serde.clone(),
                    self.value_serde.clone(),
                    self.key_changed,
                )
            })
            .collect();
        let downs: Vec<Children<K, V>> = outs.iter().map(|o| o.children.clone()).collect();
        let preds = Arc::new(predicates);
        let f: Factory<K, V> = Arc::new(move |inst: &mut Instantiate| {
            let mut nexts = Vec::with_capacity(downs.len());
            for d in &downs {
                nexts.push(d.instantiate(inst)?);
            }
            let preds = Arc::clone(&preds);
            Ok(Box::new(NodeFn(move |ctx: &mut Ctx, k: &K, v: &V, ts| {
                for (p, next) in preds.iter().zip(nexts.iter_mut()) {
                    if p(k, v) {
                        return next.process(ctx, k, v, ts);
                    }
                }
                Ok(())
            })) as Box<dyn Node<K, V>>)
        });
        self.children.push(f);
        outs
    }

    /// Splits the stream in two: the records for which `predicate` holds, and the rest.
    pub fn split(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> (KStream<K, V>, KStream<K, V>) {
        let mut b = self.branch(vec![Box::new(predicate), Box::new(|_: &K, _: &V| true)]);
        let rest = b.pop().unwrap_or_else(|| self.filter(|_, _| false));
        let matching = b.pop().unwrap_or_else(|| self.filter(|_, _| false));
        (matching, rest)
    }

    /// The records of both streams (they run in one task per partition, so their
    /// topics must have the same partition count).
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let sub = self.b.borrow_mut().union(self.sub, other.sub);
        let mut out = self.derive(
            self.key_serde.clone().or_else(|| other.key_serde.clone()),
            self.value_serde
                .clone()
                .or_else(|| other.value_serde.clone()),
            self.key_changed || other.key_changed,
        );
        out.sub = sub;
        for parent in [self, other] {
            parent.attach(&out, |mut next| {
                move |ctx: &mut Ctx, k: &K, v: &V, ts| next.process(ctx, k, v, ts)
            });
        }
        out
    }

    /// Writes the records to `topic` (which must exist), with the stream's serdes or
    /// those of `produced`; partitioned by key (murmur2, as Kafka's producer).
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        let ks = produced.key_serde.or_else(|| self.key_serde.clone());
        let vs = produced.value_serde.or_else(|| self.value_serde.clone());
        let (Some(ks), Some(vs)) = (ks, vs) else {
            self.b.borrow_mut().errors.push(format!(
                "`to({topic})` needs serdes: the stream carries none for its key or value (an \
                 operator that can change a type drops it); use Produced::with"
            ));
            return;
        };
        if let Err(e) = streamlog::validate_topic_name(topic) {
            self.b
                .borrow_mut()
                .errors
                .push(format!("output topic: {e}"));
        }
        // Checked at `start` (a missing one is `MissingTopic`, not a failed thread at
        // the first record) and listed by `describe`.
        self.b.borrow_mut().outputs.push(topic.to_string());
        let topic: Arc<str> = Arc::from(topic);
        let f: Factory<K, V> = Arc::new(move |_inst: &mut Instantiate| {
            let sink = sink(Arc::clone(&topic), ks.clone(), vs.clone(), Route::Producer);
            Ok(Box::new(sink) as Box<dyn Node<K, V>>)
        });
        self.children.push(f);
    }

    /// Groups by the current key. If the key changed upstream (`map`, `select_key`,
    /// `flat_map`), the records first go through the repartition topic
    /// `<application_id>-<name>-repartition`, so that each key is aggregated in one
    /// task, as Kafka Streams does.
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        self.group_by_key_with(Grouped::default())
    }

    /// [`group_by_key`](Self::group_by_key) with explicit serdes or a repartition name.
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        let ks = grouped.key_serde.or_else(|| self.key_serde.clone());
        let vs = grouped.value_serde.or_else(|| self.value_serde.clone());
        if !self.key_changed {
            return KGroupedStream {
                b: Rc::clone(&self.b),
                children: self.children.clone(),
                sub: self.sub,
                key_serde: ks,
                value_serde: vs,
            };
        }
        let (Some(ks), Some(vs)) = (ks, vs) else {
            self.b.borrow_mut().errors.push(
                "grouping after a key change needs key and value serdes for its repartition \
                 topic: use Grouped::with"
                    .into(),
            );
            return KGroupedStream {
                b: Rc::clone(&self.b),
                children: Children::new(),
                sub: self.sub,
                key_serde: None,
                value_serde: None,
            };
        };
        let name = {
            let mut b = self.b.borrow_mut();
            grouped.name.unwrap_or_else(|| b.next_name("KSTREAM-GROUP"))
        };
        let suffix = format!("{name}-repartition");
        // Upstream: write to the repartition topic.
        let (sink_ks, sink_vs, sink_suffix) = (ks.clone(), vs.clone(), suffix.clone());
        let f: Factory<K, V> = Arc::new(move |inst: &mut Instantiate| {
            let topic = inst.internal_topic(&sink_suffix);
            let sink = sink(topic, sink_ks.clone(), sink_vs.clone(), Route::ByKey);
            Ok(Box::new(sink) as Box<dyn Node<K, V>>)
        });
        self.children.push(f);
        // Downstream: a new sub-topology reading it.
        let mut b = self.b.borrow_mut();
        let sub = b.new_sub();
        let children = Children::new();
        let factory = stream_source(ks.clone(), vs.clone(), children.clone());
        if b.sources.iter().any(|s| s.topic == suffix) {
            b.errors
                .push(format!("two repartition topics are named `{suffix}`"));
        }
        // (Its length with the application id is checked at start.)
        if let Err(e) = streamlog::validate_topic_name(&format!("x-{suffix}")) {
            b.errors.push(format!(
                "grouping `{name}`: its repartition topic name is invalid: {e}"
            ));
        }
        b.sources.push(super::builder::SourceDef {
            topic: suffix.clone(),
            internal: true,
            sub,
            factory,
        });
        b.repartitions.push((suffix, self.sub, sub));
        KGroupedStream {
            b: Rc::clone(&self.b),
            children,
            sub,
            key_serde: Some(ks),
            value_serde: Some(vs),
        }
    }

    /// Groups by a new key computed from each record (always through a repartition
    /// topic), encoded by `grouped`'s serdes.
    pub fn group_by<K2: 'static>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        self.select_key(f).group_by_key_with(grouped)
    }

    /// Inner stream-table join: each record whose key is in `table` (at the time the
    /// record is processed) with `joiner(value, table value)`.
    pub fn join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        K: Send + Sync,
        VT: Send + Sync + 'static,
        VR: 'static,
    {
        self.join_impl(table, move |v, t: Option<&VT>| t.map(|t| joiner(v, t)))
    }

    /// Left stream-table join: every record, with `joiner(value, table value or None)`.
    pub fn left_join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        K: Send + Sync,
        VT: Send + Sync + 'static,
        VR: 'static,
    {
        self.join_impl(table, move |v, t| Some(joiner(v, t)))
    }

    fn join_impl<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        K: Send + Sync,
        VT: Send + Sync + 'static,
        VR: 'static,
    {
        let sub = self.b.borrow_mut().union(self.sub, table.sub);
        let mut out = self.derive(self.key_serde.clone(), None, self.key_changed);
        out.sub = sub;
        let (Some(store), Some(ks), Some(vs)) = (
            table.store.clone(),
            table.key_serde.clone(),
            table.value_serde.clone(),
        ) else {
            self.b
                .borrow_mut()
                .errors
                .push("a join needs a table with a key-value store and serdes".into());
            return out;
        };
        if self.key_changed {
            self.b.borrow_mut().errors.push(
                "a stream-table join needs the stream's key unchanged since its source \
                 (repartition it through a topic first)"
                    .into(),
            );
        }
        let joiner = Arc::new(joiner);
        let down = out.children.clone();
        let f: Factory<K, V> = Arc::new(move |inst: &mut Instantiate| {
            let st = inst.kv_store::<K, VT>(&store, &ks, &vs)?;
            let mut next = down.instantiate(inst)?;
            let (joiner, ks) = (Arc::clone(&joiner), ks.clone());
            Ok(Box::new(NodeFn(move |ctx: &mut Ctx, k: &K, v: &V, ts| {
                let kb = encode(&ks, k, "a join lookup")?;
                let joined = {
                    let s = st.read();
                    joiner(v, s.get_bytes(&kb))
                };
                match joined {
                    Some(r) => next.process(ctx, k, &r, ts),
                    None => Ok(()),
                }
            })) as Box<dyn Node<K, V>>)
        });
        self.children.push(f);
        out
    }
}

/// How a sink picks each record's partition.
#[derive(Clone, Copy)]
enum Route {
    /// By the key serde's partitioning prefix (a windowed key's inner key), else by the
    /// producer's partitioner (the application's, if its producer config sets one).
    Producer,
    /// By the key's hash (the key serde's prefix of it, if any), whatever partitioner
    /// the producer has: a repartition topic must hold every record of a key in one
    /// partition, as the task aggregating the key reads only that one.
    ByKey,
}

/// A processor writing records to `topic`.
fn sink<K, V>(
    topic: Arc<str>,
    ks: Serde<K>,
    vs: Serde<V>,
    route: Route,
) -> NodeFn<impl FnMut(&mut Ctx, &K, &V, i64) -> crate::Result<()> + Send> {
    NodeFn(move |ctx: &mut Ctx, k: &K, v: &V, ts: i64| {
        let key = encode(&ks, k, &topic)?;
        let value = encode(&vs, v, &topic)?;
        let prefix = match route {
            Route::Producer => ks.partition_prefix(&key),
            Route::ByKey => Some(ks.partition_prefix(&key).unwrap_or(key.len())),
        };
        ctx.out.push(OutRecord {
            topic: Arc::clone(&topic),
            partition: None,
            partition_prefix: prefix,
            key: Some(key),
            value: Some(value),
            timestamp: ts,
            headers: ctx.headers.clone(),
        });
        Ok(())
    })
}
