//! Durable coupon reservations: martdb embedded (`Coupons::reserve_async`, and
//! `reserve_many_async` of `--batch` requests per call), martdb over the wire
//! (`SELECT reserve_coupon($1, $2, $3)` prepared, and one statement over `range()` of
//! `--batch` rows), against redis-server running a Lua script with the same checks (stock,
//! per-user limit, idempotency key) with `appendfsync always` and with `everysec`, in one
//! run. Every engine is measured by the same code: C concurrent callers, each issuing its
//! next call when the last one answered, for `--seconds`; reservations per second and the
//! latency percentiles of the calls.
//!
//! `scripts/bench-coupons.sh [--seconds S] [--callers 1,16,64] [--batch 1000]
//! [--check-stock 500] [--data DIR] [--keep]` installs redis-server (Debian) when missing
//! and runs this; or `cargo bench --bench coupons -- ...` where redis-server is installed.
//!
//! Data (martdb's data directories, Redis's append-only files) goes under `--data`,
//! default `target/bench-data/coupons-{pid}`, on the disk the repository is on (not a
//! tmpfs: the syncs are real), and is removed at the end unless `--keep`.
//!
//! After the timed runs, each engine gets a check run: a pool with `--check-stock`
//! coupons and a per-user limit of 1, 64 callers racing with more users than stock,
//! repeated users and retried request keys; every engine must reserve exactly the stock,
//! at most one per user, and answer each retried key with the first outcome.

#[path = "args.rs"]
mod args;

/// The allocator the `martdb` binary uses, so that the bench measures what it serves.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use args::{arg, flag, num_arg};
use martdb::Engine;
use martdb::coupons::{Coupons, PoolSettings, ReserveRequest};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Stock of the pool the timed runs reserve from: never sold out.
const BENCH_STOCK: u64 = 1_000_000_000_000;
/// The pool of the timed runs.
const BENCH_POOL: &str = "bench";
/// Callers and calls of the check run.
const CHECK_CALLERS: u64 = 64;
const CHECK_CALLS: u64 = 40;
/// Distinct users of the check run (more than its stock, fewer than its calls).
const CHECK_USERS: u64 = 1000;
/// Hold time of a reservation, as martdb's default (900 s).
const HOLD_MICROS: i64 = 900_000_000;

/// The Redis side: one atomic script with martdb's checks and records.
///
/// KEYS: the pool's stock counter, the user's hold counter, the request key's record, the
/// pool's expiry index. ARGV: the per-user limit, the pool, the user, the hold time in µs.
///
/// As martdb: a request key keeps its first outcome (refusals too) and names one (pool,
/// user); a reservation decrements the stock, counts against the user's limit, records
/// (outcome, pool, user, created, expires) and enters the expiry index.
const LUA: &str = r#"
local first = redis.call('HMGET', KEYS[3], 'outcome', 'pool', 'user')
if first[1] then
  if first[2] ~= ARGV[2] or first[3] ~= ARGV[3] then
    return redis.error_reply('KEY_REUSED request key was first used for another pool or user')
  end
  return 'duplicate:' .. first[1]
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local outcome = 'reserved'
if tonumber(redis.call('GET', KEYS[1]) or '0') <= 0 then
  outcome = 'sold_out'
elseif tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[1]) then
  outcome = 'user_limit'
end
local created = string.format('%d', now)
if outcome == 'reserved' then
  local expires = string.format('%d', now + tonumber(ARGV[4]))
  redis.call('DECR', KEYS[1])
  redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[4], expires, KEYS[3])
  redis.call('HSET', KEYS[3], 'outcome', outcome, 'pool', ARGV[2], 'user', ARGV[3],
    'created', created, 'expires', expires)
else
  redis.call('HSET', KEYS[3], 'outcome', outcome, 'pool', ARGV[2], 'user', ARGV[3],
    'created', created)
end
return outcome
"#;

// ---------------------------------------------------------------------------------------
// Redis: the server process and a minimal RESP client

/// A RESP reply (only the kinds the bench meets).
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Text(String),
    Int(i64),
    Nil,
    Error(String),
}

impl Reply {
    fn text(self) -> String {
        match self {
            Reply::Text(t) => t,
            other => panic!("redis: expected a string, got {other:?}"),
        }
    }
}

/// One Redis connection speaking RESP2.
struct Resp {
    stream: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl Resp {
    async fn connect(port: u16) -> std::io::Result<Resp> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Resp {
            stream: BufReader::new(stream),
            out: Vec::with_capacity(4096),
            line: Vec::with_capacity(128),
        })
    }

    /// Appends one command to the output buffer.
    fn push(&mut self, args: &[&[u8]]) {
        write!(self.out, "*{}\r\n", args.len()).unwrap();
        for a in args {
            write!(self.out, "${}\r\n", a.len()).unwrap();
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.stream.get_mut().write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    async fn read(&mut self) -> std::io::Result<Reply> {
        self.line.clear();
        self.stream.read_until(b'\n', &mut self.line).await?;
        if self.line.len() < 3 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "redis closed the connection",
            ));
        }
        let body = String::from_utf8_lossy(&self.line[1..self.line.len() - 2]).into_owned();
        let number = || {
            body.parse::<i64>()
                .unwrap_or_else(|e| panic!("redis: bad length {body:?}: {e}"))
        };
        Ok(match self.line[0] {
            b'+' => Reply::Text(body),
            b'-' => Reply::Error(body),
            b':' => Reply::Int(number()),
            b'$' => {
                let n = number();
                if n < 0 {
                    Reply::Nil
                } else {
                    let mut buf = vec![0; n as usize + 2];
                    self.stream.read_exact(&mut buf).await?;
                    buf.truncate(n as usize);
                    Reply::Text(String::from_utf8(buf).expect("redis: utf-8 reply"))
                }
            }
            other => panic!("redis: reply type {:?} not handled", other as char),
        })
    }

    async fn call(&mut self, args: &[&[u8]]) -> Reply {
        self.push(args);
        self.flush().await.expect("redis: write");
        match self.read().await.expect("redis: read") {
            Reply::Error(e) => panic!("redis: {e}"),
            reply => reply,
        }
    }

    fn push_reserve(&mut self, sha: &str, pool: &str, user: &str, key: &str) {
        let stock = format!("{pool}:stock");
        let held = format!("{pool}:held:{user}");
        let request = format!("req:{key}");
        let expiries = format!("{pool}:expiries");
        let hold = HOLD_MICROS.to_string();
        self.push(&[
            b"EVALSHA",
            sha.as_bytes(),
            b"4",
            stock.as_bytes(),
            held.as_bytes(),
            request.as_bytes(),
            expiries.as_bytes(),
            b"1",
            pool.as_bytes(),
            user.as_bytes(),
            hold.as_bytes(),
        ]);
    }
}

/// A redis-server process on a free port, data in its own directory.
struct RedisServer {
    child: Child,
    port: u16,
    version: String,
}

impl RedisServer {
    async fn start(dir: &Path, appendfsync: &str) -> RedisServer {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_addr().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", dir.to_str().unwrap()])
            .args(["--appendonly", "yes", "--appendfsync", appendfsync])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .args(["--logfile", dir.join("redis.log").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server (scripts/bench-coupons.sh installs it: apt-get \
                     install redis-server): {e}"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut server = RedisServer {
            child,
            port,
            version: String::new(),
        };
        loop {
            if let Ok(mut c) = Resp::connect(port).await
                && c.call(&[b"PING"]).await == Reply::Text("PONG".into())
            {
                let info = c.call(&[b"INFO", b"server"]).await.text();
                server.version = info
                    .lines()
                    .find_map(|l| l.strip_prefix("redis_version:"))
                    .unwrap_or("?")
                    .trim()
                    .to_string();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {port}; see {}",
                dir.join("redis.log").display()
            );
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "redis-server exited ({status}); see {}",
                    dir.join("redis.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    async fn client(&self) -> Resp {
        Resp::connect(self.port).await.expect("connect to redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// martdb over the wire: the `martdb serve` process

struct MartdbServer {
    child: Child,
    addr: SocketAddr,
}

impl MartdbServer {
    async fn start(dir: &Path) -> MartdbServer {
        std::fs::create_dir_all(dir).unwrap();
        let addr = free_addr();
        let log = std::fs::File::create(dir.with_extension("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_martdb"))
            .args(["serve", "--data", dir.to_str().unwrap()])
            .args(["--listen", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start martdb serve");
        let mut server = MartdbServer { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.try_client().await.is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "martdb serve exited ({status}); see {}",
                    dir.with_extension("log").display()
                );
            }
            assert!(Instant::now() < deadline, "martdb serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    async fn try_client(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let config = format!(
            "host={} port={} user=martdb dbname=martdb",
            self.addr.ip(),
            self.addr.port()
        );
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn client(&self) -> tokio_postgres::Client {
        self.try_client().await.expect("connect to martdb serve")
    }

    /// One text value from a query over the simple protocol.
    async fn value(&self, sql: &str) -> String {
        let client = self.client().await;
        let messages = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).unwrap_or("NULL").to_string())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }
}

impl Drop for MartdbServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// One caller's connection to an engine

const RESERVE_SQL: &str = "SELECT reserve_coupon($1::text, $2::text, $3::text)";

enum Client {
    Embedded(Coupons),
    Wire {
        client: tokio_postgres::Client,
        reserve: tokio_postgres::Statement,
    },
    Redis {
        conn: Resp,
        sha: Arc<str>,
    },
}

impl Client {
    async fn wire(server: &MartdbServer) -> Client {
        let client = server.client().await;
        let reserve = client.prepare(RESERVE_SQL).await.expect("prepare");
        Client::Wire { client, reserve }
    }

    async fn redis(server: &RedisServer, sha: &Arc<str>) -> Client {
        Client::Redis {
            conn: server.client().await,
            sha: sha.clone(),
        }
    }

    /// One reserve call.
    async fn reserve_one(&mut self, pool: &str, user: &str, key: &str) -> String {
        match self {
            Client::Embedded(coupons) => coupons
                .reserve_async(pool, user, key)
                .await
                .expect("reserve_async")
                .to_string(),
            Client::Wire { client, reserve } => client
                .query_one(&*reserve, &[&pool, &user, &key])
                .await
                .expect("reserve_coupon over the wire")
                .get(0),
            Client::Redis { conn, sha } => {
                conn.push_reserve(sha, pool, user, key);
                conn.flush().await.expect("redis: write");
                match conn.read().await.expect("redis: read") {
                    Reply::Text(t) => t,
                    other => panic!("redis EVALSHA: {other:?}"),
                }
            }
        }
    }

    /// Users `first .. first + count` (as text; the request key is `k` and the user),
    /// in one call: `reserve_many_async`, one statement over `range()`, a pipeline of
    /// EVALSHA. A count of 1 is [`reserve_one`](Self::reserve_one).
    async fn reserve(&mut self, pool: &str, first: u64, count: u64) -> Vec<String> {
        if count == 1 {
            let user = first.to_string();
            return vec![self.reserve_one(pool, &user, &format!("k{user}")).await];
        }
        match self {
            Client::Embedded(coupons) => {
                let requests = (first..first + count)
                    .map(|n| ReserveRequest {
                        pool: pool.to_string(),
                        user_id: n.to_string(),
                        request_key: format!("k{n}"),
                    })
                    .collect();
                coupons
                    .reserve_many_async(requests)
                    .await
                    .expect("reserve_many_async")
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            }
            Client::Wire { client, .. } => {
                let sql = format!(
                    "SELECT reserve_coupon('{pool}', CAST(value AS TEXT), 'k' || CAST(value AS TEXT)) \
                     FROM range({first}, {})",
                    first + count
                );
                client
                    .simple_query(&sql)
                    .await
                    .expect("reserve_coupon over range()")
                    .iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => {
                            Some(row.get(0).unwrap_or("NULL").to_string())
                        }
                        _ => None,
                    })
                    .collect()
            }
            Client::Redis { conn, sha } => {
                for n in first..first + count {
                    let user = n.to_string();
                    conn.push_reserve(sha, pool, &user, &format!("k{user}"));
                }
                conn.flush().await.expect("redis: write");
                let mut out = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    match conn.read().await.expect("redis: read") {
                        Reply::Text(t) => out.push(t),
                        other => panic!("redis EVALSHA: {other:?}"),
                    }
                }
                out
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Measurement

/// Device and CPU counters, read before and after a run.
#[derive(Clone, Copy)]
struct Counters {
    flushes: Option<u64>,
    /// CPU ticks of the engine's server process (None when embedded).
    server_ticks: Option<u64>,
    /// CPU ticks of this process (the callers; embedded, also the engine).
    own_ticks: u64,
}

struct Probe {
    /// The block device's name in /proc/diskstats.
    device: Option<String>,
    server_pid: Option<u32>,
    tick_hz: f64,
}

impl Probe {
    fn read(&self) -> Counters {
        Counters {
            flushes: self.device.as_deref().and_then(device_flushes),
            server_ticks: self.server_pid.map(|pid| cpu_ticks(&pid.to_string())),
            own_ticks: cpu_ticks("self"),
        }
    }
}

/// The whole disk (not a partition) `dir` is on, as named in /proc/diskstats.
fn block_device(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let disk = if sys.join("partition").exists() {
        sys.parent()?.to_path_buf()
    } else {
        sys
    };
    Some(disk.file_name()?.to_string_lossy().into_owned())
}

/// Flush requests the device has completed (the 18th field of /proc/diskstats after the
/// name; kernels from 5.5).
fn device_flushes(device: &str) -> Option<u64> {
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    stats.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&device))
            .then(|| fields.get(3 + 15)?.parse().ok())
            .flatten()
    })
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; here, after "pid (comm)", 11 and 12.
    field(11) + field(12)
}

fn tick_hz() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One timed run: an engine, a mode, a number of callers.
struct Point {
    engine: String,
    /// Key of the Redis `appendfsync always` line this one is compared with.
    family: &'static str,
    callers: u64,
    per_call: u64,
    calls: u64,
    seconds: f64,
    /// Latency of each call in µs, sorted.
    latencies: Vec<u32>,
    outcomes: BTreeMap<String, u64>,
    flushes: Option<u64>,
    server_cpu: Option<f64>,
    own_cpu: f64,
}

impl Point {
    fn reservations(&self) -> u64 {
        self.outcomes.get("reserved").copied().unwrap_or(0)
    }

    fn rate(&self) -> f64 {
        self.calls as f64 * self.per_call as f64 / self.seconds
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank =
            ((p * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1] as f64 / 1e3
    }
}

/// Ids of the timed runs: each run, caller and call gets its own users and keys.
struct Ids {
    run: u64,
}

impl Ids {
    fn next_base(&mut self) -> u64 {
        self.run += 1;
        self.run * 1_000_000_000_000
    }
}

/// Runs `clients.len()` callers for `seconds`, each reserving `per_call` fresh users per
/// call, one call after the other.
#[allow(clippy::too_many_arguments)]
async fn drive(
    engine: &str,
    family: &'static str,
    clients: Vec<Client>,
    pool: &str,
    per_call: u64,
    seconds: f64,
    ids: &mut Ids,
    probe: &Probe,
) -> Point {
    let callers = clients.len() as u64;
    let base = ids.next_base();
    let before = probe.read();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let pool = pool.to_string();
            let mut next = base + i as u64 * 1_000_000_000;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let answers = client.reserve(&pool, next, per_call).await;
                    latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    assert_eq!(answers.len() as u64, per_call, "one answer per request");
                    for a in answers {
                        *outcomes.entry(a).or_default() += 1;
                    }
                    next += per_call;
                }
                (latencies, outcomes)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let (l, o) = task.await.expect("caller");
        latencies.extend(l);
        for (k, v) in o {
            *outcomes.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = probe.read();
    latencies.sort_unstable();
    let cpu = |a: u64, b: u64| (b - a) as f64 / probe.tick_hz / elapsed;
    Point {
        engine: engine.to_string(),
        family,
        callers,
        per_call,
        calls: latencies.len() as u64,
        seconds: elapsed,
        latencies,
        outcomes,
        flushes: after.flushes.zip(before.flushes).map(|(a, b)| a - b),
        server_cpu: after
            .server_ticks
            .zip(before.server_ticks)
            .map(|(a, b)| cpu(b, a)),
        own_cpu: cpu(before.own_ticks, after.own_ticks),
    }
}

// ---------------------------------------------------------------------------------------
// The check run: more demand than stock, repeated users, retried keys

/// Every answer, by request key: (user, outcome).
type Answers = BTreeMap<String, Vec<(String, String)>>;

async fn check_run(clients: Vec<Client>, pool: &str) -> Answers {
    let answers: Arc<Mutex<Answers>> = Arc::default();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, mut client)| {
            let pool = pool.to_string();
            let answers = answers.clone();
            tokio::spawn(async move {
                let c = c as u64;
                for i in 0..CHECK_CALLS {
                    // Every fifth call retries the key before it.
                    let n = if i % 5 == 4 { i - 1 } else { i };
                    let user = ((c * CHECK_CALLS + n) * 7919 % CHECK_USERS).to_string();
                    let key = format!("{pool}-{c}-{n}");
                    let outcome = client.reserve_one(&pool, &user, &key).await;
                    answers
                        .lock()
                        .unwrap()
                        .entry(key)
                        .or_default()
                        .push((user, outcome));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("check caller");
    }
    Arc::try_unwrap(answers).unwrap().into_inner().unwrap()
}

/// Checks the answers of a check run; returns how many were reserved (by the callers'
/// answers), or what is wrong.
fn check_answers(answers: &Answers, stock: u64) -> Result<u64, String> {
    let mut reserved_by_user: HashMap<&str, u64> = HashMap::new();
    let mut users: HashMap<&str, ()> = HashMap::new();
    for (key, seen) in answers {
        let decided: Vec<&(String, String)> = seen
            .iter()
            .filter(|(_, o)| !o.starts_with("duplicate:"))
            .collect();
        if decided.len() != 1 {
            return Err(format!(
                "key {key} was decided {} times: {seen:?}",
                decided.len()
            ));
        }
        let (user, outcome) = decided[0];
        if !["reserved", "sold_out", "user_limit"].contains(&outcome.as_str()) {
            return Err(format!("key {key}: unexpected outcome {outcome}"));
        }
        for (_, o) in seen {
            if o != outcome && *o != format!("duplicate:{outcome}") {
                return Err(format!("key {key}: {o} after {outcome}"));
            }
        }
        users.insert(user, ());
        if outcome == "reserved" {
            *reserved_by_user.entry(user).or_default() += 1;
        }
    }
    if let Some((user, n)) = reserved_by_user.iter().find(|(_, n)| **n > 1) {
        return Err(format!("user {user} got {n} coupons, the limit is 1"));
    }
    let reserved: u64 = reserved_by_user.values().sum();
    let expected = stock.min(users.len() as u64);
    if reserved != expected {
        return Err(format!(
            "{reserved} reserved, expected {expected} (stock {stock}, {} users)",
            users.len()
        ));
    }
    Ok(reserved)
}

/// One line of the check summary.
struct Check {
    engine: String,
    result: Result<String, String>,
}

fn check_line(engine: &str, answers: &Answers, stock: u64, engine_reserved: u64) -> Check {
    let calls: usize = answers.values().map(Vec::len).sum();
    let result = check_answers(answers, stock).and_then(|reserved| {
        if engine_reserved != reserved {
            return Err(format!(
                "the callers were told {reserved} reserved, the engine counts {engine_reserved}"
            ));
        }
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for seen in answers.values() {
            for (_, o) in seen {
                *counts.entry(o.as_str()).or_default() += 1;
            }
        }
        Ok(format!(
            "{calls} calls, {} keys: reserved == stock == {reserved} (engine counts \
             {engine_reserved}); {}",
            answers.len(),
            counts
                .iter()
                .map(|(o, n)| format!("{o} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    });
    Check {
        engine: engine.to_string(),
        result,
    }
}

/// Totals of the timed runs: what the callers were told against what the engine counts.
struct Total {
    engine: String,
    told: u64,
    counted: u64,
    other: BTreeMap<String, u64>,
}

fn total(engine: &str, points: &[Point], counted: u64) -> Total {
    let mut other = BTreeMap::new();
    for p in points.iter().filter(|p| p.engine.starts_with(engine)) {
        for (k, v) in &p.outcomes {
            if k != "reserved" {
                *other.entry(k.clone()).or_default() += v;
            }
        }
    }
    Total {
        engine: engine.to_string(),
        told: points
            .iter()
            .filter(|p| p.engine.starts_with(engine))
            .map(Point::reservations)
            .sum(),
        counted,
        other,
    }
}

// ---------------------------------------------------------------------------------------
// The disk alone

/// fdatasync of 4 KiB writes, one after the other, for a second: what one caller that
/// waits for its own sync can get at most. `append`: each write extends the file (as an
/// append-only file does); otherwise it overwrites the same block (as redb's commits
/// write into the space the file already has).
fn disk_baseline(dir: &Path, device: Option<&str>, append: bool) -> (f64, Option<f64>) {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-baseline");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![7u8; 4096];
    file.write_all(&block).unwrap();
    file.sync_all().unwrap();
    let before = device.and_then(device_flushes);
    let started = Instant::now();
    let mut syncs = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        if append {
            file.write_all(&block).unwrap();
        } else {
            file.write_all_at(&block, 0).unwrap();
        }
        file.sync_data().unwrap();
        syncs += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = device.and_then(device_flushes);
    drop(file);
    let _ = std::fs::remove_file(&path);
    let per_sync = after
        .zip(before)
        .map(|(a, b)| (a - b) as f64 / syncs as f64);
    (syncs as f64 / elapsed, per_sync)
}

// ---------------------------------------------------------------------------------------
// Output

fn print_header() {
    println!(
        "{:<44} {:>7} {:>12} {:>9} {:>9} {:>10} {:>10} {:>9} {:>8} {:>8}",
        "engine / mode",
        "callers",
        "reserv./s",
        "p50 ms",
        "p99 ms",
        "vs always",
        "flushes/s",
        "res/flush",
        "srv cpu",
        "bench cpu"
    );
}

fn print_point(p: &Point, always: Option<&Point>) {
    let ratio = always.map_or("-".to_string(), |a| format!("{:.2}x", p.rate() / a.rate()));
    let flushes = p
        .flushes
        .map_or("-".to_string(), |f| format!("{:.0}", f as f64 / p.seconds));
    let per_flush = p.flushes.map_or("-".to_string(), |f| {
        if f == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", p.reservations() as f64 / f as f64)
        }
    });
    let pct = |c: f64| format!("{:.0}%", c * 100.0);
    println!(
        "{:<44} {:>7} {:>12.0} {:>9.2} {:>9.2} {:>10} {:>10} {:>9} {:>8} {:>8}",
        p.engine,
        p.callers,
        p.rate(),
        p.percentile_ms(0.50),
        p.percentile_ms(0.99),
        ratio,
        flushes,
        per_flush,
        p.server_cpu.map_or("-".to_string(), pct),
        pct(p.own_cpu),
    );
}

fn goal(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

fn parse_callers() -> Vec<u64> {
    arg("--callers")
        .unwrap_or_else(|| "1,16,64".into())
        .split(',')
        .map(|c| c.trim().parse().expect("--callers: numbers like 1,16,64"))
        .collect()
}

/// An engine under test, set up once and kept running for the whole bench, so that the
/// engines take turns at each line (the disk's speed drifts over minutes on shared
/// machines; taking turns keeps the ratios fair).
enum Target {
    Embedded {
        // Keeps the database open.
        _engine: Engine,
        coupons: Coupons,
    },
    Wire(MartdbServer),
    Redis {
        server: RedisServer,
        sha: Arc<str>,
        fsync: &'static str,
    },
}

impl Target {
    /// The engine's name: the prefix of its lines.
    fn name(&self) -> String {
        match self {
            Target::Embedded { .. } => "martdb embedded".into(),
            Target::Wire(_) => "martdb wire".into(),
            Target::Redis { fsync, .. } => format!("redis {fsync}"),
        }
    }

    fn label(&self, family: &str, batch_mode: &str) -> String {
        let how = match (self, family) {
            (Target::Embedded { .. }, "single") => "reserve_async".to_string(),
            (Target::Embedded { .. }, _) => format!("reserve_many_async {batch_mode}"),
            (Target::Wire(_), "single") => "reserve_coupon($1,$2,$3)".to_string(),
            (Target::Wire(_), _) => format!("reserve_coupon over range() {batch_mode}"),
            (Target::Redis { .. }, "single") => "EVALSHA".to_string(),
            (Target::Redis { .. }, _) => format!("EVALSHA pipeline {batch_mode}"),
        };
        format!("{} {how}", self.name())
    }

    fn server_pid(&self) -> Option<u32> {
        match self {
            Target::Embedded { .. } => None,
            Target::Wire(server) => Some(server.child.id()),
            Target::Redis { server, .. } => Some(server.child.id()),
        }
    }

    async fn clients(&self, n: u64) -> Vec<Client> {
        let mut clients = Vec::new();
        for _ in 0..n {
            clients.push(match self {
                Target::Embedded { coupons, .. } => Client::Embedded(coupons.clone()),
                Target::Wire(server) => Client::wire(server).await,
                Target::Redis { server, sha, .. } => Client::redis(server, sha).await,
            });
        }
        clients
    }

    /// A pool with `stock` coupons and a per-user limit of 1.
    async fn create_pool(&self, pool: &str, stock: u64) {
        match self {
            Target::Embedded { coupons, .. } => {
                let settings = PoolSettings {
                    per_user_limit: Some(1),
                    ..PoolSettings::default()
                };
                coupons
                    .create_pool_async(pool, stock, &settings)
                    .await
                    .expect("create pool");
            }
            Target::Wire(server) => {
                server
                    .value(&format!(
                        "SELECT create_coupon_pool('{pool}', {stock}, '{{\"per_user_limit\": 1}}')"
                    ))
                    .await;
            }
            Target::Redis { server, .. } => {
                let key = format!("{pool}:stock");
                server
                    .client()
                    .await
                    .call(&[b"SET", key.as_bytes(), stock.to_string().as_bytes()])
                    .await;
            }
        }
    }

    /// Coupons of `pool` (created with `stock`) reserved, as the engine counts them.
    async fn reserved(&self, pool: &str, stock: u64) -> u64 {
        match self {
            Target::Embedded { coupons, .. } => {
                let pools = coupons.pools().expect("pools");
                let info = pools.iter().find(|p| p.name == pool).expect("the pool");
                info.reserved
            }
            Target::Wire(server) => server
                .value(&format!(
                    "SELECT CAST(reserved AS TEXT) FROM martdb.coupon_pools WHERE pool = '{pool}'"
                ))
                .await
                .parse()
                .expect("reserved"),
            Target::Redis { server, .. } => {
                let key = format!("{pool}:stock");
                let mut admin = server.client().await;
                let left: u64 = admin
                    .call(&[b"GET", key.as_bytes()])
                    .await
                    .text()
                    .parse()
                    .expect("stock");
                stock - left
            }
        }
    }

    /// The engine's own consistency check after the check run: martdb's reconcile (the
    /// counters against a recount), Redis's expiry index against the stock taken.
    async fn consistent(&self, pool: &str, reserved: u64) -> Result<String, String> {
        match self {
            Target::Embedded { coupons, .. } => match coupons.reconcile() {
                Ok(r) if r.iter().all(|r| r.balanced()) => {
                    Ok("reconcile: counters == recount".into())
                }
                other => Err(format!("reconcile: {other:?}")),
            },
            Target::Wire(_) => Ok(String::new()),
            Target::Redis { server, .. } => {
                let key = format!("{pool}:expiries");
                let mut admin = server.client().await;
                match admin.call(&[b"ZCARD", key.as_bytes()]).await {
                    Reply::Int(n) if n as u64 == reserved => Ok(format!("expiry index holds {n}")),
                    other => Err(format!(
                        "expiry index: {other:?}, {reserved} taken from stock"
                    )),
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let seconds = arg("--seconds").map_or(5.0, |s| s.parse::<f64>().expect("--seconds"));
    let callers = parse_callers();
    let batch = num_arg("--batch", 1000);
    let check_stock = num_arg("--check-stock", 500);
    let keep = flag("--keep");
    let engines = arg("--engines").unwrap_or_else(|| "embedded,wire,redis".into());
    let want = |engine: &str| engines.split(',').any(|e| e.trim() == engine);
    assert!(
        check_stock < CHECK_USERS && CHECK_USERS < CHECK_CALLERS * CHECK_CALLS,
        "--check-stock must be below {CHECK_USERS} (the check run's users)"
    );
    let data = PathBuf::from(arg("--data").unwrap_or_else(|| {
        format!(
            "{}/target/bench-data/coupons-{}",
            env!("CARGO_MANIFEST_DIR"),
            std::process::id()
        )
    }));
    if data.exists() {
        std::fs::remove_dir_all(&data).unwrap();
    }
    std::fs::create_dir_all(&data).unwrap();
    let device = block_device(&data);
    let mut probe = Probe {
        device: device.clone(),
        server_pid: None,
        tick_hz: tick_hz(),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let disk_before = (
        disk_baseline(&data, device.as_deref(), true),
        disk_baseline(&data, device.as_deref(), false),
    );
    let batch_mode = format!("x{batch}");

    // --- every engine up, with the pool of the timed runs and one warm-up call --------
    let mut targets: Vec<Target> = Vec::new();
    if want("embedded") {
        eprintln!("starting martdb embedded ...");
        let engine = Engine::open(data.join("embedded").to_str().unwrap())
            .await
            .expect("open the embedded engine");
        let coupons = engine.coupons().clone();
        targets.push(Target::Embedded {
            _engine: engine,
            coupons,
        });
    }
    if want("wire") {
        eprintln!("starting martdb serve ...");
        targets.push(Target::Wire(MartdbServer::start(&data.join("wire")).await));
    }
    let mut redis_version = String::new();
    if want("redis") {
        for fsync in ["always", "everysec"] {
            eprintln!("starting redis-server, appendfsync {fsync} ...");
            let server = RedisServer::start(&data.join(format!("redis-{fsync}")), fsync).await;
            redis_version = server.version.clone();
            let sha: Arc<str> = server
                .client()
                .await
                .call(&[b"SCRIPT", b"LOAD", LUA.as_bytes()])
                .await
                .text()
                .into();
            targets.push(Target::Redis { server, sha, fsync });
        }
    }
    for t in &targets {
        t.create_pool(BENCH_POOL, BENCH_STOCK).await;
        let mut warm = t.clients(1).await.remove(0);
        assert_eq!(
            warm.reserve_one(BENCH_POOL, "warm", "warm").await,
            "reserved",
            "{}: warm-up",
            t.name()
        );
    }

    // --- the timed runs: the engines take turns at each line ---------------------------
    let mut ids = Ids { run: 0 };
    let mut points: Vec<Point> = Vec::new();
    for &c in &callers {
        for (family, per_call) in [("single", 1), ("batch", batch)] {
            for t in &targets {
                let label = t.label(family, &batch_mode);
                eprintln!("{label}, {c} callers ...");
                probe.server_pid = t.server_pid();
                let clients = t.clients(c).await;
                points.push(
                    drive(
                        &label, family, clients, BENCH_POOL, per_call, seconds, &mut ids, &probe,
                    )
                    .await,
                );
            }
        }
    }
    let disk_after = (
        disk_baseline(&data, device.as_deref(), true),
        disk_baseline(&data, device.as_deref(), false),
    );

    // --- what each engine counts, and the check runs ------------------------------------
    let mut totals: Vec<Total> = Vec::new();
    let mut checks: Vec<Check> = Vec::new();
    for t in &targets {
        let name = t.name();
        // The warm-up reservation is not in the points.
        let counted = t.reserved(BENCH_POOL, BENCH_STOCK).await - 1;
        totals.push(total(&name, &points, counted));

        eprintln!("{name}: check run ...");
        let pool = format!("check-{}", name.replace(' ', "-"));
        t.create_pool(&pool, check_stock).await;
        let answers = check_run(t.clients(CHECK_CALLERS).await, &pool).await;
        let counted = t.reserved(&pool, check_stock).await;
        let mut check = check_line(&name, &answers, check_stock, counted);
        if let Ok(text) = &mut check.result {
            match t.consistent(&pool, counted).await {
                Ok(more) if more.is_empty() => {}
                Ok(more) => text.push_str(&format!("; {more}")),
                Err(e) => check.result = Err(e),
            }
        }
        checks.push(check);
    }
    drop(targets);

    // --- report ---------------------------------------------------------------------------
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "?".into());
    println!();
    println!(
        "martdb coupon reservations vs Redis {redis_version} + Lua, {seconds} s per line, \
         {threads} cores ({cpu})"
    );
    let disk = |((append, flushes), (overwrite, _)): ((f64, Option<f64>), (f64, Option<f64>))| {
        format!(
            "{append:.0}/s appending ({:.2} ms each{}), {overwrite:.0}/s overwriting ({:.2} ms \
             each)",
            1e3 / append,
            flushes.map_or(String::new(), |f| format!(", {f:.2} device flushes each")),
            1e3 / overwrite,
        )
    };
    println!(
        "data: {} on /dev/{}; the disk alone, one 4 KiB write + fdatasync after the other: \
         before the timed runs {}; after them {}",
        data.display(),
        device.as_deref().unwrap_or("?"),
        disk(disk_before),
        disk(disk_after),
    );
    println!(
        "martdb: {} (one journal append + fdatasync per group of callers); Redis: appendonly \
         yes, save '', appendfsync always or everysec, other settings default",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "each call reserves fresh users (per-user limit 1, stock never runs out); a caller \
         sends its next call when the last one answered; {batch_mode}: {batch} reservations \
         per call, latency per call"
    );
    println!(
        "vs always = reservations/s / Redis appendfsync always's at the same callers and mode \
         (> 1: faster than Redis); flushes/s: the disk's completed flush requests (all \
         processes); res/flush: reservations per flush; cpu: of one core"
    );
    println!();
    print_header();
    for &c in &callers {
        for family in ["single", "batch"] {
            let always = points.iter().find(|p| {
                p.engine.starts_with("redis always") && p.callers == c && p.family == family
            });
            for p in points
                .iter()
                .filter(|p| p.callers == c && p.family == family)
            {
                print_point(p, always);
            }
        }
        println!();
    }

    let mut ok = true;
    println!("totals of the timed runs (answers 'reserved' against the engine's own count):");
    for t in &totals {
        let good = t.told == t.counted && t.other.is_empty();
        ok &= good;
        println!(
            "  {:<18} told {} reserved, engine counts {}{}  {}",
            t.engine,
            t.told,
            t.counted,
            if t.other.is_empty() {
                String::new()
            } else {
                format!(", other answers {:?}", t.other)
            },
            if good { "ok" } else { "WRONG" }
        );
    }
    println!(
        "check runs (stock {check_stock}, per-user limit 1, {CHECK_CALLERS} callers x \
         {CHECK_CALLS} calls over {CHECK_USERS} users, every fifth call a retried key):"
    );
    for c in &checks {
        match &c.result {
            Ok(text) => println!("  {:<18} ok: {text}", c.engine),
            Err(e) => {
                ok = false;
                println!("  {:<18} WRONG: {e}", c.engine);
            }
        }
    }

    let best = |prefix: &str, family: &str| {
        points
            .iter()
            .filter(|p| p.engine.starts_with(prefix) && p.family == family)
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))
    };
    println!();
    if let (Some(single), Some(batched)) = (
        best("martdb embedded", "single"),
        best("martdb embedded", "batch"),
    ) {
        println!(
            "goal: at least 100k durable reservations/s embedded: {} one call per reservation \
             ({:.0}/s at {} callers); {} with {batch_mode} calls ({:.0}/s at {} callers)",
            goal(single.rate() >= 100_000.0),
            single.rate(),
            single.callers,
            goal(batched.rate() >= 100_000.0),
            batched.rate(),
            batched.callers,
        );
    }
    for engine in ["martdb embedded", "martdb wire"] {
        let line: Vec<String> = callers
            .iter()
            .filter_map(|&c| {
                let find = |prefix: &str| {
                    points.iter().find(|p| {
                        p.engine.starts_with(prefix) && p.callers == c && p.family == "single"
                    })
                };
                let (m, r) = (find(engine)?, find("redis always")?);
                Some(format!(
                    "{c} callers {} ({:.2}x)",
                    goal(m.rate() >= r.rate()),
                    m.rate() / r.rate()
                ))
            })
            .collect();
        println!(
            "goal: {engine} no slower than Redis appendfsync always, one call per \
             reservation: {}",
            line.join(", ")
        );
    }

    if keep {
        println!("kept {}", data.display());
    } else {
        let _ = std::fs::remove_dir_all(&data);
    }
    assert!(
        ok,
        "an engine reserved other than it should (see WRONG above)"
    );
}
