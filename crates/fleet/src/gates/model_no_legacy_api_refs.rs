//! `model.no_legacy_api_refs`: the code no longer uses the @ekairos/story API (`summary.legacyApiMatches == 0`).

use serde_json::Value;

use super::{GateSpec, InputKind, Verdict};

pub(super) static SPEC: GateSpec = GateSpec {
    id: "model.no_legacy_api_refs",
    input: InputKind::ModelPlan,
    checks: "the code no longer uses the @ekairos/story API (`summary.legacyApiMatches == 0`)",
    remedy: "replace the story runtime calls listed under \"Legacy API\" in story-thread-model-plan.md (useStory, createStory, @ekairos/story imports), then re-run `threadmig model-plan` and the gates",
    evaluate,
};

fn evaluate(document: &Value) -> Verdict {
    super::zero_gate(
        document,
        "/summary/legacyApiMatches",
        "legacyApiMatches",
        "/summary/unparsedFiles",
        "legacy API references",
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
            Gate::ModelNoLegacyApiRefs,
            &[
                (
                    "pass",
                    json!({"summary": {"legacyApiMatches": 0, "unparsedFiles": 0}}),
                    GateStatus::Pass,
                    "legacyApiMatches=0",
                ),
                (
                    "fail",
                    json!({"summary": {"legacyApiMatches": 4}}),
                    GateStatus::Fail,
                    "legacyApiMatches=4",
                ),
                (
                    "fail_unparsed_files",
                    json!({"summary": {"legacyApiMatches": 0, "unparsedFiles": 1}}),
                    GateStatus::Fail,
                    "legacyApiMatches=0; 1 file(s) did not parse and may hide legacy API references",
                ),
                (
                    "missing_summary",
                    json!({"mapping": {}}),
                    GateStatus::MissingInput,
                    "summary.legacyApiMatches is absent",
                ),
                (
                    "missing_not_a_count",
                    json!({"summary": {"legacyApiMatches": 1.5}}),
                    GateStatus::MissingInput,
                    "summary.legacyApiMatches is 1.5, not a count",
                ),
            ],
        );
        insta::assert_snapshot!(markdown);
    }
}
