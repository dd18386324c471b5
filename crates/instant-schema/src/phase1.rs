//! The phase-1 (transitional) schema of a two-phase push.
//!
//! When the live app already has a link owning an `<entity>-><label>` that the target schema
//! gives to a different link, the server refuses the whole target schema (`schema_duplicate_link`).
//! Phase 1 pushes the target schema without the conflicting links, so everything else lands;
//! phase 2 pushes the full schema once the legacy link is dealt with.
//!
//! Which links to drop comes from the diagnostics report (rows whose sanitised trial plan
//! succeeded) and from names given by hand. Compared with the scripts this replaces:
//! - the caller may restrict the diagnostics to some organisations, so the transitional schema
//!   can be case-specific instead of dropping every org's conflicts;
//! - a hand-given candidate may be `entity->label`, which matches a link by either end, so a
//!   collision on a reverse label is handled too (matching by name only saw forward labels);
//! - nothing here reads the clock: the caller passes `generatedAt`, so the same inputs give
//!   the same bytes.

use indexmap::IndexSet;
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::{Schema, ShapeError};

/// Why no transitional schema could be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Phase1Error {
    #[error(
        "no links to remove: the diagnostics have no successful `schema_duplicate_link` sanitised plan and no link names were given"
    )]
    NoCandidates,
    #[error("none of the candidate links is in the schema: {}", candidates.join(", "))]
    NothingRemoved { candidates: Vec<String> },
    #[error("diagnostics report: {0}")]
    Diagnostics(ShapeError),
}

/// What to remove.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phase1Input<'a> {
    /// A diagnostics report (`{diagnostics: [...]}`); rows with
    /// `issueCode == "schema_duplicate_link"` and `sanitizedPlan.ok == true` contribute their
    /// `sanitizedPlan.removedLinks`.
    pub diagnostics: Option<&'a Value>,
    /// Only use diagnostics rows of these organisations (`org.id`); empty means every row.
    pub only_orgs: Vec<String>,
    /// Hand-given candidates, each text split on `,` and `;`. A candidate is a link name, or
    /// `entity->label` for every link with that forward or reverse end.
    pub remove_links: Vec<String>,
}

/// The transitional schema and what was done to get it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase1Schema {
    /// Every candidate, de-duplicated, in the order first seen (diagnostics first).
    pub remove_candidates: Vec<String>,
    /// Names of the links removed, in schema order of the candidates that removed them.
    pub removed_links: Vec<String>,
    /// Candidates that matched no link.
    pub missing_links: Vec<String>,
    /// The target schema without the removed links.
    #[serde(serialize_with = "serialize_schema")]
    pub schema: Schema,
}

fn serialize_schema<S: serde::Serializer>(
    schema: &Schema,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    schema.to_dsl_json().serialize(serializer)
}

/// Facts about the run that the caller knows and this crate must not invent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phase1Meta {
    pub generated_at: String,
    pub source_schema: String,
    pub schema_type: Option<String>,
    pub diagnostics_file: Option<String>,
}

/// Splits a `--remove-links` text on `,` and `;`, trimming and dropping empty parts.
pub fn split_names(text: &str) -> Vec<String> {
    text.split([',', ';'])
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// The link names the diagnostics report proposes to remove.
pub fn candidates_from_diagnostics(
    report: &Value,
    only_orgs: &[String],
) -> Result<Vec<String>, Phase1Error> {
    let bad = |at: String, message: &str| {
        Phase1Error::Diagnostics(ShapeError {
            at,
            message: message.to_string(),
        })
    };
    let rows = report
        .get("diagnostics")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            bad(
                "diagnostics".into(),
                "expected an array of diagnostics rows",
            )
        })?;
    let mut names = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let at = format!("diagnostics[{i}]");
        if !row.is_object() {
            return Err(bad(at, "expected an object"));
        }
        if row.get("issueCode").and_then(Value::as_str) != Some("schema_duplicate_link") {
            continue;
        }
        if !only_orgs.is_empty() {
            let org = row
                .pointer("/org/id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !only_orgs.iter().any(|wanted| wanted == org) {
                continue;
            }
        }
        let Some(plan) = row
            .get("sanitizedPlan")
            .filter(|plan| plan.get("ok") == Some(&Value::Bool(true)))
        else {
            continue;
        };
        let removed = match plan.get("removedLinks") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(removed)) => removed,
            Some(_) => {
                return Err(bad(
                    format!("{at}.sanitizedPlan.removedLinks"),
                    "expected an array",
                ))
            }
        };
        for (j, name) in removed.iter().enumerate() {
            let name = name.as_str().ok_or_else(|| {
                bad(
                    format!("{at}.sanitizedPlan.removedLinks[{j}]"),
                    "expected a string",
                )
            })?;
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Builds the transitional schema: `schema` without every candidate link.
pub fn generate_phase1(
    schema: &Schema,
    input: &Phase1Input<'_>,
) -> Result<Phase1Schema, Phase1Error> {
    let mut candidates: IndexSet<String> = IndexSet::new();
    if let Some(report) = input.diagnostics {
        candidates.extend(candidates_from_diagnostics(report, &input.only_orgs)?);
    }
    for text in &input.remove_links {
        candidates.extend(split_names(text));
    }
    if candidates.is_empty() {
        return Err(Phase1Error::NoCandidates);
    }

    let mut transitional = schema.clone();
    let mut removed: IndexSet<String> = IndexSet::new();
    let mut missing = Vec::new();
    for candidate in &candidates {
        let matching: Vec<String> = match candidate.split_once("->") {
            Some((entity, label)) => {
                let (entity, label) = (entity.trim(), label.trim());
                transitional
                    .links
                    .iter()
                    .filter(|(_, link)| {
                        (link.forward.on == entity && link.forward.label == label)
                            || (link.reverse.on == entity && link.reverse.label == label)
                    })
                    .map(|(name, _)| name.clone())
                    .collect()
            }
            None => transitional
                .links
                .contains_key(candidate)
                .then(|| candidate.clone())
                .into_iter()
                .collect(),
        };
        // A link removed by an earlier candidate still counts as found.
        if matching.is_empty() && !removed.contains(candidate) {
            missing.push(candidate.clone());
        }
        for name in matching {
            transitional.links.shift_remove(&name);
            removed.insert(name);
        }
    }
    if removed.is_empty() {
        return Err(Phase1Error::NothingRemoved {
            candidates: candidates.into_iter().collect(),
        });
    }
    Ok(Phase1Schema {
        remove_candidates: candidates.into_iter().collect(),
        removed_links: removed.into_iter().collect(),
        missing_links: missing,
        schema: transitional,
    })
}

impl Phase1Schema {
    /// The report document: `{ok, generatedAt, sourceSchema, schemaType, diagnosticsFile,
    /// removeCandidates, removedLinks, missingLinks, schema}`. Its `schema` key makes the file
    /// usable directly as a wrapped (`{schema: …}`) schema file.
    pub fn to_report(&self, meta: &Phase1Meta) -> Value {
        json!({
            "ok": true,
            "generatedAt": meta.generated_at,
            "sourceSchema": meta.source_schema,
            "schemaType": meta.schema_type,
            "diagnosticsFile": meta.diagnostics_file,
            "removeCandidates": self.remove_candidates,
            "removedLinks": self.removed_links,
            "missingLinks": self.missing_links,
            "schema": self.schema.to_dsl_json(),
        })
    }

    /// The Markdown summary for reviewers.
    pub fn to_markdown(&self, meta: &Phase1Meta) -> String {
        let list = |names: &[String]| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        format!(
            "# Phase 1 Transitional Schema\n\
             \n\
             - Generated: {generated}\n\
             - Source schema: `{source}`\n\
             - Removed link keys: {removed}\n\
             - Missing link keys: {missing}\n\
             \n\
             ## Rationale\n\
             \n\
             The live app already has a link that owns an `<entity>-><label>` which the target schema gives to \
             another link, so the server refuses the full target schema with a duplicate-entry error. This \
             transitional schema is the target schema without the conflicting links: pushing it applies every \
             other change now and leaves the legacy link untouched.\n\
             \n\
             ## Next step\n\
             \n\
             1. Plan this schema against the app and review the plan; push it only after approval.\n\
             2. Move the data of the legacy link that owns the conflicting label, then delete that link.\n\
             3. Plan the full target schema again (it must no longer report a duplicate entry) and push it.\n",
            generated = meta.generated_at,
            source = meta.source_schema,
            removed = list(&self.removed_links),
            missing = list(&self.missing_links),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn target() -> Schema {
        Schema::from_dsl_json(&json!({
            "entities": {
                "organization_organizations": {"attrs": {}},
                "external_connections": {"attrs": {}},
                "thread_threads": {"attrs": {}}
            },
            "links": {
                "organizationExternalConnections": {
                    "forward": {"on": "organization_organizations", "has": "many", "label": "externalConnections"},
                    "reverse": {"on": "external_connections", "has": "one", "label": "organization"}},
                "threadOrganization": {
                    "forward": {"on": "thread_threads", "has": "one", "label": "organization"},
                    "reverse": {"on": "organization_organizations", "has": "many", "label": "threads"}}
            },
            "rooms": {}
        }))
        .unwrap()
    }

    fn diagnostics() -> Value {
        json!({"diagnostics": [
            {"org": {"id": "org_1"}, "issueCode": "schema_duplicate_link",
             "sanitizedPlan": {"ok": true, "status": 200, "removedLinks": ["organizationExternalConnections"]}},
            {"org": {"id": "org_2"}, "issueCode": "schema_duplicate_link",
             "sanitizedPlan": {"ok": false, "status": 400, "removedLinks": ["threadOrganization"]}},
            {"org": {"id": "org_3"}, "issueCode": "invalid_admin_token"}
        ]})
    }

    fn meta() -> Phase1Meta {
        Phase1Meta {
            generated_at: "2025-01-01T00:00:00Z".into(),
            source_schema: "instant.schema.ts".into(),
            schema_type: Some("typescript".into()),
            diagnostics_file: Some("schema-plan-diagnostics.json".into()),
        }
    }

    #[test]
    fn removes_links_from_successful_sanitised_plans_and_given_names() {
        let report = diagnostics();
        let input = Phase1Input {
            diagnostics: Some(&report),
            remove_links: vec![
                "organizationExternalConnections; gone ,".into(),
                "gone".into(),
            ],
            ..Default::default()
        };
        let phase1 = generate_phase1(&target(), &input).unwrap();
        expect![[r#"
            candidates ["organizationExternalConnections", "gone"]
            removed ["organizationExternalConnections"]
            missing ["gone"]
            links ["threadOrganization"]"#]]
        .assert_eq(&format!(
            "candidates {:?}\nremoved {:?}\nmissing {:?}\nlinks {:?}",
            phase1.remove_candidates,
            phase1.removed_links,
            phase1.missing_links,
            phase1.schema.links.keys().collect::<Vec<_>>()
        ));
        let report = phase1.to_report(&meta());
        assert_eq!(report["schema"]["links"].as_object().unwrap().len(), 1);
        expect![[r#"
            # Phase 1 Transitional Schema

            - Generated: 2025-01-01T00:00:00Z
            - Source schema: `instant.schema.ts`
            - Removed link keys: `organizationExternalConnections`
            - Missing link keys: `gone`

            ## Rationale

            The live app already has a link that owns an `<entity>-><label>` which the target schema gives to another link, so the server refuses the full target schema with a duplicate-entry error. This transitional schema is the target schema without the conflicting links: pushing it applies every other change now and leaves the legacy link untouched.

            ## Next step

            1. Plan this schema against the app and review the plan; push it only after approval.
            2. Move the data of the legacy link that owns the conflicting label, then delete that link.
            3. Plan the full target schema again (it must no longer report a duplicate entry) and push it.
        "#]].assert_eq(&phase1.to_markdown(&meta()));
        // Same input, same bytes.
        assert_eq!(
            generate_phase1(&target(), &input)
                .unwrap()
                .to_report(&meta())
                .to_string(),
            report.to_string()
        );
    }

    #[test]
    fn identity_candidates_match_either_end() {
        let input = Phase1Input {
            remove_links: vec!["organization_organizations->threads".into()],
            ..Default::default()
        };
        let phase1 = generate_phase1(&target(), &input).unwrap();
        expect![[r#"["threadOrganization"] []"#]].assert_eq(&format!(
            "{:?} {:?}",
            phase1.removed_links, phase1.missing_links
        ));
    }

    #[test]
    fn orgs_filter_makes_it_case_specific() {
        let report = diagnostics();
        let input = Phase1Input {
            diagnostics: Some(&report),
            only_orgs: vec!["org_2".into()],
            ..Default::default()
        };
        expect!["no links to remove: the diagnostics have no successful `schema_duplicate_link` sanitised plan and no link names were given"]
            .assert_eq(&generate_phase1(&target(), &input).unwrap_err().to_string());
    }

    #[test]
    fn errors() {
        let none = Phase1Input::default();
        assert_eq!(
            generate_phase1(&target(), &none),
            Err(Phase1Error::NoCandidates)
        );
        let missing = Phase1Input {
            remove_links: vec!["nope;alsoNope".into()],
            ..Default::default()
        };
        expect!["none of the candidate links is in the schema: nope, alsoNope"].assert_eq(
            &generate_phase1(&target(), &missing)
                .unwrap_err()
                .to_string(),
        );
        let bad = json!({"diagnostics": [{"issueCode": "schema_duplicate_link",
                                          "sanitizedPlan": {"ok": true, "removedLinks": [3]}}]});
        let input = Phase1Input {
            diagnostics: Some(&bad),
            ..Default::default()
        };
        expect![
            "diagnostics report: diagnostics[0].sanitizedPlan.removedLinks[0]: expected a string"
        ]
        .assert_eq(&generate_phase1(&target(), &input).unwrap_err().to_string());
    }
}
