//! `preflight.target_endpoints_thread_ready`: every target agent endpoint shows thread or reactor evidence (`readiness.targetAgentEndpointsReady`).

use serde_json::Value;

use super::{GateSpec, InputKind, Verdict};

pub(super) static SPEC: GateSpec = GateSpec {
    id: "preflight.target_endpoints_thread_ready",
    input: InputKind::Preflight,
    checks: "every target agent endpoint shows thread or reactor evidence (`readiness.targetAgentEndpointsReady`)",
    remedy: "give each endpoint in `findings.endpointMissingThreadEvidence` of the scan its @ekairos/thread runtime (createThread / reactor), then re-run `threadmig scan` and the gates",
    evaluate,
};

fn evaluate(document: &Value) -> Verdict {
    super::flag_gate(
        document,
        &super::FlagGate {
            flag: "/readiness/targetAgentEndpointsReady",
            count: "/counts/endpointMissingThreadEvidence",
            count_name: "endpointMissingThreadEvidence",
            unparsed: "/counts/unparsedFiles",
            hidden: "endpoints without thread evidence",
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
            Gate::PreflightTargetEndpointsThreadReady,
            &[
                (
                    "pass",
                    json!({"readiness": {"targetAgentEndpointsReady": true}, "counts": {"endpointMissingThreadEvidence": 0, "unparsedFiles": 0}}),
                    GateStatus::Pass,
                    "endpointMissingThreadEvidence=0",
                ),
                (
                    "pass_anchor_shape_without_parse_counts",
                    json!({"readiness": {"targetAgentEndpointsReady": true}, "counts": {"endpointMissingThreadEvidence": 0}}),
                    GateStatus::Pass,
                    "endpointMissingThreadEvidence=0",
                ),
                (
                    "fail",
                    json!({"readiness": {"targetAgentEndpointsReady": false}, "counts": {"endpointMissingThreadEvidence": 2}}),
                    GateStatus::Fail,
                    "endpointMissingThreadEvidence=2",
                ),
                (
                    "fail_flag_and_count_disagree",
                    json!({"readiness": {"targetAgentEndpointsReady": true}, "counts": {"endpointMissingThreadEvidence": 3}}),
                    GateStatus::Fail,
                    "endpointMissingThreadEvidence=3; readiness.targetAgentEndpointsReady is true but counts.endpointMissingThreadEvidence is 3",
                ),
                (
                    "fail_unparsed_files",
                    json!({"readiness": {"targetAgentEndpointsReady": true}, "counts": {"endpointMissingThreadEvidence": 0, "unparsedFiles": 2}}),
                    GateStatus::Fail,
                    "endpointMissingThreadEvidence=0; 2 file(s) did not parse and may hide endpoints without thread evidence",
                ),
                (
                    "missing_flag",
                    json!({"counts": {"endpointMissingThreadEvidence": 0}}),
                    GateStatus::MissingInput,
                    "readiness.targetAgentEndpointsReady is absent",
                ),
                (
                    "missing_wrong_type",
                    json!({"readiness": {"targetAgentEndpointsReady": "yes"}}),
                    GateStatus::MissingInput,
                    "readiness.targetAgentEndpointsReady is a string, not a boolean",
                ),
                (
                    "missing_bad_count",
                    json!({"readiness": {"targetAgentEndpointsReady": true}, "counts": {"endpointMissingThreadEvidence": -1}}),
                    GateStatus::MissingInput,
                    "counts.endpointMissingThreadEvidence is -1, not a count",
                ),
            ],
        );
        insta::assert_snapshot!(markdown);
    }
}
