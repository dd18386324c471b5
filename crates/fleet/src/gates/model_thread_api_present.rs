//! `model.thread_api_present`: the code uses the @ekairos/thread API (`summary.threadApiMatches > 0`).

use serde_json::Value;

use super::{GateSpec, InputKind, Verdict};

pub(super) static SPEC: GateSpec = GateSpec {
    id: "model.thread_api_present",
    input: InputKind::ModelPlan,
    checks: "the code uses the @ekairos/thread API (`summary.threadApiMatches > 0`)",
    remedy: "wire the @ekairos/thread runtime (createThread / thread/start) into the app before deploying, then re-run `threadmig model-plan` and the gates",
    evaluate,
};

fn evaluate(document: &Value) -> Verdict {
    super::positive_gate(document, "/summary/threadApiMatches", "threadApiMatches")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::gates::test_support::run_table;
    use crate::gates::{Gate, GateStatus};

    #[test]
    fn table() {
        let markdown = run_table(
            Gate::ModelThreadApiPresent,
            &[
                (
                    "pass",
                    json!({"summary": {"threadApiMatches": 7}}),
                    GateStatus::Pass,
                    "threadApiMatches=7",
                ),
                (
                    "fail",
                    json!({"summary": {"threadApiMatches": 0}}),
                    GateStatus::Fail,
                    "threadApiMatches=0",
                ),
                (
                    "missing_summary",
                    json!({}),
                    GateStatus::MissingInput,
                    "summary.threadApiMatches is absent",
                ),
                (
                    "missing_not_a_count",
                    json!({"summary": {"threadApiMatches": "7"}}),
                    GateStatus::MissingInput,
                    "summary.threadApiMatches is a string, not a count",
                ),
            ],
        );
        insta::assert_snapshot!(markdown);
    }
}
