//! [`StreamsConfig`] and its knobs.

use std::fmt;
use std::sync::Arc;

use streamlog::ProducerConfig;

use crate::error::{Result, StreamsError};

/// What a failure may do to results (Kafka's `processing.guarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// Outputs and store changes are sent and fsync'd, then input offsets committed:
    /// after a crash (a power cut too) the records since the last commit are processed
    /// again (counts may then include them twice). Kafka's default.
    #[default]
    AtLeastOnce,
    /// Each commit interval is one transaction of the thread's producer covering the
    /// output records, the changelog records and the input offsets; consumers (also of
    /// repartition topics and changelogs) read committed data only. After any crash
    /// every input record is reflected exactly once in outputs and stores.
    ExactlyOnce,
}

/// What a thread does with a record its serdes cannot decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeserializationPolicy {
    /// Stop the thread with [`StreamsError::Deserialize`] (Kafka's default,
    /// `LogAndFailExceptionHandler`).
    #[default]
    Fail,
    /// Skip the record and count it in [`MetricsSnapshot::skipped`](crate::MetricsSnapshot).
    SkipAndCount,
}

/// Progress of restoring one store partition from its changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreProgress {
    /// The store.
    pub store: String,
    /// The partition (task) being restored.
    pub partition: i32,
    /// Changelog records applied so far.
    pub restored: u64,
    /// The changelog's end offset when the restore started.
    pub end_offset: i64,
    /// The restore is complete.
    pub done: bool,
}

/// Called as stores are restored: once at the start, after each batch and at the end.
/// (Under exactly-once, a task restored while its previous owner's last transaction was
/// undecided reads that transaction's changes before its first record; that short read
/// is counted in the metrics but not reported here.)
pub type RestoreListener = Arc<dyn Fn(&RestoreProgress) + Send + Sync>;

/// An application's settings. Fields are public for struct-literal use
/// (`StreamsConfig { application_id: "app".into(), ..Default::default() }`); setters
/// exist too.
///
/// ```
/// use streamlog_streams::{ProcessingGuarantee, StreamsConfig};
/// let c = StreamsConfig::new("purchases").threads(2).processing_guarantee(ProcessingGuarantee::ExactlyOnce);
/// assert_eq!(c.threads, 2);
/// ```
#[derive(Clone)]
pub struct StreamsConfig {
    /// Names the consumer group, the internal topics (`<application_id>-..`) and the
    /// transactional ids. Required.
    pub application_id: String,
    /// Names this instance's threads (`<client_id>-<n>`) and their transactional ids:
    /// give each instance running the same application in one store its own.
    /// Default = "streams".
    pub client_id: String,
    /// Stream threads. Default = 1; 1 to 64.
    pub threads: usize,
    /// Default = `AtLeastOnce`.
    pub processing_guarantee: ProcessingGuarantee,
    /// How often a thread commits while busy (it also commits whenever it finds no new
    /// input). Default = 100 ms. Under exactly-once it must be below the producer's
    /// `transaction_timeout_ms`; and a poll whose processing outlasts that timeout (a
    /// processor stalled) has its transaction aborted by the store and its records
    /// processed again from the last commit (logged as a warning): one that always
    /// does makes no progress, so keep `max_poll_records` times the slowest record's
    /// processing well below it.
    pub commit_interval_ms: u64,
    /// How long a poll waits for records (and so how long `close` may take). Default =
    /// 50 ms; 1 to 10,000.
    pub poll_ms: u64,
    /// Records per poll. Default = 500.
    pub max_poll_records: usize,
    /// How often a thread deletes the records of repartition topics below its committed
    /// positions (Kafka Streams' `repartition.purge.interval.ms`): those topics keep
    /// everything until then (no time or size retention, which could delete records
    /// not read yet). Default = 30000.
    pub repartition_purge_interval_ms: u64,
    /// A thread that does not poll for this long (a processor stalled) is removed from
    /// the group and its tasks move to other threads; when it comes back, its work
    /// since the last commit is dropped (Kafka Streams' task migration) and it rejoins.
    /// Default = 300000 (5 minutes), as the consumer's.
    pub max_poll_interval_ms: u64,
    /// Undecodable records. Default = `Fail`.
    pub deserialization_policy: DeserializationPolicy,
    /// Told about restore progress. Default = none.
    pub restore_listener: Option<RestoreListener>,
    /// The base of each thread's producer (batching, linger, compression, acks); the
    /// runtime sets its `transactional_id` under exactly-once, and one set here is
    /// refused under at-least-once. Default = Kafka's producer defaults.
    pub producer: ProducerConfig,
}

impl fmt::Debug for StreamsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamsConfig")
            .field("application_id", &self.application_id)
            .field("client_id", &self.client_id)
            .field("threads", &self.threads)
            .field("processing_guarantee", &self.processing_guarantee)
            .field("commit_interval_ms", &self.commit_interval_ms)
            .field("poll_ms", &self.poll_ms)
            .field("max_poll_records", &self.max_poll_records)
            .field(
                "repartition_purge_interval_ms",
                &self.repartition_purge_interval_ms,
            )
            .field("max_poll_interval_ms", &self.max_poll_interval_ms)
            .field("deserialization_policy", &self.deserialization_policy)
            .field("restore_listener", &self.restore_listener.is_some())
            .field("producer", &self.producer)
            .finish()
    }
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            application_id: String::new(),
            client_id: "streams".into(),
            threads: 1,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval_ms: 100,
            poll_ms: 50,
            max_poll_records: 500,
            repartition_purge_interval_ms: 30_000,
            max_poll_interval_ms: 300_000,
            deserialization_policy: DeserializationPolicy::Fail,
            restore_listener: None,
            producer: ProducerConfig::default(),
        }
    }
}

impl StreamsConfig {
    /// The defaults for `application_id`.
    pub fn new(application_id: impl Into<String>) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            ..Default::default()
        }
    }

    /// Sets `client_id`.
    #[must_use]
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Sets `threads`.
    #[must_use]
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Sets `processing_guarantee`.
    #[must_use]
    pub fn processing_guarantee(mut self, g: ProcessingGuarantee) -> Self {
        self.processing_guarantee = g;
        self
    }

    /// Sets `commit_interval_ms`.
    #[must_use]
    pub fn commit_interval_ms(mut self, ms: u64) -> Self {
        self.commit_interval_ms = ms;
        self
    }

    /// Sets `poll_ms`.
    #[must_use]
    pub fn poll_ms(mut self, ms: u64) -> Self {
        self.poll_ms = ms;
        self
    }

    /// Sets `max_poll_records`.
    #[must_use]
    pub fn max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n;
        self
    }

    /// Sets `repartition_purge_interval_ms`.
    #[must_use]
    pub fn repartition_purge_interval_ms(mut self, ms: u64) -> Self {
        self.repartition_purge_interval_ms = ms;
        self
    }

    /// Sets `max_poll_interval_ms`.
    #[must_use]
    pub fn max_poll_interval_ms(mut self, ms: u64) -> Self {
        self.max_poll_interval_ms = ms;
        self
    }

    /// Sets `deserialization_policy`.
    #[must_use]
    pub fn deserialization_policy(mut self, p: DeserializationPolicy) -> Self {
        self.deserialization_policy = p;
        self
    }

    /// Sets `producer`.
    #[must_use]
    pub fn producer(mut self, p: ProducerConfig) -> Self {
        self.producer = p;
        self
    }

    /// Sets `restore_listener`.
    #[must_use]
    pub fn restore_listener(
        mut self,
        l: impl Fn(&RestoreProgress) + Send + Sync + 'static,
    ) -> Self {
        self.restore_listener = Some(Arc::new(l));
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |name, reason: String| Err(StreamsError::InvalidConfig { name, reason });
        if let Err(e) = streamlog::validate_topic_name(&format!("{}-x", self.application_id)) {
            return bad("application_id", e.to_string());
        }
        if self.application_id.is_empty() {
            return bad("application_id", "must not be empty".into());
        }
        if self.client_id.is_empty() {
            return bad("client_id", "must not be empty".into());
        }
        // It names the threads, whose names cannot hold a NUL (spawning one panics).
        if self.client_id.contains('\0') {
            return bad("client_id", "must not contain a NUL character".into());
        }
        if !(1..=64).contains(&self.threads) {
            return bad(
                "threads",
                format!("must be 1 to 64, found {}", self.threads),
            );
        }
        if !(1..=10_000).contains(&self.poll_ms) {
            return bad(
                "poll_ms",
                format!("must be 1 to 10000, found {}", self.poll_ms),
            );
        }
        if self.max_poll_records == 0 {
            return bad("max_poll_records", "must be at least 1".into());
        }
        if self.max_poll_interval_ms == 0 {
            return bad("max_poll_interval_ms", "must be at least 1".into());
        }
        // Under at-least-once each thread's producer is the caller's as given: with a
        // transactional id, every thread's would share it and refuse each send outside
        // a transaction (which at-least-once never begins), stopping every thread at its
        // first output. Kafka Streams does not let it be set either.
        if self.processing_guarantee == ProcessingGuarantee::AtLeastOnce
            && let Some(id) = self.producer.get_transactional_id()
        {
            return bad(
                "producer",
                format!(
                    "must not set a transactional_id ({id:?}) under at-least-once: the \
                     runtime makes each thread's producer transactional under exactly-once \
                     (processing_guarantee)"
                ),
            );
        }
        // As Kafka Streams checks (it allows an equal one; so close, a slow commit would
        // lose the race): a transaction open longer than the producer's timeout is
        // aborted by the store and the thread fenced, so under exactly-once a busy
        // thread's commits must come sooner.
        let txn_timeout = self.producer.get_transaction_timeout_ms();
        if self.processing_guarantee == ProcessingGuarantee::ExactlyOnce
            && self.commit_interval_ms >= txn_timeout
        {
            return bad(
                "commit_interval_ms",
                format!(
                    "under exactly-once must be below the producer's transaction_timeout_ms \
                     ({txn_timeout}), found {}: a transaction left open that long is aborted \
                     and the thread fenced",
                    self.commit_interval_ms
                ),
            );
        }
        Ok(())
    }
}
