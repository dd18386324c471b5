//! How risky a plan step is, and what a whole plan means for the migration gate.
//!
//! The step table lives in exactly one place ([`Severity::of`]) so every command that grades a
//! plan (single app, org matrix, bundle validation) grades it the same way. The validation
//! bundle historically used a variant without `review`; it is kept as its own explicitly named
//! function ([`Severity::of_bundle`]) instead of a silently different copy of the table.

use serde::{Deserialize, Serialize};

/// Risk of one plan step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Can lose or reject data, or change how existing data is read.
    Critical,
    /// Relaxes a guarantee other code may rely on.
    Warning,
    /// Not understood by this tool: a person has to look at it.
    Review,
    /// Additive.
    Safe,
}

impl Severity {
    /// The severity of a step by its wire type (`add-attr`, `index`, …). A type this table does
    /// not know, including a missing one (pass `""` or `"unknown"`), is [`Severity::Review`]:
    /// never `safe`, so a step nobody understood cannot pass a gate unnoticed.
    pub fn of(step_type: &str) -> Severity {
        match step_type {
            "delete-attr" | "update-attr" | "unique" | "required" | "check-data-type" => {
                Severity::Critical
            }
            "remove-unique" | "remove-required" | "remove-index" | "remove-data-type" => {
                Severity::Warning
            }
            "add-attr" | "index" => Severity::Safe,
            _ => Severity::Review,
        }
    }

    /// The pre-migration bundle's variant of the table: same critical and warning sets, but
    /// everything else is `safe` (there is no `review`). Kept for report compatibility only;
    /// prefer [`Severity::of`], which does not wave unknown steps through.
    pub fn of_bundle(step_type: &str) -> Severity {
        match Severity::of(step_type) {
            Severity::Review => Severity::Safe,
            other => other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Review => "review",
            Severity::Safe => "safe",
        }
    }
}

/// How many steps of each severity a plan has (`countsBySeverity` in reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    pub critical: usize,
    pub warning: usize,
    pub review: usize,
    pub safe: usize,
}

impl SeverityCounts {
    pub fn add(&mut self, severity: Severity) {
        match severity {
            Severity::Critical => self.critical += 1,
            Severity::Warning => self.warning += 1,
            Severity::Review => self.review += 1,
            Severity::Safe => self.safe += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.critical + self.warning + self.review + self.safe
    }
}

impl FromIterator<Severity> for SeverityCounts {
    fn from_iter<I: IntoIterator<Item = Severity>>(iter: I) -> Self {
        let mut counts = SeverityCounts::default();
        for severity in iter {
            counts.add(severity);
        }
        counts
    }
}

/// What a plan allows: go ahead, ask a person, or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    Safe,
    Review,
    Blocked,
}

impl Gate {
    /// Any critical step blocks; otherwise any warning asks for review; otherwise safe.
    /// Review-severity steps do not change the gate (they are reported, and the caller decides
    /// whether to show them); this is the rule the existing reports are built on.
    pub fn from_counts(counts: &SeverityCounts) -> Gate {
        if counts.critical > 0 {
            Gate::Blocked
        } else if counts.warning > 0 {
            Gate::Review
        } else {
            Gate::Safe
        }
    }

    /// A plan the server refused (collisions, invalid cascade) cannot be applied at all.
    pub fn for_plan_errors() -> Gate {
        Gate::Blocked
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Safe => "safe",
            Gate::Review => "review",
            Gate::Blocked => "blocked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    const ALL_TYPES: &[&str] = &[
        "add-attr",
        "update-attr",
        "delete-attr",
        "index",
        "remove-index",
        "unique",
        "remove-unique",
        "required",
        "remove-required",
        "check-data-type",
        "remove-data-type",
        "rename-attr",
        "unknown",
        "",
    ];

    #[test]
    fn step_table_and_bundle_variant() {
        let table: Vec<String> = ALL_TYPES
            .iter()
            .map(|t| {
                format!(
                    "{:<18} {:<8} bundle={}",
                    if t.is_empty() { "(missing)" } else { t },
                    Severity::of(t).as_str(),
                    Severity::of_bundle(t).as_str()
                )
            })
            .collect();
        expect![[r#"
            add-attr           safe     bundle=safe
            update-attr        critical bundle=critical
            delete-attr        critical bundle=critical
            index              safe     bundle=safe
            remove-index       warning  bundle=warning
            unique             critical bundle=critical
            remove-unique      warning  bundle=warning
            required           critical bundle=critical
            remove-required    warning  bundle=warning
            check-data-type    critical bundle=critical
            remove-data-type   warning  bundle=warning
            rename-attr        review   bundle=safe
            unknown            review   bundle=safe
            (missing)          review   bundle=safe"#]]
        .assert_eq(&table.join("\n"));
    }

    #[test]
    fn gate_from_counts() {
        let cases = [
            (SeverityCounts::default(), Gate::Safe),
            (
                SeverityCounts {
                    safe: 3,
                    review: 2,
                    ..Default::default()
                },
                Gate::Safe,
            ),
            (
                SeverityCounts {
                    warning: 1,
                    safe: 3,
                    ..Default::default()
                },
                Gate::Review,
            ),
            (
                SeverityCounts {
                    critical: 1,
                    warning: 1,
                    ..Default::default()
                },
                Gate::Blocked,
            ),
        ];
        for (counts, gate) in cases {
            assert_eq!(Gate::from_counts(&counts), gate, "{counts:?}");
        }
        assert_eq!(Gate::for_plan_errors(), Gate::Blocked);
    }

    #[test]
    fn serde_is_lowercase() {
        let counts: SeverityCounts = [Severity::Critical, Severity::Safe, Severity::Safe]
            .into_iter()
            .collect();
        expect![[r#"{"critical":1,"warning":0,"review":0,"safe":2} "blocked" "review""#]]
            .assert_eq(&format!(
                "{} {} {}",
                serde_json::to_string(&counts).unwrap(),
                serde_json::to_string(&Gate::from_counts(&counts)).unwrap(),
                serde_json::to_string(&Severity::Review).unwrap()
            ));
    }
}
