//! Engine benchmark through the `InstantApi` port, in-process, on a file-backed workspace
//! (SQLite in WAL mode, as `threadmig serve` runs it). Run by `bench/engine.sh`.
//!
//! 1. Writes: batched transacts of `BENCH_BATCH` `update` steps (5 attributes each, one
//!    indexed) into a fresh app, `BENCH_WRITE_ENTITIES` entities; entity writes per second
//!    (wall clock, request building included), the same inside `transact` alone, and the
//!    writer thread's CPU time (user and system) and time spent waiting for a CPU: on a shared
//!    machine the wall-clock figure moves with the load.
//! 2. Reads: the namespace is filled up to `BENCH_QUERY_ENTITIES` entities, then
//!    `BENCH_QUERIES` queries by the indexed attribute (`where` equality, one entity each);
//!    median and p95 latency.
//! 3. Peak RSS (`VmHWM`).
//!
//! `BENCH_DIR` keeps the workspace in a given directory instead of a temporary one;
//! `BENCH_SQLITE_PRAGMAS` runs extra PRAGMAs on the engine's connection and `BENCH_PAGE_SIZE`
//! creates the database with another page size (tuning experiments).

use std::time::{Duration, Instant};

use instant_api::{
    AppAuth, EphemeralAppRequest, InstantApi, QueryRequest, SchemaPushRequest, TransactRequest,
};
use instant_local::engine::LocalEngine;
use serde_json::{json, Value};

const ETYPE: &str = "bench_items";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {text:?}")),
        Err(_) => default,
    }
}

fn data_attr(value_type: &str, indexed: bool) -> Value {
    json!({"valueType": value_type, "required": false, "isIndexed": indexed,
           "config": {"indexed": indexed, "unique": false}, "metadata": {}})
}

/// One namespace: `key` (string, indexed) is what the read phase queries by.
fn bench_schema() -> Value {
    json!({
        "entities": {ETYPE: {"attrs": {
            "key": data_attr("string", true),
            "title": data_attr("string", false),
            "score": data_attr("number", false),
            "done": data_attr("boolean", false),
            "payload": data_attr("json", false),
        }, "links": {}}},
        "links": {},
        "rooms": {}
    })
}

/// A deterministic, well-spread id for entity `n` (UUIDv4 layout), like the random ids real
/// apps have. `BENCH_SEQUENTIAL_IDS=1` makes ids grow with `n` instead, which shows how much of
/// the write cost is B-tree page scatter. (Written by the uuid crate: formatting the fields
/// with `format!` cost the client as much as some of the engine's work it measures.)
fn entity_id(n: usize) -> String {
    static SEQUENTIAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // Version 4 and variant 8, `n` in the low 48 bits.
    let (version, variant, low) = (0x4 << 76, 0x8 << 60, n as u128 & 0xffff_ffff_ffff);
    if *SEQUENTIAL.get_or_init(|| std::env::var("BENCH_SEQUENTIAL_IDS").is_ok_and(|v| v == "1")) {
        // `00000000-0000-4000-8000-nnnnnnnnnnnn`
        return uuid::Uuid::from_u128(version | variant | low).to_string();
    }
    // `mmmmmmmm-mmmm-4nnn-8nnn-nnnnnnnnnnnn`: 48 mixed bits, then two 12-bit fields of `n`.
    let mixed = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B;
    let fields = ((((n >> 24) & 0xfff) as u128) << 64) | ((((n >> 12) & 0xfff) as u128) << 48);
    uuid::Uuid::from_u128(((mixed as u128 >> 16) << 80) | version | variant | fields | low)
        .to_string()
}

fn update_step(n: usize) -> Value {
    json!(["update", ETYPE, entity_id(n), {
        "key": format!("item-{n}"),
        "title": format!("Item number {n}"),
        "score": (n % 1000) as f64 / 10.0,
        "done": n % 3 == 0,
        "payload": {"n": n, "tags": ["a", "b"]},
    }])
}

/// This thread's time on a CPU and waiting for one, from `/proc/thread-self/schedstat`: on a
/// shared machine the wall-clock rate moves with the load; the on-CPU time does much less.
fn thread_sched() -> Option<(Duration, Duration)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text
        .split_whitespace()
        .map(|field| field.parse::<u64>().ok());
    Some((
        Duration::from_nanos(fields.next()??),
        Duration::from_nanos(fields.next()??),
    ))
}

/// This thread's user and system CPU time, from `/proc/thread-self/stat` (clock ticks of
/// 10 ms): the system part is mostly the WAL writes.
fn thread_user_system() -> Option<(Duration, Duration)> {
    let text = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised name: state is the 3rd field, utime the 14th.
    let mut fields = text
        .get(text.rfind(')')? + 2..)?
        .split_whitespace()
        .skip(11);
    let mut ticks = || fields.next()?.parse::<u64>().ok();
    let (user, system) = (ticks()?, ticks()?);
    Some((
        Duration::from_millis(user * 10),
        Duration::from_millis(system * 10),
    ))
}

/// Writes entities `from..to` in batches; returns the time spent inside `transact`. Each
/// request is built between transacts, on the engine's thread, so that the wall-clock figure
/// also carries the cost of making the steps.
fn write_range(
    engine: &LocalEngine,
    auth: &AppAuth,
    from: usize,
    to: usize,
    batch: usize,
) -> Duration {
    let mut in_transact = Duration::ZERO;
    let mut start = from;
    while start < to {
        let end = (start + batch).min(to);
        let request = TransactRequest {
            steps: (start..end).map(update_step).collect(),
            throw_on_missing_attrs: false,
        };
        let began = Instant::now();
        engine
            .transact(auth, &request)
            .unwrap_or_else(|error| panic!("transact of entities {start}..{end} failed: {error}"));
        in_transact += began.elapsed();
        start = end;
    }
    in_transact
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `VmHWM` (peak) or `VmRSS` (current) from `/proc/self/status`, in MiB.
fn status_mib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let write_entities = env_usize("BENCH_WRITE_ENTITIES", 200_000);
    let query_entities = env_usize("BENCH_QUERY_ENTITIES", 1_000_000).max(write_entities);
    let queries = env_usize("BENCH_QUERIES", 200).max(1);
    let batch = env_usize("BENCH_BATCH", 500).max(1);

    let temp;
    let dir = match std::env::var_os("BENCH_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            temp = tempfile::tempdir().expect("a temporary directory");
            temp.path().to_path_buf()
        }
    };
    // What-if for the store's page size: the database file is created with it before the
    // engine opens it (a page size only takes effect when a database is created).
    if let Ok(size) = std::env::var("BENCH_PAGE_SIZE") {
        let conn = rusqlite::Connection::open(dir.join(instant_local::store::DATABASE_FILE))
            .expect("the database file opens");
        conn.execute_batch(&format!("PRAGMA page_size = {size}; VACUUM;"))
            .expect("the page size is set");
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .expect("WAL mode");
        println!("page size: {size}");
    }
    let engine = LocalEngine::open(&dir).expect("the workspace opens");
    println!("workspace: {}", dir.display());
    // What-if measurements for tuning the store: extra PRAGMAs on the engine's connection,
    // e.g. BENCH_SQLITE_PRAGMAS="PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 10000;".
    if let Ok(pragmas) = std::env::var("BENCH_SQLITE_PRAGMAS") {
        engine
            .store()
            .conn()
            .execute_batch(&pragmas)
            .unwrap_or_else(|error| panic!("BENCH_SQLITE_PRAGMAS {pragmas:?}: {error}"));
        println!("extra pragmas: {pragmas}");
    }

    let app = engine
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "engine bench".into(),
            schema: None,
            rules: None,
        })
        .expect("an app");
    let auth = app.app.auth();
    engine
        .schema_push(
            &auth,
            &SchemaPushRequest {
                schema: bench_schema(),
                check_types: true,
                supports_background_updates: true,
            },
        )
        .expect("the bench schema pushes");

    // 1. Writes into a fresh app.
    let sched_before = thread_sched();
    let times_before = thread_user_system();
    let began = Instant::now();
    let in_transact = write_range(&engine, &auth, 0, write_entities, batch);
    let wall = began.elapsed();
    let sched = thread_sched()
        .zip(sched_before)
        .map(|((cpu, wait), (cpu0, wait0))| (cpu - cpu0, wait - wait0));
    let times = thread_user_system()
        .zip(times_before)
        .map(|((user, system), (user0, system0))| (user - user0, system - system0));
    let rate = write_entities as f64 / wall.as_secs_f64();
    println!(
        "writes: {write_entities} entities in {} transacts of {batch} update steps (5 attrs, 1 indexed): \
         {:.2} s, {:.0} entities/s (target >= 50000){}",
        write_entities.div_ceil(batch),
        wall.as_secs_f64(),
        rate,
        if rate >= 50_000.0 { "" } else { "  TARGET MISSED" }
    );
    println!(
        "        mean transact of {batch} steps: {:.1} ms ({:.0} entities/s inside transact); RSS now {:.0} MiB",
        ms(in_transact) / write_entities.div_ceil(batch).max(1) as f64,
        write_entities as f64 / in_transact.as_secs_f64(),
        status_mib("VmRSS:").unwrap_or(0.0)
    );
    if let (Some((cpu, wait)), Some((user, system))) = (sched, times) {
        println!(
            "        writer thread: {:.2} s on CPU ({:.0} entities/s of CPU; user {:.2} s, system {:.2} s), \
             {:.2} s waiting for a CPU",
            cpu.as_secs_f64(),
            write_entities as f64 / cpu.as_secs_f64(),
            user.as_secs_f64(),
            system.as_secs_f64(),
            wait.as_secs_f64()
        );
    }

    // 2. Fill up to the query size, then query by the indexed attribute.
    if query_entities > write_entities {
        let began = Instant::now();
        write_range(&engine, &auth, write_entities, query_entities, batch);
        let fill = began.elapsed();
        println!(
            "fill:   {} more entities up to {query_entities}: {:.1} s, {:.0} entities/s",
            query_entities - write_entities,
            fill.as_secs_f64(),
            (query_entities - write_entities) as f64 / fill.as_secs_f64()
        );
        println!(
            "        RSS now {:.0} MiB",
            status_mib("VmRSS:").unwrap_or(0.0)
        );
    }
    let mut latencies = Vec::with_capacity(queries);
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..queries {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed % query_entities as u64) as usize;
        let request = QueryRequest {
            query: json!({ETYPE: {"$": {"where": {"key": format!("item-{n}")}}}}),
            inference: false,
        };
        let began = Instant::now();
        let result = engine.query(&auth, &request).expect("query");
        latencies.push(began.elapsed());
        let found = result[ETYPE].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(found, 1, "query for item-{n} returned {result}");
        assert_eq!(result[ETYPE][0]["id"], entity_id(n));
    }
    latencies.sort();
    let (median, p95) = (percentile(&latencies, 0.5), percentile(&latencies, 0.95));
    println!(
        "query:  {queries} queries by the indexed `key` (where equality, 1 of {query_entities} entities): \
         median {:.3} ms, p95 {:.3} ms, max {:.3} ms (target < 10 ms){}",
        ms(median),
        ms(p95),
        ms(*latencies.last().unwrap()),
        if ms(p95) < 10.0 { "" } else { "  TARGET MISSED" }
    );

    // 3. Memory and disk.
    match status_mib("VmHWM:") {
        Some(mib) => println!("memory: peak RSS {mib:.0} MiB"),
        None => println!("memory: peak RSS unavailable (no /proc/self/status)"),
    }
    let disk: u64 = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0);
    println!("disk:   workspace {} MiB", disk / 1024 / 1024);
}
