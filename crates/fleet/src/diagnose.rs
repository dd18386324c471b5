//! Diagnostics: the root cause of every matrix row that is not safe, and for
//! `schema_duplicate_link` the evidence of a two-phase resolution:
//! - the legacy owner of each colliding `<entity>-><label>`, from the app's pulled schema
//!   (links matched on either end, data attributes too);
//! - a sanitised trial plan: the target schema without the target links that claim the
//!   colliding labels, planned again to prove the rest of the schema is accepted;
//! - the phase texts and `resolutionPlan` (`two_phase_schema_push`) that `threadmig schema
//!   phase1 --diagnostics … --org …` and the runbook build on.
//!
//! Read-only (schema pull and plan). Compared with `diagnose_plan_failures`:
//! - every row that is not safe is diagnosed, missing credentials and directory failures
//!   included, so the runbook has a case for each (the old one only looked at errored rows);
//! - the issue code is the matrix row's, never re-derived with another precedence;
//! - only duplicate-link rows touch the network (the old one re-fetched every failed org from
//!   Clerk, including those Clerk had just failed to resolve);
//! - sanitising matches a link by either end, so a collision on a reverse label is handled;
//! - the schema must be the one the matrix planned (same sha256), or diagnose refuses.

use std::collections::BTreeMap;

use instant_api::{AppAuth, InstantApi};
use instant_schema::plan::instructions;
use instant_schema::severity::{Gate, Severity, SeverityCounts};
use instant_schema::{Identity, ServerSchema};
use org_directory::{CredentialsOutcome, OrgDirectory};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::issues::{duplicate_targets, text, IssueCode, LinkTarget};
use crate::matrix::{
    pool_map, MatrixReport, MatrixRow, Progress, StepInstruction, StepSummary, TargetSchema,
};

pub const REPORT_JSON: &str = "schema-plan-diagnostics.json";
pub const REPORT_MD: &str = "schema-plan-diagnostics.md";

/// How many per-step actions a plan-steps diagnosis lists before the generic steps.
const MAX_STEP_ACTIONS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiagnoseError {
    #[error(
        "the matrix planned schema sha256 {matrix}, but the schema given here ({schema_source}) has sha256 {given}: re-run the matrix with it, or diagnose with the matrix's schema"
    )]
    SchemaMismatch {
        matrix: String,
        given: String,
        schema_source: String,
    },
}

/// The ports a duplicate-link analysis needs.
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    pub directory: &'a dyn OrgDirectory,
    pub api: &'a dyn InstantApi,
}

#[derive(Debug, Clone)]
pub struct DiagnoseConfig {
    /// The matrix report's path as the report should name it.
    pub matrix_file: String,
    pub created_at: String,
    pub run_id: Option<String>,
    pub concurrency: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticOrg {
    pub id: String,
    pub name: String,
}

/// One end of an attribute in the pulled schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentRef {
    pub id: Option<String>,
    pub entity: String,
    pub label: String,
}

impl IdentRef {
    fn of(identity: &Identity) -> IdentRef {
        IdentRef {
            id: identity.id.clone(),
            entity: identity.etype.clone(),
            label: identity.label.clone(),
        }
    }

    pub fn ident(&self) -> String {
        format!("{}->{}", self.entity, self.label)
    }
}

/// A pulled attribute whose forward or reverse identity is a colliding target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityMatch {
    /// `forward` or `reverse`: which end of the existing attribute is the target.
    pub side: String,
    /// `link` or `attribute`.
    pub kind: String,
    /// The existing attribute's id.
    pub attr_id: Option<String>,
    pub owner: IdentRef,
    /// The other end of a link; `None` for a data attribute.
    pub counterpart: Option<IdentRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentSchema {
    pub ok: bool,
    pub status: u16,
    pub identity_match_count: usize,
    pub identity_matches: Vec<IdentityMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SanitizedPlan {
    /// The server accepted the sanitised schema.
    pub ok: bool,
    pub status: u16,
    /// Names of the target links left out.
    pub removed_links: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<StepSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase1 {
    pub description: String,
    pub removed_links: Vec<String>,
    pub plan_status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_gate: Option<Gate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase2 {
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolutionPlan {
    /// `two_phase_schema_push`.
    pub strategy: String,
    pub phase1: Phase1,
    pub phase2: Phase2,
}

/// The diagnosis of one matrix row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    pub org: DiagnosticOrg,
    pub app_id: Option<String>,
    pub issue_code: IssueCode,
    pub plan_id: String,
    pub blocking: bool,
    pub gate: Gate,
    /// The root cause in one line.
    pub root_cause: String,
    /// The first colliding target (the old report's key).
    #[serde(default)]
    pub duplicate_target: Option<LinkTarget>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicate_targets: Vec<LinkTarget>,
    #[serde(default)]
    pub plan_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_schema: Option<CurrentSchema>,
    /// The legacy owners, `entity->label` (with the other end of a link).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_owners: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanitized_plan: Option<SanitizedPlan>,
    /// The warning or critical steps of a planned row that is not safe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notable_steps: Vec<StepInstruction>,
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_plan: Option<ResolutionPlan>,
    /// What kept the analysis from completing (the row is reported all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticsSummary {
    /// Rows diagnosed (every row that is not safe).
    pub total_failures: usize,
    pub blocking: usize,
    pub count_by_issue: BTreeMap<String, usize>,
}

/// `schema-plan-diagnostics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticsReport {
    /// No blocking diagnosis.
    pub ok: bool,
    pub created_at: String,
    #[serde(default)]
    pub run_id: Option<String>,
    pub matrix_file: String,
    pub schema_source: String,
    pub schema_type: String,
    #[serde(default)]
    pub schema_sha256: String,
    pub summary: DiagnosticsSummary,
    pub diagnostics: Vec<Diagnostic>,
    #[serde(default)]
    pub meta: Value,
}

impl DiagnosticsReport {
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub fn from_json(text: &str) -> Result<DiagnosticsReport, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_markdown(&self) -> String {
        markdown(self)
    }
}

/// The rows diagnose looks at: every row that is not safe.
pub fn rows_to_diagnose(matrix: &MatrixReport) -> Vec<&MatrixRow> {
    matrix
        .rows
        .iter()
        .filter(|row| row.issue_code() != IssueCode::PlanOk)
        .collect()
}

/// Whether diagnosing `row` needs the ports (schema pull and a trial plan).
pub fn needs_ports(row: &MatrixRow) -> bool {
    row.issue_code() == IssueCode::SchemaDuplicateLink
}

/// Diagnoses every row of `matrix` that is not safe. `ports` may be `None` when no row needs
/// them ([`needs_ports`]); a row that does then says so in its `diagnosticError`.
pub fn run_diagnose(
    config: &DiagnoseConfig,
    matrix: &MatrixReport,
    target: &TargetSchema,
    ports: Option<Ports<'_>>,
    progress: Progress<'_>,
) -> Result<DiagnosticsReport, DiagnoseError> {
    if !matrix.schema_sha256.is_empty() && matrix.schema_sha256 != target.sha256 {
        return Err(DiagnoseError::SchemaMismatch {
            matrix: matrix.schema_sha256.clone(),
            given: target.sha256.clone(),
            schema_source: target.source.clone(),
        });
    }
    let rows = rows_to_diagnose(matrix);
    let diagnostics = pool_map(
        &rows,
        config.concurrency.max(1),
        |row| diagnose_row(row, target, ports),
        |row, panic| {
            let mut diagnostic = base_diagnostic(row);
            diagnostic.diagnostic_error =
                Some(format!("the analysis failed unexpectedly: {panic}"));
            diagnostic
        },
        progress,
    );
    let mut summary = DiagnosticsSummary {
        total_failures: diagnostics.len(),
        ..DiagnosticsSummary::default()
    };
    for diagnostic in &diagnostics {
        if diagnostic.blocking {
            summary.blocking += 1;
        }
        *summary
            .count_by_issue
            .entry(diagnostic.issue_code.as_str().to_string())
            .or_insert(0) += 1;
    }
    Ok(DiagnosticsReport {
        ok: summary.blocking == 0,
        created_at: config.created_at.clone(),
        run_id: config.run_id.clone(),
        matrix_file: config.matrix_file.clone(),
        schema_source: target.source.clone(),
        schema_type: target.schema_type.clone(),
        schema_sha256: target.sha256.clone(),
        summary,
        diagnostics,
        meta: json!({"envFilesLoaded": [], "envFilesFailed": [], "envAliasesApplied": []}),
    })
}

/// The diagnosis every row gets: code, root cause, actions.
fn base_diagnostic(row: &MatrixRow) -> Diagnostic {
    let code = row.issue_code();
    let notable_steps: Vec<StepInstruction> = row
        .plan
        .instructions
        .iter()
        .filter(|step| matches!(step.severity, Severity::Critical | Severity::Warning))
        .cloned()
        .collect();
    let mut actions: Vec<String> = Vec::new();
    for step in &notable_steps {
        if actions.len() == MAX_STEP_ACTIONS {
            actions.push(format!(
                "… and the actions of {} more step(s) in the matrix row.",
                notable_steps.len() - MAX_STEP_ACTIONS
            ));
            break;
        }
        let action = format!("[{}] {}", step.severity.as_str(), step.action);
        if !actions.contains(&action) {
            actions.push(action);
        }
    }
    actions.extend(row.action_plan.steps.iter().cloned());
    let targets = row
        .plan
        .error
        .as_deref()
        .map(duplicate_targets)
        .unwrap_or_default();
    Diagnostic {
        org: DiagnosticOrg {
            id: row.org.id.clone(),
            name: row.org.name.clone(),
        },
        app_id: row.instant.app_id.clone(),
        issue_code: code,
        plan_id: row.action_plan.plan_id.clone(),
        blocking: row.action_plan.blocking,
        gate: row.plan.gate,
        root_cause: row.reason.clone(),
        duplicate_target: targets.first().cloned(),
        duplicate_targets: targets,
        plan_error: row.plan_failure().map(|failure| failure.summary()),
        current_schema: None,
        legacy_owners: Vec::new(),
        sanitized_plan: None,
        notable_steps,
        actions,
        resolution_plan: None,
        diagnostic_error: None,
    }
}

fn diagnose_row(row: &MatrixRow, target: &TargetSchema, ports: Option<Ports<'_>>) -> Diagnostic {
    let mut diagnostic = base_diagnostic(row);
    if !needs_ports(row) {
        return diagnostic;
    }
    diagnostic.actions = default_duplicate_actions(&diagnostic.duplicate_targets);
    let Some(ports) = ports else {
        diagnostic.diagnostic_error = Some(
            "not analysed: no organisation directory and Instant API were given to pull the app's schema".into(),
        );
        return diagnostic;
    };
    let auth = match app_auth(row, ports.directory) {
        Ok(auth) => auth,
        Err(message) => {
            diagnostic.diagnostic_error = Some(message);
            return diagnostic;
        }
    };
    let targets = diagnostic.duplicate_targets.clone();
    // The legacy owners, from the live schema.
    match ports.api.schema_pull(&auth) {
        Ok(pulled) => {
            let matches = identity_matches(&pulled.schema, &targets);
            diagnostic.legacy_owners = matches.iter().map(owner_text).collect();
            diagnostic.legacy_owners.dedup();
            diagnostic.current_schema = Some(CurrentSchema {
                ok: true,
                status: 200,
                identity_match_count: matches.len(),
                identity_matches: matches,
                error: None,
            });
        }
        Err(error) => {
            diagnostic.current_schema = Some(CurrentSchema {
                ok: false,
                status: error.status,
                identity_match_count: 0,
                identity_matches: Vec::new(),
                error: Some(text::one_line(&scrubbed(&error.to_string(), &auth))),
            });
        }
    }
    // The trial plan without the target links that claim a colliding label.
    let mut sanitized = target.schema.clone();
    let removed: Vec<String> = sanitized
        .links
        .iter()
        .filter(|(_, link)| {
            targets.iter().any(|t| {
                (link.forward.on == t.entity && link.forward.label == t.label)
                    || (link.reverse.on == t.entity && link.reverse.label == t.label)
            })
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in &removed {
        sanitized.links.shift_remove(name);
    }
    if removed.is_empty() {
        diagnostic.root_cause = root_cause(&targets, &diagnostic.legacy_owners, &removed);
        diagnostic.diagnostic_error = Some(format!(
            "the target schema has no link on {}: nothing to leave out in a trial plan",
            idents(&targets)
        ));
        return diagnostic;
    }
    let trial = match ports
        .api
        .schema_plan(&auth, &crate::matrix::plan_request(&sanitized))
    {
        Ok(response) => {
            let steps = instructions(&response.steps, &response.current_schema);
            let counts: SeverityCounts = steps.iter().map(|step| step.severity).collect();
            let mut by_type = indexmap::IndexMap::new();
            for step in &steps {
                *by_type.entry(step.step_type.clone()).or_insert(0) += 1;
            }
            SanitizedPlan {
                ok: true,
                status: 200,
                removed_links: removed.clone(),
                gate: Some(Gate::from_counts(&counts)),
                summary: Some(StepSummary {
                    total: counts.total(),
                    counts_by_severity: counts,
                    counts_by_type: by_type,
                }),
                error: None,
            }
        }
        Err(error) => SanitizedPlan {
            ok: false,
            status: error.status,
            removed_links: removed.clone(),
            gate: None,
            summary: None,
            error: Some(text::one_line(&scrubbed(&error.to_string(), &auth))),
        },
    };
    diagnostic.root_cause = root_cause(&targets, &diagnostic.legacy_owners, &removed);
    if trial.ok {
        let owners = if diagnostic.legacy_owners.is_empty() {
            "the legacy owner could not be resolved from the pulled schema: check it in the dashboard".to_string()
        } else {
            format!(
                "legacy owner(s): {}; move their data and retire them before phase 2",
                diagnostic.legacy_owners.join("; ")
            )
        };
        let org = text::shell_word(&row.org.id);
        let phase1 = format!(
            "Phase 1: push the target schema without link(s) {} (generate it with `threadmig schema phase1 --diagnostics <schema-plan-diagnostics.json> --org {org}`, plan it, apply it after approval).",
            quoted_list(&removed)
        );
        let phase2 = format!(
            "Phase 2: plan the full target schema again (`threadmig matrix --org-ids {org} --schema-file {}`) and require a clean plan before the execution wave.",
            text::shell_word(&target.source)
        );
        diagnostic.actions = vec![
            phase1.clone(),
            format!("{}.", capitalise(&owners)),
            phase2.clone(),
        ];
        diagnostic.resolution_plan = Some(ResolutionPlan {
            strategy: "two_phase_schema_push".into(),
            phase1: Phase1 {
                description: phase1,
                removed_links: removed,
                plan_status: trial.status,
                plan_gate: trial.gate,
            },
            phase2: Phase2 {
                description: phase2,
            },
        });
    }
    diagnostic.sanitized_plan = Some(trial);
    diagnostic
}

/// The org's credentials, from the directory again (the matrix keeps no token), checked to
/// still name the app the matrix planned.
fn app_auth(row: &MatrixRow, directory: &dyn OrgDirectory) -> Result<AppAuth, String> {
    let outcome = directory.credentials(&row.org.id).map_err(|error| {
        format!("the organisation directory could not resolve the org again: {error}")
    })?;
    match outcome {
        CredentialsOutcome::Present(credentials) => {
            if let Some(planned) = &row.instant.app_id {
                if planned != &credentials.app_id {
                    return Err(format!(
                        "the directory now gives app {} for the org, the matrix planned app {planned}: re-run the matrix",
                        credentials.app_id
                    ));
                }
            }
            Ok(AppAuth::new(
                &credentials.app_id,
                credentials.admin_token.expose(),
            ))
        }
        outcome => Err(format!(
            "the org no longer has usable credentials: {}",
            outcome.reason().unwrap_or("")
        )),
    }
}

fn scrubbed(text: &str, auth: &AppAuth) -> String {
    let token = auth.admin_token.expose();
    if token.is_empty() {
        text.to_string()
    } else {
        text.replace(token, "<redacted>")
    }
}

/// Every pulled attribute with a forward or reverse identity equal to a target.
pub fn identity_matches(schema: &ServerSchema, targets: &[LinkTarget]) -> Vec<IdentityMatch> {
    let is_target = |identity: &Identity| {
        targets
            .iter()
            .any(|t| t.entity == identity.etype && t.label == identity.label)
    };
    let mut out = Vec::new();
    for attr in schema.refs.values() {
        if is_target(&attr.forward_identity) {
            out.push(IdentityMatch {
                side: "forward".into(),
                kind: "link".into(),
                attr_id: attr.id.clone(),
                owner: IdentRef::of(&attr.forward_identity),
                counterpart: attr.reverse_identity.as_ref().map(IdentRef::of),
            });
        }
        if let Some(reverse) = attr.reverse_identity.as_ref().filter(|r| is_target(r)) {
            out.push(IdentityMatch {
                side: "reverse".into(),
                kind: "link".into(),
                attr_id: attr.id.clone(),
                owner: IdentRef::of(reverse),
                counterpart: Some(IdentRef::of(&attr.forward_identity)),
            });
        }
    }
    for attrs in schema.blobs.values() {
        for attr in attrs
            .values()
            .filter(|attr| is_target(&attr.forward_identity))
        {
            out.push(IdentityMatch {
                side: "forward".into(),
                kind: "attribute".into(),
                attr_id: attr.id.clone(),
                owner: IdentRef::of(&attr.forward_identity),
                counterpart: None,
            });
        }
    }
    out
}

fn owner_text(found: &IdentityMatch) -> String {
    match &found.counterpart {
        Some(other) => format!("link {} <-> {}", found.owner.ident(), other.ident()),
        None => format!("data attribute {}", found.owner.ident()),
    }
}

fn idents(targets: &[LinkTarget]) -> String {
    if targets.is_empty() {
        "the conflicting label".into()
    } else {
        targets
            .iter()
            .map(LinkTarget::ident)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn root_cause(targets: &[LinkTarget], owners: &[String], removed: &[String]) -> String {
    let owned_by = if owners.is_empty() {
        "an existing link or attribute (not found in the pulled schema)".to_string()
    } else {
        owners.join("; ")
    };
    let wanted_by = if removed.is_empty() {
        "the target schema".to_string()
    } else {
        format!("target link(s) {}", quoted_list(removed))
    };
    format!(
        "{} is already owned by {owned_by} in the live schema, and {wanted_by} claim it",
        idents(targets)
    )
}

/// The old diagnose's default actions for a duplicate link (before a trial plan succeeds).
fn default_duplicate_actions(targets: &[LinkTarget]) -> Vec<String> {
    vec![
        format!(
            "Inspect {} and its current owner in the app's pulled schema.",
            idents(targets)
        ),
        "Push in two phases when the legacy and the new link share the entity and label: phase 1 without the new link, phase 2 the full schema.".into(),
        "Re-run the matrix after each phase.".into(),
    ]
}

fn markdown(report: &DiagnosticsReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "# Schema Plan Failure Diagnostics\n");
    let _ = writeln!(out, "- Generated: {}", report.created_at);
    let _ = writeln!(out, "- Matrix: `{}`", report.matrix_file);
    let _ = writeln!(
        out,
        "- Schema source: `{}` ({})",
        report.schema_source, report.schema_type
    );
    let _ = writeln!(
        out,
        "- Total failures analyzed: {}",
        report.summary.total_failures
    );
    let _ = writeln!(out, "- Blocking: {}", report.summary.blocking);
    let _ = writeln!(
        out,
        "- Distinct issue codes: {}",
        report.summary.count_by_issue.len()
    );
    let _ = writeln!(out, "\n## Issue Summary\n");
    if report.summary.count_by_issue.is_empty() {
        let _ = writeln!(out, "- none: every organisation is safe");
    }
    for (code, count) in &report.summary.count_by_issue {
        let _ = writeln!(out, "- `{code}`: {count}");
    }
    let _ = writeln!(out, "\n## Rows\n");
    let _ = writeln!(
        out,
        "| Org | App | Issue | Current Identity Matches | Sanitized Plan | Action |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for d in &report.diagnostics {
        let matches = d
            .current_schema
            .as_ref()
            .map(|current| {
                if current.ok {
                    current.identity_match_count.to_string()
                } else {
                    format!("pull failed ({})", current.status)
                }
            })
            .unwrap_or_else(|| "n/a".into());
        let sanitized = d
            .sanitized_plan
            .as_ref()
            .map(|plan| {
                if plan.ok {
                    "ok".to_string()
                } else {
                    format!("failed ({})", plan.status)
                }
            })
            .unwrap_or_else(|| "n/a".into());
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {matches} | {sanitized} | {} |",
            text::cell(&d.org.id, 80),
            d.app_id
                .as_deref()
                .map(|app| format!("`{app}`"))
                .unwrap_or_else(|| "-".into()),
            d.issue_code.as_str(),
            text::cell(d.actions.first().map(String::as_str).unwrap_or(""), 180)
        );
    }
    if !report.diagnostics.is_empty() {
        let _ = writeln!(out, "\n## Details");
    }
    for d in &report.diagnostics {
        let _ = writeln!(out);
        out.push_str(&diagnostic_markdown(d));
    }
    out
}

/// One diagnosis as Markdown: the org, the root cause, the evidence and the actions.
pub fn diagnostic_markdown(d: &Diagnostic) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let title = if d.org.name.is_empty() {
        format!("`{}`", d.org.id)
    } else {
        format!("`{}` ({})", d.org.id, d.org.name)
    };
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(
        out,
        "- Issue: `{}` ({}, {}, gate `{}`)",
        d.issue_code.as_str(),
        d.plan_id,
        if d.blocking {
            "blocking"
        } else {
            "not blocking"
        },
        d.gate.as_str()
    );
    let _ = writeln!(
        out,
        "- App: {}",
        d.app_id
            .as_deref()
            .map(|app| format!("`{app}`"))
            .unwrap_or_else(|| "none".into())
    );
    let _ = writeln!(out, "- Root cause: {}", text::one_line(&d.root_cause));
    if let Some(error) = &d.plan_error {
        let _ = writeln!(out, "- Plan error: {}", text::truncate(error, 400));
    }
    if !d.duplicate_targets.is_empty() {
        let _ = writeln!(out, "- Colliding: {}", idents(&d.duplicate_targets));
    }
    if let Some(current) = &d.current_schema {
        if current.ok {
            let owners = if d.legacy_owners.is_empty() {
                "none found".to_string()
            } else {
                d.legacy_owners.join("; ")
            };
            let _ = writeln!(out, "- Legacy owner (pulled schema): {owners}");
        } else {
            let _ = writeln!(
                out,
                "- Schema pull failed: {}",
                current.error.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(plan) = &d.sanitized_plan {
        let outcome = if plan.ok {
            let summary = plan.summary.clone().unwrap_or_default();
            format!(
                "accepted, gate `{}` ({} steps: {} critical, {} warning)",
                plan.gate.map(Gate::as_str).unwrap_or("-"),
                summary.total,
                summary.counts_by_severity.critical,
                summary.counts_by_severity.warning
            )
        } else {
            format!("refused ({})", plan.error.as_deref().unwrap_or(""))
        };
        let _ = writeln!(
            out,
            "- Sanitized plan without {}: {outcome}",
            quoted_list(&plan.removed_links)
        );
    }
    if let Some(plan) = &d.resolution_plan {
        let _ = writeln!(out, "- Resolution: `{}` (the actions below)", plan.strategy);
    }
    if let Some(error) = &d.diagnostic_error {
        let _ = writeln!(out, "- Not analysed further: {}", text::one_line(error));
    }
    if !d.notable_steps.is_empty() {
        let _ = writeln!(out, "\n| # | Severity | Type | Target |");
        let _ = writeln!(out, "|---|---|---|---|");
        for step in &d.notable_steps {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} |",
                step.index,
                step.severity.as_str(),
                step.step_type,
                step.target
                    .as_deref()
                    .map(|t| format!("`{t}`"))
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    let _ = writeln!(out, "\nActions:\n");
    for (i, action) in d.actions.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", i + 1, text::one_line(action));
    }
    out
}
