//! Interop with Python's pydocket, against the real package from the registry in a venv made
//! once under the target directory (`tests::python`).
//!
//! The tests that use pydocket's own scheduling and worker run against each release of
//! `docket::pydocket::TESTED_PYDOCKET` (the lowest supported and the newest), or only
//! `PYDOCKET_VERSION` when set; `PICKLE_SEED` replays a codec property run.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use docket::pydocket::pickle::{self, Limits};
use serde_json::{Map, Value, json};
use tests::python::Venv;
use tests::redis_server::{RedisServer, Reply, unique_name};

/// The venvs of the pydocket releases tested: `PYDOCKET_VERSION`, or else each of
/// `docket::pydocket::TESTED_PYDOCKET` (the lowest supported and the newest).
fn venvs() -> Vec<Venv> {
    let versions = match std::env::var("PYDOCKET_VERSION") {
        Ok(version) => vec![version],
        Err(_) => docket::pydocket::TESTED_PYDOCKET
            .iter()
            .map(|version| version.to_string())
            .collect(),
    };
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    versions
        .iter()
        .map(|version| Venv::pydocket(target, version))
        .collect()
}

/// The newest release tested: pickles are the same in every release.
fn newest() -> Venv {
    venvs().pop().expect("a pydocket release to test")
}

/// A small deterministic generator (xorshift64*), so a failing run replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }

    fn string(&mut self) -> String {
        match self.below(10) {
            0 => String::new(),
            1 => "x".repeat(300), // past SHORT_BINUNICODE's 255 bytes
            2 => "é✓🎵".repeat(self.below(100) as usize),
            _ => (0..self.below(12))
                .map(|_| {
                    self.pick(&[
                        'a', 'Z', '0', ' ', '\0', '\n', '\t', '"', '\\', 'é', '✓', '🎵', '\u{7f}',
                    ])
                })
                .collect(),
        }
    }

    fn number(&mut self) -> Value {
        match self.below(4) {
            0 => json!(self.pick(&[
                0i64,
                1,
                -1,
                255,
                256,
                65_535,
                65_536,
                i32::MIN.into(),
                i32::MAX.into(),
                i64::from(i32::MAX) + 1,
                i64::MIN,
                i64::MAX,
            ])),
            1 => json!(self.pick(&[u64::MAX, 1u64 << 63, (1u64 << 63) + 1])),
            2 => json!(self.next() as i64 >> self.below(64)),
            _ => {
                let float = f64::from_bits(self.next());
                let float = if float.is_finite() { float } else { 0.5 };
                json!(self.pick(&[float, -0.0, 1.0, 1e300, 5e-324, -2.5]))
            }
        }
    }

    fn value(&mut self, depth: u32) -> Value {
        let leaf = depth >= 4 || self.below(3) == 0;
        match if leaf {
            self.below(4)
        } else {
            4 + self.below(2)
        } {
            0 => self.pick(&[Value::Null, json!(true), json!(false)]),
            1 | 2 => self.number(),
            3 => Value::String(self.string()),
            4 => {
                // Now and then (at the top only, to stay small) past 1,000 items, where pickles
                // batch their APPENDS.
                let len = if depth == 0 && self.below(20) == 0 {
                    1500
                } else {
                    self.below(5)
                };
                Value::Array((0..len).map(|_| self.value(depth + 1)).collect())
            }
            _ => Value::Object(self.object(depth + 1)),
        }
    }

    fn object(&mut self, depth: u32) -> Map<String, Value> {
        (0..self.below(5))
            .map(|_| (self.string(), self.value(depth)))
            .collect()
    }
}

/// Reads `kind hex json` lines: checks that `pickle.loads(hex)` is `json.loads(json)` with the
/// same types throughout (a `bool` is not an `int`, a tuple only where asked for), then prints
/// `ok` (or `MISMATCH`) and the value pickled again by cloudpickle, as pydocket pickles.
const ROUND_TRIP: &str = r#"
import sys, json, pickle, math, cloudpickle

def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b

for line in sys.stdin:
    kind, data, text = line.rstrip("\n").split("\t", 2)
    value = pickle.loads(bytes.fromhex(data))
    expected = json.loads(text)
    if kind == "args":
        expected = tuple(expected)
    ok = same(value, expected) and (kind != "kwargs" or all(type(k) is str for k in value))
    print(("ok" if ok else "MISMATCH") + "\t" + cloudpickle.dumps(value).hex())
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex from Python"))
        .collect()
}

/// Random JSON values, pickled by our encoder as a value, as `args` and as `kwargs`, read by
/// Python's `pickle.loads`, pickled again by cloudpickle (protocol 5, as pydocket does), and
/// decoded by our decoder: every one comes back equal, and Python saw the same value.
#[test]
fn json_values_round_trip_through_python_pickle() {
    let seed = std::env::var("PICKLE_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("after the epoch")
                .as_nanos() as u64
                | 1
        });
    eprintln!("PICKLE_SEED={seed}");
    let mut rng = Rng(seed);
    let mut cases: Vec<(&str, Value)> = vec![
        ("args", json!([])),
        ("kwargs", json!({})),
        ("value", Value::Array((0..2500).map(Value::from).collect())),
        // Past pickle's 64 KiB frames, which Python writes such values outside of.
        (
            "args",
            json!(["é".repeat(40_000), (0..20_000).collect::<Vec<u32>>()]),
        ),
        (
            "kwargs",
            Value::Object((0..1500).map(|i| (format!("k{i}"), json!(i))).collect()),
        ),
    ];
    for _ in 0..400 {
        match rng.below(3) {
            0 => cases.push(("value", rng.value(0))),
            1 => cases.push((
                "args",
                Value::Array((0..rng.below(6)).map(|_| rng.value(1)).collect()),
            )),
            _ => cases.push(("kwargs", Value::Object(rng.object(1)))),
        }
    }
    let mut input = String::new();
    for (kind, value) in &cases {
        let bytes = match (*kind, value) {
            ("args", Value::Array(args)) => pickle::encode_args(args),
            ("kwargs", Value::Object(kwargs)) => pickle::encode_kwargs(kwargs),
            _ => pickle::encode(value),
        }
        .expect("encode a generated value");
        writeln!(input, "{kind}\t{}\t{value}", hex(&bytes)).expect("write to a string");
    }

    let output = newest().run(ROUND_TRIP, &[], input.as_bytes());
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), cases.len(), "one answer per case");
    let limits = Limits::default();
    for (case, ((kind, value), line)) in cases.iter().zip(lines).enumerate() {
        let shown: String = value.to_string().chars().take(300).collect();
        let (verdict, data) = line.split_once('\t').expect("verdict and pickle");
        assert_eq!(
            verdict, "ok",
            "Python read another value for case {case}, {kind} {shown}"
        );
        let bytes = unhex(data);
        let back = match *kind {
            "args" => pickle::decode_args(&bytes, &limits).map(Value::Array),
            "kwargs" => pickle::decode_kwargs(&bytes, &limits).map(Value::Object),
            _ => pickle::decode(&bytes, &limits),
        };
        assert!(
            back.as_ref() == Ok(value),
            "case {case}, {kind} {shown}: came back from Python as {:?}",
            back.map(|back| back.to_string().chars().take(300).collect::<String>())
        );
    }
}

/// The calls of `scan_copyright` a Rust worker made, in order.
static SCANS: Mutex<Vec<(i64, String)>> = Mutex::new(Vec::new());

/// The attempts of `flaky` a Rust worker made.
static FLAKY_ATTEMPTS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The task as the FastAPI service declares it in Python, here in Rust.
#[docket::task]
async fn scan_copyright(track_id: i64, audio_url: String) {
    SCANS.lock().unwrap().push((track_id, audio_url));
}

/// A task that keeps its result (a dict on the Python side), read by pydocket's `get_result()`.
#[docket::task(result)]
async fn fingerprint(track_id: i64) -> Result<Value, String> {
    Ok(json!({"track_id": track_id, "verdict": "clean"}))
}

/// Python's `fingerprint`, declared without a body to schedule it typed from Rust: this binary
/// registers nothing for it (its own `fingerprint` above is another task of the same name, for
/// the other direction).
#[docket::task(name = "fingerprint")]
async fn python_fingerprint(track_id: i64);

/// Fails its first attempt; the retry is scheduled in pydocket's format.
#[docket::task(retries = 1, backoff = "fixed 100ms")]
async fn flaky(n: i64, ctx: docket::Context) -> Result<(), String> {
    let _ = n;
    FLAKY_ATTEMPTS.lock().unwrap().push(ctx.attempt());
    if ctx.attempt() == 1 {
        return Err("the first attempt fails".into());
    }
    Ok(())
}

/// Schedules with pydocket's own `add()` (now, later, positional, keyword, mixed, and a
/// `datetime` argument), then prints each stored message as `key function args kwargs` with the
/// pickles in hex, read back raw with redis-py: from the stream, and from the parked hash of
/// the task due later.
const PYDOCKET_ADDS: &str = r#"
import asyncio, sys
from datetime import datetime, timedelta, timezone
from docket import Docket
from redis import Redis

async def scan_copyright(track_id: int, audio_url: str) -> None: ...

async def main(url, name):
    async with Docket(name=name, url=url) as docket:
        await docket.add(scan_copyright, key="scan-7")(7, "https://cdn.example/7.flac")
        later = datetime.now(timezone.utc) + timedelta(seconds=60)
        await docket.add(scan_copyright, key="scan-8", when=later)(
            track_id=8, audio_url="https://cdn.example/8.flac"
        )
        await docket.add(scan_copyright, key="scan-9")(9, audio_url="https://cdn.example/9.flac")
        await docket.add(scan_copyright, key="scan-big")(2**63, "u")
        await docket.add(scan_copyright, key="scan-when")(datetime(2026, 1, 1, tzinfo=timezone.utc), "u")
    redis = Redis.from_url(url)
    messages = [fields for _, fields in redis.xrange(f"{name}:stream")]
    messages.append(redis.hgetall(f"{name}:scan-8"))
    for fields in messages:
        print(fields[b"key"].decode(), fields[b"function"].decode(), fields[b"args"].hex(), fields[b"kwargs"].hex())

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

/// What pydocket's `add()` stored decodes into the Rust task's argument struct: positional
/// arguments bound by position, keyword ones by name, both mixed; an argument no Rust task can
/// take (an int beyond 64 bits, a `datetime`) is an error naming what it found.
#[test]
fn arguments_pydocket_scheduled_bind_to_the_rust_task() {
    let server = tests::redis_server::RedisServer::start();
    for venv in venvs() {
        let name = tests::redis_server::unique_name("py-to-rust");
        let output = venv.run(PYDOCKET_ADDS, &[&server.url(), &name], b"");
        let limits = Limits::default();
        let mut decoded = std::collections::BTreeMap::new();
        for line in output.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [key, function, args, kwargs] = fields[..] else {
                panic!("unexpected line {line:?}");
            };
            assert_eq!(function, "scan_copyright");
            let task = docket::pydocket::task_from_pickles::<ScanCopyright>(
                &unhex(args),
                &unhex(kwargs),
                &limits,
            );
            decoded.insert(
                key.to_string(),
                task.map(|task| (task.track_id, task.audio_url)),
            );
        }
        let version = venv.version();
        let url = |n: i64| format!("https://cdn.example/{n}.flac");
        assert_eq!(decoded["scan-7"], Ok((7, url(7))), "pydocket {version}");
        assert_eq!(decoded["scan-8"], Ok((8, url(8))), "pydocket {version}");
        assert_eq!(decoded["scan-9"], Ok((9, url(9))), "pydocket {version}");
        let big = decoded["scan-big"].as_ref().unwrap_err().to_string();
        assert!(
            big.contains("9223372036854775808"),
            "pydocket {version}: {big}"
        );
        let when = decoded["scan-when"].as_ref().unwrap_err().to_string();
        assert!(
            when.contains("`datetime.datetime`"),
            "pydocket {version}: {when}"
        );
        assert_eq!(decoded.len(), 5, "pydocket {version}: {decoded:?}");
    }
}

/// Schedules one task per input line (`key args kwargs`, pickles in hex) through pydocket's own
/// `add()` and scripts, with the message's `args` and `kwargs` swapped for the given bytes (as a
/// Rust producer writes them), then runs them all with a real pydocket `Worker` and prints each
/// call as JSON with its arguments' Python types, then each key's final state.
const PYDOCKET_RUNS: &str = r#"
import asyncio, json, sys
import docket.execution as execution
from docket import Docket, Worker

given = {}
for line in sys.stdin:
    key, args, kwargs = line.split()
    given[key] = (bytes.fromhex(args), bytes.fromhex(kwargs))

as_message = execution.Execution.as_message
def rust_bytes(self):
    message = as_message(self)
    message[b"args"], message[b"kwargs"] = given[self.key]
    return message
execution.Execution.as_message = rust_bytes

async def scan_copyright(track_id: int, audio_url: str) -> None:
    print(json.dumps([type(track_id).__name__, track_id, type(audio_url).__name__, audio_url]))

async def main(url, name):
    async with Docket(name=name, url=url) as docket:
        docket.register(scan_copyright)
        for key in given:
            await docket.add(scan_copyright, key=key)()
        async with Worker(docket) as worker:
            await worker.run_until_finished()
        for key in given:
            run = await docket.get_execution(key)
            print(json.dumps(["state", key, run.state.value]))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

/// What a Rust producer pickles (typed, and by name from JSON) is what a real pydocket worker
/// calls the Python function with: an `int` and a `str`, every run completed.
#[test]
fn a_pydocket_worker_runs_what_rust_pickles() {
    let server = tests::redis_server::RedisServer::start();
    let typed = docket::pydocket::pickles_of(&ScanCopyright {
        track_id: 7,
        audio_url: "https://cdn.example/rs-7.flac".into(),
    })
    .expect("pickle a typed task");
    let by_name = docket::pydocket::pickles_of_json(
        &json!({"audio_url": "https://cdn.example/rs-8.flac", "track_id": i64::MAX}),
    )
    .expect("pickle JSON arguments");
    let input = format!(
        "rs-7 {} {}\nrs-8 {} {}\n",
        hex(&typed.args),
        hex(&typed.kwargs),
        hex(&by_name.args),
        hex(&by_name.kwargs)
    );
    for venv in venvs() {
        let name = tests::redis_server::unique_name("rust-to-py");
        let output = venv.run(PYDOCKET_RUNS, &[&server.url(), &name], input.as_bytes());
        let mut lines: Vec<Value> = output
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        lines.sort_by_key(|line| line.to_string());
        assert_eq!(
            lines,
            [
                json!(["int", 7, "str", "https://cdn.example/rs-7.flac"]),
                json!(["int", i64::MAX, "str", "https://cdn.example/rs-8.flac"]),
                json!(["state", "rs-7", "completed"]),
                json!(["state", "rs-8", "completed"]),
            ],
            "pydocket {}",
            venv.version()
        );
    }
}

/// A real pydocket worker runs a task that returns a dict and prints the field its run record
/// names the result by; then, for each input line (`redis key, result
/// field, envelope`), marks a scheduled task completed with that result, as a Rust worker ends
/// a run, and prints what pydocket's `get_result()` returns for it, as JSON.
const PYDOCKET_RESULTS: &str = r#"
import asyncio, json, sys
from docket import Docket, Worker
from redis import Redis

async def fingerprint(track_id: int) -> dict:
    return {"track_id": track_id, "verdict": "clean", "scores": [0.5, 1, None]}

async def scan(track_id: int) -> None: ...

async def main(url, name):
    given = [line.rstrip("\n").split("\t") for line in sys.stdin]
    redis = Redis.from_url(url)
    async with Docket(name=name, url=url) as docket:
        docket.register(fingerprint)
        docket.register(scan)
        await docket.add(fingerprint, key="fp-7")(7)
        async with Worker(docket) as worker:
            await worker.run_until_finished()
        field = redis.hget(f"{name}:runs:fp-7", "result_key").decode()
        print(field)
        for redis_key, field, envelope in given:
            key = field.rsplit(":", 1)[0]
            await docket.add(scan, key=key)(1)
            redis.hset(f"{name}:runs:{key}", mapping={"state": "completed", "result_key": field})
            redis.set(redis_key, envelope)
            run = await docket.get_execution(key)
            print(json.dumps(await run.get_result()))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

/// A result a pydocket worker stored reads in Rust, and a result Rust stores (at the key it
/// names) is what pydocket's `get_result()` returns.
#[test]
fn results_cross_in_both_directions() {
    use docket::pydocket::result;

    let server = tests::redis_server::RedisServer::start();
    for venv in venvs() {
        let version = venv.version();
        let name = tests::redis_server::unique_name("results");
        let value = json!({"matches": 3, "tracks": ["a", "b"], "score": 0.25});
        let field = result::result_field("rs-1", 1);
        let input = format!(
            "{}\t{field}\t{}\n",
            result::result_key(&name, &field),
            result::encode_result(&name, "rs-1", 1, &value).expect("encode a result")
        );
        let output = venv.run(PYDOCKET_RESULTS, &[&server.url(), &name], input.as_bytes());
        let mut lines = output.lines();
        let field = lines.next().expect("the field of the Python run's result");
        if !version.starts_with("0.25.") {
            assert_eq!(field, result::result_field("fp-7", 1), "pydocket {version}");
        }
        let Reply::Bulk(envelope) = server.command(&["GET", &result::result_key(&name, field)])
        else {
            panic!("pydocket {version} stored no result at {field}");
        };
        assert_eq!(
            result::decode_result(envelope.as_bytes(), &Limits::default()),
            Ok(json!({"track_id": 7, "verdict": "clean", "scores": [0.5, 1, null]})),
            "pydocket {version}"
        );
        let read_by_python: Value =
            serde_json::from_str(lines.next().expect("get_result's answer")).expect("JSON");
        assert_eq!(read_by_python, value, "pydocket {version}");
    }
}

/// Schedules with pydocket's own `add()`, as the FastAPI service does: now, later, by position,
/// by name, both, a duplicate key, a replace, a cancel, a `datetime` argument, a task that keeps
/// its result, one that fails once, and one no Rust task has the name of.
const PYDOCKET_PRODUCES: &str = r#"
import asyncio, sys
from datetime import datetime, timedelta, timezone
from docket import Docket

async def scan_copyright(track_id: int, audio_url: str) -> None: ...
async def fingerprint(track_id: int) -> dict: ...
async def flaky(n: int) -> None: ...
async def transcode(track_id: int) -> None: ...

def now():
    return datetime.now(timezone.utc)

async def main(url, name):
    async with Docket(name=name, url=url) as docket:
        for function in (scan_copyright, fingerprint, flaky, transcode):
            docket.register(function)
        await docket.add(scan_copyright, key="scan-7")(7, "https://cdn.example/7.flac")
        await docket.add(scan_copyright, key="scan-7")(70, "https://cdn.example/duplicate.flac")
        await docket.add(scan_copyright, key="scan-8", when=now() + timedelta(seconds=2))(
            track_id=8, audio_url="https://cdn.example/8.flac"
        )
        await docket.add(scan_copyright, key="scan-9")(9, audio_url="https://cdn.example/9.flac")
        await docket.add(scan_copyright, key="scan-10", when=now() + timedelta(seconds=60))(
            10, "https://cdn.example/old.flac"
        )
        await docket.replace(scan_copyright, when=now(), key="scan-10")(
            10, "https://cdn.example/10.flac"
        )
        await docket.add(scan_copyright, key="scan-11", when=now() + timedelta(seconds=60))(11, "u")
        await docket.cancel("scan-11")
        await docket.add(scan_copyright, key="scan-13")(13, "https://cdn.example/13.flac")
        await docket.add(scan_copyright, key="scan-when")(datetime(2026, 1, 1, tzinfo=timezone.utc), "u")
        await docket.add(fingerprint, key="fp-7")(7)
        await docket.add(flaky, key="flaky-1")(1)
        await docket.add(transcode, key="transcode-5")(5)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

/// Prints, for each key given, what pydocket's `get_execution()` and `get_result()` say of it,
/// as JSON: `[key, state, result or error]`.
const PYDOCKET_INSPECTS: &str = r#"
import asyncio, json, sys
from docket import Docket

async def main(url, name, *keys):
    async with Docket(name=name, url=url) as docket:
        for key in keys:
            run = await docket.get_execution(key)
            if run is None:
                print(json.dumps([key, None, None]))
                continue
            try:
                outcome = await run.get_result(timeout=__import__("datetime").timedelta(seconds=5))
            except Exception as error:
                outcome = f"{type(error).__name__}: {error}"
            print(json.dumps([key, run.state.value, outcome]))

asyncio.run(main(*sys.argv[1:]))
"#;

/// What each key's run is, as `PYDOCKET_INSPECTS` prints it, by key.
fn inspect(
    venv: &Venv,
    url: &str,
    name: &str,
    keys: &[&str],
) -> std::collections::BTreeMap<String, (Value, Value)> {
    let mut args = vec![url, name];
    args.extend_from_slice(keys);
    venv.run(PYDOCKET_INSPECTS, &args, b"")
        .lines()
        .map(|line| {
            let row: (String, Value, Value) = serde_json::from_str(line).expect("a JSON line");
            (row.0, (row.1, row.2))
        })
        .collect()
}

/// A docket in pydocket's protocol on `url`.
async fn pydocket(url: &str, name: &str) -> docket::Docket {
    docket::Docket::connect(url)
        .name(name)
        .protocol(docket::Protocol::Pydocket)
        .await
        .expect("open a pydocket docket")
}

/// Python schedules, Rust runs: a Rust worker on a pydocket docket runs what pydocket's `add()`
/// scheduled (bound by position and by name), never a duplicate, a replaced or a cancelled
/// task, nor one struck with pydocket's CLI; an argument it cannot take ends the run `failed`
/// with the reason, and the worker goes on; a failed attempt is retried with its attempt count;
/// pydocket reads every outcome, and the result, through its own API.
#[test]
fn a_rust_worker_runs_what_pydocket_scheduled() {
    let server = RedisServer::start();
    for venv in venvs() {
        rust_worker_runs_what_pydocket_scheduled(&server, &venv);
    }
}

/// pydocket's CLI (`python -m docket`: the venv's `bin/docket` names the directory the venv was
/// made in) with `args`, on the docket `name`; panics with its output when it fails.
fn pydocket_cli(venv: &Venv, server: &RedisServer, name: &str, args: &[&str]) {
    let output = venv
        .command("python")
        .args(["-m", "docket"])
        .args(args)
        .args(["--docket", name, "--url", &server.url()])
        .output()
        .expect("run pydocket's CLI");
    assert!(
        output.status.success(),
        "docket {args:?} (pydocket {}): {}",
        venv.version(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn rust_worker_runs_what_pydocket_scheduled(server: &RedisServer, venv: &Venv) {
    let version = venv.version();
    SCANS.lock().unwrap().clear();
    FLAKY_ATTEMPTS.lock().unwrap().clear();
    let name = unique_name("py-to-rust-worker");
    venv.run(PYDOCKET_PRODUCES, &[&server.url(), &name], b"");
    let strike = ["strike", "scan_copyright", "track_id", "==", "int:13"];
    pydocket_cli(venv, server, &name, &strike);

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let docket = pydocket(&server.url(), &name).await;
        let worker = docket::Worker::new(&docket).run_until_finished();
        tokio::time::timeout(Duration::from_secs(30), worker)
            .await
            .expect("the worker finishes")
            .expect("the worker runs");
        let record = docket
            .status("fp-7")
            .await
            .expect("read a run")
            .expect("a run");
        assert_eq!(record.status, docket::results::Status::Completed);
        assert_eq!(
            serde_json::from_str::<Value>(record.result.as_deref().unwrap()).unwrap(),
            json!({"track_id": 7, "verdict": "clean"})
        );
    });

    let mut scans = SCANS.lock().unwrap().clone();
    scans.sort();
    let url = |n: i64| format!("https://cdn.example/{n}.flac");
    assert_eq!(
        scans,
        [(7, url(7)), (8, url(8)), (9, url(9)), (10, url(10))],
        "pydocket {version}: each task once, the replaced one with its new arguments, neither the cancelled nor the struck one"
    );
    assert_eq!(
        *FLAKY_ATTEMPTS.lock().unwrap(),
        [1, 2],
        "pydocket {version}"
    );

    let keys = [
        "scan-7",
        "scan-8",
        "scan-9",
        "scan-10",
        "scan-11",
        "scan-13",
        "scan-when",
        "fp-7",
        "flaky-1",
        "transcode-5",
    ];
    let runs = inspect(venv, &server.url(), &name, &keys);
    for key in ["scan-7", "scan-8", "scan-9", "scan-10", "flaky-1"] {
        assert_eq!(
            runs[key],
            (json!("completed"), Value::Null),
            "pydocket {version}: {key}"
        );
    }
    assert_eq!(
        runs["fp-7"],
        (
            json!("completed"),
            json!({"track_id": 7, "verdict": "clean"})
        ),
        "pydocket {version}"
    );
    for key in ["scan-11", "scan-13"] {
        assert_eq!(
            runs[key].0,
            json!("cancelled"),
            "pydocket {version}: {key}: {:?}",
            runs[key]
        );
    }
    assert_eq!(runs["scan-when"].0, json!("failed"), "pydocket {version}");
    assert_eq!(runs["transcode-5"].0, json!("failed"), "pydocket {version}");
    let unknown = runs["transcode-5"].1.as_str().unwrap_or_default();
    assert!(
        unknown.contains("unknown task `transcode`"),
        "pydocket {version}: {unknown}"
    );
    let error = runs["scan-when"].1.as_str().unwrap_or_default();
    assert!(
        error.contains("`datetime.datetime`"),
        "pydocket {version}: {error}"
    );
    let Reply::Bulk(generation) =
        server.command(&["HGET", &format!("{name}:runs:flaky-1"), "generation"])
    else {
        panic!("no generation for flaky-1");
    };
    assert_eq!(
        generation, "2",
        "pydocket {version}: the retry took the key's next generation"
    );
    let Reply::Integer(left) = server.command(&["XLEN", &format!("{name}:stream")]) else {
        panic!("no stream");
    };
    assert_eq!(
        left, 0,
        "pydocket {version}: every entry acknowledged and deleted"
    );
}

/// Runs every task of the docket with a real pydocket worker until none is left, printing each
/// call as JSON with its arguments' Python types.
const PYDOCKET_WORKS: &str = r#"
import asyncio, json, sys
from docket import Docket, Worker

async def scan_copyright(track_id: int, audio_url: str) -> None:
    print(json.dumps([type(track_id).__name__, track_id, type(audio_url).__name__, audio_url]))

async def fingerprint(track_id: int) -> dict:
    return {"track_id": track_id, "verdict": "clean", "scores": [0.5, 1, None]}

async def main(url, name):
    async with Docket(name=name, url=url) as docket:
        docket.register(scan_copyright)
        docket.register(fingerprint)
        async with Worker(docket) as worker:
            await worker.run_until_finished()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

/// Rust schedules, Python runs: a Rust producer on a pydocket docket schedules typed tasks (now,
/// later, keyed, replaced, cancelled, struck by a Rust strike; one declared without a body) and
/// tasks by name (`add_json`); a
/// real pydocket worker calls the Python functions with an `int` and a `str`, once each, never
/// the struck one, and the Rust side reads the outcomes and a result back.
#[test]
fn a_pydocket_worker_runs_what_a_rust_producer_scheduled() {
    let server = RedisServer::start();
    for venv in venvs() {
        pydocket_worker_runs_what_a_rust_producer_scheduled(&server, &venv);
    }
}

fn pydocket_worker_runs_what_a_rust_producer_scheduled(server: &RedisServer, venv: &Venv) {
    use docket::Disposition;

    let version = venv.version();
    let name = unique_name("rust-to-py-worker");
    let url = |n: i64| format!("https://cdn.example/rs-{n}.flac");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (docket, fingerprint_key) = runtime.block_on(async {
        let docket = pydocket(&server.url(), &name).await;
        let on = |schedule: docket::Schedule<ScanCopyright>| schedule.on(&docket);
        let added = on(ScanCopyright::schedule(7, url(7)).key("rs-7"))
            .await
            .unwrap();
        assert_eq!(added.disposition(), Disposition::Added);
        let again = on(ScanCopyright::schedule(70, url(70)).key("rs-7"))
            .await
            .unwrap();
        assert_eq!(again.disposition(), Disposition::Duplicate);
        on(ScanCopyright::schedule(8, url(8))
            .key("rs-8")
            .after(Duration::from_secs(2)))
        .await
        .unwrap();
        on(ScanCopyright::schedule(10, url(100))
            .key("rs-10")
            .after(Duration::from_secs(60)))
        .await
        .unwrap();
        let replaced = on(ScanCopyright::schedule(10, url(10)).key("rs-10").replace())
            .await
            .unwrap();
        assert_eq!(replaced.disposition(), Disposition::Replaced);
        on(ScanCopyright::schedule(11, url(11))
            .key("rs-11")
            .after(Duration::from_secs(60)))
        .await
        .unwrap();
        assert!(
            docket.cancel("rs-11").await.unwrap(),
            "a waiting task is cancelled"
        );
        // A strike from Rust, its value pickled: the Python worker cancels the run it matches.
        let strike = docket::strike::Strike::task("scan_copyright").when(
            "track_id",
            docket::strike::Operator::Eq,
            12,
        );
        assert!(docket.strike(strike).await.unwrap());
        on(ScanCopyright::schedule(12, url(12)).key("rs-12"))
            .await
            .unwrap();
        let by_name = json!({"track_id": 9, "audio_url": url(9)}).to_string();
        docket.add_json("scan_copyright", &by_name).await.unwrap();
        let fingerprint = PythonFingerprint::schedule(7).on(&docket).await.unwrap();
        (docket, fingerprint.key().to_owned())
    });

    let output = venv.run(PYDOCKET_WORKS, &[&server.url(), &name], b"");
    let mut calls: Vec<Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    calls.sort_by_key(|call| call[1].as_i64());
    let expected: Vec<Value> = [7, 8, 9, 10]
        .into_iter()
        .map(|n| json!(["int", n, "str", url(n)]))
        .collect();
    assert_eq!(
        calls, expected,
        "pydocket {version}: each task once, with the replacement's arguments"
    );

    runtime.block_on(async {
        use docket::results::Status;
        let status = |key: String| {
            let docket = docket.clone();
            async move { docket.status(&key).await.unwrap().expect("a run record") }
        };
        for key in ["rs-7", "rs-8", "rs-10"] {
            assert_eq!(status(key.into()).await.status, Status::Completed, "{key}");
        }
        for key in ["rs-11", "rs-12"] {
            assert_eq!(
                status(key.into()).await.status,
                Status::Cancelled,
                "pydocket {version}: {key}"
            );
        }
        let record = status(fingerprint_key.clone()).await;
        assert_eq!(record.status, Status::Completed);
        let result: Value = docket.result(&fingerprint_key).await.expect("the result");
        assert_eq!(
            result,
            json!({"track_id": 7, "verdict": "clean", "scores": [0.5, 1, null]}),
            "pydocket {version}"
        );
    });
}

/// The tracks `slow_scan` started on.
static SLOW_STARTED: Mutex<Vec<i64>> = Mutex::new(Vec::new());

/// Runs for a minute on track 1 (long enough to be cancelled while it runs), reporting its
/// progress; at once on others.
#[docket::task(result)]
async fn slow_scan(track_id: i64, ctx: docket::Context) -> Result<(), String> {
    if track_id == 1 {
        ctx.progress(1, 60, "scanning").await;
    }
    SLOW_STARTED.lock().unwrap().push(track_id);
    if track_id == 1 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok(())
}

/// `add`: schedules `slow_scan` on track 1; `cancel`: cancels it.
const PYDOCKET_SLOW: &str = r#"
import asyncio, sys
from docket import Docket

async def slow_scan(track_id: int) -> None: ...

async def main(url, name, step):
    async with Docket(name=name, url=url) as docket:
        docket.register(slow_scan)
        if step == "add":
            await docket.add(slow_scan, key="slow-1")(1)
        else:
            await docket.cancel("slow-1")

asyncio.run(main(*sys.argv[1:]))
"#;

/// The `state` of a run's record, as stored.
fn run_state(server: &RedisServer, name: &str, key: &str) -> String {
    match server.command(&["HGET", &format!("{name}:runs:{key}"), "state"]) {
        Reply::Bulk(state) => state,
        _ => String::new(),
    }
}

/// Wait until `done` holds, or panic with `what` after `patience`.
fn wait_for(what: &str, patience: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + patience;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within {patience:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What Python does to a running Rust worker reaches it: pydocket's `cancel()` stops the run
/// it is running (whose progress is in pydocket's progress hash meanwhile, and which ends
/// `cancelled`, as a Rust `Docket::result` waiting on it hears), and a strike made with pydocket's CLI while it runs
/// reaches it within half a second: a run it matches, scheduled then (by Rust: pydocket's own
/// `add()` refuses a struck call), ends `cancelled` without starting, while the run beside it
/// goes on.
#[test]
fn a_cancel_and_a_cli_strike_reach_a_running_rust_worker() {
    let server = RedisServer::start();
    for venv in venvs() {
        cancel_and_cli_strike_reach_a_running_rust_worker(&server, &venv);
    }
}

fn cancel_and_cli_strike_reach_a_running_rust_worker(server: &RedisServer, venv: &Venv) {
    SLOW_STARTED.lock().unwrap().clear();
    let name = unique_name("live-signals");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let docket = runtime.block_on(pydocket(&server.url(), &name));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = runtime.spawn(docket::Worker::new(&docket).run_until(async {
        let _ = stopped.await;
    }));

    venv.run(PYDOCKET_SLOW, &[&server.url(), &name, "add"], b"");
    wait_for("slow-1 starts", Duration::from_secs(15), || {
        SLOW_STARTED.lock().unwrap().contains(&1)
    });
    let progress = server.command(&["HGETALL", &format!("{name}:progress:slow-1")]);
    let Reply::Array(fields) = progress else {
        panic!("no progress for slow-1: {progress:?}");
    };
    let fields: Vec<String> = fields
        .into_iter()
        .map(|field| match field {
            Reply::Bulk(text) => text,
            other => format!("{other:?}"),
        })
        .collect();
    let field = |name: &str| {
        let at = fields.iter().position(|field| field == name);
        at.and_then(|at| fields.get(at + 1)).cloned()
    };
    assert_eq!(
        (field("current"), field("total"), field("message")),
        (Some("1".into()), Some("60".into()), Some("scanning".into())),
        "pydocket {}: the progress where pydocket reads it",
        venv.version()
    );
    let watched = docket.clone();
    let outcome = runtime.spawn(async move { watched.result::<Value>("slow-1").await });
    venv.run(PYDOCKET_SLOW, &[&server.url(), &name, "cancel"], b"");
    let outcome = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(15), outcome).await })
        .expect("the watch hears the run end")
        .expect("the watch's task");
    assert!(
        matches!(outcome, Err(docket::Error::TaskCancelled { .. })),
        "{outcome:?}"
    );
    let strike = ["strike", "slow_scan", "track_id", "==", "int:2"];
    pydocket_cli(venv, server, &name, &strike);
    std::thread::sleep(Duration::from_millis(500));
    runtime.block_on(async {
        for track in [2, 3] {
            SlowScan::schedule(track)
                .key(format!("slow-{track}"))
                .on(&docket)
                .await
                .expect("schedule from Rust");
        }
    });
    wait_for("slow-3 completed", Duration::from_secs(20), || {
        run_state(server, &name, "slow-3") == "completed"
    });
    let states: Vec<String> = ["slow-1", "slow-2", "slow-3"]
        .map(|key| run_state(server, &name, key))
        .to_vec();
    assert_eq!(
        states,
        ["cancelled", "cancelled", "completed"],
        "pydocket {}",
        venv.version()
    );
    let _ = stop.send(());
    runtime
        .block_on(worker)
        .expect("the worker's task")
        .expect("the worker stops cleanly");
    assert_eq!(
        *SLOW_STARTED.lock().unwrap(),
        [1, 3],
        "pydocket {}: the struck run never started",
        venv.version()
    );
}

/// A recurring Rust task.
#[docket::task(every = "200ms")]
async fn sync_resolutions() {}

/// Prints pydocket's `snapshot()` as JSON: the keys of the tasks waiting and running, and the
/// names of the workers.
const PYDOCKET_SNAPSHOT: &str = r#"
import asyncio, json, sys
from docket import Docket

async def sync_resolutions() -> None: ...

async def main(url, name):
    async with Docket(name=name, url=url) as docket:
        docket.register(sync_resolutions)
        snapshot = await docket.snapshot()
        print(json.dumps({
            "tasks": sorted({e.key for e in snapshot.future} | {r.key for r in snapshot.running}),
            "workers": sorted(w.name for w in snapshot.workers),
        }))

asyncio.run(main(*sys.argv[1:]))
"#;

/// A Rust worker's recurring chain lives in pydocket's format: each run puts the next in its
/// place (the key's generation counts them), and pydocket's `snapshot()` shows the chain's next
/// run and the Rust worker, from its heartbeat.
#[test]
fn a_recurring_rust_chain_shows_in_pydockets_snapshot() {
    let server = RedisServer::start();
    for venv in venvs() {
        recurring_rust_chain_shows_in_pydockets_snapshot(&server, &venv);
    }
}

fn recurring_rust_chain_shows_in_pydockets_snapshot(server: &RedisServer, venv: &Venv) {
    let name = unique_name("chain");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let docket = runtime.block_on(pydocket(&server.url(), &name));
    let worker = docket::Worker::new(&docket);
    let worker_name = worker.id().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = runtime.spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    let generation = || match server.command(&[
        "HGET",
        &format!("{name}:runs:sync_resolutions"),
        "generation",
    ]) {
        Reply::Bulk(generation) => generation.parse::<u64>().unwrap_or(0),
        _ => 0,
    };
    wait_for("three runs of the chain", Duration::from_secs(15), || {
        generation() >= 3
    });
    let snapshot: Value = serde_json::from_str(
        venv.run(PYDOCKET_SNAPSHOT, &[&server.url(), &name], b"")
            .trim(),
    )
    .expect("the snapshot as JSON");
    let _ = stop.send(());
    runtime
        .block_on(running)
        .expect("the worker's task")
        .expect("the worker stops cleanly");
    assert!(
        snapshot["tasks"]
            .as_array()
            .is_some_and(|tasks| tasks.contains(&json!("sync_resolutions"))),
        "{snapshot}"
    );
    assert!(
        snapshot["workers"]
            .as_array()
            .is_some_and(|workers| workers.contains(&json!(worker_name))),
        "{snapshot}"
    );
}

/// The pydocket protocol is Redis on one server: `memory://` and a cluster are refused when
/// opened, and what pydocket does not keep (snapshots in docket's form) is an
/// [`Error::Unsupported`](docket::Error::Unsupported) naming it, not an empty answer.
#[test]
fn what_the_pydocket_protocol_cannot_do_is_an_error() {
    use docket::{Docket, Error, Protocol};

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        for url in ["memory://", "redis+cluster://127.0.0.1:1,127.0.0.1:2"] {
            let error = Docket::connect(url)
                .protocol(Protocol::Pydocket)
                .await
                .expect_err("refused");
            assert!(matches!(error, Error::Config(_)), "{url}: {error}");
        }
        // Nothing listens there: these fail before any command is sent.
        let docket = Docket::connect("redis://127.0.0.1:1")
            .protocol(Protocol::Pydocket)
            .await
            .expect("opened lazily");
        let error = docket.snapshot().await.expect_err("no snapshot");
        assert!(
            matches!(
                error,
                Error::Unsupported {
                    protocol: "pydocket",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("docket snapshot"), "{error}");
    });
}
