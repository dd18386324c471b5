//! Sustained apply throughput through the HTTP adapter against the engine served over HTTP
//! with added latency, and proof that the adapter's per-app rate limit holds.
//!
//! C worker threads share one adapter (so one per-app limiter) and send transacts of B
//! `update` steps each for a fixed time. With L ms of latency per request, the ceiling is
//! B × C / L steps per second; the figure reported is the share of it reached. Arrivals are
//! timestamped where the engine receives them (after the injected latency), and counted per
//! one-second window, aligned and sliding, against the configured rate.
//!
//! Usage: http_bench [--batch B] [--concurrency C] [--latency-ms L] [--rps R|0] [--seconds S]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_api::http::{HttpInstantApi, ResilienceConfig};
use instant_api::{
    ApiError, AppAuth, EphemeralAppRequest, EphemeralAppResponse, IndexingJobResponse,
    IndexingJobsResponse, InstantApi, PermsPullResponse, QueryRequest, SchemaApplyResponse,
    SchemaPlanResponse, SchemaPullResponse, SchemaPushRequest, StepsApplyRequest, TransactRequest,
    TransactResponse,
};
use instant_local::engine::LocalEngine;
use instant_local::server::faults::FaultConfig;
use instant_local::server::{spawn, RequestLog, ServerConfig};
use serde_json::{json, Value};

/// The engine, with the arrival time of every transact recorded.
struct Timed {
    engine: LocalEngine,
    arrivals: Mutex<Vec<Instant>>,
}

impl InstantApi for Timed {
    fn query(&self, auth: &AppAuth, request: &QueryRequest) -> Result<Value, ApiError> {
        self.engine.query(auth, request)
    }
    fn transact(
        &self,
        auth: &AppAuth,
        request: &TransactRequest,
    ) -> Result<TransactResponse, ApiError> {
        self.arrivals.lock().unwrap().push(Instant::now());
        self.engine.transact(auth, request)
    }
    fn schema_pull(&self, auth: &AppAuth) -> Result<SchemaPullResponse, ApiError> {
        self.engine.schema_pull(auth)
    }
    fn schema_plan(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaPlanResponse, ApiError> {
        self.engine.schema_plan(auth, request)
    }
    fn schema_push(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.engine.schema_push(auth, request)
    }
    fn schema_steps_apply(
        &self,
        auth: &AppAuth,
        request: &StepsApplyRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.engine.schema_steps_apply(auth, request)
    }
    fn perms_pull(&self, auth: &AppAuth) -> Result<PermsPullResponse, ApiError> {
        self.engine.perms_pull(auth)
    }
    fn indexing_job_group(
        &self,
        auth: &AppAuth,
        group_id: &str,
    ) -> Result<IndexingJobsResponse, ApiError> {
        self.engine.indexing_job_group(auth, group_id)
    }
    fn indexing_job(&self, auth: &AppAuth, job_id: &str) -> Result<IndexingJobResponse, ApiError> {
        self.engine.indexing_job(auth, job_id)
    }
    fn create_ephemeral_app(
        &self,
        request: &EphemeralAppRequest,
    ) -> Result<EphemeralAppResponse, ApiError> {
        self.engine.create_ephemeral_app(request)
    }
}

struct Options {
    batch: usize,
    concurrency: usize,
    latency_ms: u64,
    rps: f64,
    seconds: f64,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        batch: 100,
        concurrency: 8,
        latency_ms: 50,
        rps: 200.0,
        seconds: 10.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: not a number: {value}");
        match flag.as_str() {
            "--batch" => options.batch = value.parse().map_err(|_| bad())?,
            "--concurrency" => options.concurrency = value.parse().map_err(|_| bad())?,
            "--latency-ms" => options.latency_ms = value.parse().map_err(|_| bad())?,
            "--rps" => options.rps = value.parse().map_err(|_| bad())?,
            "--seconds" => options.seconds = value.parse().map_err(|_| bad())?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if options.batch == 0 || options.concurrency == 0 || options.latency_ms == 0 {
        return Err("--batch, --concurrency and --latency-ms must be positive".into());
    }
    Ok(options)
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("http_bench: {message}");
            std::process::exit(2);
        }
    };
    let workspace = tempfile::tempdir().expect("a temporary directory");
    let timed = Arc::new(Timed {
        engine: LocalEngine::open(workspace.path()).expect("the workspace opens"),
        arrivals: Mutex::new(Vec::new()),
    });
    let server = spawn(
        timed.clone(),
        ServerConfig {
            faults: FaultConfig {
                latency: Duration::from_millis(options.latency_ms),
                path_prefixes: vec!["/admin/transact".into()],
                ..FaultConfig::default()
            },
            log: RequestLog::Off,
            ..ServerConfig::default()
        },
    )
    .expect("the server starts");
    let api = HttpInstantApi::new(
        &server.url(),
        ResilienceConfig {
            max_concurrency: options.concurrency,
            max_requests_per_second: (options.rps > 0.0).then_some(options.rps),
            ..ResilienceConfig::default()
        },
    )
    .expect("the adapter builds");
    let auth = api
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "http bench".into(),
            schema: None,
            rules: None,
        })
        .expect("an app")
        .app
        .auth();
    let batch_steps = |batch: usize| -> Vec<Value> {
        (0..options.batch)
            .map(|i| {
                let n = batch * options.batch + i;
                let id = format!("00000000-0000-4000-8000-{n:012x}");
                json!(["update", "items", id, {"title": format!("item {n}"), "n": n}])
            })
            .collect()
    };
    // Creates the attributes, and is left out of the measurement.
    api.transact(
        &auth,
        &TransactRequest {
            steps: batch_steps(0),
            throw_on_missing_attrs: false,
        },
    )
    .expect("the warm-up batch lands");
    timed.arrivals.lock().unwrap().clear();

    let next_batch = AtomicUsize::new(1);
    let done_batches = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(options.seconds);
    std::thread::scope(|scope| {
        for _ in 0..options.concurrency {
            scope.spawn(|| {
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let batch = next_batch.fetch_add(1, Ordering::Relaxed);
                    let request = TransactRequest {
                        steps: batch_steps(batch),
                        throw_on_missing_attrs: false,
                    };
                    match api.transact(&auth, &request) {
                        Ok(_) => {
                            done_batches.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            eprintln!("http_bench: transact failed: {error}");
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let batches = done_batches.load(Ordering::Relaxed);
    let steps = batches * options.batch;
    let throughput = steps as f64 / elapsed;
    let ceiling =
        (options.batch * options.concurrency) as f64 / (options.latency_ms as f64 / 1000.0);
    let rate_ceiling = if options.rps > 0.0 {
        ceiling.min(options.rps * options.batch as f64)
    } else {
        ceiling
    };

    let mut arrivals = timed.arrivals.lock().unwrap().clone();
    arrivals.sort();
    let first = arrivals.first().copied().unwrap_or(started);
    let mut aligned: Vec<usize> = Vec::new();
    for at in &arrivals {
        let window = at.duration_since(first).as_secs() as usize;
        if aligned.len() <= window {
            aligned.resize(window + 1, 0);
        }
        aligned[window] += 1;
    }
    let max_aligned = aligned.iter().copied().max().unwrap_or(0);
    let mut max_sliding = 0;
    let mut tail = 0;
    for head in 0..arrivals.len() {
        while arrivals[head].duration_since(arrivals[tail]) >= Duration::from_secs(1) {
            tail += 1;
        }
        max_sliding = max_sliding.max(head - tail + 1);
    }
    let limit = (options.rps > 0.0).then_some(options.rps);
    let within = limit.is_none_or(|rps| max_aligned as f64 <= rps);
    let report = json!({
        "batch": options.batch,
        "concurrency": options.concurrency,
        "latencyMs": options.latency_ms,
        "rpsLimit": limit,
        "seconds": elapsed,
        "requests": batches,
        "steps": steps,
        "stepsPerSecond": throughput.round(),
        "ceilingStepsPerSecond": ceiling.round(),
        "shareOfCeiling": (throughput / ceiling * 1000.0).round() / 1000.0,
        "shareOfRateBoundCeiling": (throughput / rate_ceiling * 1000.0).round() / 1000.0,
        "requestsPerSecondWindowsAligned": aligned,
        "maxRequestsInAnAlignedSecond": max_aligned,
        "maxRequestsInAnySlidingSecond": max_sliding,
        "rateLimitHeldAligned": within,
    });
    println!("{report}");
    eprintln!(
        "B={} C={} L={}ms limit={}: {steps} steps in {elapsed:.2}s = {throughput:.0} steps/s, \
         {:.1}% of B*C/L = {ceiling:.0}; max requests per aligned second {max_aligned}, \
         per sliding second {max_sliding}",
        options.batch,
        options.concurrency,
        options.latency_ms,
        limit.map_or("none".to_string(), |rps| format!("{rps}/s")),
        throughput / ceiling * 100.0,
    );
    drop(server);
    if stop.load(Ordering::Relaxed) {
        std::process::exit(1);
    }
}
