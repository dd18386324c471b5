//! `model.thread_model_present`: the code reads or writes the thread namespaces (`summary.threadModelMatches > 0`).

use serde_json::Value;

use super::{GateSpec, InputKind, Verdict};

pub(super) static SPEC: GateSpec = GateSpec {
    id: "model.thread_model_present",
    input: InputKind::ModelPlan,
    checks: "the code reads or writes the thread namespaces (`summary.threadModelMatches > 0`)",
    remedy: "add the thread model reads/writes (thread_threads, thread_items, …) to the app before deploying, then re-run `threadmig model-plan` and the gates",
    evaluate,
};

fn evaluate(document: &Value) -> Verdict {
    super::positive_gate(
        document,
        "/summary/threadModelMatches",
        "threadModelMatches",
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::gates::test_support::run_table;
    use crate::gates::{Gate, GateStatus};

    #[test]
    fn table() {
        let markdown = run_table(
            Gate::ModelThreadModelPresent,
            &[
                (
                    "pass",
                    json!({"summary": {"threadModelMatches": 7}}),
                    GateStatus::Pass,
                    "threadModelMatches=7",
                ),
                (
                    "fail",
                    json!({"summary": {"threadModelMatches": 0}}),
                    GateStatus::Fail,
                    "threadModelMatches=0",
                ),
                (
                    "missing_summary",
                    json!({}),
                    GateStatus::MissingInput,
                    "summary.threadModelMatches is absent",
                ),
                (
                    "missing_not_a_count",
                    json!({"summary": {"threadModelMatches": "7"}}),
                    GateStatus::MissingInput,
                    "summary.threadModelMatches is a string, not a count",
                ),
            ],
        );
        insta::assert_snapshot!(markdown);
    }
}
