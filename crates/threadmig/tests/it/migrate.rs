//! Reliability of `threadmig migrate` (issue 9): a migration over an HTTP server injecting
//! 429s, 5xx and dropped connections ends `migrated_verified`; a migration SIGKILLed at random
//! points during apply and re-run ends in the same thread data as an uninterrupted one; and no
//! admin token or Clerk secret reaches any file, log line or output of a whole flow.
//!
//! The scenarios are functions of a [`GenSpec`], so `bench/migrate.sh` runs the same code on a
//! `medium` org (the ignored `figures` test) and prints what they measured.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use instant_api::AppAuth;
use instant_local::engine::LocalEngine;
use instant_local::store::{Store, DATABASE_FILE};
use serde_json::Value;

use crate::{copy_dir, env_or, temp_dir, workspace_root};

/// Set in the environment of every command: it must never come out anywhere.
const FAKE_CLERK_SECRET: &str = "sk_test_threadmigFAKEclerkSECRETnotForUse0123456789";

/// The target schema pushed by these migrations, relative to a fleet's folder.
const SCHEMA_FILE: &str = "app/instant.schema.ts";

/// What `threadmig gen` makes for a scenario.
#[derive(Debug, Clone)]
pub struct GenSpec {
    pub preset: String,
    pub seed: u64,
    /// `--orgs` (default: the preset's).
    pub orgs: Option<u32>,
    /// `--roles`; the first org is the one migrated, so it leads with `clean`.
    pub roles: String,
    /// `--events` (default: the preset's).
    pub events: Option<u32>,
    /// `--content` (default: the preset's).
    pub content: Option<String>,
}

/// One small org (about 400 legacy rows): enough batches to kill between, seconds per run.
fn ci_spec() -> GenSpec {
    GenSpec {
        preset: "small".into(),
        seed: 11,
        orgs: Some(1),
        roles: "clean".into(),
        events: Some(60),
        content: Some("lean".into()),
    }
}

/// What one run of the binary produced.
#[derive(Debug, Clone)]
struct Output {
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|error| {
            panic!(
                "{}: stdout is not JSON ({error}): {}",
                self.args, self.stdout
            )
        })
    }

    fn expect_code(self, codes: &[i32]) -> Output {
        assert!(
            codes.contains(&self.code),
            "threadmig {} exited {} (expected {codes:?})\nstdout: {}\nstderr: {}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_threadmig"));
    command
        .args(args)
        .current_dir(dir)
        .env("CLERK_SECRET_KEY", FAKE_CLERK_SECRET)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// Runs `threadmig args` in `dir` with the fake Clerk secret in its environment.
fn run(dir: &Path, args: &[&str]) -> Output {
    let output = command(dir, args).output().expect("running threadmig");
    Output {
        args: args.join(" "),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A thread-ready application repository, as the gates want it: the route, a component and a
/// lib on `@ekairos/thread` with a reactor, and a schema with the six thread namespaces. The
/// schema is thread V1 plus the link the Esolbay app declares next to the thread domain
/// (data-model §2.2): the generated events link WhatsApp messages, and the migration re-creates
/// those links on `thread_items`, which thread V1 alone does not declare.
fn thread_ready_repo(root: &Path) {
    write(
        &root.join("src/app/api/sales/agent/route.ts"),
        "import { createThread } from \"@ekairos/thread\";\n\
         export const POST = createThread({}).reactor(createAiReactor()).handler;\n",
    );
    write(
        &root.join("src/components/ekairos/agent/Chat.tsx"),
        "import { useThread } from \"@ekairos/thread/react\";\n\
         export const Chat = () => useThread({ reactor: null });\n",
    );
    write(
        &root.join("src/lib/q.ts"),
        "export const q = { thread_threads: { thread_items: {} } };\n",
    );
    let thread_v1 = std::fs::read_to_string(
        workspace_root().join("crates/instant-schema/schemas/thread-v1.ts"),
    )
    .unwrap();
    let entities = "  entities: {\n";
    let links_end = "  },\n  rooms: {},";
    assert_eq!(
        thread_v1.matches(entities).count(),
        1,
        "thread-v1.ts changed"
    );
    assert_eq!(
        thread_v1.matches(links_end).count(),
        1,
        "thread-v1.ts changed"
    );
    let schema = thread_v1
        .replacen(
            entities,
            &format!("{entities}    whatsapp_messages: i.entity({{}}),\n"),
            1,
        )
        .replacen(
            links_end,
            &format!(
                "    threadItemsWhatsappMessages: {{\n      \
                 forward: {{ on: \"thread_items\", has: \"many\", label: \"whatsappMessages\" }},\n      \
                 reverse: {{ on: \"whatsapp_messages\", has: \"many\", label: \"threadItems\" }},\n    \
                 }},\n{links_end}"
            ),
            1,
        );
    write(&root.join("instant.schema.ts"), &schema);
}

/// A generated fleet in its own folder (`ws/`, `app/`, `artifacts/`), planned up to the matrix,
/// so `migrate` of its first org has every gate input.
struct Fleet {
    dir: PathBuf,
    org: String,
    app_id: String,
    /// Every command run on it, for the secret check.
    outputs: Vec<Output>,
}

impl Fleet {
    fn generate(name: &str, spec: &GenSpec) -> Fleet {
        let dir = temp_dir(&format!("migrate-{name}"));
        let seed = spec.seed.to_string();
        let mut args = vec![
            "--json",
            "gen",
            "--preset",
            &spec.preset,
            "--seed",
            &seed,
            "--roles",
            &spec.roles,
            "--workspace",
            "ws",
        ];
        let orgs = spec.orgs.map(|n| n.to_string());
        if let Some(orgs) = &orgs {
            args.extend(["--orgs", orgs]);
        }
        let events = spec.events.map(|n| n.to_string());
        if let Some(events) = &events {
            args.extend(["--events", events]);
        }
        if let Some(content) = &spec.content {
            args.extend(["--content", content]);
        }
        let gen = run(&dir, &args).expect_code(&[0]);
        let first = gen.json()["orgs"][0].clone();
        assert_eq!(first["role"], "clean", "{}", gen.stdout);
        let mut fleet = Fleet {
            org: first["orgId"].as_str().unwrap().to_string(),
            app_id: first["appId"].as_str().unwrap().to_string(),
            dir,
            outputs: vec![gen],
        };
        thread_ready_repo(&fleet.dir.join("app"));
        fleet.run(&["--json", "scan", "--repo", "app"], &[0]);
        fleet.run(&["--json", "model-plan", "--repo", "app"], &[0]);
        // Exit 1 when another org of the fleet is not safe; the migrated org's row must be.
        fleet.run(
            &[
                "--json",
                "matrix",
                "--workspace",
                "ws",
                "--schema-file",
                SCHEMA_FILE,
            ],
            &[0, 1],
        );
        let matrix = read_json(
            &fleet
                .dir
                .join("artifacts/reports/schema-plan-org-matrix.json"),
        );
        let row = matrix["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["org"]["id"] == fleet.org.as_str())
            .expect("the org's matrix row");
        assert_eq!(row["plan"]["gate"], "safe", "{row}");
        fleet
    }

    /// A copy of `template` (workspace, repository and reports, before any migration), for a
    /// scenario that must start from the same apps without generating them again.
    fn copy_of(template: &Fleet, name: &str) -> Fleet {
        let dir = temp_dir(&format!("migrate-{name}"));
        copy_dir(&template.dir, &dir);
        Fleet {
            dir,
            org: template.org.clone(),
            app_id: template.app_id.clone(),
            outputs: Vec::new(),
        }
    }

    fn ws(&self) -> PathBuf {
        self.dir.join("ws")
    }

    /// Runs a command in the fleet's folder, expecting one of `codes`; kept for the secret check.
    fn run(&mut self, args: &[&str], codes: &[i32]) -> Output {
        let output = run(&self.dir, args).expect_code(codes);
        self.outputs.push(output.clone());
        output
    }

    /// `migrate --org <the clean org> --run-id R --batch-size B` plus `extra` (JSON output).
    fn migrate_args(&self, run_id: &str, batch_size: usize, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--json",
            "migrate",
            "--workspace",
            "ws",
            "--org",
            &self.org,
            "--run-id",
            run_id,
            "--schema-file",
            SCHEMA_FILE,
            "--batch-size",
            &batch_size.to_string(),
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    }

    /// Runs `migrate`, expecting exit 0, and returns the org's result object.
    fn migrate(&mut self, run_id: &str, batch_size: usize, extra: &[&str]) -> Value {
        let args = self.migrate_args(run_id, batch_size, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self.run(&args, &[0]);
        let summary = output.json();
        assert_eq!(
            summary["orgs"].as_array().map(Vec::len),
            Some(1),
            "{summary}"
        );
        summary["orgs"][0].clone()
    }

    /// `--dry-run`: the plan's sha256.
    fn dry_run(&mut self, run_id: &str, batch_size: usize, extra: &[&str]) -> String {
        let mut args = vec!["--dry-run"];
        args.extend_from_slice(extra);
        let result = self.migrate(run_id, batch_size, &args);
        assert_eq!(result["status"], "dry_run", "{result}");
        result["planSha256"].as_str().unwrap().to_string()
    }

    fn run_dir(&self, run_id: &str) -> PathBuf {
        self.dir.join("artifacts/runs").join(run_id)
    }

    /// The org app's credentials, from the workspace store.
    fn auth(&self, engine: &LocalEngine) -> AppAuth {
        let token = engine
            .store()
            .app_admin_token(&self.app_id)
            .unwrap()
            .expect("the org's app is in the workspace");
        AppAuth::new(self.app_id.clone(), token)
    }

    /// The content digest of the six thread namespaces of the org's app, read through the
    /// engine (attributes and forward links of every row, independent of row order).
    fn digest(&self) -> migration::apply::ContentDigest {
        let engine = LocalEngine::open(&self.ws()).unwrap();
        let auth = self.auth(&engine);
        let namespaces: Vec<&str> = migration::TargetNamespace::ALL
            .iter()
            .map(|ns| ns.as_str())
            .collect();
        migration::apply::content_digest(&engine, &auth, &namespaces, 500).unwrap()
    }

    /// Every admin token the workspace holds (org apps and the ledger app).
    fn tokens(&self) -> Vec<String> {
        let store = Store::open(&self.ws()).unwrap();
        store
            .apps()
            .unwrap()
            .iter()
            .filter_map(|app| store.app_admin_token(&app.id).unwrap())
            .collect()
    }
}

/// A fleet's folder is kept when the test fails, for the post-mortem.
impl Drop for Fleet {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `verify.result.json` of a run: every invariant passes (and there are some).
fn assert_all_invariants_pass(run_dir: &Path) -> usize {
    let result = read_json(&run_dir.join("04-verify/verify.result.json"));
    assert_eq!(result["ok"], true, "{result}");
    let invariants = result["invariants"].as_array().unwrap();
    assert!(invariants.len() >= 10, "{result}");
    let not_passing: Vec<&Value> = invariants
        .iter()
        .filter(|invariant| invariant["status"] != "pass")
        .collect();
    assert!(not_passing.is_empty(), "{not_passing:?}");
    invariants.len()
}

/// A running `threadmig serve`, killed when dropped; its request log goes to a file.
struct Served {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    url: String,
    log: PathBuf,
}

impl Served {
    fn start(dir: &Path, args: &[&str]) -> Served {
        let log = dir.join(format!("serve-{}.log", std::process::id()));
        let mut child = command(dir, &["serve", "--workspace", "ws", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting threadmig serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        stdout.read_line(&mut url).expect("reading the URL line");
        let url = url.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "serve printed {url:?}"
        );
        Served {
            child,
            _stdout: stdout,
            url,
            log,
        }
    }

    /// Requests served per fault label (`-` for none), from the request log.
    fn faults(&self) -> BTreeMap<String, u64> {
        let log = std::fs::read_to_string(&self.log).unwrap();
        let mut counts = BTreeMap::new();
        for line in log.lines() {
            if let Some(label) = line.rsplit_once(" fault=").map(|(_, label)| label) {
                *counts.entry(label.to_string()).or_insert(0) += 1;
            }
        }
        counts
    }

    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

/// Fault rates of `serve`: about one request in five gets a 429, a 500/503 or a dropped
/// connection (before or after its effect).
pub struct FaultSpec {
    pub seed: u64,
    pub retry_after_secs: u64,
}

pub struct FaultFigures {
    pub dry_run: Duration,
    pub approved_run: Duration,
    /// Requests served per fault label (`-`: none); each faulted one cost the client a retry.
    pub requests: BTreeMap<String, u64>,
    pub status: String,
    pub invariants: usize,
    pub digest: String,
}

fn fault_scenario(fleet: &mut Fleet, faults: &FaultSpec, batch_size: usize) -> FaultFigures {
    let seed = faults.seed.to_string();
    let retry_after = faults.retry_after_secs.to_string();
    let served = Served::start(
        &fleet.dir,
        &[
            "--fault-seed",
            &seed,
            "--fault-429-rate",
            "0.06",
            "--fault-retry-after-secs",
            &retry_after,
            "--fault-5xx-rate",
            "0.06",
            "--fault-drop-rate",
            "0.04",
            "--fault-drop-after-rate",
            "0.04",
        ],
    );
    let http = ["--instant-api-uri", served.url.as_str()];
    let started = Instant::now();
    let sha = fleet.dry_run("faults", batch_size, &http);
    let dry_run = started.elapsed();
    let started = Instant::now();
    let mut approved = http.to_vec();
    approved.extend(["--approve", sha.as_str()]);
    let result = fleet.migrate("faults", batch_size, &approved);
    let approved_run = started.elapsed();
    let requests = served.faults();
    served.stop();
    let status = result["status"].as_str().unwrap_or("?").to_string();
    assert_eq!(status, "migrated_verified", "{result}");
    assert_eq!(result["planSha256"], sha.as_str());
    let invariants = assert_all_invariants_pass(&fleet.run_dir("faults"));
    FaultFigures {
        dry_run,
        approved_run,
        requests,
        status,
        invariants,
        digest: fleet.digest().sha256,
    }
}

// ---------------------------------------------------------------------------------------------
// SIGKILL during apply

/// SplitMix64: the kill points are a function of the seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `low..=high` for picking kill points.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// One kill point: SIGKILL once the journal holds `after_batches` batches (at least one more
/// than when the run started, so the kill lands inside apply), `delay` later.
#[derive(Debug, Clone, Copy)]
struct KillPoint {
    after_batches: u64,
    delay: Duration,
}

/// `kills` points spread over the plan's `batches`: one random point in each of `kills` equal
/// strata of `1..=last`, each with a random delay of up to 3 ms (so a kill lands in a
/// transaction as often as between two). `last` leaves the final batches (a few may be in
/// flight at once) to the run that finishes.
fn kill_points(seed: u64, batches: u64, kills: usize) -> Vec<KillPoint> {
    let last = batches.saturating_sub(1 + migration::apply::DEFAULT_CONCURRENCY as u64);
    assert!(
        last >= 2 * kills as u64,
        "{batches} batches are too few for {kills} kills: use a smaller --batch-size"
    );
    let mut rng = SplitMix(seed);
    let span = last / kills as u64;
    (0..kills as u64)
        .map(|i| KillPoint {
            after_batches: rng.between(1 + i * span, (i + 1) * span),
            delay: Duration::from_micros(rng.between(0, 3_000)),
        })
        .collect()
}

fn journal_lines(journal: &Path) -> u64 {
    match std::fs::read(journal) {
        Ok(bytes) => bytes.iter().filter(|&&byte| byte == b'\n').count() as u64,
        Err(_) => 0,
    }
}

pub struct KillFigures {
    pub batches: u64,
    pub steps: u64,
    /// Journaled batches when each SIGKILL landed (after its delay).
    pub killed_at: Vec<u64>,
    /// Runs of the command: one per kill, and the last that finished.
    pub runs: usize,
    pub total: Duration,
    pub resumed: bool,
    pub digest: migration::apply::ContentDigest,
}

/// Dry run, then `migrate --approve` SIGKILLed at `kills` seeded points during apply and re-run
/// (same run id) until it finishes. Checks the journal holds each batch of the plan exactly once.
fn kill_scenario(fleet: &mut Fleet, seed: u64, kills: usize, batch_size: usize) -> KillFigures {
    let run_id = "killed";
    let sha = fleet.dry_run(run_id, batch_size, &[]);
    let apply_dir = fleet.run_dir(run_id).join("03-apply");
    let plan = read_json(&apply_dir.join("tx-plan.json"));
    let batches = plan["batches"].as_u64().unwrap();
    let steps = plan["steps"].as_u64().unwrap();
    let journal = apply_dir.join("journal.ndjson");
    let args = fleet.migrate_args(run_id, batch_size, &["--approve", &sha]);
    let started = Instant::now();
    let mut killed_at = Vec::new();
    let mut runs = 0;
    for (i, point) in kill_points(seed, batches, kills).into_iter().enumerate() {
        let before = journal_lines(&journal);
        let target = point.after_batches.max(before + 1);
        let log = fleet.dir.join(format!("killed-run-{i}.log"));
        let mut child = command(&fleet.dir, &[])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting threadmig migrate");
        runs += 1;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "migrate ended ({status}) before kill point {i} ({target} of {batches} \
                     batches journaled; {} when it ended): {}",
                    journal_lines(&journal),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if journal_lines(&journal) >= target {
                std::thread::sleep(point.delay);
                child.kill().unwrap(); // SIGKILL on Unix
                let status = child.wait().unwrap();
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt as _;
                    assert_eq!(
                        status.signal(),
                        Some(9),
                        "kill point {i}: migrate ended before the SIGKILL ({status})"
                    );
                }
                let _ = status;
                killed_at.push(journal_lines(&journal));
                break;
            }
            assert!(Instant::now() < deadline, "kill point {i} never reached");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let result = fleet.migrate(run_id, batch_size, &["--approve", &sha]);
    runs += 1;
    let total = started.elapsed();
    assert_eq!(result["status"], "migrated_verified", "{result}");
    assert_eq!(result["planSha256"], sha.as_str());
    assert_all_invariants_pass(&fleet.run_dir(run_id));
    assert_eq!(killed_at.len(), kills);
    assert!(
        killed_at.iter().all(|&journaled| journaled < batches),
        "every kill landed before apply finished: {killed_at:?} of {batches}"
    );
    assert_journal_once_each(&apply_dir, &sha, batches);
    KillFigures {
        batches,
        steps,
        killed_at,
        runs,
        total,
        resumed: result["resumed"] == true,
        digest: fleet.digest(),
    }
}

/// The journal records every batch of the plan exactly once, all for this plan.
fn assert_journal_once_each(apply_dir: &Path, sha: &str, batches: u64) {
    let text = std::fs::read_to_string(apply_dir.join("journal.ndjson")).unwrap();
    assert!(text.ends_with('\n'), "a torn journal line was left behind");
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(entry["plan"], sha, "{line}");
        *seen.entry(entry["batch"].as_u64().unwrap()).or_insert(0) += 1;
    }
    let twice: Vec<(&u64, &usize)> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "batches journaled more than once: {twice:?}"
    );
    let plan_batches: Vec<u64> = std::fs::read_to_string(apply_dir.join("tx-plan.ndjson"))
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok()?["batch"].as_u64())
        .collect();
    assert_eq!(plan_batches.len() as u64, batches);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        plan_batches,
        "the journal holds exactly the plan's batches"
    );
}

/// An uninterrupted in-process migration of a fresh fleet of `spec`: the thread data every
/// interrupted or faulted run of the same fleet must end in.
fn reference_run(fleet: &mut Fleet, batch_size: usize) -> (String, String) {
    let sha = fleet.dry_run("reference", batch_size, &[]);
    let result = fleet.migrate("reference", batch_size, &["--approve", &sha]);
    assert_eq!(result["status"], "migrated_verified", "{result}");
    assert_eq!(result["resumed"], false);
    let digest = fleet.digest();
    for (namespace, digest) in &digest.namespaces {
        assert!(digest.rows > 0, "{namespace} is empty after the migration");
    }
    (sha, digest.sha256)
}

const CI_BATCH_SIZE: usize = 10;

/// The CI reference: (plan sha256 at `CI_BATCH_SIZE`, content digest), computed once.
fn ci_reference() -> &'static (String, String) {
    static REFERENCE: OnceLock<(String, String)> = OnceLock::new();
    REFERENCE
        .get_or_init(|| reference_run(&mut Fleet::generate("reference", &ci_spec()), CI_BATCH_SIZE))
}

#[test]
fn migrate_over_a_faulty_server_ends_migrated_verified_with_the_reference_data() {
    let mut fleet = Fleet::generate("faults", &ci_spec());
    let figures = fault_scenario(
        &mut fleet,
        &FaultSpec {
            seed: 9,
            retry_after_secs: 0,
        },
        CI_BATCH_SIZE,
    );
    assert_eq!(figures.status, "migrated_verified");
    assert!(figures.invariants >= 10);
    let faulted: u64 = figures
        .requests
        .iter()
        .filter(|(label, _)| label.as_str() != "-")
        .map(|(_, n)| n)
        .sum();
    let total: u64 = figures.requests.values().sum();
    for label in ["429", "drop", "drop-after"] {
        assert!(
            figures.requests.get(label).copied().unwrap_or(0) > 0,
            "no {label} was injected: {:?}",
            figures.requests
        );
    }
    assert!(
        figures.requests.get("500").copied().unwrap_or(0)
            + figures.requests.get("503").copied().unwrap_or(0)
            > 0,
        "no 5xx was injected: {:?}",
        figures.requests
    );
    assert!(
        faulted * 10 >= total && faulted * 10 <= total * 3,
        "about a fifth of the requests faulted: {faulted} of {total}"
    );
    assert_eq!(
        figures.digest,
        ci_reference().1,
        "the faulted run's thread data differ from an undisturbed run's"
    );
}

#[test]
fn migrate_killed_during_apply_and_rerun_ends_in_the_same_data_as_an_uninterrupted_run() {
    let mut fleet = Fleet::generate("killed", &ci_spec());
    let figures = kill_scenario(&mut fleet, 0x5EED_0009, 3, CI_BATCH_SIZE);
    eprintln!(
        "killed at journaled batches {:?} of {}",
        figures.killed_at, figures.batches
    );
    assert!(figures.resumed, "the last run continued the journaled plan");
    assert_eq!(figures.runs, 4);
    let (reference_sha, reference_digest) = ci_reference();
    let dry_sha = read_json(&fleet.run_dir("killed").join("03-apply/tx-plan.json"))["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        &dry_sha, reference_sha,
        "the same fleet plans the same bytes"
    );
    assert_eq!(
        &figures.digest.sha256, reference_digest,
        "killed and resumed: {:?}",
        figures.digest.namespaces
    );
}

/// The content of every file under `root`, except the workspace database (which legitimately
/// holds the apps' tokens).
fn files_to_check(root: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_to_check(&path, out);
        } else if !path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(DATABASE_FILE))
        {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
}

#[test]
fn no_token_or_clerk_secret_in_any_artifact_ledger_file_or_output_of_a_whole_flow() {
    let spec = GenSpec {
        preset: "small".into(),
        seed: 5,
        orgs: Some(4),
        roles: "clean,schema-conflict,conversation-orphan,missing-credentials".into(),
        events: Some(60),
        content: Some("lean".into()),
    };
    let mut fleet = Fleet::generate("secrets", &spec);
    fleet.run(&["--json", "env", "check", "--workspace", "ws"], &[0, 1]);
    fleet.run(&["--json", "diagnose"], &[0, 1]);
    fleet.run(&["--json", "runbook"], &[0, 1]);
    let sha = fleet.dry_run("flow", 50, &[]);
    let result = fleet.migrate("flow", 50, &["--approve", &sha]);
    assert_eq!(result["status"], "migrated_verified", "{result}");
    fleet.run(&["--json", "status", "--workspace", "ws"], &[0, 1]);
    fleet.run(&["--json", "status"], &[0, 1]);
    fleet.run(
        &["--json", "registry", "update", "--workspace", "ws"],
        &[0, 1],
    );
    let ledger = fleet.run(&["--json", "ledger", "show", "--workspace", "ws"], &[0]);
    assert!(ledger.stdout.contains("\"flow\""), "{}", ledger.stdout);
    // Over HTTP, through a server injecting faults (retries and their log lines): the matrix
    // again, `schema plan` (which logs the HTTP client's retries) and a dry-run wave over every
    // org, blocked ones included (an org without credentials, a refused plan).
    let served = Served::start(
        &fleet.dir,
        &[
            "--fault-seed",
            "3",
            "--fault-429-rate",
            "0.05",
            "--fault-retry-after-secs",
            "0",
            "--fault-5xx-rate",
            "0.05",
            "--fault-drop-rate",
            "0.05",
        ],
    );
    let (org, app_id) = (fleet.org.clone(), fleet.app_id.clone());
    fleet.run(
        &[
            "schema",
            "plan",
            "--workspace",
            "ws",
            "--org",
            &org,
            "--app-id",
            &app_id,
            "--instant-api-uri",
            &served.url,
            "--schema-file",
            SCHEMA_FILE,
            "--out",
            "artifacts/reports/schema-plan-over-http.json",
            "--instructions-out",
            "artifacts/reports/schema-plan-over-http.md",
        ],
        &[0, 1],
    );
    fleet.run(
        &[
            "--json",
            "matrix",
            "--workspace",
            "ws",
            "--instant-api-uri",
            &served.url,
            "--schema-file",
            SCHEMA_FILE,
            "--out",
            "artifacts/reports/matrix-over-http.json",
            "--out-md",
            "artifacts/reports/matrix-over-http.md",
        ],
        &[0, 1],
    );
    let matrix = read_json(&fleet.dir.join("artifacts/reports/matrix-over-http.json"));
    let org_ids: Vec<String> = matrix["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["org"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(org_ids.len(), 4);
    let wave = fleet.run(
        &[
            "--json",
            "migrate",
            "--workspace",
            "ws",
            "--instant-api-uri",
            &served.url,
            "--org-ids",
            &org_ids.join(","),
            "--run-id",
            "wave",
            "--schema-file",
            SCHEMA_FILE,
            "--dry-run",
            "--continue-on-error",
        ],
        &[0, 1],
    );
    let statuses: Vec<String> = wave.json()["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|org| org["status"].as_str().unwrap().to_string())
        .collect();
    assert!(statuses.contains(&"blocked".to_string()), "{statuses:?}");
    assert!(statuses.contains(&"dry_run".to_string()), "{statuses:?}");
    let faulted = served
        .faults()
        .iter()
        .filter(|(label, _)| label.as_str() != "-")
        .map(|(_, n)| n)
        .sum::<u64>();
    assert!(faulted > 0, "the server injected faults");
    let serve_log = served.stop();

    let tokens = fleet.tokens();
    assert!(
        tokens.len() >= 4,
        "three org apps and the ledger app: {}",
        tokens.len()
    );
    assert!(fleet.ws().join("ledger.json").is_file());
    let mut files = Vec::new();
    files_to_check(&fleet.dir, &mut files);
    assert!(
        files.len() > 50,
        "the flow wrote its artifacts: {}",
        files.len()
    );
    let mut texts: Vec<(String, String)> = files
        .into_iter()
        .map(|(path, bytes)| {
            (
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        })
        .collect();
    for output in &fleet.outputs {
        texts.push((format!("stdout of {}", output.args), output.stdout.clone()));
        texts.push((format!("stderr of {}", output.args), output.stderr.clone()));
    }
    texts.push(("the serve request log".into(), serve_log));
    let secrets: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .chain([FAKE_CLERK_SECRET])
        .collect();
    // The check itself finds a secret, in any letter case.
    let planted = vec![(
        "planted".to_string(),
        format!("x{}x", tokens[0].to_ascii_uppercase()),
    )];
    assert_eq!(leaks(&planted, &secrets).len(), 1);
    let leaks = leaks(&texts, &secrets);
    assert!(leaks.is_empty(), "{leaks:#?}");
}

/// `<source> holds <secret prefix>…` for every secret found in a text, in any letter case.
fn leaks(texts: &[(String, String)], secrets: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (source, text) in texts {
        let lower = text.to_ascii_lowercase();
        for secret in secrets {
            if lower.contains(&secret.to_ascii_lowercase()) {
                found.push(format!("{source} holds {}…", &secret[..8]));
            }
        }
    }
    found
}

/// With the default target schema (thread V1 alone), an org whose events link WhatsApp messages
/// cannot be migrated: the transform re-creates those links on `thread_items`
/// (`txplan::ESOLBAY_ITEM_LABELS`), which thread V1 does not declare. The rehearsal catches it
/// (nothing reaches the target), but the reason is the engine's `Attributes are missing in your
/// schema` for some batch, which names neither the label nor the fix (a schema declaring the
/// Esolbay links, data-model §2.2). Either the org migrates, or the reason names the label.
#[test]
#[ignore = "bug: the default --schema-file blocks an org with WhatsApp-linked events at the \
            rehearsal with an opaque `Attributes are missing in your schema` (see the doc comment)"]
fn default_schema_and_whatsapp_links_migrate_or_name_the_missing_label() {
    let mut fleet = Fleet::generate("default-schema", &ci_spec());
    let org = fleet.org.clone();
    let output = fleet.run(
        &[
            "--json",
            "migrate",
            "--workspace",
            "ws",
            "--org",
            &org,
            "--run-id",
            "default-schema",
            "--dry-run",
        ],
        &[0, 1],
    );
    let links = std::fs::read_to_string(
        fleet
            .run_dir("default-schema")
            .join("02-transform/links.ndjson"),
    )
    .unwrap();
    assert!(
        links.contains("\"label\":\"whatsappMessages\""),
        "the premise: the plan re-links WhatsApp messages"
    );
    let result = &output.json()["orgs"][0];
    let reason = result["outcome"]["reason"].as_str().unwrap_or("");
    assert!(
        result["status"] == "dry_run" || reason.contains("whatsappMessages"),
        "{result}"
    );
}

/// The plan's sha256 depends on `--batch-size`: approving the hash of a dry run made with
/// another batch size is refused at the approval, nothing is applied, and the reason names
/// the batch size the new plan was built with.
#[test]
fn an_approval_from_a_dry_run_with_another_batch_size_is_refused_naming_it() {
    let mut fleet = Fleet::generate("batch-size", &ci_spec());
    let sha = fleet.dry_run("batch-size", CI_BATCH_SIZE, &[]);
    let args = fleet.migrate_args("batch-size", CI_BATCH_SIZE + 5, &["--approve", &sha]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = fleet.run(&args, &[1]);
    let result = &output.json()["orgs"][0];
    assert_eq!(result["status"], "blocked", "{result}");
    assert_eq!(result["outcome"]["stage"], "approval", "{result}");
    let reason = result["outcome"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("--batch-size {}", CI_BATCH_SIZE + 5)) && reason.contains(&sha),
        "{reason}"
    );
    assert!(!fleet
        .run_dir("batch-size")
        .join("03-apply/journal.ndjson")
        .exists());
}

// ---------------------------------------------------------------------------------------------
// Figures for bench/migrate.sh

/// `name ms, …` per stage of the last `migrate` of a run, from its report.
fn stage_times(fleet: &Fleet, run_id: &str) -> String {
    let report = read_json(&fleet.dir.join(format!(
        "artifacts/reports/migration.{run_id}.{}.json",
        fleet.org
    )));
    report["stages"]
        .as_array()
        .map(|stages| {
            stages
                .iter()
                .map(|stage| {
                    format!(
                        "{} {} ms",
                        stage["name"].as_str().unwrap_or("?"),
                        stage["elapsedMs"]
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `bench/migrate.sh`: the fault and kill scenarios on the first org of a `medium` fleet
/// (environment: MIGRATE_BENCH_PRESET, _SEED, _KILLS, _BATCH, _RETRY_AFTER), with figures.
#[test]
#[ignore = "benchmark: run by bench/migrate.sh in release mode"]
fn figures() {
    let spec = GenSpec {
        preset: env_or("MIGRATE_BENCH_PRESET", "medium".to_string()),
        seed: env_or("MIGRATE_BENCH_SEED", 11),
        orgs: None,
        roles: "clean".into(),
        events: None,
        content: None,
    };
    let kills: usize = env_or("MIGRATE_BENCH_KILLS", 10);
    let batch_size: usize = env_or("MIGRATE_BENCH_BATCH", 500);
    let retry_after: u64 = env_or("MIGRATE_BENCH_RETRY_AFTER", 1);
    println!("fleet: {spec:?}; batch size {batch_size}");

    let started = Instant::now();
    let template = Fleet::generate("bench-template", &spec);
    println!(
        "gen + scan + model-plan + matrix: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut fleet = Fleet::copy_of(&template, "bench-reference");
    let started = Instant::now();
    let (reference_sha, reference_digest) = reference_run(&mut fleet, batch_size);
    println!(
        "uninterrupted, in process (dry run + approved run): {:.1} s; plan {}; thread data {}\n  \
         approved run's stages: {}",
        started.elapsed().as_secs_f64(),
        &reference_sha[..12],
        &reference_digest[..16],
        stage_times(&fleet, "reference")
    );
    drop(fleet);

    let mut fleet = Fleet::copy_of(&template, "bench-faults");
    let faults = fault_scenario(
        &mut fleet,
        &FaultSpec {
            seed: 9,
            retry_after_secs: retry_after,
        },
        batch_size,
    );
    let total: u64 = faults.requests.values().sum();
    let faulted: u64 = total - faults.requests.get("-").copied().unwrap_or(0);
    println!(
        "faults over HTTP: dry run {:.1} s, approved run {:.1} s; {total} requests, {faulted} \
         faulted ({:.1}%, each one a client retry): {:?}; status {}; {} invariants pass; thread \
         data {} the reference",
        faults.dry_run.as_secs_f64(),
        faults.approved_run.as_secs_f64(),
        100.0 * faulted as f64 / total.max(1) as f64,
        faults.requests,
        faults.status,
        faults.invariants,
        if faults.digest == reference_digest {
            "equal to"
        } else {
            "DIFFERENT FROM"
        }
    );
    println!("  approved run's stages: {}", stage_times(&fleet, "faults"));
    assert_eq!(faults.digest, reference_digest);
    drop(fleet);

    let mut fleet = Fleet::copy_of(&template, "bench-killed");
    let killed = kill_scenario(&mut fleet, 0x5EED_0010, kills, batch_size);
    let equal = killed.digest.sha256 == reference_digest;
    println!(
        "SIGKILL during apply: {} kills at journaled batches {:?} of {} ({} steps); {} runs, \
         {:.1} s in all; last run resumed: {}; thread data {} the uninterrupted run's ({})",
        killed.killed_at.len(),
        killed.killed_at,
        killed.batches,
        killed.steps,
        killed.runs,
        killed.total.as_secs_f64(),
        killed.resumed,
        if equal { "equal to" } else { "DIFFERENT FROM" },
        killed
            .digest
            .namespaces
            .iter()
            .map(|(ns, digest)| format!("{ns} {}", digest.rows))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(equal);
}
