//! `threadmig matrix`, `diagnose`, `runbook` and `schema phase1 --diagnostics` on a generated
//! fleet (embedded workspace), end to end; the runbook's own commands run as printed; bad
//! input fails with one clear line and no report.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use instant_local::engine::LocalEngine;
use instant_local::server::{spawn, RequestLog, ServerConfig};
use serde_json::Value;

use crate::{temp_dir, threadmig};

/// The pipeline fleet (clean, schema-conflict, conversation-orphan, missing-credentials) in
/// a workspace, generated once; the org id of each role.
struct Generated {
    workspace: String,
    roles: Vec<(String, String)>,
}

fn generated() -> &'static Generated {
    static FLEET: OnceLock<Generated> = OnceLock::new();
    FLEET.get_or_init(|| {
        let dir = temp_dir("matrix-fleet");
        let workspace = dir.join("ws").display().to_string();
        let run = threadmig(
            &[
                "--json",
                "gen",
                "--preset",
                "small",
                "--seed",
                "3",
                "--pipeline-fleet",
                "--events",
                "40",
                "--content",
                "lean",
                "--workspace",
                &workspace,
            ],
            Some(&dir),
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let summary: Value = serde_json::from_str(&run.stdout).unwrap();
        let roles = summary["orgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|org| {
                (
                    org["role"].as_str().unwrap().to_string(),
                    org["orgId"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        Generated { workspace, roles }
    })
}

impl Generated {
    fn org(&self, role: &str) -> &str {
        &self.roles.iter().find(|(r, _)| r == role).unwrap().1
    }

    fn role(&self, org: &str) -> &str {
        &self.roles.iter().find(|(_, o)| o == org).unwrap().0
    }
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `role gate issue` per matrix row, sorted.
fn rows(fleet: &Generated, matrix: &Value) -> String {
    let mut lines: Vec<String> = matrix["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            format!(
                "{} {} {} {}",
                fleet.role(row["org"]["id"].as_str().unwrap()),
                row["plan"]["status"].as_str().unwrap(),
                row["plan"]["gate"].as_str().unwrap(),
                row["actionPlan"]["issueCode"].as_str().unwrap()
            )
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

#[test]
fn matrix_diagnose_runbook_and_phase1_on_a_generated_fleet() {
    let fleet = generated();
    let dir = temp_dir("matrix-pipeline");
    let artifacts = dir.join("artifacts").display().to_string();
    let reports = dir.join("artifacts/reports");

    let run = threadmig(
        &[
            "--json",
            "matrix",
            "--workspace",
            &fleet.workspace,
            "--artifacts",
            &artifacts,
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 1, "not every org is safe: {}", run.stderr);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["summary"]["totalOrgs"], 4);
    // The clean and conversation-orphan apps were deployed typed: thread V1 only adds to them.
    assert_eq!(summary["summary"]["blocked"], 2);
    let matrix = read(&reports.join("schema-plan-org-matrix.json"));
    expect_test::expect![[r#"
        clean ok safe plan_ok
        conversation-orphan ok safe plan_ok
        missing-credentials skipped blocked missing_instant_credentials
        schema-conflict error blocked schema_duplicate_link"#]]
    .assert_eq(&rows(fleet, &matrix));
    assert!(
        std::fs::read_to_string(reports.join("schema-plan-org-matrix.md"))
            .unwrap()
            .starts_with("# Clerk Org Schema Plan Matrix\n")
    );

    let run = threadmig(
        &[
            "--json",
            "diagnose",
            "--workspace",
            &fleet.workspace,
            "--artifacts",
            &artifacts,
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let diagnostics = read(&reports.join("schema-plan-diagnostics.json"));
    assert_eq!(diagnostics["summary"]["totalFailures"], 2);
    let conflict = diagnostics["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["issueCode"] == "schema_duplicate_link")
        .unwrap();
    assert_eq!(conflict["org"]["id"], fleet.org("schema-conflict"));
    assert_eq!(conflict["sanitizedPlan"]["ok"], true);
    assert_eq!(
        conflict["resolutionPlan"]["strategy"],
        "two_phase_schema_push"
    );
    assert_eq!(
        conflict["legacyOwners"][0],
        "link thread_contexts->thread <-> thread->contexts"
    );

    let run = threadmig(
        &["--json", "runbook", "--artifacts", &artifacts],
        Some(&dir),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let runbook = read(&reports.join("migration-case-runbook.json"));
    assert_eq!(runbook["summary"]["totalCases"], 2);
    assert_eq!(runbook["summary"]["blockingCases"], 2);
    let cases = runbook["cases"].as_array().unwrap();
    for case in cases {
        assert!(Path::new(case["caseDir"].as_str().unwrap()).is_dir());
    }
    let case = cases
        .iter()
        .find(|case| case["issueCode"] == "schema_duplicate_link")
        .unwrap();

    // The runbook's phase-1 command, as printed (no quoting needed in these paths).
    let command = |id: &str| -> Vec<String> {
        let action = case["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|action| action["id"] == id)
            .unwrap();
        let words: Vec<String> = action["command"]
            .as_str()
            .unwrap()
            .split(' ')
            .map(str::to_string)
            .collect();
        assert_eq!(words[0], "threadmig");
        words[1..].to_vec()
    };
    let phase1 = command("02-generate-phase1-schema");
    let words: Vec<&str> = phase1.iter().map(String::as_str).collect();
    let run = threadmig(&[&["--json"], &words[..]].concat(), Some(&dir));
    assert_eq!(run.code, 0, "{:?}: {}", words, run.stderr);
    let phase1_out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        phase1_out["removedLinks"],
        conflict["sanitizedPlan"]["removedLinks"]
    );
    // Planning the phase-1 schema: the duplicate is gone and the rest only adds.
    let plan1 = command("03-plan-phase1");
    let words: Vec<&str> = plan1.iter().map(String::as_str).collect();
    let run = threadmig(&[&["--json"], &words[..]].concat(), Some(&dir));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let phase1_matrix = read(Path::new(&format!(
        "{}/phase1-plan.json",
        case["caseDir"].as_str().unwrap()
    )));
    expect_test::expect!["schema-conflict ok safe plan_ok"].assert_eq(&rows(fleet, &phase1_matrix));

    // `schema phase1` straight from the diagnostics, for this org only.
    let (out, out_md) = (dir.join("p1.json"), dir.join("p1.md"));
    let run = threadmig(
        &[
            "--json",
            "schema",
            "phase1",
            "--schema-file",
            "builtin:thread-v1",
            "--diagnostics",
            &reports
                .join("schema-plan-diagnostics.json")
                .display()
                .to_string(),
            "--org",
            fleet.org("schema-conflict"),
            "--out",
            &out.display().to_string(),
            "--out-md",
            &out_md.display().to_string(),
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        read(&out)["removedLinks"],
        conflict["sanitizedPlan"]["removedLinks"]
    );
    // Another org of the same diagnostics has nothing to remove: one clear error.
    let run = threadmig(
        &[
            "schema",
            "phase1",
            "--schema-file",
            "builtin:thread-v1",
            "--diagnostics",
            &reports
                .join("schema-plan-diagnostics.json")
                .display()
                .to_string(),
            "--org",
            fleet.org("clean"),
            "--out",
            &dir.join("p2.json").display().to_string(),
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no links to remove"), "{}", run.stderr);
    assert!(!dir.join("p2.json").exists());
}

#[test]
fn over_http_the_rows_are_the_same() {
    let fleet = generated();
    let dir = temp_dir("matrix-http");
    let engine = LocalEngine::open(Path::new(&fleet.workspace)).unwrap();
    let server = spawn(
        Arc::new(engine),
        ServerConfig {
            log: RequestLog::Off,
            ..ServerConfig::default()
        },
    )
    .unwrap();
    let out = dir.join("m.json").display().to_string();
    let md = dir.join("m.md").display().to_string();
    let run = threadmig(
        &[
            "--json",
            "matrix",
            "--workspace",
            &fleet.workspace,
            "--instant-api-uri",
            &server.url(),
            "--concurrency",
            "3",
            "--out",
            &out,
            "--out-md",
            &md,
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let matrix = read(Path::new(&out));
    expect_test::expect![[r#"
        clean ok safe plan_ok
        conversation-orphan ok safe plan_ok
        missing-credentials skipped blocked missing_instant_credentials
        schema-conflict error blocked schema_duplicate_link"#]]
    .assert_eq(&rows(fleet, &matrix));
    assert_eq!(matrix["instantApiUri"], server.url());
    assert!(matrix["rows"][0]["plan"]["endpoint"]
        .as_str()
        .is_none_or(|e| e.starts_with(&server.url())));
}

#[test]
fn unknown_orgs_are_rows_and_bad_input_is_one_error_without_reports() {
    let fleet = generated();
    let dir = temp_dir("matrix-bad");
    let out = dir.join("reports/m.json");
    let out_s = out.display().to_string();
    let md_s = dir.join("reports/m.md").display().to_string();

    let run = threadmig(
        &[
            "--json",
            "matrix",
            "--workspace",
            &fleet.workspace,
            "--org-ids",
            &format!("org_nope;{}", fleet.org("clean")),
            "--out",
            &out_s,
            "--out-md",
            &md_s,
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let matrix = read(&out);
    let unknown = &matrix["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["org"]["id"] == "org_nope")
        .unwrap();
    assert_eq!(unknown["actionPlan"]["issueCode"], "clerk_lookup_error");
    assert_eq!(unknown["plan"]["gate"], "blocked");
    assert_eq!(
        unknown["reason"],
        "the organisation directory could not resolve the org: organization org_nope not found"
    );
    std::fs::remove_dir_all(dir.join("reports")).unwrap();

    let bad_json = dir.join("bad.json");
    std::fs::write(&bad_json, "{\"entities\": {\n  \"x\": [}").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--schema-file".into(), bad_json.display().to_string()],
            "bad.json:2:",
        ),
        (
            vec![
                "--schema-file".into(),
                dir.join("absent.json").display().to_string(),
            ],
            "absent.json: cannot read",
        ),
        (
            vec!["--org-ids".into(), " ; ,".into()],
            "names no organisation",
        ),
        (
            vec![
                "--workspace".into(),
                dir.join("no-such-ws").display().to_string(),
            ],
            "no-such-ws: not a directory",
        ),
    ];
    for (extra, expected) in cases {
        let mut args: Vec<String> = vec![
            "matrix".into(),
            "--out".into(),
            out_s.clone(),
            "--out-md".into(),
            md_s.clone(),
        ];
        if !extra.contains(&"--workspace".to_string()) {
            args.extend(["--workspace".into(), fleet.workspace.clone()]);
        }
        args.extend(extra);
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = threadmig(&words, Some(&dir));
        assert_eq!(run.code, 2, "{words:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{expected}: {}", run.stderr);
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
        assert!(!dir.join("reports").exists(), "{words:?} left a report");
    }

    // No workspace and no Clerk secret: the directory cannot be opened.
    let run = threadmig(&["matrix", "--out", &out_s, "--out-md", &md_s], Some(&dir));
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("CLERK_SECRET_KEY is not set"),
        "{}",
        run.stderr
    );

    // Diagnose and runbook refuse what is not their input.
    std::fs::write(dir.join("garbage.json"), "[1, 2").unwrap();
    let garbage = dir.join("garbage.json").display().to_string();
    let run = threadmig(
        &[
            "diagnose", "--matrix", &garbage, "--out", &out_s, "--out-md", &md_s,
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("garbage.json:1:") && run.stderr.contains("not a matrix report"),
        "{}",
        run.stderr
    );
    let run = threadmig(
        &[
            "runbook",
            "--matrix",
            &garbage,
            "--diagnostics",
            &garbage,
            "--out",
            &out_s,
            "--out-md",
            &md_s,
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not a matrix report"), "{}", run.stderr);
    assert!(!dir.join("reports").exists());
}
