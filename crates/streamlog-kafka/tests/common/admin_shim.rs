//! A Kafka-protocol proxy in front of librdkafka's mock cluster that adds the one
//! request the mock lacks: CreateTopics (the admin API the sink uses to create a missing
//! topic).
//!
//! The proxy forwards every request to the mock's single broker, except:
//! - ApiVersions responses gain CreateTopics (versions 2 to 4), or librdkafka's admin
//!   client would refuse to send it;
//! - Metadata responses name the proxy as the broker, so every connection (the admin
//!   client's to the controller too) goes through it;
//! - CreateTopics is answered here: each topic is created through the mock's own API and
//!   recorded, or refused with the error code set by [`AdminShim::refuse_with`].
//!
//! The mock cluster is not `Send`; it lives on its own thread and the connection threads
//! ask it to create topics over a channel.
//!
//! A CreateTopics answer is written as soon as it is ready, so it can overtake the
//! responses to earlier requests on its connection: librdkafka matches responses by
//! correlation id, which is all these tests need (Kafka's brokers answer in order).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{
    ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse, MetadataResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use parking_lot::Mutex;
use streamlog_kafka::rdkafka::mocking::MockCluster;
use streamlog_kafka::rdkafka::producer::DefaultProducerContext;

const METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;
const CREATE_TOPICS: i16 = 19;

/// A topic as the CreateTopics request asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
}

enum Command {
    Create {
        name: String,
        partitions: i32,
        reply: Sender<Result<(), String>>,
    },
    Stop,
}

#[derive(Default)]
struct Shared {
    created: Mutex<Vec<Created>>,
    refuse_with: Mutex<Option<i16>>,
    stopping: AtomicBool,
}

/// The proxy and the mock cluster behind it. Dropping it stops both.
pub struct AdminShim {
    /// What Kafka clients use as `bootstrap.servers`.
    pub bootstrap: String,
    shared: Arc<Shared>,
    commands: Sender<Command>,
    listen: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl AdminShim {
    pub fn start() -> AdminShim {
        let (commands, inbox) = channel::<Command>();
        let (ready, mock_address) = channel::<String>();
        let mock_thread = std::thread::spawn(move || {
            let mock: MockCluster<'static, DefaultProducerContext> =
                MockCluster::new(1).expect("mock cluster");
            ready.send(mock.bootstrap_servers()).unwrap();
            for command in inbox {
                match command {
                    Command::Create {
                        name,
                        partitions,
                        reply,
                    } => {
                        let r = mock
                            .create_topic(&name, partitions, 1)
                            .map_err(|e| e.to_string());
                        let _ = reply.send(r);
                    }
                    Command::Stop => break,
                }
            }
        });
        let upstream = mock_address.recv().unwrap();
        assert!(!upstream.contains(','), "one broker: {upstream}");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accept_thread = {
            let shared = shared.clone();
            let commands = commands.clone();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if shared.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        continue;
                    };
                    let proxy = Proxy {
                        shared: shared.clone(),
                        commands: commands.clone(),
                        port: i32::from(listen.port()),
                        pending: Arc::default(),
                        to_client: Arc::new(Mutex::new(client.try_clone().unwrap())),
                    };
                    proxy.run(client, server);
                }
            })
        };
        AdminShim {
            bootstrap: listen.to_string(),
            shared,
            commands,
            listen,
            threads: vec![mock_thread, accept_thread],
        }
    }

    /// The topics CreateTopics requests asked for, in order.
    pub fn created(&self) -> Vec<Created> {
        self.shared.created.lock().clone()
    }

    /// From now on, answers CreateTopics with this Kafka error code for every topic.
    pub fn refuse_with(&self, error_code: i16) {
        *self.shared.refuse_with.lock() = Some(error_code);
    }
}

impl Drop for AdminShim {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.commands.send(Command::Stop);
        // Wakes the accept loop so that it sees `stopping`.
        let _ = TcpStream::connect(self.listen);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One client connection and its connection to the mock broker.
#[derive(Clone)]
struct Proxy {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    port: i32,
    /// Correlation id -> (api key, version) of requests whose responses are rewritten.
    pending: Arc<Mutex<HashMap<i32, (i16, i16)>>>,
    /// Whole frames only: answers made here and forwarded ones share the socket.
    to_client: Arc<Mutex<TcpStream>>,
}

impl Proxy {
    fn run(self, client: TcpStream, server: TcpStream) {
        let requests = self.clone();
        let to_server = server.try_clone().unwrap();
        // When either side ends, both sockets are shut so that the other thread ends too.
        let both = Arc::new((client.try_clone().unwrap(), server.try_clone().unwrap()));
        let shut = {
            let both = both.clone();
            move || shut_both(&both)
        };
        let shut_too = move || shut_both(&both);
        std::thread::spawn(move || {
            let _ = requests.requests(client, to_server);
            shut();
        });
        std::thread::spawn(move || {
            let _ = self.responses(server);
            shut_too();
        });
    }

    fn requests(&self, mut client: TcpStream, mut server: TcpStream) -> io::Result<()> {
        loop {
            let frame = read_frame(&mut client)?;
            let mut peek = frame.clone();
            let (key, version, correlation) = (peek.get_i16(), peek.get_i16(), peek.get_i32());
            match key {
                CREATE_TOPICS => {
                    let reply = self.create_topics(frame, version)?;
                    self.to_client.lock().write_all(&reply)?;
                    continue;
                }
                METADATA | API_VERSIONS => {
                    self.pending.lock().insert(correlation, (key, version));
                }
                _ => {}
            }
            server.write_all(&sized(&frame))?;
        }
    }

    fn responses(&self, mut server: TcpStream) -> io::Result<()> {
        loop {
            let frame = read_frame(&mut server)?;
            let correlation = frame.clone().get_i32();
            let rewritten = match self.pending.lock().remove(&correlation) {
                Some((API_VERSIONS, v)) => self.api_versions(frame.clone(), v),
                Some((METADATA, v)) => self.metadata(frame.clone(), v),
                _ => None,
            };
            let out = rewritten.unwrap_or(frame);
            self.to_client.lock().write_all(&sized(&out))?;
        }
    }

    /// Adds CreateTopics to the versions the broker offers. `None` (forward unchanged)
    /// if the mock answered with an error body this version cannot decode.
    fn api_versions(&self, mut frame: Bytes, version: i16) -> Option<Bytes> {
        let header =
            ResponseHeader::decode(&mut frame, ApiVersionsResponse::header_version(version))
                .ok()?;
        let mut body = ApiVersionsResponse::decode(&mut frame, version).ok()?;
        if body.error_code != 0 {
            return None;
        }
        body.api_keys.retain(|k| k.api_key != CREATE_TOPICS);
        let mut create = ApiVersion::default();
        create.api_key = CREATE_TOPICS;
        create.min_version = 2;
        create.max_version = 4;
        body.api_keys.push(create);
        encode_response(
            &header,
            &body,
            ApiVersionsResponse::header_version(version),
            version,
        )
    }

    /// Names the proxy as the (only) broker, and that broker as the controller: the
    /// mock answers controller id 0, a broker it does not have, and the admin client
    /// waits for a controller before it sends CreateTopics. A response it cannot decode
    /// is forwarded as it is, loudly: clients would then bypass the proxy.
    fn metadata(&self, mut frame: Bytes, version: i16) -> Option<Bytes> {
        let hv = MetadataResponse::header_version(version);
        let decoded = ResponseHeader::decode(&mut frame, hv)
            .and_then(|h| Ok((h, MetadataResponse::decode(&mut frame, version)?)));
        let (header, mut body) = match decoded {
            Ok(d) => d,
            Err(e) => {
                eprintln!("admin_shim: cannot decode a Metadata v{version} response: {e}");
                return None;
            }
        };
        for b in &mut body.brokers {
            b.host = StrBytes::from_static_str("127.0.0.1");
            b.port = self.port;
        }
        if let Some(b) = body.brokers.first() {
            body.controller_id = b.node_id;
        }
        encode_response(&header, &body, hv, version)
    }

    /// Creates each topic through the mock (or refuses it) and builds the response frame.
    fn create_topics(&self, mut frame: Bytes, version: i16) -> io::Result<Bytes> {
        let header =
            RequestHeader::decode(&mut frame, CreateTopicsRequest::header_version(version))
                .map_err(invalid)?;
        let request = CreateTopicsRequest::decode(&mut frame, version).map_err(invalid)?;
        let mut response = CreateTopicsResponse::default();
        for topic in &request.topics {
            let name = topic.name.0.to_string();
            let refuse = *self.shared.refuse_with.lock();
            let error_code = match refuse {
                Some(code) => code,
                None => {
                    let (reply, answer) = channel();
                    self.commands
                        .send(Command::Create {
                            name: name.clone(),
                            partitions: topic.num_partitions,
                            reply,
                        })
                        .map_err(|_| invalid("the mock cluster stopped"))?;
                    match answer.recv() {
                        Ok(Ok(())) => 0,
                        // UNKNOWN_SERVER_ERROR
                        _ => -1,
                    }
                }
            };
            if error_code == 0 {
                self.shared.created.lock().push(Created {
                    name,
                    partitions: topic.num_partitions,
                    replication_factor: topic.replication_factor,
                });
            }
            let mut result = CreatableTopicResult::default();
            result.name = topic.name.clone();
            result.error_code = error_code;
            result.num_partitions = topic.num_partitions;
            result.replication_factor = topic.replication_factor;
            response.topics.push(result);
        }
        let reply_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
        encode_response(
            &reply_header,
            &response,
            CreateTopicsResponse::header_version(version),
            version,
        )
        .map(|body| sized(&body))
        .ok_or_else(|| invalid("encoding a CreateTopics response"))
    }
}

fn shut_both((a, b): &(TcpStream, TcpStream)) {
    let _ = a.shutdown(std::net::Shutdown::Both);
    let _ = b.shutdown(std::net::Shutdown::Both);
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn encode_response<T: Encodable>(
    header: &ResponseHeader,
    body: &T,
    header_version: i16,
    version: i16,
) -> Option<Bytes> {
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version).ok()?;
    body.encode(&mut out, version).ok()?;
    Some(out.freeze())
}

fn read_frame(from: &mut TcpStream) -> io::Result<Bytes> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    let mut frame = vec![0u8; len];
    from.read_exact(&mut frame)?;
    Ok(Bytes::from(frame))
}

/// A frame with its 4-byte length in front, as Kafka sends it.
fn sized(frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(frame.len() + 4);
    out.put_i32(i32::try_from(frame.len()).expect("frame under 2 GiB"));
    out.put_slice(frame);
    out.freeze()
}
