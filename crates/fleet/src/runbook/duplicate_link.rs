//! `schema_duplicate_link` cases: the two-phase schema rollout (the old catalogue's seven
//! steps, with this tool's commands). Phase 1 is generated for this org only (`--org`), from
//! the diagnostics' successful sanitised plan or, when there is none, from the colliding
//! `<entity>-><label>` identities themselves.

use super::{ActionKind, CaseContext, RunbookAction};

pub(super) fn actions(case: &CaseContext<'_>) -> Vec<RunbookAction> {
    let d = case.diagnostic;
    let targets: Vec<String> = d.duplicate_targets.iter().map(|t| t.ident()).collect();
    let targets_text = if targets.is_empty() {
        "the colliding label".to_string()
    } else {
        targets.join(", ")
    };
    let owners = if d.legacy_owners.is_empty() {
        "the legacy owner (not resolved from the pulled schema: look it up in the dashboard)"
            .to_string()
    } else {
        d.legacy_owners.join("; ")
    };
    let phase1_file = case.file("schema-phase1.json");
    let mut phase1 = vec![
        "threadmig".to_string(),
        "schema".into(),
        "phase1".into(),
        "--schema-file".into(),
        case.schema_file.to_string(),
    ];
    let sanitized_ok = d.sanitized_plan.as_ref().is_some_and(|plan| plan.ok);
    if sanitized_ok || targets.is_empty() {
        phase1.extend([
            "--diagnostics".into(),
            case.diagnostics_file.to_string(),
            "--org".into(),
            case.org_id().to_string(),
        ]);
    } else {
        phase1.extend(["--remove-links".into(), targets.join(",")]);
    }
    phase1.extend([
        "--out".into(),
        phase1_file.clone(),
        "--out-md".into(),
        case.file("schema-phase1.md"),
    ]);
    vec![
        RunbookAction::new(
            "01-confirm-legacy-owner",
            "Confirm the legacy owner",
            ActionKind::ManualCheck,
            format!("Confirm that {owners} owns {targets_text} in the app's live schema (the diagnostics list the identity matches of the pulled schema)."),
        ),
        RunbookAction::command(
            "02-generate-phase1-schema",
            "Generate the phase-1 schema",
            "The target schema without the link(s) that claim the colliding label, for this org only.",
            phase1,
        ),
        RunbookAction::command(
            "03-plan-phase1",
            "Plan phase 1",
            "The server must accept the phase-1 schema; review its steps.",
            case.matrix_words(&phase1_file, "phase1-plan"),
        ),
        RunbookAction::new(
            "04-apply-phase1",
            "Apply phase 1",
            ActionKind::HumanGate,
            format!("Apply the phase-1 schema through the approved change process and record the approval; then move the data of {owners} and retire it (approved, with a backup)."),
        ),
        RunbookAction::command(
            "05-plan-phase2",
            "Plan phase 2",
            "Plan the full target schema: it must no longer report a duplicate entry.",
            case.matrix_words(case.schema_file, "phase2-plan"),
        ),
        RunbookAction::new(
            "06-apply-phase2",
            "Apply phase 2",
            ActionKind::HumanGate,
            "Apply the full target schema through the approved change process and record the approval.",
        ),
        RunbookAction::command(
            "07-org-verification",
            "Verify the org",
            "The org's row must be safe (or signed off) before it joins the execution wave.",
            case.matrix_words(case.schema_file, "post-phase2-org-matrix"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_commands_are_ours, case, diagnostic, outline};
    use crate::diagnose::SanitizedPlan;
    use crate::issues::{IssueCode, LinkTarget};

    fn duplicate(sanitized_ok: bool) -> crate::diagnose::Diagnostic {
        let mut d = diagnostic(IssueCode::SchemaDuplicateLink);
        d.duplicate_targets = vec![LinkTarget {
            entity: "thread_contexts".into(),
            label: "thread".into(),
        }];
        d.legacy_owners = vec!["link thread_contexts->thread <-> thread->contexts".into()];
        d.sanitized_plan = Some(SanitizedPlan {
            ok: sanitized_ok,
            status: if sanitized_ok { 200 } else { 400 },
            removed_links: vec!["threadContextsThread".into()],
            gate: None,
            summary: None,
            error: None,
        });
        d
    }

    #[test]
    fn seven_steps_and_phase1_from_diagnostics_or_identities() {
        let (ok_case, _) = case(&duplicate(true));
        assert_commands_are_ours(&ok_case);
        expect_test::expect![[r#"
            01-confirm-legacy-owner manual_check
            02-generate-phase1-schema command
            03-plan-phase1 command
            04-apply-phase1 human_gate
            05-plan-phase2 command
            06-apply-phase2 human_gate
            07-org-verification command"#]]
        .assert_eq(&outline(&ok_case));
        let phase1 = |c: &super::super::Case| c.actions[1].command.clone().unwrap();
        assert!(phase1(&ok_case).contains(
            "--diagnostics artifacts/reports/schema-plan-diagnostics.json --org org_2abcDEF"
        ));
        let (refused_case, _) = case(&duplicate(false));
        assert!(
            phase1(&refused_case).contains("--remove-links 'thread_contexts->thread'"),
            "{}",
            phase1(&refused_case)
        );
        assert!(ok_case.actions[2]
            .command
            .as_deref()
            .unwrap()
            .contains("--schema-file artifacts/cases/case-01-org-2abcdef/schema-phase1.json"));
    }

    #[test]
    fn markdown() {
        let (_, markdown) = case(&duplicate(true));
        insta::assert_snapshot!(markdown);
    }
}
