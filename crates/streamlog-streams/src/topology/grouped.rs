//! [`KGroupedStream`] and [`TimeWindowedKStream`]: aggregations into tables, kept in
//! key-value or window stores with changelogs.

use std::any::TypeId;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::builder::Inner;
use super::kstream::encode;
use super::ktable::KTable;
use super::node::{Children, Factory, Instantiate, Node, NodeFn};
use super::options::Materialized;
use crate::context::Ctx;
use crate::metrics::Metrics;
use crate::serdes::{self, Serde};
use crate::store::{KvStore, WindowStore};
use crate::windows::{TimeWindows, Windowed};

type First<K, V, VA> = Arc<dyn Fn(&K, &V) -> VA + Send + Sync>;
type Combine<K, V, VA> = Arc<dyn Fn(&K, &V, &VA) -> VA + Send + Sync>;

/// A stream grouped by key, ready to aggregate (Kafka Streams' `KGroupedStream`).
///
/// ```
/// use std::time::Duration;
/// use streamlog_streams::{serdes, Consumed, Materialized, StreamsBuilder, TimeWindows};
/// let builder = StreamsBuilder::new();
/// let amounts = builder
///     .stream("payments", Consumed::with(serdes::string(), serdes::i64()))
///     .group_by_key();
/// amounts.reduce(|total, amount| total + amount, Materialized::named("totals"));
/// amounts
///     .windowed_by(
///         TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10))
///             .advance_by(Duration::from_secs(30)),
///     )
///     .aggregate(
///         || (0i64, 0i64),
///         |_, amount, (n, sum)| (n + 1, sum + amount),
///         Materialized::named("minute-stats").with_value_serde(streamlog_streams::Serde::new(
///             |(n, s): &(i64, i64)| Ok(format!("{n},{s}").into_bytes()),
///             |b| {
///                 let t = std::str::from_utf8(b).map_err(|e| e.to_string())?;
///                 let (n, s) = t.split_once(',').ok_or("no comma")?;
///                 Ok((n.parse().map_err(|_| "n")?, s.parse().map_err(|_| "s")?))
///             },
///         )),
///     );
/// builder.build()?;
/// # Ok::<(), streamlog_streams::StreamsError>(())
/// ```
pub struct KGroupedStream<K, V> {
    pub(crate) b: Rc<RefCell<Inner>>,
    pub(crate) children: Children<K, V>,
    pub(crate) sub: usize,
    pub(crate) key_serde: Option<Serde<K>>,
    pub(crate) value_serde: Option<Serde<V>>,
}

/// A grouped stream in time windows (Kafka Streams' `TimeWindowedKStream`). Its
/// aggregations keep a window store with the name given by their [`Materialized`].
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
}

/// The store's name (given or generated), registered with what it holds.
fn store_name<V>(
    b: &Rc<RefCell<Inner>>,
    sub: usize,
    m: &Materialized<V>,
    contents: TypeId,
) -> String {
    let mut b = b.borrow_mut();
    let name = m
        .name
        .clone()
        .unwrap_or_else(|| b.next_name("KSTREAM-AGGREGATE-STATE-STORE"));
    if let Err(e) = streamlog::validate_topic_name(&format!("x-{name}-changelog")) {
        b.errors.push(format!(
            "store `{name}`: its changelog topic name is invalid: {e}"
        ));
    }
    b.add_store(&name, sub, contents);
    name
}

impl<K: Send + Sync + 'static, V: 'static> KGroupedStream<K, V> {
    fn serdes<VA>(&self, what: &str, vs: Option<Serde<VA>>) -> Option<(Serde<K>, Serde<VA>)> {
        match (self.key_serde.clone(), vs) {
            (Some(k), Some(v)) => Some((k, v)),
            _ => {
                self.b.borrow_mut().errors.push(format!(
                    "`{what}` needs a key serde (from the source or Grouped::with) and a value \
                     serde (Materialized::with_value_serde)"
                ));
                None
            }
        }
    }

    fn aggregate_impl<VA: Clone + Send + Sync + 'static>(
        &self,
        what: &str,
        m: Materialized<VA>,
        first: First<K, V, VA>,
        combine: Combine<K, V, VA>,
    ) -> KTable<K, VA> {
        let name = store_name(&self.b, self.sub, &m, TypeId::of::<KvStore<K, VA>>());
        let serdes = self.serdes(what, m.value_serde);
        let table = KTable {
            b: Rc::clone(&self.b),
            children: Children::new(),
            sub: self.sub,
            key_serde: serdes.as_ref().map(|s| s.0.clone()),
            value_serde: serdes.as_ref().map(|s| s.1.clone()),
            store: Some(name.clone()),
        };
        let Some((ks, vs)) = serdes else { return table };
        let down = table.children.clone();
        let f: Factory<K, V> = Arc::new(move |inst: &mut Instantiate| {
            let st = inst.kv_store::<K, VA>(&name, &ks, &vs)?;
            let changelog = inst.changelog(&name);
            let mut next = down.instantiate(inst)?;
            let (ks, first, combine) = (ks.clone(), Arc::clone(&first), Arc::clone(&combine));
            Ok(
                Box::new(NodeFn(move |ctx: &mut Ctx, k: &K, v: &V, ts: i64| {
                    let kb = encode(&ks, k, &changelog)?;
                    // The result's time is the latest of the records it was made from
                    // (Kafka Streams' timestamped stores): never earlier than an earlier
                    // result's for the key.
                    let (new, new_ts) = {
                        let mut s = st.write();
                        let (new, new_ts) = match s.get_timestamped(&kb) {
                            Some((cur, cur_ts)) => (combine(k, v, cur), ts.max(cur_ts)),
                            None => (first(k, v), ts),
                        };
                        s.put_bytes(&kb, new.clone(), new_ts);
                        (new, new_ts)
                    };
                    next.process(ctx, k, &new, new_ts)
                })) as Box<dyn Node<K, V>>,
            )
        });
        self.children.push(f);
        table
    }

    /// The number of records per key.
    pub fn count(&self, materialized: Materialized<i64>) -> KTable<K, i64> {
        let m = materialized.with_value_serde(serdes::i64());
        self.aggregate_impl("count", m, Arc::new(|_, _| 1), Arc::new(|_, _, c| c + 1))
    }

    /// Combines each key's values with `reducer(aggregate, value)`; the first value is
    /// the initial aggregate. Values are stored with the stream's value serde unless
    /// `materialized` has one.
    pub fn reduce(
        &self,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized<V>,
    ) -> KTable<K, V>
    where
        V: Clone + Send + Sync,
    {
        let mut m = materialized;
        if m.value_serde.is_none() {
            m.value_serde = self.value_serde.clone();
        }
        let r = Arc::new(reducer);
        self.aggregate_impl(
            "reduce",
            m,
            Arc::new(|_, v: &V| v.clone()),
            Arc::new(move |_, v, agg| r(agg, v)),
        )
    }

    /// Folds each key's values into an aggregate starting from `initializer()`, with
    /// `aggregator(key, value, aggregate)`; `materialized` needs a value serde.
    pub fn aggregate<VA: Clone + Send + Sync + 'static>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<VA>,
    ) -> KTable<K, VA> {
        let agg = Arc::new(aggregator);
        let agg2 = Arc::clone(&agg);
        self.aggregate_impl(
            "aggregate",
            materialized,
            Arc::new(move |k, v| agg(k, v, &initializer())),
            Arc::new(move |k, v, a| agg2(k, v, a)),
        )
    }

    /// Aggregations of this grouping per time window.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        if let Err(e) = windows.validate() {
            self.b.borrow_mut().errors.push(e.to_string());
        }
        TimeWindowedKStream {
            grouped: KGroupedStream {
                b: Rc::clone(&self.b),
                children: self.children.clone(),
                sub: self.sub,
                key_serde: self.key_serde.clone(),
                value_serde: self.value_serde.clone(),
            },
            windows,
        }
    }
}

impl<K: Clone + Send + Sync + 'static, V: 'static> TimeWindowedKStream<K, V> {
    fn aggregate_impl<VA: Clone + Send + Sync + 'static>(
        &self,
        what: &str,
        m: Materialized<VA>,
        first: First<K, V, VA>,
        combine: Combine<K, V, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let g = &self.grouped;
        let name = store_name(&g.b, g.sub, &m, TypeId::of::<WindowStore<K, VA>>());
        let windows = self.windows;
        let floor = windows.size_ms().saturating_add(windows.grace_ms());
        let retention_ms = match m.retention {
            // Kafka's default (since 3.0): kept until closed, nothing longer.
            None => floor,
            Some(r) => {
                let r = i64::try_from(r.as_millis()).unwrap_or(i64::MAX);
                if r < floor {
                    g.b.borrow_mut().errors.push(format!(
                        "store `{name}`: a retention of {r} ms is shorter than the window \
                         size plus grace ({floor} ms)"
                    ));
                }
                r
            }
        };
        let serdes = g.serdes(what, m.value_serde);
        let table = KTable {
            b: Rc::clone(&g.b),
            children: Children::new(),
            sub: g.sub,
            key_serde: serdes
                .as_ref()
                .map(|s| serdes::windowed(s.0.clone(), windows.size_ms())),
            value_serde: serdes.as_ref().map(|s| s.1.clone()),
            store: None,
        };
        let Some((ks, vs)) = serdes else { return table };
        let down = table.children.clone();
        let f: Factory<K, V> = Arc::new(move |inst: &mut Instantiate| {
            let st =
                inst.window_store::<K, VA>(&name, &ks, &vs, windows.size_ms(), retention_ms)?;
            let changelog = inst.changelog(&name);
            let mut next = down.instantiate(inst)?;
            let (ks, first, combine) = (ks.clone(), Arc::clone(&first), Arc::clone(&combine));
            let mut updates = Vec::new();
            Ok(Box::new(NodeFn(move |ctx: &mut Ctx, k: &K, v: &V, ts| {
                if ts < 0 {
                    ctx.skip();
                    return Ok(());
                }
                let kb = encode(&ks, k, &changelog)?;
                {
                    let mut s = st.write();
                    let now = s.observe(ts);
                    for w in windows.windows_for(ts) {
                        if windows.is_closed(&w, now) {
                            Metrics::add(&ctx.metrics.dropped_late, 1);
                            continue;
                        }
                        let (new, new_ts) = match s.get_timestamped(&kb, w.start) {
                            Some((cur, cur_ts)) => (combine(k, v, cur), ts.max(cur_ts)),
                            None => (first(k, v), ts),
                        };
                        s.put_bytes(&kb, w.start, new.clone(), new_ts);
                        updates.push((w, new, new_ts));
                    }
                    s.expire();
                }
                for (window, new, new_ts) in updates.drain(..) {
                    let wk = Windowed {
                        key: k.clone(),
                        window,
                    };
                    next.process(ctx, &wk, &new, new_ts)?;
                }
                Ok(())
            })) as Box<dyn Node<K, V>>)
        });
        g.children.push(f);
        table
    }

    /// The number of records per key and window. The window store is named by
    /// `materialized` (queryable with [`Streams::window_store`](crate::Streams::window_store)).
    pub fn count(&self, materialized: Materialized<i64>) -> KTable<Windowed<K>, i64> {
        let m = materialized.with_value_serde(serdes::i64());
        self.aggregate_impl("count", m, Arc::new(|_, _| 1), Arc::new(|_, _, c| c + 1))
    }

    /// Combines each key's values per window with `reducer(aggregate, value)`.
    pub fn reduce(
        &self,
        reducer: impl Fn(&V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized<V>,
    ) -> KTable<Windowed<K>, V>
    where
        V: Clone + Send + Sync,
    {
        let mut m = materialized;
        if m.value_serde.is_none() {
            m.value_serde = self.grouped.value_serde.clone();
        }
        let r = Arc::new(reducer);
        self.aggregate_impl(
            "reduce",
            m,
            Arc::new(|_, v: &V| v.clone()),
            Arc::new(move |_, v, agg| r(agg, v)),
        )
    }

    /// Folds each key's values per window, starting from `initializer()`.
    pub fn aggregate<VA: Clone + Send + Sync + 'static>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, &VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<VA>,
    ) -> KTable<Windowed<K>, VA> {
        let agg = Arc::new(aggregator);
        let agg2 = Arc::clone(&agg);
        self.aggregate_impl(
            "aggregate",
            materialized,
            Arc::new(move |k, v| agg(k, v, &initializer())),
            Arc::new(move |k, v, a| agg2(k, v, a)),
        )
    }
}
