//! `plan_ok` (`OK-000`): the server planned the target schema and every step is additive.

use super::{ActionContext, Observation, Priority, Spec};

pub(super) const SPEC: Spec = Spec {
    code: "plan_ok",
    plan_id: "OK-000",
    blocking: false,
    priority: Priority::Low,
    title: "Plan is clean: include the app in the next wave",
};

pub(super) fn reason(observation: &Observation<'_>) -> String {
    match observation {
        Observation::Planned { counts, .. } if counts.total() == 0 => {
            "the app already has the target schema (no steps)".into()
        }
        Observation::Planned { counts, .. } => format!(
            "the server planned {} step(s), none critical or warning ({} safe, {} review)",
            counts.total(),
            counts.safe,
            counts.review
        ),
        _ => "the plan is clean".into(),
    }
}

pub(super) fn steps(context: &ActionContext<'_>) -> Vec<String> {
    vec![
        "Include the app in the next migration wave.".into(),
        format!(
            "Run the non-mutating pre-migration validation bundle before any change: `threadmig validate --org {}`.",
            super::text::shell_word(context.org_id)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::context;
    use super::super::{classify, IssueCode, Observation};
    use instant_schema::severity::{Gate, SeverityCounts};

    #[test]
    fn safe_plans_are_plan_ok_with_a_reason_per_shape() {
        let cases = [
            (
                SeverityCounts::default(),
                "the app already has the target schema (no steps)",
            ),
            (
                SeverityCounts {
                    safe: 3,
                    review: 1,
                    ..Default::default()
                },
                "the server planned 4 step(s), none critical or warning (3 safe, 1 review)",
            ),
        ];
        for (counts, want) in cases {
            let observation = Observation::Planned {
                counts,
                gate: Gate::from_counts(&counts),
                steps: &[],
            };
            let code = classify(&observation);
            assert_eq!(code, IssueCode::PlanOk);
            assert_eq!(code.reason(&observation, &context()), want);
        }
    }

    #[test]
    fn markdown() {
        let observation = Observation::Planned {
            counts: SeverityCounts {
                safe: 110,
                ..Default::default()
            },
            gate: Gate::Safe,
            steps: &[],
        };
        let reason = IssueCode::PlanOk.reason(&observation, &context());
        insta::assert_snapshot!(IssueCode::PlanOk.markdown(&context(), &reason));
    }
}
