//! `threadmig backfill-conversations` on a `threadmig gen` workspace whose fleet has a
//! `conversation-orphan` org: the orphan award gets its timeline, a second run creates nothing,
//! and an unknown tender or a missing target schema is one clear error.

use std::path::Path;

use instant_api::{AppAuth, InstantApi, SchemaPushRequest};
use instant_local::engine::LocalEngine;
use instant_schema::Schema;
use migration::conversation::schema::add_bridge_schema;
use serde_json::Value;

use crate::{temp_dir, threadmig, Run};

struct Orphan {
    org: String,
    tender: String,
    award: String,
    messages: u64,
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|error| panic!("{error}: {}\n{}", run.stdout, run.stderr))
}

fn generate(workspace: &Path) -> Orphan {
    let ws = workspace.to_string_lossy();
    let run = threadmig(
        &[
            "--json",
            "gen",
            "--preset",
            "small",
            "--seed",
            "11",
            "--workspace",
            &ws,
            "--roles",
            "clean,conversation-orphan",
            "--orgs",
            "2",
            "--events",
            "120",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(json_of(&run)["manifest"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let org = manifest["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|org| org["role"] == "conversation-orphan")
        .unwrap();
    let case = org["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|case| case["kind"] == "conversation_history_orphan")
        .unwrap();
    Orphan {
        org: org["orgId"].as_str().unwrap().to_string(),
        tender: case["detail"]["tenderId"].as_str().unwrap().to_string(),
        award: case["detail"]["awardId"].as_str().unwrap().to_string(),
        messages: case["detail"]["messages"].as_u64().unwrap(),
    }
}

/// Pushes thread V1 with the esolbay links onto the org's app, as the gated schema push of the
/// migration would.
fn push_bridge_schema(workspace: &Path, org: &str) {
    let engine = LocalEngine::open(workspace).unwrap();
    let record = engine.store().org(org).unwrap().unwrap();
    let token = engine.store().org_admin_token(org).unwrap().unwrap();
    let auth = AppAuth::new(record.app_id.unwrap(), token);
    let mut schema = Schema {
        entities: Default::default(),
        links: Default::default(),
        rooms: None,
    };
    add_bridge_schema(&mut schema).unwrap();
    engine
        .schema_push(
            &auth,
            &SchemaPushRequest {
                schema: schema.to_dsl_json(),
                check_types: true,
                supports_background_updates: false,
            },
        )
        .unwrap();
}

fn backfill(
    workspace: &Path,
    artifacts: &Path,
    orphan: &Orphan,
    tender: &str,
    extra: &[&str],
) -> Run {
    let ws = workspace.to_string_lossy();
    let artifacts = artifacts.to_string_lossy();
    let mut args = vec![
        "--json",
        "backfill-conversations",
        "--workspace",
        &ws,
        "--org",
        &orphan.org,
        "--tender-id",
        tender,
        "--artifacts",
        &artifacts,
    ];
    args.extend_from_slice(extra);
    threadmig(&args, None)
}

/// Every file under `dir`, concatenated.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

#[test]
fn the_orphan_award_gets_its_timeline_once() {
    let dir = temp_dir("backfill");
    let workspace = dir.join("ws");
    let artifacts = dir.join("artifacts");
    let orphan = generate(&workspace);

    // Before the target schema is pushed: a dry run plans and names what is missing (exit 1),
    // a real run refuses before writing (exit 2).
    let dry = backfill(
        &workspace,
        &artifacts,
        &orphan,
        &orphan.tender,
        &["--dry-run", "--run-id", "dry"],
    );
    assert_eq!(dry.code, 1, "{}\n{}", dry.stdout, dry.stderr);
    let summary = json_of(&dry);
    assert_eq!(summary["status"], "planned");
    assert_eq!(summary["verify"]["ok"], Value::Null);
    assert!(summary["schemaMissing"]
        .as_array()
        .unwrap()
        .contains(&Value::from(
            "thread_items.whatsappMessages -> whatsapp_messages"
        )));
    let refused = backfill(
        &workspace,
        &artifacts,
        &orphan,
        &orphan.tender,
        &["--run-id", "refused"],
    );
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("does not declare what the backfill writes"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );

    push_bridge_schema(&workspace, &orphan.org);
    let first = backfill(
        &workspace,
        &artifacts,
        &orphan,
        &orphan.tender,
        &["--run-id", "first"],
    );
    let summary = json_of(&first);
    let awards = summary["awards"].as_array().unwrap();
    let orphan_award = awards
        .iter()
        .find(|award| award["awardId"] == orphan.award.as_str())
        .unwrap_or_else(|| panic!("{summary:#}"));
    assert_eq!(
        orphan_award["contextKey"],
        format!("award_{}", orphan.award)
    );
    assert_eq!(orphan_award["itemsCreated"], orphan.messages);
    assert_eq!(orphan_award["conversationMessages"], orphan.messages);
    // Only the orphan award is backfilled: awards of the same tender with a legacy context
    // wait for the migration.
    assert_eq!(awards.len(), 1, "{summary:#}");
    assert_eq!(summary["threadsCreated"], 1);
    assert_eq!(summary["contextsCreated"], 1);
    assert_eq!(summary["itemsCreated"], orphan.messages);
    assert_eq!(summary["itemsExisting"], 0);
    // context->thread, 3 per item, 2 per conversation message.
    assert_eq!(summary["linksCreated"], 1 + 5 * orphan.messages);
    assert_eq!(summary["rejected"], 0);
    assert_eq!(summary["verify"]["ok"], true);
    assert_eq!(summary["verify"]["itemsFound"], orphan.messages);
    assert_eq!(summary["runId"], "first");
    assert_eq!(summary["org"], orphan.org.as_str());
    assert_eq!(first.code, 0, "{}", first.stderr);

    let run_dir = Path::new(summary["evidence"].as_str().unwrap());
    assert_eq!(run_dir, artifacts.join("runs/first"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    let stage = &manifest["stages"]["backfill-conversations"];
    assert_eq!(stage["orgId"], orphan.org.as_str());
    assert_eq!(stage["appId"], summary["appId"]);
    assert_eq!(stage["status"], "backfilled_verified");
    let paths: Vec<&str> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|artifact| artifact["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "01-extract/conversation-bridge.source.json",
            "02-transform/conversation-bridge.tx.json",
            "03-apply/conversation-bridge.apply.json",
            "04-verify/conversation-bridge.verify.json",
            "conversation-bridge.report.json",
        ]
    );
    // No admin token and no message text in the evidence.
    let engine = LocalEngine::open(&workspace).unwrap();
    let token = engine
        .store()
        .org_admin_token(&orphan.org)
        .unwrap()
        .unwrap();
    drop(engine);
    let evidence = all_text(&artifacts);
    assert!(!evidence.contains(&token));
    assert!(!evidence.contains("¿pueden cotizar?"));

    let second = backfill(
        &workspace,
        &artifacts,
        &orphan,
        &orphan.tender,
        &["--run-id", "second"],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    let again = json_of(&second);
    for key in [
        "threadsCreated",
        "contextsCreated",
        "itemsCreated",
        "linksCreated",
    ] {
        assert_eq!(again[key], 0, "{key}: {again:#}");
    }
    assert_eq!(again["itemsExisting"], orphan.messages);
    assert_eq!(again["tx"]["steps"], 0);
    assert_eq!(again["verify"]["ok"], true);

    let unknown = backfill(
        &workspace,
        &artifacts,
        &orphan,
        "00000000-0000-4000-8000-000000000000",
        &["--run-id", "unknown"],
    );
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no award_awards row links it"),
        "{}",
        unknown.stderr
    );
    assert_eq!(
        unknown.stderr.trim().lines().count(),
        1,
        "{}",
        unknown.stderr
    );
    assert!(!artifacts.join("runs/unknown").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A running `threadmig serve`; killed when dropped.
struct Serving {
    child: std::process::Child,
    url: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Serving {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_threadmig"))
        .arg("serve")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting threadmig serve");
    let mut url = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .expect("reading the URL line");
    Serving {
        child,
        url: url.trim().to_string(),
    }
}

#[test]
fn over_http_with_faults_the_result_is_the_same_and_complete() {
    let dir = temp_dir("backfill-http");
    let workspace = dir.join("ws");
    let artifacts = dir.join("artifacts");
    let orphan = generate(&workspace);
    push_bridge_schema(&workspace, &orphan.org);
    let ws = workspace.to_string_lossy().into_owned();
    // 429s and 5xx on a fifth of the requests each, and transactions whose answer is lost
    // after they committed (the retry sends them again).
    let serving = serve(&[
        "--workspace",
        &ws,
        "--port",
        "0",
        "--quiet",
        "--fault-seed",
        "5",
        "--fault-429-rate",
        "0.2",
        "--fault-retry-after-secs",
        "0",
        "--fault-5xx-rate",
        "0.2",
        "--fault-drop-after-rate",
        "0.2",
    ]);
    let run = backfill(
        &workspace,
        &artifacts,
        &orphan,
        &orphan.tender,
        &[
            "--instant-api-uri",
            &serving.url,
            "--http-max-retries",
            "20",
            "--page-size",
            "10",
            "--batch-size",
            "8",
            "--run-id",
            "http",
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let summary = json_of(&run);
    assert_eq!(summary["itemsCreated"], orphan.messages);
    assert_eq!(summary["linksCreated"], 1 + 5 * orphan.messages);
    assert_eq!(summary["verify"]["ok"], true);
    assert!(summary["tx"]["batches"].as_u64().unwrap() > 1);
    drop(serving);
    // The embedded engine reads the same complete timeline: nothing left to write.
    let again = backfill(
        &workspace,
        &artifacts,
        &orphan,
        &orphan.tender,
        &["--run-id", "after"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let again = json_of(&again);
    assert_eq!(again["tx"]["steps"], 0);
    assert_eq!(again["itemsExisting"], orphan.messages);
    let _ = std::fs::remove_dir_all(&dir);
}
