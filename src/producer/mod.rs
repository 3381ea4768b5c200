//! The producer side. So far: Kafka's partitioners. The `Producer` itself (accumulator,
//! linger, acks, delivery futures) is still to come.

mod partitioner;

pub use partitioner::{DefaultPartitioner, Partitioner, murmur2, partition_for_key};
