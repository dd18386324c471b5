//! The case runbook: one case per diagnosed organisation, each with ordered intermediate
//! actions of three kinds: `manual_check` (look and confirm), `command` (a `threadmig` command
//! line, read-only or writing only into the case folder) and `human_gate` (a person approves
//! and records it; nothing here mutates an app or the directory). One module per action family.
//!
//! Compared with `build_case_runbook`:
//! - cases come from every diagnosed row, so missing credentials and directory failures get
//!   theirs; the matrix row is used (name, app), and a diagnostics file that does not belong
//!   to the matrix (another schema, an unknown org) is refused;
//! - commands are this tool's own (`threadmig …`), never carry a secret (credentials come from
//!   the directory the matrix used) and are POSIX shell words;
//! - `blockingCases` counts the blocking cases (it was always the total), and the case folders
//!   exist once the runbook is written.

mod app_not_found;
mod credentials;
mod directory;
mod duplicate_link;
mod generic;
mod plan_steps;
mod token;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::diagnose::{Diagnostic, DiagnosticsReport};
use crate::issues::{text, IssueCode, Priority};
use crate::matrix::{Connection, MatrixReport, LISTING_ROW_ID};

pub const REPORT_JSON: &str = "migration-case-runbook.json";
pub const REPORT_MD: &str = "migration-case-runbook.md";

/// The Clerk base URL commands leave out (it is the default of every command).
const DEFAULT_CLERK_API_URI: &str = "https://api.clerk.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Look at something and confirm it.
    ManualCheck,
    /// Run the command line given.
    Command,
    /// A person decides, acts through the approved process and records the approval.
    HumanGate,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ManualCheck => "manual_check",
            ActionKind::Command => "command",
            ActionKind::HumanGate => "human_gate",
        }
    }
}

/// One intermediate action of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunbookAction {
    pub id: String,
    pub title: String,
    pub kind: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl RunbookAction {
    fn new(id: &str, title: &str, kind: ActionKind, details: impl Into<String>) -> RunbookAction {
        RunbookAction {
            id: id.into(),
            title: title.into(),
            kind,
            details: Some(details.into()),
            command: None,
        }
    }

    fn command(
        id: &str,
        title: &str,
        details: impl Into<String>,
        words: Vec<String>,
    ) -> RunbookAction {
        RunbookAction {
            id: id.into(),
            title: title.into(),
            kind: ActionKind::Command,
            details: Some(details.into()),
            command: Some(text::shell_join(&words)),
        }
    }
}

/// Which catalogue of actions a case follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    SchemaDuplicateLink,
    InvalidAdminToken,
    MissingInstantCredentials,
    InstantAppNotFound,
    DirectoryLookup,
    PlanSteps,
    Generic,
}

impl Family {
    pub fn of(code: IssueCode) -> Family {
        match code {
            IssueCode::SchemaDuplicateLink => Family::SchemaDuplicateLink,
            IssueCode::InvalidAdminToken => Family::InvalidAdminToken,
            IssueCode::MissingInstantCredentials => Family::MissingInstantCredentials,
            IssueCode::InstantAppNotFound => Family::InstantAppNotFound,
            IssueCode::ClerkLookupError => Family::DirectoryLookup,
            IssueCode::PlanCriticalSteps | IssueCode::PlanReviewRequired => Family::PlanSteps,
            IssueCode::PlanOk | IssueCode::AccountMismatch | IssueCode::UnknownPlanError => {
                Family::Generic
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::SchemaDuplicateLink => "schema_duplicate_link",
            Family::InvalidAdminToken => "invalid_admin_token",
            Family::MissingInstantCredentials => "missing_instant_credentials",
            Family::InstantAppNotFound => "instant_app_not_found",
            Family::DirectoryLookup => "directory_lookup",
            Family::PlanSteps => "plan_steps",
            Family::Generic => "generic",
        }
    }

    fn actions(self, case: &CaseContext<'_>) -> Vec<RunbookAction> {
        match self {
            Family::SchemaDuplicateLink => duplicate_link::actions(case),
            Family::InvalidAdminToken => token::actions(case),
            Family::MissingInstantCredentials => credentials::actions(case),
            Family::InstantAppNotFound => app_not_found::actions(case),
            Family::DirectoryLookup => directory::actions(case),
            Family::PlanSteps => plan_steps::actions(case),
            Family::Generic => generic::actions(case),
        }
    }
}

/// What a family's actions may name.
#[derive(Debug, Clone, Copy)]
pub struct CaseContext<'a> {
    pub case_id: &'a str,
    /// `<cases root>/<case id>`, as command lines write it.
    pub case_dir: &'a str,
    pub diagnostic: &'a Diagnostic,
    /// The target schema as the matrix was given it.
    pub schema_file: &'a str,
    pub diagnostics_file: &'a str,
    /// `--workspace …` / `--instant-api-uri …` / `--clerk-api-uri …`, as the matrix ran.
    pub connection_flags: &'a [String],
}

impl CaseContext<'_> {
    fn org_id(&self) -> &str {
        &self.diagnostic.org.id
    }

    fn app_id(&self) -> &str {
        self.diagnostic.app_id.as_deref().unwrap_or("(no app id)")
    }

    fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.case_dir)
    }

    /// `threadmig matrix` for this org (the whole fleet for a failed listing), writing
    /// `<name>.json` and `<name>.md` into the case folder.
    fn matrix_words(&self, schema_file: &str, name: &str) -> Vec<String> {
        let mut words: Vec<String> = vec!["threadmig".into(), "matrix".into()];
        if self.org_id() != LISTING_ROW_ID {
            words.extend(["--org-ids".into(), self.org_id().to_string()]);
        }
        words.extend(["--schema-file".into(), schema_file.to_string()]);
        words.extend(self.connection_flags.iter().cloned());
        words.extend([
            "--out".into(),
            self.file(&format!("{name}.json")),
            "--out-md".into(),
            self.file(&format!("{name}.md")),
        ]);
        words
    }

    /// The last action of most families: plan the org again.
    fn replan(&self, id: &str, name: &str) -> RunbookAction {
        RunbookAction::command(
            id,
            "Re-plan the org",
            "Plan the full target schema again; the case is closed when the row is safe (or signed off).",
            self.matrix_words(self.schema_file, name),
        )
    }
}

/// The command-line flags that reach the same ports as the matrix did. Never a secret: the
/// Clerk key is read from `CLERK_SECRET_KEY` by the command itself.
pub fn connection_flags(connection: &Connection) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(workspace) = &connection.workspace {
        flags.extend(["--workspace".to_string(), workspace.clone()]);
    }
    let uri = &connection.instant_api_uri;
    if uri.starts_with("http://") || uri.starts_with("https://") {
        flags.extend(["--instant-api-uri".to_string(), uri.clone()]);
    }
    if let Some(clerk) = &connection.clerk_api_uri {
        if connection.workspace.is_none() && clerk.trim_end_matches('/') != DEFAULT_CLERK_API_URI {
            flags.extend(["--clerk-api-uri".to_string(), clerk.clone()]);
        }
    }
    flags
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseOrg {
    pub id: String,
    pub name: String,
}

/// One organisation's case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Case {
    pub case_id: String,
    pub case_dir: String,
    pub org: CaseOrg,
    pub app_id: Option<String>,
    pub issue_code: IssueCode,
    pub plan_id: String,
    pub family: Family,
    pub priority: Priority,
    pub blocking: bool,
    pub root_cause: String,
    pub plan_error: Option<String>,
    pub actions: Vec<RunbookAction>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunbookSummary {
    pub total_cases: usize,
    pub blocking_cases: usize,
    pub count_by_issue: BTreeMap<String, usize>,
    pub count_by_family: BTreeMap<String, usize>,
}

/// `migration-case-runbook.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunbookReport {
    /// No blocking case.
    pub ok: bool,
    pub generated_at: String,
    pub matrix_file: String,
    pub diagnostics_file: String,
    pub schema_file: String,
    pub cases_root: String,
    pub summary: RunbookSummary,
    pub cases: Vec<Case>,
    #[serde(default)]
    pub meta: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunbookError {
    #[error(
        "the diagnostics were made for schema sha256 {diagnostics}, the matrix for {matrix}: re-run diagnose on this matrix"
    )]
    SchemaMismatch { matrix: String, diagnostics: String },
    #[error(
        "diagnostics[{index}] is about org {org_id}, which is not in the matrix: re-run diagnose on this matrix"
    )]
    UnknownOrg { index: usize, org_id: String },
}

#[derive(Debug, Clone)]
pub struct RunbookConfig {
    pub generated_at: String,
    pub matrix_file: String,
    pub diagnostics_file: String,
    /// The target schema as the matrix was given it (commands plan it).
    pub schema_file: String,
    /// Where case folders go (`artifacts/cases`).
    pub cases_root: String,
}

/// `case-<nn>-<slug of the org id>`: the slug is lower case, runs of other characters than
/// `[a-z0-9]` become `-`, at most 48 characters.
pub fn case_id(index: usize, org_id: &str) -> String {
    let mut slug = String::new();
    for c in org_id.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug: String = slug.trim_matches('-').chars().take(48).collect();
    slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        slug = if org_id == LISTING_ROW_ID {
            "directory".into()
        } else {
            "org".into()
        };
    }
    format!("case-{:02}-{slug}", index + 1)
}

/// Builds the runbook from a matrix and the diagnostics made from it.
pub fn build_runbook(
    config: &RunbookConfig,
    matrix: &MatrixReport,
    diagnostics: &DiagnosticsReport,
) -> Result<RunbookReport, RunbookError> {
    if !matrix.schema_sha256.is_empty()
        && !diagnostics.schema_sha256.is_empty()
        && matrix.schema_sha256 != diagnostics.schema_sha256
    {
        return Err(RunbookError::SchemaMismatch {
            matrix: matrix.schema_sha256.clone(),
            diagnostics: diagnostics.schema_sha256.clone(),
        });
    }
    let rows: HashMap<&str, &crate::matrix::MatrixRow> = matrix
        .rows
        .iter()
        .map(|row| (row.org.id.as_str(), row))
        .collect();
    let flags = connection_flags(&matrix.connection());
    let mut cases = Vec::new();
    for (index, diagnostic) in diagnostics.diagnostics.iter().enumerate() {
        if diagnostic.org.id.trim().is_empty() {
            continue;
        }
        let Some(row) = rows.get(diagnostic.org.id.as_str()) else {
            return Err(RunbookError::UnknownOrg {
                index,
                org_id: diagnostic.org.id.clone(),
            });
        };
        let case_id = case_id(index, &diagnostic.org.id);
        let case_dir = format!("{}/{case_id}", config.cases_root.trim_end_matches('/'));
        let family = Family::of(diagnostic.issue_code);
        let context = CaseContext {
            case_id: &case_id,
            case_dir: &case_dir,
            diagnostic,
            schema_file: &config.schema_file,
            diagnostics_file: &config.diagnostics_file,
            connection_flags: &flags,
        };
        let actions = family.actions(&context);
        cases.push(Case {
            org: CaseOrg {
                id: row.org.id.clone(),
                name: row.org.name.clone(),
            },
            app_id: row.instant.app_id.clone(),
            issue_code: diagnostic.issue_code,
            plan_id: diagnostic.plan_id.clone(),
            family,
            priority: diagnostic.issue_code.priority(),
            blocking: diagnostic.blocking,
            root_cause: diagnostic.root_cause.clone(),
            plan_error: diagnostic.plan_error.clone(),
            actions,
            case_dir,
            case_id,
        });
    }
    let mut summary = RunbookSummary {
        total_cases: cases.len(),
        ..RunbookSummary::default()
    };
    for case in &cases {
        if case.blocking {
            summary.blocking_cases += 1;
        }
        *summary
            .count_by_issue
            .entry(case.issue_code.as_str().to_string())
            .or_insert(0) += 1;
        *summary
            .count_by_family
            .entry(case.family.as_str().to_string())
            .or_insert(0) += 1;
    }
    Ok(RunbookReport {
        ok: summary.blocking_cases == 0,
        generated_at: config.generated_at.clone(),
        matrix_file: config.matrix_file.clone(),
        diagnostics_file: config.diagnostics_file.clone(),
        schema_file: config.schema_file.clone(),
        cases_root: config.cases_root.clone(),
        summary,
        cases,
        meta: json!({}),
    })
}

impl RunbookReport {
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub fn from_json(text: &str) -> Result<RunbookReport, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_markdown(&self) -> String {
        markdown(self)
    }

    /// Creates every case folder (commands write their outputs there).
    pub fn create_case_dirs(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut made = Vec::new();
        for case in &self.cases {
            let dir = Path::new(&case.case_dir).to_path_buf();
            std::fs::create_dir_all(&dir)?;
            made.push(dir);
        }
        Ok(made)
    }
}

fn markdown(report: &RunbookReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "# Migration Case Runbook\n");
    let _ = writeln!(out, "- Generated: {}", report.generated_at);
    let _ = writeln!(out, "- Matrix: `{}`", report.matrix_file);
    let _ = writeln!(out, "- Diagnostics: `{}`", report.diagnostics_file);
    let _ = writeln!(out, "- Source schema: `{}`", report.schema_file);
    let _ = writeln!(out, "- Cases folder: `{}`", report.cases_root);
    let _ = writeln!(out, "- Total cases: {}", report.summary.total_cases);
    let _ = writeln!(out, "- Blocking cases: {}", report.summary.blocking_cases);
    let _ = writeln!(out, "\n## Principles\n");
    let _ = writeln!(
        out,
        "- Nothing is applied automatically: every change to an app or to the directory is a human gate with a recorded approval."
    );
    let _ = writeln!(
        out,
        "- Work case by case and one action at a time; check each action's result before the next."
    );
    let _ = writeln!(
        out,
        "- Re-plan the org after every action that changes it; a case closes on a safe (or signed-off) plan."
    );
    let _ = writeln!(out, "\n## Case Summary\n");
    if report.cases.is_empty() {
        let _ = writeln!(out, "No cases: every organisation is safe.");
        return out;
    }
    let _ = writeln!(out, "| Case | Org | App | Issue | Priority | Blocking |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for case in &report.cases {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | `{}` | {} | {} |",
            case.case_id,
            text::cell(&case.org.id, 80),
            case.app_id
                .as_deref()
                .map(|app| format!("`{app}`"))
                .unwrap_or_else(|| "-".into()),
            case.issue_code.as_str(),
            case.priority.as_str(),
            if case.blocking { "yes" } else { "no" }
        );
    }
    for case in &report.cases {
        let _ = writeln!(out);
        out.push_str(&case_markdown(case));
    }
    out
}

/// One case as Markdown: its facts and its intermediate actions.
pub fn case_markdown(case: &Case) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "## {}\n", case.case_id);
    let org = if case.org.name.is_empty() {
        format!("`{}`", case.org.id)
    } else {
        format!("`{}` ({})", case.org.id, case.org.name)
    };
    let _ = writeln!(out, "- Org: {org}");
    let _ = writeln!(
        out,
        "- App: {}",
        case.app_id
            .as_deref()
            .map(|app| format!("`{app}`"))
            .unwrap_or_else(|| "none".into())
    );
    let _ = writeln!(
        out,
        "- Issue: `{}` ({})",
        case.issue_code.as_str(),
        case.plan_id
    );
    let _ = writeln!(out, "- Priority: {}", case.priority.as_str());
    let _ = writeln!(
        out,
        "- Blocking: {}",
        if case.blocking { "yes" } else { "no" }
    );
    let _ = writeln!(out, "- Root cause: {}", text::one_line(&case.root_cause));
    let _ = writeln!(out, "- Folder: `{}`", case.case_dir);
    let _ = writeln!(out, "\n### Intermediate Actions\n");
    for (i, action) in case.actions.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. **{}** ({}, `{}`)",
            i + 1,
            action.title,
            action.kind.as_str(),
            action.id
        );
        if let Some(details) = &action.details {
            let _ = writeln!(out, "   {}", text::one_line(details));
        }
        if let Some(command) = &action.command {
            let _ = writeln!(out, "   ```sh\n   {command}\n   ```");
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::diagnose::DiagnosticOrg;
    use instant_schema::severity::Gate;

    pub fn diagnostic(code: IssueCode) -> Diagnostic {
        Diagnostic {
            org: DiagnosticOrg {
                id: "org_2abcDEF".into(),
                name: "Acme 00 (synthetic)".into(),
            },
            app_id: Some("7a1c0d1e-0000-4000-8000-000000000001".into()),
            issue_code: code,
            plan_id: code.plan_id().into(),
            blocking: code.blocking(),
            gate: Gate::Blocked,
            root_cause: "the root cause".into(),
            duplicate_target: None,
            duplicate_targets: Vec::new(),
            plan_error: None,
            current_schema: None,
            legacy_owners: Vec::new(),
            sanitized_plan: None,
            notable_steps: Vec::new(),
            actions: Vec::new(),
            resolution_plan: None,
            diagnostic_error: None,
        }
    }

    pub fn flags() -> Vec<String> {
        connection_flags(&Connection {
            instant_api_uri: "http://127.0.0.1:8888".into(),
            clerk_api_uri: None,
            workspace: Some("/work/ws".into()),
        })
    }

    /// The case of `diagnostic` as the runbook builds it, and its Markdown.
    pub fn case(diagnostic: &Diagnostic) -> (Case, String) {
        let flags = flags();
        let case_id = case_id(0, &diagnostic.org.id);
        let case_dir = format!("artifacts/cases/{case_id}");
        let context = CaseContext {
            case_id: &case_id,
            case_dir: &case_dir,
            diagnostic,
            schema_file: "builtin:thread-v1",
            diagnostics_file: "artifacts/reports/schema-plan-diagnostics.json",
            connection_flags: &flags,
        };
        let family = Family::of(diagnostic.issue_code);
        let case = Case {
            org: CaseOrg {
                id: diagnostic.org.id.clone(),
                name: diagnostic.org.name.clone(),
            },
            app_id: diagnostic.app_id.clone(),
            issue_code: diagnostic.issue_code,
            plan_id: diagnostic.plan_id.clone(),
            family,
            priority: diagnostic.issue_code.priority(),
            blocking: diagnostic.blocking,
            root_cause: diagnostic.root_cause.clone(),
            plan_error: diagnostic.plan_error.clone(),
            actions: family.actions(&context),
            case_dir: case_dir.clone(),
            case_id: case_id.clone(),
        };
        let markdown = case_markdown(&case);
        (case, markdown)
    }

    /// `id kind` per action, one per line.
    pub fn outline(case: &Case) -> String {
        case.actions
            .iter()
            .map(|action| format!("{} {}", action.id, action.kind.as_str()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every command is this tool's, one line, and without a token.
    pub fn assert_commands_are_ours(case: &Case) {
        for action in &case.actions {
            if let Some(command) = &action.command {
                assert!(command.starts_with("threadmig "), "{command}");
                assert!(
                    !command.contains('\n') && !command.contains("node "),
                    "{command}"
                );
                for secret_flag in [
                    "--admin-token",
                    "--token",
                    "--clerk-secret",
                    "CLERK_SECRET_KEY",
                ] {
                    assert!(!command.contains(secret_flag), "{command}");
                }
            }
            assert_eq!(
                action.command.is_some(),
                action.kind == ActionKind::Command,
                "{}",
                action.id
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_and_families() {
        let ids = [
            case_id(0, "org_2abcDEF"),
            case_id(11, "Org  With--Many__Symbols!!"),
            case_id(2, LISTING_ROW_ID),
            case_id(3, &"x".repeat(60)),
        ];
        expect_test::expect![[r#"
            case-01-org-2abcdef
            case-12-org-with-many-symbols
            case-03-directory
            case-04-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"#]]
        .assert_eq(&ids.join("\n"));
        let families: Vec<String> = IssueCode::ALL
            .iter()
            .map(|code| format!("{} -> {}", code.as_str(), Family::of(*code).as_str()))
            .collect();
        expect_test::expect![[r#"
            plan_ok -> generic
            plan_review_required -> plan_steps
            plan_critical_steps -> plan_steps
            missing_instant_credentials -> missing_instant_credentials
            clerk_lookup_error -> directory_lookup
            invalid_admin_token -> invalid_admin_token
            account_mismatch -> generic
            schema_duplicate_link -> schema_duplicate_link
            instant_app_not_found -> instant_app_not_found
            unknown_plan_error -> generic"#]]
        .assert_eq(&families.join("\n"));
    }

    #[test]
    fn connection_flags_follow_the_matrix() {
        let cases = [
            (
                Connection {
                    instant_api_uri: "embedded:/ws".into(),
                    clerk_api_uri: None,
                    workspace: Some("/ws".into()),
                },
                "--workspace /ws",
            ),
            (
                Connection {
                    instant_api_uri: "http://127.0.0.1:1".into(),
                    clerk_api_uri: None,
                    workspace: Some("/w s".into()),
                },
                "--workspace '/w s' --instant-api-uri http://127.0.0.1:1",
            ),
            (
                Connection {
                    instant_api_uri: "https://api.instantdb.com".into(),
                    clerk_api_uri: Some("https://api.clerk.com/".into()),
                    workspace: None,
                },
                "--instant-api-uri https://api.instantdb.com",
            ),
            (
                Connection {
                    instant_api_uri: "https://api.instantdb.com".into(),
                    clerk_api_uri: Some("http://127.0.0.1:9".into()),
                    workspace: None,
                },
                "--instant-api-uri https://api.instantdb.com --clerk-api-uri http://127.0.0.1:9",
            ),
        ];
        for (connection, want) in cases {
            assert_eq!(text::shell_join(&connection_flags(&connection)), want);
        }
    }
}
