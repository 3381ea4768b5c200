//! Per-user click, view and purchase metrics as a KTable (JSON values through serde),
//! queried from the running application as events arrive in batches.
//!
//! `cargo run -p streamlog-streams --features json --example clickstream_metrics`

use std::error::Error;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streamlog::{Record, Store, TopicConfig};
use streamlog_streams::{
    Consumed, Materialized, Produced, Streams, StreamsBuilder, StreamsConfig, serdes,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    action: String,
    page: String,
    #[serde(default)]
    amount_cents: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Metrics {
    clicks: u64,
    views: u64,
    purchases: u64,
    revenue_cents: u64,
}

impl Metrics {
    fn add(&self, e: &Event) -> Metrics {
        let mut m = self.clone();
        match e.action.as_str() {
            "click" => m.clicks += 1,
            "view" => m.views += 1,
            "purchase" => {
                m.purchases += 1;
                m.revenue_cents += e.amount_cents;
            }
            _ => {}
        }
        m
    }
}

const PARTITIONS: i32 = 2;
const USERS: u64 = 4;

fn event(i: u64) -> (String, Event) {
    let action = ["click", "view", "click", "purchase"][((i / USERS) % 4) as usize];
    (
        format!("user-{}", i % USERS),
        Event {
            action: action.into(),
            page: format!("/p/{}", i % 9),
            amount_cents: if action == "purchase" { 100 + i } else { 0 },
        },
    )
}

fn run(dir: &std::path::Path, batches: u64, per_batch: u64) -> Result<Metrics, Box<dyn Error>> {
    let store = Store::open(dir)?;
    let config = TopicConfig::default().partitions(PARTITIONS);
    store.create_topic("clickstream", config.clone())?;
    store.create_topic("user-metrics", config)?;

    let builder = StreamsBuilder::new();
    let metrics = builder
        .stream(
            "clickstream",
            Consumed::with(serdes::string(), serdes::json::<Event>()),
        )
        .filter(|_, e| !e.page.is_empty())
        .group_by_key()
        .aggregate(
            Metrics::default,
            |_user, e, m| m.add(e),
            Materialized::named("user-metrics-store").with_value_serde(serdes::json()),
        );
    metrics.to_stream().to(
        "user-metrics",
        Produced::with(serdes::string(), serdes::json()),
    );
    let streams = Streams::new(
        builder.build()?,
        StreamsConfig::new("clickstream-app"),
        &store,
    )?;
    streams.start()?;

    let topic = store.topic("clickstream")?;
    let json = serdes::json::<Event>();
    let mut expected = Metrics::default();
    for b in 0..batches {
        for i in b * per_batch..(b + 1) * per_batch {
            let (user, e) = event(i);
            if user == "user-1" {
                expected = expected.add(&e);
            }
            let p = (i % USERS) as i32 % PARTITIONS;
            let value = json.serialize(&e)?;
            topic
                .partition(p)?
                .append(&[Record::new(i as i64, Some(user), Some(value))])?;
        }
        // Interactive query of the running application's local store.
        streams.wait_until_caught_up(Duration::from_secs(120))?;
        let store_view = streams.key_value_store::<String, Metrics>("user-metrics-store")?;
        let m = store_view.get(&"user-1".to_string())?.unwrap_or_default();
        println!("after batch {b}: user-1 {m:?}");
    }
    let view = streams.key_value_store::<String, Metrics>("user-metrics-store")?;
    for (user, m) in view.all()? {
        println!("{user}: {m:?}");
    }
    let user1 = view.get(&"user-1".to_string())?.unwrap_or_default();
    streams.close()?;
    store.close()?;
    if user1 != expected {
        return Err(format!("user-1 has {user1:?}, expected {expected:?}").into());
    }
    Ok(user1)
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    run(dir.path(), 3, 40)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_are_queryable_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let m = super::run(dir.path(), 3, 20).unwrap();
        assert_eq!(m.clicks + m.views + m.purchases, 15);
    }
}
