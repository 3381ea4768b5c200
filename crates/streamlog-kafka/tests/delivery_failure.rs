//! A record Kafka refuses for good stops the store -> Kafka mirror with an error, and
//! the progress it commits never passes that record.

mod common;

use common::{Kafka, fill_store};
use streamlog::{Compression, Store, StoreConfig, TopicConfig};
use streamlog_kafka::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use streamlog_kafka::{Error, Mirror};

/// The delivery report of the refused record woke the loop, which committed (its
/// interval due) the consumer's position, past the refused record, before it looked
/// at the failure: `describe_group` showed no lag, and a restart with nothing of the
/// partition in Kafka resumed from that commit, skipping the record.
#[test]
fn a_refused_record_is_never_committed_as_copied() {
    let kafka = Kafka::start();
    let Some(mock) = &kafka.mock else {
        println!("skipped: refusing a record needs the mock cluster");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().background_maintenance(false),
    )
    .unwrap();
    store
        .create_topic("doomed", TopicConfig::default())
        .unwrap();
    fill_store(&store, "doomed", 1, 0..1, Compression::None);
    kafka.prepare_topic("doomed", 1);
    let mut config = kafka.sink(&["doomed"]);
    config.commit_interval_ms = 0;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let err = Mirror::to_kafka(&store, config)
        .unwrap()
        .join()
        .unwrap_err();
    assert!(matches!(err, Error::Delivery { .. }), "{err}");
    let group = store.describe_group("streamlog-kafka-sink").unwrap();
    for o in &group.offsets {
        assert_eq!(o.offset, 0, "{o:?}: committed past the refused record");
    }
}
