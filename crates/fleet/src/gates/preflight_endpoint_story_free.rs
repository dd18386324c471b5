//! `preflight.endpoint_story_free`: no endpoint route imports or calls the @ekairos/story runtime (`readiness.endpointStoryFree`).

use serde_json::Value;

use super::{GateSpec, InputKind, Verdict};

pub(super) static SPEC: GateSpec = GateSpec {
    id: "preflight.endpoint_story_free",
    input: InputKind::Preflight,
    checks: "no endpoint route imports or calls the @ekairos/story runtime (`readiness.endpointStoryFree`)",
    remedy: "move the listed endpoint routes (`findings.endpointStoryRefs` of the scan) from @ekairos/story to @ekairos/thread, deploy, then re-run `threadmig scan` and the gates",
    evaluate,
};

fn evaluate(document: &Value) -> Verdict {
    super::flag_gate(
        document,
        &super::FlagGate {
            flag: "/readiness/endpointStoryFree",
            count: "/counts/endpointStoryRefs",
            count_name: "endpointStoryRefs",
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
            Gate::PreflightEndpointStoryFree,
            &[
                (
                    "pass",
                    json!({"readiness": {"endpointStoryFree": true}, "counts": {"endpointStoryRefs": 0, "unparsedFiles": 0}}),
                    GateStatus::Pass,
                    "endpointStoryRefs=0",
                ),
                (
                    "pass_anchor_shape_without_parse_counts",
                    json!({"readiness": {"endpointStoryFree": true}, "counts": {"endpointStoryRefs": 0}}),
                    GateStatus::Pass,
                    "endpointStoryRefs=0",
                ),
                (
                    "fail",
                    json!({"readiness": {"endpointStoryFree": false}, "counts": {"endpointStoryRefs": 2}}),
                    GateStatus::Fail,
                    "endpointStoryRefs=2",
                ),
                (
                    "fail_flag_and_count_disagree",
                    json!({"readiness": {"endpointStoryFree": true}, "counts": {"endpointStoryRefs": 3}}),
                    GateStatus::Fail,
                    "endpointStoryRefs=3; readiness.endpointStoryFree is true but counts.endpointStoryRefs is 3",
                ),
                (
                    "fail_unparsed_files",
                    json!({"readiness": {"endpointStoryFree": true}, "counts": {"endpointStoryRefs": 0, "unparsedFiles": 2}}),
                    GateStatus::Fail,
                    "endpointStoryRefs=0; 2 file(s) did not parse and may hide story references",
                ),
                (
                    "missing_flag",
                    json!({"counts": {"endpointStoryRefs": 0}}),
                    GateStatus::MissingInput,
                    "readiness.endpointStoryFree is absent",
                ),
                (
                    "missing_wrong_type",
                    json!({"readiness": {"endpointStoryFree": "yes"}}),
                    GateStatus::MissingInput,
                    "readiness.endpointStoryFree is a string, not a boolean",
                ),
                (
                    "missing_bad_count",
                    json!({"readiness": {"endpointStoryFree": true}, "counts": {"endpointStoryRefs": -1}}),
                    GateStatus::MissingInput,
                    "counts.endpointStoryRefs is -1, not a count",
                ),
            ],
        );
        insta::assert_snapshot!(markdown);
    }
}
