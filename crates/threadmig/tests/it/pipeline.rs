//! `threadmig pipeline --mode planning` and `threadmig validate` end to end on a generated
//! fleet (`threadmig gen --pipeline-fleet`: clean, schema-conflict, conversation-orphan,
//! missing-credentials) with a thread-ready application repository: the step list, statuses
//! and exit codes, the reports pinned by sha256, validation of each org, errors before any
//! step, and never a token or a write on the target.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use instant_api::{AppAuth, InstantApi, QueryRequest};
use instant_local::engine::LocalEngine;
use migration::evidence::sha256_file;
use org_directory::{CredentialsOutcome, OrgDirectory};
use serde_json::{json, Value};

use crate::{copy_dir, temp_dir, threadmig, Run};

/// The generated fleet, the repository and the target schema, made once and copied per test.
struct Template {
    dir: PathBuf,
    /// (org id, role) in generation order.
    orgs: Vec<(String, String)>,
}

impl Template {
    fn org(&self, role: &str) -> String {
        self.orgs
            .iter()
            .find(|(_, r)| r == role)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no {role} org"))
    }
}

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = temp_dir("pipeline-template");
        let generated = threadmig(
            &[
                "gen",
                "--preset",
                "small",
                "--pipeline-fleet",
                "--orgs",
                "4",
                "--seed",
                "7",
                "--workspace",
                "ws",
            ],
            Some(&dir),
        );
        assert_eq!(generated.code, 0, "{}", generated.stderr);
        // A repository already on @ekairos/thread.
        let app = dir.join("app");
        write(
            &app,
            "src/app/api/sales/agent/route.ts",
            "import { createThread } from \"@ekairos/thread\";\nexport const POST = createThread({}).reactor(createAiReactor()).handler;\n",
        );
        write(
            &app,
            "src/components/ekairos/agent/Chat.tsx",
            "import { useThread } from \"@ekairos/thread/react\";\nexport const Chat = () => useThread({ reactor: null });\n",
        );
        write(
            &app,
            "src/lib/q.ts",
            "export const q = { thread_threads: { thread_items: {} } };\n",
        );
        write(
            &app,
            "instant.schema.ts",
            instant_schema::BuiltinSchema::ThreadV1.source(),
        );
        // The target: thread V1 plus the esolbay links the migration writes.
        let mut schema = instant_schema::load_schema("builtin:thread-v1")
            .unwrap()
            .dsl()
            .into_owned();
        migration::conversation::schema::add_bridge_schema(&mut schema).unwrap();
        std::fs::write(
            dir.join("target-schema.json"),
            serde_json::to_vec_pretty(&schema.to_dsl_json()).unwrap(),
        )
        .unwrap();
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("ws/gen/manifest.json")).unwrap())
                .unwrap();
        let orgs = manifest["orgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|org| {
                (
                    org["orgId"].as_str().unwrap().to_string(),
                    org["role"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        Template { dir, orgs }
    })
}

/// A fresh copy of the template for one test.
fn scratch(name: &str) -> (PathBuf, &'static Template) {
    let template = template();
    let dir = temp_dir(name);
    copy_dir(&template.dir, &dir);
    (dir, template)
}

fn json_of(run: &Run) -> Value {
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "one JSON line: {}",
        run.stdout
    );
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            (
                step["id"].as_str().unwrap().to_string(),
                step["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn owned(steps: &[(&str, &str)]) -> Vec<(String, String)> {
    steps
        .iter()
        .map(|(id, status)| (id.to_string(), status.to_string()))
        .collect()
}

const PLANNING: [(&str, &str); 8] = [
    ("01-verify_env", "ok"),
    ("02-preflight_scan", "ok"),
    ("03-plan_story_thread_model_migration", "ok"),
    ("04-plan_schema_push_org_matrix", "findings"),
    ("05-diagnose_plan_failures", "findings"),
    ("06-build_case_runbook", "findings"),
    ("07-assert_hot_deploy_safe", "findings"),
    ("08-report_migration_status", "ok"),
];

/// Every admin token of the workspace's organisations.
fn tokens(workspace: &Path) -> Vec<String> {
    let engine = LocalEngine::open(workspace).unwrap();
    template()
        .orgs
        .iter()
        .filter_map(
            |(org, _)| match OrgDirectory::credentials(&engine, org).unwrap() {
                CredentialsOutcome::Present(credentials) => {
                    Some(credentials.admin_token.expose().to_string())
                }
                _ => None,
            },
        )
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

fn assert_no_token(dir: &Path, tokens: &[String]) {
    assert!(!tokens.is_empty());
    for file in files_under(dir) {
        let bytes = std::fs::read(&file).unwrap();
        for token in tokens {
            assert!(
                !bytes
                    .windows(token.len())
                    .any(|window| window == token.as_bytes()),
                "{} holds an admin token",
                file.display()
            );
        }
    }
}

/// Rows per namespace of `org`'s app, read directly from the workspace.
fn row_counts(workspace: &Path, org: &str) -> Vec<(&'static str, usize)> {
    let engine = LocalEngine::open(workspace).unwrap();
    let CredentialsOutcome::Present(credentials) = OrgDirectory::credentials(&engine, org).unwrap()
    else {
        panic!("{org} has no credentials");
    };
    let auth = AppAuth::new(&credentials.app_id, credentials.admin_token.expose());
    [
        "context_contexts",
        "context_events",
        "story_executions",
        "story_steps",
        "story_parts",
        "thread_threads",
        "thread_contexts",
        "thread_items",
        "thread_executions",
        "thread_steps",
        "thread_parts",
    ]
    .into_iter()
    .map(|namespace| {
        let answer = engine
            .query(
                &auth,
                &QueryRequest {
                    query: json!({namespace: {"$": {"fields": ["id"]}}}),
                    inference: false,
                },
            )
            .unwrap();
        (namespace, answer[namespace].as_array().unwrap().len())
    })
    .collect()
}

#[test]
fn pipeline_on_the_generated_fleet_is_not_safe_and_still_diagnoses() {
    let (dir, _) = scratch("pipeline-planning");
    let started = Instant::now();
    let run = threadmig(
        &[
            "pipeline",
            "--mode",
            "planning",
            "--workspace",
            "ws",
            "--repo",
            "app",
            "--schema-file",
            "target-schema.json",
            "--run-id",
            "p1",
            "--json",
        ],
        Some(&dir),
    );
    eprintln!(
        "pipeline (planning, 4 orgs, no validation): {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let out = json_of(&run);
    assert_eq!(out["ok"], false);
    assert_eq!(out["runId"], "p1");
    assert_eq!(
        out["summary"],
        json!({"total": 9, "ok": 4, "failed": 0, "findings": 4, "skipped": 1})
    );
    assert_eq!(out["pipelineJson"], "artifacts/reports/pipeline.p1.json");

    let report = read_json(&dir.join("artifacts/reports/pipeline.p1.json"));
    let mut expected = PLANNING.to_vec();
    expected.push(("09-validate_pre_migration_bundle", "skipped"));
    assert_eq!(statuses(&report), owned(&expected));
    assert_eq!(report["steps"][8]["reason"], "no_org_ids_provided");
    assert_eq!(report["mode"], "planning");
    assert_eq!(report["repoPath"], "app");
    assert_eq!(report["schemaPath"], "target-schema.json");
    let gates = &report["steps"][6];
    assert_eq!(
        gates["reason"],
        "7 of 9 gates passed; failed: matrix.no_blocked_orgs, matrix.no_failed_plans"
    );
    // The diagnostics, runbook and gates exist although the matrix has blocked rows, and
    // every artifact is the file whose sha256 the report pins.
    for key in [
        "preflightOut",
        "modelPlanJson",
        "matrixOut",
        "diagnosticsOut",
        "diagnosticsMd",
        "caseRunbookJson",
        "caseRunbookMd",
        "hotDeployGatesJson",
        "migrationStatusJson",
    ] {
        let artifact = &report["artifacts"][key];
        let path = dir.join(artifact["path"].as_str().unwrap_or_else(|| panic!("{key}")));
        assert_eq!(
            artifact["sha256"].as_str().unwrap(),
            sha256_file(&path).unwrap().0,
            "{key}"
        );
    }
    let runbook = read_json(&dir.join("artifacts/reports/migration-case-runbook.json"));
    assert_eq!(runbook["summary"]["totalCases"], 2);
    let status = read_json(&dir.join("artifacts/reports/migration-status.json"));
    assert_eq!(status["runId"], "p1");
    assert_no_token(&dir.join("artifacts"), &tokens(&dir.join("ws")));
}

#[test]
fn pipeline_validates_each_org_and_continues_past_a_missing_credentials_org() {
    let (dir, template) = scratch("pipeline-validate");
    let (missing, clean) = (template.org("missing-credentials"), template.org("clean"));
    let before = row_counts(&dir.join("ws"), &clean);
    let org_ids = format!("{missing},{clean}");
    let started = Instant::now();
    let run = threadmig(
        &[
            "pipeline",
            "--workspace",
            "ws",
            "--repo",
            "app",
            "--schema-file",
            "target-schema.json",
            "--run-id",
            "p2",
            "--org-ids",
            &org_ids,
            "--continue-on-error",
            "--json",
        ],
        Some(&dir),
    );
    eprintln!(
        "pipeline (planning + 2 validations): {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let out = json_of(&run);
    assert_eq!(
        out["summary"],
        json!({"total": 10, "ok": 5, "failed": 1, "findings": 4, "skipped": 0})
    );
    let report = read_json(&dir.join("artifacts/reports/pipeline.p2.json"));
    let mut expected: Vec<(String, String)> = owned(&PLANNING);
    expected.push((
        format!("09-validate_pre_migration_bundle-{missing}"),
        "failed".into(),
    ));
    expected.push((
        format!("09-validate_pre_migration_bundle-{clean}"),
        "ok".into(),
    ));
    assert_eq!(statuses(&report), expected);
    let failed = &report["steps"][8];
    assert_eq!(failed["issueCode"], "missing_instant_credentials");
    assert!(failed["error"]
        .as_str()
        .unwrap()
        .starts_with("missing_instant_credentials: no usable Instant credentials"));

    // The clean org's bundle: ok, its eight items hashed in its own run folder.
    let validation = read_json(&dir.join(format!(
        "artifacts/reports/pre-migration-validation.p2.{clean}.json"
    )));
    assert_eq!(validation["ok"], true, "{}", validation["reasons"]);
    let manifest = read_json(&dir.join(format!("artifacts/runs/p2.{clean}/manifest.json")));
    let listed: Vec<&str> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|artifact| artifact["path"].as_str().unwrap())
        .collect();
    for path in [
        "01-extract/schema.pull.json",
        "01-extract/perms.pull.json",
        "01-extract/schema.plan.before-push.json",
        "01-extract/story_parts.ndjson",
        "02-transform/thread_parts.ndjson",
        "03-apply/tx-plan.ndjson",
        "03-apply/tx.dry-run.summary.json",
        "04-verify/verify.before.json",
    ] {
        assert!(listed.contains(&path), "{path} not in the manifest");
    }
    let summary = read_json(&dir.join("artifacts/reports/pre-migration-validation.summary.json"));
    assert_eq!(summary["orgIds"], json!([missing, clean]));
    // The target is as it was: the dry run wrote to an embedded copy only.
    assert_eq!(row_counts(&dir.join("ws"), &clean), before);
    assert_no_token(&dir.join("artifacts"), &tokens(&dir.join("ws")));
}

#[test]
fn pipeline_stops_at_the_first_failed_validation_without_continue_on_error() {
    let (dir, template) = scratch("pipeline-stop");
    let (missing, clean) = (template.org("missing-credentials"), template.org("clean"));
    let org_ids = format!("{missing};{clean}");
    let run = threadmig(
        &[
            "pipeline",
            "--workspace",
            "ws",
            "--repo",
            "app",
            "--schema-file",
            "target-schema.json",
            "--run-id",
            "p3",
            "--org-ids",
            &org_ids,
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("wave: NOT safe"), "{}", run.stdout);
    let report = read_json(&dir.join("artifacts/reports/pipeline.p3.json"));
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    assert_eq!(steps[8]["status"], "failed");
    assert_eq!(steps[9]["status"], "skipped");
    assert_eq!(
        steps[9]["reason"],
        format!("stopped_after:09-validate_pre_migration_bundle-{missing}")
    );
    assert!(!dir.join(format!("artifacts/runs/p3.{clean}")).exists());
}

#[test]
fn validate_is_ok_on_the_clean_org_and_exits_1_without_credentials() {
    let (dir, template) = scratch("validate-cli");
    let clean = template.org("clean");
    let run = threadmig(
        &[
            "validate",
            "--workspace",
            "ws",
            "--org",
            &clean,
            "--schema-file",
            "target-schema.json",
            "--run-id",
            "v1",
            "--json",
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = json_of(&run);
    assert_eq!(report["ok"], true);
    assert_eq!(report["runId"], "v1");
    assert_eq!(report["orgId"], clean.as_str());
    assert_eq!(report["artifactsRoot"], "artifacts/runs/v1");
    assert!(report["targetAppId"].is_string());
    let on_disk = read_json(&dir.join(format!(
        "artifacts/reports/pre-migration-validation.v1.{clean}.json"
    )));
    assert_eq!(on_disk, report);

    // The run id names one run.
    let again = threadmig(
        &[
            "validate",
            "--workspace",
            "ws",
            "--org",
            &clean,
            "--run-id",
            "v1",
        ],
        Some(&dir),
    );
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    for (org, run_id, code) in [
        (
            template.org("missing-credentials"),
            "v2",
            "missing_instant_credentials",
        ),
        (
            "org_not_in_the_directory".to_string(),
            "v3",
            "clerk_lookup_error",
        ),
    ] {
        let run = threadmig(
            &[
                "validate",
                "--workspace",
                "ws",
                "--org",
                &org,
                "--run-id",
                run_id,
            ],
            Some(&dir),
        );
        assert_eq!(run.code, 1, "{org}: {}", run.stderr);
        assert!(
            run.stderr
                .starts_with(&format!("threadmig validate: {org}: {code}: ")),
            "{}",
            run.stderr
        );
        assert!(run.stdout.contains("bundle: NOT ok"), "{}", run.stdout);
        let report = read_json(&dir.join(format!(
            "artifacts/reports/pre-migration-validation.{run_id}.{org}.json"
        )));
        assert_eq!(
            (report["ok"].clone(), report["issueCode"].clone()),
            (json!(false), json!(code))
        );
    }
    assert_no_token(&dir.join("artifacts"), &tokens(&dir.join("ws")));
}

#[test]
fn pipeline_usage_errors_come_before_any_step() {
    let (dir, _) = scratch("pipeline-usage");
    let base = ["pipeline", "--workspace", "ws"];
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec!["--mode", "execution", "--repo", "app"],
            "invalid value 'execution' for '--mode <MODE>'",
        ),
        (
            vec!["--repo", "no-such-repo"],
            "--repo no-such-repo: not a folder",
        ),
        (
            vec!["--repo", "ws"],
            "no target schema: ws/instant.schema.ts does not exist",
        ),
        (
            vec!["--repo", "app", "--schema-file", "missing.json"],
            "--schema-file missing.json: no such file",
        ),
        (
            vec!["--repo", "app", "--org-ids", " , ;"],
            "--org-ids \" , ;\" names no organisation",
        ),
    ];
    for (args, message) in cases {
        let mut all: Vec<&str> = base.to_vec();
        all.extend(args.iter());
        let run = threadmig(&all, Some(&dir));
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(!dir.join("artifacts").exists(), "{args:?} wrote artifacts");
    }
    // A run id already used is refused before the first step.
    std::fs::create_dir_all(dir.join("artifacts/runs/p9")).unwrap();
    let run = threadmig(
        &[
            "pipeline",
            "--workspace",
            "ws",
            "--repo",
            "app",
            "--run-id",
            "p9",
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert!(!dir.join("artifacts/reports").exists());
}
