//! Diagnostics of the generated fleet: the duplicate link's legacy owner, the sanitised trial
//! plan and the two-phase plan, which `schema phase1` turns into the transitional schema.

use fleet::diagnose::{run_diagnose, DiagnoseConfig, DiagnoseError, DiagnosticsReport, Ports};
use fleet::issues::IssueCode;
use instant_schema::phase1::{generate_phase1, Phase1Input};
use instant_schema::severity::{Gate, Severity, SeverityCounts};
use migration::gen::OrgRole;

use crate::matrix::{
    fleet, fleet_with_standard, matrix_of, matrix_of_fleet, thread_v1, thread_v1_without_documents,
};

pub fn config() -> DiagnoseConfig {
    DiagnoseConfig {
        matrix_file: "<reports>/schema-plan-org-matrix.json".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        run_id: None,
        concurrency: 4,
    }
}

pub fn diagnostics_of(
    target: &fleet::matrix::TargetSchema,
) -> (fleet::matrix::MatrixReport, DiagnosticsReport) {
    let fleet = fleet();
    let matrix = matrix_of(target);
    let ports = Ports {
        directory: &fleet.engine,
        api: &fleet.engine,
    };
    let report = run_diagnose(&config(), &matrix, target, Some(ports), &|_, _| {}).unwrap();
    (matrix, report)
}

#[test]
fn duplicate_link_owner_trial_plan_and_phases() {
    let fleet = fleet();
    let target = thread_v1_without_documents();
    let (_, report) = diagnostics_of(&target);
    let mut lines: Vec<String> = report
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}: {} blocking={} gate={}",
                fleet.role_of(&d.org.id).as_str(),
                d.issue_code,
                d.blocking,
                d.gate.as_str()
            )
        })
        .collect();
    lines.sort();
    expect_test::expect![[r#"
        missing-credentials: missing_instant_credentials blocking=true gate=blocked
        schema-conflict: schema_duplicate_link blocking=true gate=blocked"#]]
    .assert_eq(&lines.join("\n"));
    assert_eq!(report.summary.total_failures, 2);
    assert_eq!(report.summary.blocking, 2);
    assert!(!report.ok);

    let d = report
        .diagnostics
        .iter()
        .find(|d| d.issue_code == IssueCode::SchemaDuplicateLink)
        .unwrap();
    assert_eq!(
        d.duplicate_target.as_ref().unwrap().ident(),
        "thread_contexts->thread"
    );
    let current = d.current_schema.as_ref().unwrap();
    assert!(current.ok);
    assert_eq!(current.identity_match_count, 1);
    assert_eq!(current.identity_matches[0].side, "forward");
    assert_eq!(current.identity_matches[0].kind, "link");
    assert_eq!(
        d.legacy_owners,
        ["link thread_contexts->thread <-> thread->contexts"]
    );
    let trial = d.sanitized_plan.as_ref().unwrap();
    assert!(trial.ok, "{trial:?}");
    assert_eq!(trial.status, 200);
    assert_eq!(trial.removed_links.len(), 1);
    let removed = trial.removed_links[0].clone();
    let link = &target.schema.links[&removed];
    assert_eq!(
        (link.forward.on.as_str(), link.forward.label.as_str()),
        ("thread_contexts", "thread")
    );
    // The rest of the schema is accepted, and safely: this clean-data app was deployed
    // typed, so without the colliding link nothing is left to check or rewrite.
    let summary = trial.summary.as_ref().unwrap();
    assert_eq!(trial.gate, Some(Gate::Safe));
    assert_eq!(
        summary.counts_by_severity,
        SeverityCounts {
            critical: 0,
            warning: 0,
            review: 0,
            safe: 97
        }
    );
    assert_eq!(summary.total, 97);
    let by_type: Vec<String> = summary
        .counts_by_type
        .iter()
        .map(|(step_type, count)| format!("{step_type}={count}"))
        .collect();
    expect_test::expect!["add-attr=97"].assert_eq(&by_type.join(" "));
    let plan = d.resolution_plan.as_ref().unwrap();
    assert_eq!(plan.strategy, "two_phase_schema_push");
    assert_eq!(plan.phase1.removed_links, std::slice::from_ref(&removed));
    assert_eq!(d.actions.len(), 3);
    assert!(d.actions[0].starts_with("Phase 1:") && d.actions[2].starts_with("Phase 2:"));
    assert!(d.root_cause.starts_with("thread_contexts->thread is already owned by link thread_contexts->thread <-> thread->contexts"), "{}", d.root_cause);
    assert_eq!(d.diagnostic_error, None);

    // `schema phase1` reads this report: for this org it removes exactly the colliding link.
    let json: serde_json::Value = serde_json::from_slice(&report.to_json_bytes()).unwrap();
    let phase1 = generate_phase1(
        &target.schema,
        &Phase1Input {
            diagnostics: Some(&json),
            only_orgs: vec![d.org.id.clone()],
            remove_links: Vec::new(),
        },
    )
    .unwrap();
    assert_eq!(phase1.removed_links, [removed]);
    assert!(phase1.missing_links.is_empty());
    // The report reads back.
    let text = String::from_utf8(report.to_json_bytes()).unwrap();
    assert_eq!(DiagnosticsReport::from_json(&text).unwrap(), report);
}

#[test]
fn plan_steps_rows_list_their_risky_steps_and_need_no_ports() {
    // With a standard org: its untyped app is the one row left with critical steps against
    // thread V1 (the clean-data apps were deployed typed and plan safely, so get no row).
    let fleet = fleet_with_standard();
    let target = thread_v1();
    let matrix = matrix_of_fleet(fleet, &target);
    let report = run_diagnose(&config(), &matrix, &target, None, &|_, _| {}).unwrap();
    let mut lines: Vec<String> = report
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}: {} blocking={} gate={}",
                fleet.role_of(&d.org.id).as_str(),
                d.issue_code,
                d.blocking,
                d.gate.as_str()
            )
        })
        .collect();
    lines.sort();
    expect_test::expect![[r#"
        missing-credentials: missing_instant_credentials blocking=true gate=blocked
        schema-conflict: schema_duplicate_link blocking=true gate=blocked
        standard: plan_critical_steps blocking=true gate=blocked"#]]
    .assert_eq(&lines.join("\n"));
    let standard = report
        .diagnostics
        .iter()
        .find(|d| fleet.role_of(&d.org.id) == OrgRole::Standard)
        .unwrap();
    assert_eq!(standard.issue_code, IssueCode::PlanCriticalSteps);
    assert_eq!(standard.notable_steps.len(), 18);
    assert!(standard
        .notable_steps
        .iter()
        .all(|s| s.step_type == "check-data-type" && s.severity == Severity::Critical));
    expect_test::expect![[r#"
        [critical] Scan and coerce value types in the transform, and verify them after the apply (thread_threads.createdAt).
        [critical] Scan and coerce value types in the transform, and verify them after the apply (thread_threads.updatedAt).
        [critical] Scan and coerce value types in the transform, and verify them after the apply (thread_threads.key).
        [critical] Scan and coerce value types in the transform, and verify them after the apply (thread_threads.name).
        [critical] Scan and coerce value types in the transform, and verify them after the apply (thread_threads.status).
        [critical] Scan and coerce value types in the transform, and verify them after the apply (thread_contexts.createdAt).
        [critical] Scan and coerce value types in the transform, and verify them after the apply (thread_contexts.updatedAt).
        [critical] Scan and coerce value types in the transform, and verify them after the apply (thread_contexts.key).
        … and the actions of 10 more step(s) in the matrix row.
        Work through each critical step's action in the row's instructions (dedupe before `unique`, backfill before `required`, coerce values before `check-data-type`).
        Or change the target schema so the step is not needed, and record why.
        Re-plan this org: `threadmig matrix --org-ids <org:standard> --schema-file builtin:thread-v1`; it joins the wave only with a safe (or signed-off) plan."#]].assert_eq(
        &standard
            .actions
            .join("\n")
            .replace(&standard.org.id, "<org:standard>"),
    );
    // The duplicate-link row says it could not be analysed without the ports, and stays.
    let conflict = report
        .diagnostics
        .iter()
        .find(|d| d.issue_code == IssueCode::SchemaDuplicateLink)
        .unwrap();
    assert!(conflict
        .diagnostic_error
        .as_deref()
        .unwrap()
        .starts_with("not analysed: no organisation directory"));
    assert_eq!(conflict.sanitized_plan, None);
    assert_eq!(report.summary.total_failures, 3);
    assert_eq!(report.summary.blocking, 3);
}

#[test]
fn a_schema_other_than_the_matrix_is_refused() {
    let matrix = matrix_of(&thread_v1());
    let error = run_diagnose(
        &config(),
        &matrix,
        &thread_v1_without_documents(),
        None,
        &|_, _| {},
    )
    .unwrap_err();
    assert!(matches!(error, DiagnoseError::SchemaMismatch { .. }));
    assert!(
        error
            .to_string()
            .contains("(thread-v1-without-documents.json)"),
        "{error}"
    );
}

#[test]
fn markdown_of_the_generated_fleet() {
    let fleet = fleet();
    let (_, report) = diagnostics_of(&thread_v1_without_documents());
    insta::assert_snapshot!(fleet.redact(&report.to_markdown()));
}
