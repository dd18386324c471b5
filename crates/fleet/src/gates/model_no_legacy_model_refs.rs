//! `model.no_legacy_model_refs`: the code no longer reads or writes the legacy story namespaces (`summary.legacyModelMatches == 0`).

use serde_json::Value;

use super::{GateSpec, InputKind, Verdict};

pub(super) static SPEC: GateSpec = GateSpec {
    id: "model.no_legacy_model_refs",
    input: InputKind::ModelPlan,
    checks: "the code no longer reads or writes the legacy story namespaces (`summary.legacyModelMatches == 0`)",
    remedy: "replace the legacy namespace reads/writes listed under \"Legacy Model\" in story-thread-model-plan.md with the thread namespaces, then re-run `threadmig model-plan` and the gates",
    evaluate,
};

fn evaluate(document: &Value) -> Verdict {
    super::zero_gate(
        document,
        "/summary/legacyModelMatches",
        "legacyModelMatches",
        "/summary/unparsedFiles",
        "legacy model references",
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
            Gate::ModelNoLegacyModelRefs,
            &[
                (
                    "pass",
                    json!({"summary": {"legacyModelMatches": 0, "unparsedFiles": 0}}),
                    GateStatus::Pass,
                    "legacyModelMatches=0",
                ),
                (
                    "fail",
                    json!({"summary": {"legacyModelMatches": 4}}),
                    GateStatus::Fail,
                    "legacyModelMatches=4",
                ),
                (
                    "fail_unparsed_files",
                    json!({"summary": {"legacyModelMatches": 0, "unparsedFiles": 1}}),
                    GateStatus::Fail,
                    "legacyModelMatches=0; 1 file(s) did not parse and may hide legacy model references",
                ),
                (
                    "missing_summary",
                    json!({"mapping": {}}),
                    GateStatus::MissingInput,
                    "summary.legacyModelMatches is absent",
                ),
                (
                    "missing_not_a_count",
                    json!({"summary": {"legacyModelMatches": 1.5}}),
                    GateStatus::MissingInput,
                    "summary.legacyModelMatches is 1.5, not a count",
                ),
            ],
        );
        insta::assert_snapshot!(markdown);
    }
}
