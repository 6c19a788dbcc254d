//! A managed-Redis profile for the tests: [`Upstash`], a loopback proxy in front of a private
//! `redis-server` that behaves, as far as a client can tell, like Upstash:
//!
//! - it refuses every command missing from Upstash's documented list ([`AVAILABLE`]) with
//!   `ERR Command is not available: ...`, and `SELECT` of any database but 0;
//! - it enforces Upstash's limits ([`Limits`]): pending entries per consumer, request size, the
//!   size of keys, hash fields and set members; and it closes idle connections;
//! - it counts billed commands as Upstash bills them, script-internal calls included ([`Bill`]).
//!
//! Requests are parsed whole (RESP arrays of bulk strings, and inline commands) and forwarded
//! byte for byte; replies stream back untouched. A refused request is never forwarded: the proxy
//! answers the error itself, in the request's place among the replies (it finds that place by
//! delimiting the RESP2 or RESP3 frames that stream past). After `SUBSCRIBE`, `MONITOR` and the
//! like, replies no longer pair with requests, and a refusal is answered at once.
//!
//! What the proxy cannot see, it does not enforce. Inside a script, the keys, fields and members
//! a call uses are not checked (only the `KEYS` of `EVAL`, `EVALSHA` and `FCALL` are, not a key
//! passed in `ARGV`), nor is a refused command (`CLIENT UNBLOCK` inside a script runs). Nor are
//! records over 100 MB, the commands-a-second rate, the monthly quota or the connection limit.
//! A request refused inside `MULTI` is not forwarded, but unlike Upstash or Redis it does not
//! make `EXEC` fail.
//!
//! Beside it in this package, the chaos binary's `proxy.rs` and the fault model's harness cut
//! connections; this one refuses, limits and counts, and cuts only idle connections.

mod billing;
mod resp;
mod rules;

pub use billing::Bill;
pub use resp::{encode, read_reply};
pub use rules::{AVAILABLE, FREE, Limits};

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::redis_server::{RedisServer, Reply};
use billing::Tally;
use resp::{Frame, Frames, Parsed, Request};
use rules::Commands;

/// How long the proxy waits for the server to answer one of its own queries.
const SIDE_PATIENCE: Duration = Duration::from_secs(10);

/// A loopback proxy that behaves like Upstash, in front of a private `redis-server` (see the
/// [module](self)). It stops, closing every connection, when dropped.
///
/// ```ignore
/// let server = RedisServer::start();
/// let upstash = Upstash::start(&server).await;
/// let docket = Docket::connect(upstash.url()).name(unique_name("managed")).await?;
/// // ... run tasks ...
/// println!("{}", upstash.bill().await);
/// ```
#[derive(Debug)]
pub struct Upstash {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// What every connection of one proxy shares.
#[derive(Debug)]
struct Shared {
    upstream: u16,
    limits: Limits,
    commands: Commands,
    tally: Mutex<Tally>,
    /// The proxy's own connection to the server, for pending counts and `INFO`.
    side: tokio::sync::Mutex<Option<Side>>,
    idle_closed: AtomicU64,
}

impl Upstash {
    /// A proxy with Upstash's limits ([`Limits::upstash`]) in front of `server`.
    pub async fn start(server: &RedisServer) -> Upstash {
        Upstash::with_limits(server, Limits::upstash()).await
    }

    /// A proxy with `limits` in front of `server`; billing starts at zero.
    pub async fn with_limits(server: &RedisServer, limits: Limits) -> Upstash {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the proxy");
        let port = listener.local_addr().expect("the proxy's port").port();
        let mut side = Side::connect(server.port())
            .await
            .expect("connect to redis-server");
        // Where each command's keys are, as the server itself finds them.
        let table = side
            .ask(&[b"COMMAND"])
            .await
            .expect("read the server's command table");
        let shared = Arc::new(Shared {
            upstream: server.port(),
            limits,
            commands: Commands::from_reply(&table),
            tally: Mutex::default(),
            side: tokio::sync::Mutex::new(Some(side)),
            idle_closed: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept(listener, shared.clone()));
        let upstash = Upstash {
            port,
            shared,
            accept,
        };
        upstash.reset_billing().await;
        upstash
    }

    /// The proxy's `redis://` URL, for a docket or any client.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Connections closed so far for being idle longer than [`Limits::idle`].
    pub fn idle_closed(&self) -> u64 {
        self.shared.idle_closed.load(Ordering::Relaxed)
    }

    /// Billed commands since the start or the last [`reset_billing`](Upstash::reset_billing),
    /// by command; exact when no request is under way (see [`Bill`]).
    pub async fn bill(&self) -> Bill {
        let now = self.shared.command_stats().await;
        let mut tally = self.shared.tally();
        let bill = tally.bill(&now);
        *tally.side.entry("info".to_owned()).or_default() += 1;
        bill
    }

    /// The total of [`bill`](Upstash::bill).
    pub async fn billed(&self) -> u64 {
        self.bill().await.total()
    }

    /// Start billing again from zero.
    pub async fn reset_billing(&self) {
        let now = self.shared.command_stats().await;
        self.shared.tally().reset(now);
    }

    /// Send `args` straight to the server, as a test harness would: not refused, not limited,
    /// not billed. Not for blocking commands: it shares the proxy's own connection.
    pub async fn command(&self, args: &[&str]) -> Result<Reply, String> {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        match self.shared.query(&args, true).await {
            Ok(Reply::Error(error)) => Err(error),
            Ok(reply) => Ok(reply),
            Err(error) => Err(error.to_string()),
        }
    }
}

impl Drop for Upstash {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Shared {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A client's request has reached the server, so the server has counted it.
    fn count_answer(&self, name: String) {
        *self.tally().answered.entry(name).or_default() += 1;
    }

    /// Send `args` on the proxy's own connection; `record` counts it among the commands that
    /// are not billed (the proxy's `INFO` readings are counted by their callers).
    async fn query(&self, args: &[&[u8]], record: bool) -> io::Result<Reply> {
        let mut side = self.side.lock().await;
        let connection = match side.as_mut() {
            Some(connection) => connection,
            None => side.insert(Side::connect(self.upstream).await?),
        };
        let reply = connection.ask(args).await;
        if reply.is_err() {
            *side = None;
        } else if record {
            let args: Vec<Vec<u8>> = args.iter().map(|arg| arg.to_vec()).collect();
            let name = self.commands.stat_name(&args);
            *self.tally().side.entry(name).or_default() += 1;
        }
        reply
    }

    /// The server's calls per command, from one `INFO commandstats`.
    async fn command_stats(&self) -> std::collections::HashMap<String, u64> {
        match self.query(&[b"INFO", b"commandstats"], false).await {
            Ok(Reply::Bulk(info)) => billing::command_stats(&info),
            other => panic!("the proxy could not read INFO commandstats: {other:?}"),
        }
    }

    /// How many entries `consumer` of `group` has pending on stream `key`; 0 when the server
    /// cannot say (no such group: the read itself will fail).
    async fn pending(&self, key: &[u8], group: &[u8], consumer: &[u8]) -> u64 {
        let Ok(Reply::Array(summary)) = self.query(&[b"XPENDING", key, group], true).await else {
            return 0;
        };
        let Some(Reply::Array(consumers)) = summary.get(3) else {
            return 0;
        };
        consumers
            .iter()
            .find_map(|entry| match entry {
                Reply::Array(pair) => match (pair.first(), pair.get(1)) {
                    (Some(Reply::Bulk(name)), Some(Reply::Bulk(count)))
                        if name.as_bytes() == consumer =>
                    {
                        count.parse().ok()
                    }
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or(0)
    }
}

/// The proxy's own RESP2 connection to the server.
#[derive(Debug)]
struct Side {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Side {
    async fn connect(port: u16) -> io::Result<Side> {
        let (reader, writer) = TcpStream::connect(("127.0.0.1", port)).await?.into_split();
        Ok(Side {
            reader: BufReader::new(reader),
            writer,
        })
    }

    async fn ask(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let exchange = async {
            self.writer.write_all(&resp::encode(args)).await?;
            read_reply(&mut self.reader).await
        };
        tokio::time::timeout(SIDE_PATIENCE, exchange)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping this task (the proxy's `Drop`) drops the set, which closes every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(serve(client, shared.clone()));
                }
                // Out of file descriptors, say: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// What the reply side must do, in request order.
#[derive(Debug)]
enum Slot {
    /// A request went to the server; its reply is next. It carries the request's name (as
    /// `INFO commandstats` names it) to count as answered when the reply comes, or `None` if
    /// it was counted as sent.
    Forwarded(Option<String>),
    /// A request the proxy refused: this error reply goes to the client in its place.
    Refused(Vec<u8>),
    /// From here on replies do not pair with requests (subscriptions, `MONITOR`).
    Untracked,
    /// Close the connection, after what came before.
    Close,
}

/// One client connection and its own connection to the server, until either side closes it or
/// it stays idle too long.
async fn serve(client: TcpStream, shared: Arc<Shared>) {
    // Redis may be down or restarting: then the client is dropped, as it would be.
    let Ok(server) = TcpStream::connect(("127.0.0.1", shared.upstream)).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let activity = Activity::new();
    let (slots, queue) = mpsc::unbounded_channel();
    let (answered, answers) = watch::channel(0);
    let requests = Requests {
        shared: &shared,
        client: client_read,
        server: server_write,
        slots,
        answers,
        forwarded: 0,
        out: Vec::new(),
        activity: &activity,
    };
    let replies = Replies {
        shared: &shared,
        server: server_read,
        client: client_write,
        queue,
        waiting: VecDeque::new(),
        answered,
        untracked: false,
        closing: false,
        activity: &activity,
    };
    tokio::select! {
        // The client may stop sending and still wait for its replies.
        () = async {
            requests.run().await;
            std::future::pending().await
        } => {}
        () = replies.run() => {}
        () = activity.expire(shared.limits.idle) => {
            shared.idle_closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// When a byte last passed either way on one connection.
#[derive(Debug)]
struct Activity {
    since: Instant,
    /// Milliseconds after `since`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            since: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.since.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// Return once nothing has passed for `idle`; never without an idle limit.
    async fn expire(&self, idle: Option<Duration>) {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = self.since + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// The client-to-server half of a connection: parse, judge, forward or refuse.
struct Requests<'a> {
    shared: &'a Shared,
    client: OwnedReadHalf,
    server: OwnedWriteHalf,
    slots: mpsc::UnboundedSender<Slot>,
    /// How many forwarded requests the server has answered.
    answers: watch::Receiver<u64>,
    forwarded: u64,
    /// Forwarded requests not yet written to the server.
    out: Vec<u8>,
    activity: &'a Activity,
}

impl Requests<'_> {
    async fn run(mut self) {
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            let mut start = 0;
            loop {
                match resp::parse_request(&buf[start..]) {
                    Parsed::Incomplete => break,
                    Parsed::Invalid(message) => {
                        // Redis answers a protocol error, then closes the connection.
                        let _ = self.flush().await;
                        let _ = self.slots.send(Slot::Refused(resp::error(message)));
                        let _ = self.slots.send(Slot::Close);
                        return;
                    }
                    Parsed::Request(request) => {
                        let raw = start..start + request.len;
                        start = raw.end;
                        if self.handle(request, &buf[raw]).await.is_err() {
                            return;
                        }
                    }
                }
            }
            buf.drain(..start);
            if self.flush().await.is_err() {
                return;
            }
            buf.reserve(64 * 1024);
            match self.client.read_buf(&mut buf).await {
                Ok(0) | Err(_) => {
                    // As a client's half-close reaches Redis directly.
                    let _ = self.server.shutdown().await;
                    return;
                }
                Ok(_) => self.activity.touch(),
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.server.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Forward `request` (whose bytes are `raw`) or refuse it.
    async fn handle(&mut self, request: Request, raw: &[u8]) -> io::Result<()> {
        if request.args.is_empty() {
            // Redis answers nothing to an empty request.
            self.out.extend_from_slice(raw);
            return Ok(());
        }
        let name = self.shared.commands.stat_name(&request.args);
        if let Err(refusal) = self.judge(&request, &name).await? {
            *self.shared.tally().refused.entry(name).or_default() += 1;
            let _ = self.slots.send(Slot::Refused(resp::error(&refusal)));
            return Ok(());
        }
        *self.shared.tally().sent.entry(name.clone()).or_default() += 1;
        let unpaired = [
            "subscribe",
            "psubscribe",
            "ssubscribe",
            "unsubscribe",
            "punsubscribe",
            "sunsubscribe",
            "monitor",
        ];
        if unpaired.contains(&name.as_str()) {
            let _ = self.slots.send(Slot::Untracked);
        }
        // Redis 7.0 counts a blocking command as it starts to wait, whether it ever returns or
        // not (its client may be cut): it has reached the server once it is sent.
        let name = if self.shared.commands.blocking(&name) {
            self.shared.count_answer(name);
            None
        } else {
            Some(name)
        };
        // The slot goes first, so it is there when the reply comes.
        let _ = self.slots.send(Slot::Forwarded(name));
        self.forwarded += 1;
        self.out.extend_from_slice(raw);
        Ok(())
    }

    /// Whether Upstash would take `request`; the error reply it would give if not.
    async fn judge(&mut self, request: &Request, name: &str) -> io::Result<Result<(), String>> {
        let limits = &self.shared.limits;
        if limits
            .request_bytes
            .is_some_and(|limit| request.len > limit)
        {
            return Ok(Err("ERR max request size exceeded".to_owned()));
        }
        if let Err(refusal) = rules::availability(&request.args) {
            return Ok(Err(refusal));
        }
        let keys = self.shared.commands.keys(&request.args);
        let elements = rules::elements(name, &request.args);
        let too_long = too_long("key", limits.key_bytes, &keys)
            .or_else(|| too_long("field", limits.field_bytes, &elements.fields))
            .or_else(|| too_long("member", limits.member_bytes, &elements.members));
        if let Some(refusal) = too_long {
            return Ok(Err(refusal));
        }
        let (Some(limit), Some(read)) = (
            limits.pending_per_consumer,
            rules::group_read(&request.args),
        ) else {
            return Ok(Ok(()));
        };
        // Count as the server would see it: after every earlier request of this connection.
        self.flush().await?;
        let forwarded = self.forwarded;
        if self
            .answers
            .wait_for(|&answered| answered >= forwarded)
            .await
            .is_err()
        {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        // Without COUNT the read's size is unknown: refused only when the list is full.
        let requested = read.count.unwrap_or(1);
        for key in &read.keys {
            let pending = self.shared.pending(key, read.group, read.consumer).await;
            if pending + requested > limit {
                let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
                return Ok(Err(format!(
                    "ERR XReadGroup is cancelled. Pending Entries List limit per consumer is \
                     about to be reached. Limit: {limit}, Current PEL size: {pending}, \
                     Requested Read: {requested}, Key: {}, Group: {}, Consumer: {}.",
                    text(key),
                    text(read.group),
                    text(read.consumer),
                )));
            }
        }
        Ok(Ok(()))
    }
}

/// Upstash's refusal of a `what` (key, field, member) longer than `limit` among `items`.
fn too_long(what: &str, limit: Option<usize>, items: &[&[u8]]) -> Option<String> {
    let limit = limit?;
    let longest = items.iter().map(|item| item.len()).max()?;
    (longest > limit).then(|| {
        format!("ERR max {what} size exceeded. Limit: {limit} bytes, Actual: {longest} bytes")
    })
}

/// The server-to-client half of a connection: replies streamed through as they come, and
/// refusals written in their places.
struct Replies<'a> {
    shared: &'a Shared,
    server: OwnedReadHalf,
    client: OwnedWriteHalf,
    queue: mpsc::UnboundedReceiver<Slot>,
    /// Slots taken from the queue, oldest first; the first is a forwarded request awaiting its
    /// reply (or nothing), since whatever can be settled at once is.
    waiting: VecDeque<Slot>,
    answered: watch::Sender<u64>,
    untracked: bool,
    closing: bool,
    activity: &'a Activity,
}

impl Replies<'_> {
    async fn run(mut self) {
        let _ = self.relay().await;
    }

    async fn relay(&mut self) -> io::Result<()> {
        let mut frames = Frames::default();
        let mut buf = vec![0; 64 * 1024];
        let mut ends = Vec::new();
        let mut out = Vec::new();
        let mut requests_open = true;
        while !self.closing {
            tokio::select! {
                slot = self.queue.recv(), if requests_open => match slot {
                    Some(slot) => {
                        self.waiting.push_back(slot);
                        self.settle(&mut out);
                    }
                    None => requests_open = false,
                },
                read = self.server.read(&mut buf) => {
                    let n = read?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.activity.touch();
                    // Every slot of a request is queued before the request is written, so the
                    // slots of whatever these bytes answer are in the queue by now.
                    while let Ok(slot) = self.queue.try_recv() {
                        self.waiting.push_back(slot);
                    }
                    self.settle(&mut out);
                    frames.feed(&buf[..n], &mut ends)?;
                    let mut at = 0;
                    for (end, frame) in ends.drain(..) {
                        out.extend_from_slice(&buf[at..end]);
                        at = end;
                        if frame == Frame::Reply && !self.untracked {
                            if let Some(Slot::Forwarded(_)) = self.waiting.front() {
                                let Some(Slot::Forwarded(name)) = self.waiting.pop_front() else {
                                    unreachable!("the front was a forwarded request");
                                };
                                self.answer(name);
                            }
                            self.settle(&mut out);
                        }
                    }
                    out.extend_from_slice(&buf[at..n]);
                }
            }
            if !out.is_empty() {
                self.client.write_all(&out).await?;
                out.clear();
            }
        }
        Ok(())
    }

    /// Act on the slots at the front that need no reply from the server.
    fn settle(&mut self, out: &mut Vec<u8>) {
        while !self.closing {
            match self.waiting.front() {
                None => return,
                Some(Slot::Forwarded(_)) if !self.untracked => return,
                Some(_) => {}
            }
            match self.waiting.pop_front().expect("a slot at the front") {
                Slot::Refused(error) => {
                    out.extend_from_slice(&error);
                    self.activity.touch();
                }
                Slot::Untracked => self.untracked = true,
                Slot::Close => self.closing = true,
                Slot::Forwarded(name) => self.answer(name),
            }
        }
    }

    /// A forwarded request is answered (or, untracked, taken as answered).
    fn answer(&self, name: Option<String>) {
        if let Some(name) = name {
            self.shared.count_answer(name);
        }
        self.answered.send_modify(|answered| *answered += 1);
    }
}
