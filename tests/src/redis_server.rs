//! A private `redis-server` per test, per run: started on a free loopback port in its
//! own directory, and stopped, killed or restarted at will.
//!
//! When `redis-server` is missing, starting one panics with how to install it: Redis tests fail
//! loudly, they never skip.
//!
//! `DOCKET_TEST_REDIS_SERVER` names another server program to run instead (a path to another
//! Redis version's `redis-server`, or to `valkey-server`): `scripts/test.sh` runs the Redis
//! behaviour suite once more that way, on each other version it can install.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The server program the tests start: `DOCKET_TEST_REDIS_SERVER`, or `redis-server`.
pub fn server_program() -> String {
    std::env::var("DOCKET_TEST_REDIS_SERVER")
        .ok()
        .filter(|program| !program.is_empty())
        .unwrap_or_else(|| "redis-server".to_owned())
}

/// The commands a docket's producers and workers need, as `ACL SETUSER` rules: the README's
/// least-privilege section documents this list, and the TLS behaviour suite and the keeper's
/// backlog test run as a user with exactly these.
pub const LEAST_PRIVILEGE: &[&str] = &[
    "+evalsha",
    "+script|load",
    "+xreadgroup",
    "+xgroup|create",
    "+xgroup|delconsumer",
    "+xinfo|consumers",
    "+xinfo|groups",
    "+xlen",
    "+xrange",
    "+xpending",
    "+zcard",
    "+hget",
    "+hgetall",
    "+hlen",
    "+xadd",
    "+xack",
    "+xdel",
    "+xclaim",
    "+hset",
    "+hdel",
    "+hmget",
    "+hexists",
    "+zadd",
    "+zrem",
    "+zrange",
    "+zrangebyscore",
    "+zscore",
    "+zremrangebyscore",
    "+xrevrange",
    "+xread",
    "+sadd",
    "+srem",
    "+scard",
    "+sismember",
    "+smembers",
    "+rpush",
    "+lpop",
    "+pexpire",
    "+get",
    "+set",
    "+publish",
    "+subscribe",
    "+exists",
    "+pttl",
    "+del",
];

/// A `redis-server` child process, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// The plain port, always open: the harness's own commands use it.
    port: u16,
    /// The TLS port, when the server was started with [`RedisServer::start_tls`].
    tls_port: Option<u16>,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// A server that keeps nothing on disk.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// A server started with extra `redis-server` arguments.
    pub fn start_with(args: &[&str]) -> RedisServer {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "docket-test-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a directory for redis-server");
        // A free port may be taken by another process before the server binds it: then again,
        // on other ports.
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            let _ = std::fs::remove_file(dir.join("redis.log"));
            let mut extra: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
            if let Some(at) = extra.iter().position(|arg| arg == "--tls-port")
                && attempt > 1
                && at + 1 < extra.len()
            {
                extra[at + 1] = free_port().to_string();
            }
            let tls_port = extra
                .iter()
                .position(|arg| arg == "--tls-port")
                .and_then(|at| extra.get(at + 1))
                .and_then(|port| port.parse().ok());
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                tls_port,
                dir: dir.clone(),
                extra,
            };
            match server.try_spawn() {
                Ok(()) => return server,
                Err(log) if attempt < ATTEMPTS && log.contains("Address already in use") => {}
                Err(log) => panic!(
                    "redis-server exited on port {} (attempt {attempt}):\n{log}",
                    server.port
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Start the server again on its port (after `stop`), failing the test if it cannot.
    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("redis-server exited on port {}:\n{log}", self.port);
        }
    }

    /// Start the server; its log when it exits before it answers.
    fn try_spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new(server_program());
        command
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .arg("--protected-mode")
            .arg("no")
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "the Redis tests need `{}` on the PATH; install it \
                 (Debian/Ubuntu: `apt-get install redis-server`, macOS: `brew install redis`; \
                 Valkey: see scripts/test.sh)",
                server_program()
            ),
            Err(error) => panic!("could not start redis-server: {error}"),
        };
        self.child = Some(child);
        self.wait_ready()
    }

    /// A server that also serves TLS with `certs`, on a second port.
    pub fn start_tls(certs: &Certs) -> RedisServer {
        let tls_port = free_port().to_string();
        let path = |name: &str| certs.dir.join(name).display().to_string();
        RedisServer::start_with(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &path("server.crt"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.crt"),
            "--tls-auth-clients",
            "no",
        ])
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.try_command(&["PING"]).is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!("{status}:\n{log}"));
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's `redis://` URL, logging in as `user`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// Add the user `user` (password `password`) with exactly the commands a docket needs
    /// ([`LEAST_PRIVILEGE`]), on the keys and channels of the docket `name` only.
    pub fn add_least_privileged_user(&self, user: &str, password: &str, name: &str) {
        let password = format!(">{password}");
        let keys = format!("~{{{name}}}:*");
        let channels = format!("&{{{name}}}:*");
        let mut command = vec![
            "ACL",
            "SETUSER",
            user,
            "on",
            &password,
            "resetkeys",
            &keys,
            "resetchannels",
            &channels,
            "-@all",
        ];
        command.extend_from_slice(LEAST_PRIVILEGE);
        assert_eq!(self.command(&command), Reply::Status("OK".into()));
    }

    /// The server's `rediss://` URL, logging in as `user`.
    pub fn tls_url(&self, user: &str, password: &str) -> String {
        let port = self
            .tls_port
            .expect("the server was started with start_tls");
        format!("rediss://{user}:{password}@127.0.0.1:{port}")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// SIGKILL: nothing is flushed beyond what `appendfsync` already wrote.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A clean `SHUTDOWN`, which writes the append-only file.
    pub fn shutdown(&mut self) {
        let _ = self.try_command(&["SHUTDOWN"]);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Start again on the same port and directory, so persisted data comes back.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Run one command over a fresh plain connection; panics on error.
    pub fn command(&self, args: &[&str]) -> Reply {
        self.try_command(args)
            .unwrap_or_else(|error| panic!("{args:?} failed: {error}"))
    }

    pub fn try_command(&self, args: &[&str]) -> Result<Reply, String> {
        RedisServer::command_at(self.port, args)
    }

    /// Run one command on whatever listens on loopback `port` (a Sentinel, say).
    pub fn command_at(port: u16, args: &[&str]) -> Result<Reply, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        writer.write_all(&request).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        match read_reply(&mut reader).map_err(|e| e.to_string())? {
            Reply::Error(error) => Err(error),
            reply => Ok(reply),
        }
    }

    /// Every call since the last `CONFIG RESETSTAT`, Lua-internal calls included, less the
    /// harness's own `INFO` and `CONFIG`.
    pub fn calls(&self) -> u64 {
        self.command_stats()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("info") && !name.starts_with("config"))
            .map(|(_, calls)| calls)
            .sum()
    }

    /// Calls per command name from `INFO commandstats`, Lua-internal calls included.
    pub fn command_stats(&self) -> std::collections::HashMap<String, u64> {
        let Reply::Bulk(info) = self.command(&["INFO", "commandstats"]) else {
            panic!("INFO did not answer with text");
        };
        command_calls(&info)
            .map(|(name, calls)| (name.to_owned(), calls))
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `(command, calls)` from `INFO commandstats` lines such as `cmdstat_xadd:calls=3,usec=12,...`.
pub fn command_calls(info: &str) -> impl Iterator<Item = (&str, u64)> {
    info.lines().filter_map(|line| {
        let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
        let calls = rest
            .strip_prefix("calls=")?
            .split(',')
            .next()?
            .parse()
            .ok()?;
        Some((name, calls))
    })
}

/// `(command, microseconds)` from the same lines: the time the server spent executing each
/// command, without parsing it or writing its reply. A script's time includes the commands it
/// called, which are also counted under their own names.
pub fn command_usec(info: &str) -> impl Iterator<Item = (&str, u64)> {
    info.lines().filter_map(|line| {
        let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
        let usec = rest
            .split(',')
            .find_map(|field| field.strip_prefix("usec="))?
            .parse()
            .ok()?;
        Some((name, usec))
    })
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(String),
    Nil,
    Array(Vec<Reply>),
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || {
        rest.parse::<i64>()
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(number()?),
        "$" if number()? < 0 => Reply::Nil,
        "$" => {
            let mut bytes = vec![0; usize::try_from(number()?).unwrap() + 2];
            reader.read_exact(&mut bytes)?;
            bytes.truncate(bytes.len() - 2);
            Reply::Bulk(String::from_utf8_lossy(&bytes).into_owned())
        }
        "*" if number()? < 0 => Reply::Nil,
        "*" => Reply::Array(
            (0..number()?)
                .map(|_| read_reply(reader))
                .collect::<std::io::Result<_>>()?,
        ),
        _ => {
            return Err(std::io::Error::other(format!(
                "unexpected reply line {line:?}"
            )));
        }
    })
}

/// A private CA and a server certificate for 127.0.0.1, made once per test binary with the
/// `openssl` command.
#[derive(Debug)]
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn get() -> &'static Certs {
        static CERTS: std::sync::OnceLock<Certs> = std::sync::OnceLock::new();
        CERTS.get_or_init(Certs::make)
    }

    /// The CA certificate, PEM, for `Connect::tls_ca_pem`.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("read the test CA")
    }

    fn make() -> Certs {
        let dir = std::env::temp_dir().join(format!("docket-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &dir,
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=docket test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[
                &["req"],
                &ec[..],
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Certs { dir }
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!("the TLS tests need the `openssl` command ({error}); install it (Debian: `apt-get install openssl`)")
        });
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind a loopback port")
}

/// A docket name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The partition a task of key `key` lives in on a docket of `count` partitions, as the README
/// says: CRC16 of the key (Redis Cluster's, XMODEM, without its hash-tag rule), modulo the
/// count.
pub fn partition_of_key(key: &str, count: usize) -> usize {
    let mut crc: u16 = 0;
    for byte in key.bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = match crc & 0x8000 {
                0 => crc << 1,
                _ => (crc << 1) ^ 0x1021,
            };
        }
    }
    usize::from(crc) % count.max(1)
}
