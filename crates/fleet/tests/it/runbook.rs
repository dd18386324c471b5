//! The case runbook of the generated fleet: a case per diagnosed org, this tool's commands,
//! and refusals of diagnostics that belong to another matrix.

use fleet::runbook::{
    build_runbook, ActionKind, Family, RunbookConfig, RunbookError, RunbookReport,
};

use crate::diagnose::diagnostics_of;
use crate::matrix::{fleet, thread_v1, thread_v1_without_documents};

fn config() -> RunbookConfig {
    RunbookConfig {
        generated_at: "2026-01-01T00:00:00Z".into(),
        matrix_file: "<reports>/schema-plan-org-matrix.json".into(),
        diagnostics_file: "<reports>/schema-plan-diagnostics.json".into(),
        schema_file: "thread-v1-without-documents.json".into(),
        cases_root: "<artifacts>/cases".into(),
    }
}

#[test]
fn one_case_per_diagnosed_org_with_our_commands() {
    let fleet = fleet();
    let (matrix, diagnostics) = diagnostics_of(&thread_v1_without_documents());
    let report = build_runbook(&config(), &matrix, &diagnostics).unwrap();
    let lines: Vec<String> = report
        .cases
        .iter()
        .map(|case| {
            format!(
                "{} {} {:?} {} blocking={} actions={}",
                fleet.role_of(&case.org.id).as_str(),
                case.issue_code,
                case.family,
                case.priority.as_str(),
                case.blocking,
                case.actions
                    .iter()
                    .map(|a| a.id.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    let mut sorted = lines.clone();
    sorted.sort();
    expect_test::expect![[r#"
        missing-credentials missing_instant_credentials MissingInstantCredentials critical blocking=true actions=01-fill-appid,02-fill-token,03-replan-org
        schema-conflict schema_duplicate_link SchemaDuplicateLink high blocking=true actions=01-confirm-legacy-owner,02-generate-phase1-schema,03-plan-phase1,04-apply-phase1,05-plan-phase2,06-apply-phase2,07-org-verification"#]]
    .assert_eq(&sorted.join("\n"));
    assert_eq!(
        (report.summary.total_cases, report.summary.blocking_cases),
        (2, 2)
    );
    assert_eq!(
        report.summary.count_by_family.get("schema_duplicate_link"),
        Some(&1)
    );
    for (i, case) in report.cases.iter().enumerate() {
        assert!(
            case.case_id.starts_with(&format!("case-{:02}-org-", i + 1)),
            "{}",
            case.case_id
        );
        assert_eq!(case.case_dir, format!("<artifacts>/cases/{}", case.case_id));
        for action in &case.actions {
            if action.kind == ActionKind::Command {
                let command = action.command.as_deref().unwrap();
                assert!(command.starts_with("threadmig "), "{command}");
                assert!(
                    command.contains("--workspace '<workspace>'")
                        || command.starts_with("threadmig schema phase1"),
                    "{command}"
                );
            }
        }
    }
    let conflict = report
        .cases
        .iter()
        .find(|c| c.family == Family::SchemaDuplicateLink)
        .unwrap();
    assert_eq!(
        conflict.actions[1].command.as_deref().unwrap(),
        format!(
            "threadmig schema phase1 --schema-file thread-v1-without-documents.json --diagnostics '<reports>/schema-plan-diagnostics.json' --org {org} --out '<artifacts>/cases/{case}/schema-phase1.json' --out-md '<artifacts>/cases/{case}/schema-phase1.md'",
            org = conflict.org.id,
            case = conflict.case_id
        )
    );
    // Same inputs, same bytes; and the report reads back.
    assert_eq!(
        build_runbook(&config(), &matrix, &diagnostics)
            .unwrap()
            .to_json_bytes(),
        report.to_json_bytes()
    );
    let text = String::from_utf8(report.to_json_bytes()).unwrap();
    assert_eq!(RunbookReport::from_json(&text).unwrap(), report);
}

#[test]
fn diagnostics_of_another_matrix_are_refused() {
    let (matrix, mut diagnostics) = diagnostics_of(&thread_v1_without_documents());
    let (other_matrix, _) = crate::diagnose::diagnostics_of(&thread_v1());
    assert!(matches!(
        build_runbook(&config(), &other_matrix, &diagnostics),
        Err(RunbookError::SchemaMismatch { .. })
    ));
    diagnostics.diagnostics[0].org.id = "org_not_in_matrix".into();
    assert_eq!(
        build_runbook(&config(), &matrix, &diagnostics).unwrap_err().to_string(),
        "diagnostics[0] is about org org_not_in_matrix, which is not in the matrix: re-run diagnose on this matrix"
    );
}

#[test]
fn case_folders_are_created() {
    let (matrix, diagnostics) = diagnostics_of(&thread_v1_without_documents());
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.cases_root = dir.path().join("cases").display().to_string();
    let report = build_runbook(&config, &matrix, &diagnostics).unwrap();
    let made = report.create_case_dirs().unwrap();
    assert_eq!(made.len(), 2);
    assert!(made.iter().all(|dir| dir.is_dir()));
}

#[test]
fn markdown_of_the_generated_fleet() {
    let fleet = fleet();
    let (matrix, diagnostics) = diagnostics_of(&thread_v1_without_documents());
    let report = build_runbook(&config(), &matrix, &diagnostics).unwrap();
    insta::assert_snapshot!(fleet.redact(&report.to_markdown()));
}
