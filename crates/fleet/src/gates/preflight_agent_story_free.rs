//! `preflight.agent_story_free`: no agent surface imports or calls the @ekairos/story runtime (`readiness.agentStoryFree`).

use serde_json::Value;

use super::{GateSpec, InputKind, Verdict};

pub(super) static SPEC: GateSpec = GateSpec {
    id: "preflight.agent_story_free",
    input: InputKind::Preflight,
    checks: "no agent surface imports or calls the @ekairos/story runtime (`readiness.agentStoryFree`)",
    remedy: "move the listed agent surfaces (`findings.agentStoryRefs` of the scan) from @ekairos/story to @ekairos/thread, then re-run `threadmig scan` and the gates",
    evaluate,
};

fn evaluate(document: &Value) -> Verdict {
    super::flag_gate(
        document,
        &super::FlagGate {
            flag: "/readiness/agentStoryFree",
            count: "/counts/agentStoryRefs",
            count_name: "agentStoryRefs",
            unparsed: "/counts/unparsedFiles",
            hidden: "story references",
        },
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
            Gate::PreflightAgentStoryFree,
            &[
                (
                    "pass",
                    json!({"readiness": {"agentStoryFree": true}, "counts": {"agentStoryRefs": 0, "unparsedFiles": 0}}),
                    GateStatus::Pass,
                    "agentStoryRefs=0",
                ),
                (
                    "pass_anchor_shape_without_parse_counts",
                    json!({"readiness": {"agentStoryFree": true}, "counts": {"agentStoryRefs": 0}}),
                    GateStatus::Pass,
                    "agentStoryRefs=0",
                ),
                (
                    "fail",
                    json!({"readiness": {"agentStoryFree": false}, "counts": {"agentStoryRefs": 2}}),
                    GateStatus::Fail,
                    "agentStoryRefs=2",
                ),
                (
                    "fail_flag_and_count_disagree",
                    json!({"readiness": {"agentStoryFree": true}, "counts": {"agentStoryRefs": 3}}),
                    GateStatus::Fail,
                    "agentStoryRefs=3; readiness.agentStoryFree is true but counts.agentStoryRefs is 3",
                ),
                (
                    "fail_unparsed_files",
                    json!({"readiness": {"agentStoryFree": true}, "counts": {"agentStoryRefs": 0, "unparsedFiles": 2}}),
                    GateStatus::Fail,
                    "agentStoryRefs=0; 2 file(s) did not parse and may hide story references",
                ),
                (
                    "missing_flag",
                    json!({"counts": {"agentStoryRefs": 0}}),
                    GateStatus::MissingInput,
                    "readiness.agentStoryFree is absent",
                ),
                (
                    "missing_wrong_type",
                    json!({"readiness": {"agentStoryFree": "yes"}}),
                    GateStatus::MissingInput,
                    "readiness.agentStoryFree is a string, not a boolean",
                ),
                (
                    "missing_bad_count",
                    json!({"readiness": {"agentStoryFree": true}, "counts": {"agentStoryRefs": -1}}),
                    GateStatus::MissingInput,
                    "counts.agentStoryRefs is -1, not a count",
                ),
            ],
        );
        insta::assert_snapshot!(markdown);
    }
}
