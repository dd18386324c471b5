//! `matrix.no_blocked_orgs`: no organisation of the matrix is blocked.
//!
//! A row counts as blocked unless its plan succeeded with gate `safe` or `review`: errored
//! plans, Clerk failures and rows without Instant credentials (`missing-creds`, which the old
//! matrix counted as "review" so they slipped through this gate, §8.12) all block.

use serde_json::Value;

use super::{GateSpec, InputKind, MatrixCount, Verdict};

pub(super) static SPEC: GateSpec = GateSpec {
    id: "matrix.no_blocked_orgs",
    input: InputKind::Matrix,
    checks: "no organisation is blocked: every row planned ok with gate safe or review (`summary.blocked == 0`, recomputed from the rows)",
    remedy: "work through the blocked rows with `threadmig diagnose` and `threadmig runbook` (credentials, tokens, schema conflicts), re-run `threadmig matrix`, then the gates",
    evaluate,
};

fn evaluate(document: &Value) -> Verdict {
    super::matrix_gate(
        document,
        &MatrixCount {
            summary: "/summary/blocked",
            name: "blocked",
            counts_row: is_blocked,
        },
    )
}

/// Anything but a successful plan with gate `safe` or `review`.
pub(super) fn is_blocked(row: &Value) -> bool {
    let gate = row.pointer("/plan/gate").and_then(Value::as_str);
    !(super::row_plan_status(row) == Some("ok") && matches!(gate, Some("safe" | "review")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::gates::test_support::run_table;
    use crate::gates::{Gate, GateStatus};

    fn row(org: &str, status: &str, gate: &str) -> serde_json::Value {
        json!({"org": {"id": org}, "plan": {"status": status, "gate": gate}})
    }

    #[test]
    fn table() {
        let markdown = run_table(
            Gate::MatrixNoBlockedOrgs,
            &[
                (
                    "pass",
                    json!({"summary": {"blocked": 0, "totalOrgs": 2},
                           "rows": [row("org_a", "ok", "safe"), row("org_b", "ok", "review")]}),
                    GateStatus::Pass,
                    "blocked=0",
                ),
                (
                    "fail",
                    json!({"summary": {"blocked": 1, "totalOrgs": 2},
                           "rows": [row("org_a", "ok", "safe"), row("org_b", "error", "blocked")]}),
                    GateStatus::Fail,
                    "blocked=1; orgs: org_b",
                ),
                (
                    "fail_missing_credentials_block_even_when_the_summary_says_review",
                    json!({"summary": {"blocked": 0, "reviewRequired": 1, "totalOrgs": 2},
                           "rows": [row("org_a", "ok", "safe"), row("org_c", "skipped", "missing-creds")]}),
                    GateStatus::Fail,
                    "blocked=1; summary.blocked says 0 but 1 row(s) count; orgs: org_c",
                ),
                (
                    "fail_critical_steps",
                    json!({"rows": [row("org_d", "ok", "blocked")]}),
                    GateStatus::Fail,
                    "blocked=1; orgs: org_d",
                ),
                (
                    "fail_summary_only",
                    json!({"summary": {"blocked": 3}}),
                    GateStatus::Fail,
                    "blocked=3",
                ),
                (
                    "fail_empty_matrix",
                    json!({"summary": {"blocked": 0, "totalOrgs": 0}, "rows": []}),
                    GateStatus::Fail,
                    "blocked=0; the matrix holds no organisation (nothing was planned)",
                ),
                (
                    "fail_many_orgs_listed_briefly",
                    json!({"rows": (0..7).map(|i| row(&format!("org_{i}"), "error", "blocked")).collect::<Vec<_>>()}),
                    GateStatus::Fail,
                    "blocked=7; orgs: org_0, org_1, org_2, org_3, org_4 (+2 more)",
                ),
                (
                    "missing_summary_and_rows",
                    json!({"ok": true}),
                    GateStatus::MissingInput,
                    "summary.blocked and rows are absent",
                ),
                (
                    "missing_rows_not_an_array",
                    json!({"rows": {"org_a": {}}}),
                    GateStatus::MissingInput,
                    "rows is not an array",
                ),
            ],
        );
        insta::assert_snapshot!(markdown);
    }
}
