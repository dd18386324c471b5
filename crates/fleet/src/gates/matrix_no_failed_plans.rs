//! `matrix.no_failed_plans`: every schema plan the matrix attempted succeeded.
//!
//! A row counts as failed when its plan status is anything but `ok` or `skipped` (a row that
//! does not say how its plan went counts as failed).

use serde_json::Value;

use super::{GateSpec, InputKind, MatrixCount, Verdict};

pub(super) static SPEC: GateSpec = GateSpec {
    id: "matrix.no_failed_plans",
    input: InputKind::Matrix,
    checks: "no schema plan failed (`summary.plannedFailed == 0`, recomputed from the rows)",
    remedy: "read each failed row's error and issue code in schema-plan-org-matrix.md, follow `threadmig diagnose` / `threadmig runbook`, re-run `threadmig matrix`, then the gates",
    evaluate,
};

fn evaluate(document: &Value) -> Verdict {
    super::matrix_gate(
        document,
        &MatrixCount {
            summary: "/summary/plannedFailed",
            name: "plannedFailed",
            counts_row: is_failed,
        },
    )
}

pub(super) fn is_failed(row: &Value) -> bool {
    !matches!(super::row_plan_status(row), Some("ok" | "skipped"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::gates::test_support::run_table;
    use crate::gates::{Gate, GateStatus};

    fn row(org: &str, status: &str) -> serde_json::Value {
        json!({"org": {"id": org}, "plan": {"status": status}})
    }

    #[test]
    fn table() {
        let markdown = run_table(
            Gate::MatrixNoFailedPlans,
            &[
                (
                    "pass_skipped_rows_are_not_failed_plans",
                    json!({"summary": {"plannedFailed": 0}, "rows": [row("org_a", "ok"), row("org_b", "skipped")]}),
                    GateStatus::Pass,
                    "plannedFailed=0",
                ),
                (
                    "fail",
                    json!({"summary": {"plannedFailed": 1}, "rows": [row("org_a", "ok"), row("org_b", "error")]}),
                    GateStatus::Fail,
                    "plannedFailed=1; orgs: org_b",
                ),
                (
                    "fail_row_without_status",
                    json!({"summary": {"plannedFailed": 0}, "rows": [{"org": {"id": "org_x"}}]}),
                    GateStatus::Fail,
                    "plannedFailed=1; summary.plannedFailed says 0 but 1 row(s) count; orgs: org_x",
                ),
                (
                    "fail_summary_counts_more_than_rows",
                    json!({"summary": {"plannedFailed": 2}, "rows": [row("org_a", "error")]}),
                    GateStatus::Fail,
                    "plannedFailed=2; summary.plannedFailed says 2 but 1 row(s) count; orgs: org_a",
                ),
                (
                    "missing",
                    json!({"summary": {}}),
                    GateStatus::MissingInput,
                    "summary.plannedFailed and rows are absent",
                ),
                (
                    "missing_not_a_count",
                    json!({"summary": {"plannedFailed": null, "totalOrgs": "3"}, "rows": []}),
                    GateStatus::MissingInput,
                    "summary.totalOrgs is a string, not a count",
                ),
            ],
        );
        insta::assert_snapshot!(markdown);
    }
}
