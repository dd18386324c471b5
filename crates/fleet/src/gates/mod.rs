//! The nine hot-deploy gates (`assert_hot_deploy_safe`, anchor §3.11 and §5.6), one module
//! per gate, with the old scripts' ids.
//!
//! Each gate reads one input report: the preflight scan (`artifacts/preflight/scan.json`), the
//! story -> thread model plan (`artifacts/reports/story-thread-model-plan.json`) or the org
//! matrix (`artifacts/reports/schema-plan-org-matrix.json`). Unlike the old script, nothing is
//! read as "0 when absent": an input that is missing, unreadable, not JSON, or lacks the field a
//! gate needs makes that gate `missing_input`, which fails closed (§8.16). `--allow-unsafe`
//! never turns a failed gate into a passed one: the report keeps `ok: false` and lists which
//! failed gates the operator overrode; a gate whose input is missing cannot be overridden
//! (nothing was measured).

mod input;
mod matrix_no_blocked_orgs;
mod matrix_no_failed_plans;
mod model_no_legacy_api_refs;
mod model_no_legacy_model_refs;
mod model_thread_api_present;
mod model_thread_model_present;
mod preflight_agent_story_free;
mod preflight_endpoint_story_free;
mod preflight_target_endpoints_thread_ready;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

pub use input::{GateInput, GateInputs, InputKind, InputProblem, InputState};

/// File name of the JSON report in `artifacts/reports/`.
pub const REPORT_JSON: &str = "hot-deploy-gates.json";
/// File name of the Markdown report in `artifacts/reports/`.
pub const REPORT_MD: &str = "hot-deploy-gates.md";

/// The outcome of one gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Pass,
    Fail,
    /// The input the gate reads is absent, unreadable, or lacks the field it needs. Fails
    /// closed: it blocks like `fail` and cannot be overridden.
    MissingInput,
}

impl GateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GateStatus::Pass => "pass",
            GateStatus::Fail => "fail",
            GateStatus::MissingInput => "missing_input",
        }
    }
}

/// What a gate decided and why (`detail` keeps the old `name=<n>` form first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: GateStatus,
    pub detail: String,
}

impl Verdict {
    pub fn pass(detail: impl Into<String>) -> Verdict {
        Verdict {
            status: GateStatus::Pass,
            detail: detail.into(),
        }
    }

    pub fn fail(detail: impl Into<String>) -> Verdict {
        Verdict {
            status: GateStatus::Fail,
            detail: detail.into(),
        }
    }

    pub fn missing(detail: impl Into<String>) -> Verdict {
        Verdict {
            status: GateStatus::MissingInput,
            detail: detail.into(),
        }
    }
}

/// The gate registry: every hot-deploy gate, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gate {
    PreflightEndpointStoryFree,
    PreflightAgentStoryFree,
    PreflightTargetEndpointsThreadReady,
    ModelNoLegacyModelRefs,
    ModelNoLegacyApiRefs,
    ModelThreadApiPresent,
    ModelThreadModelPresent,
    MatrixNoBlockedOrgs,
    MatrixNoFailedPlans,
}

/// What a gate module provides.
struct GateSpec {
    id: &'static str,
    input: InputKind,
    /// What passing means, in one line.
    checks: &'static str,
    /// What to do when it fails.
    remedy: &'static str,
    evaluate: fn(&Value) -> Verdict,
}

impl Gate {
    pub const ALL: [Gate; 9] = [
        Gate::PreflightEndpointStoryFree,
        Gate::PreflightAgentStoryFree,
        Gate::PreflightTargetEndpointsThreadReady,
        Gate::ModelNoLegacyModelRefs,
        Gate::ModelNoLegacyApiRefs,
        Gate::ModelThreadApiPresent,
        Gate::ModelThreadModelPresent,
        Gate::MatrixNoBlockedOrgs,
        Gate::MatrixNoFailedPlans,
    ];

    fn spec(self) -> &'static GateSpec {
        match self {
            Gate::PreflightEndpointStoryFree => &preflight_endpoint_story_free::SPEC,
            Gate::PreflightAgentStoryFree => &preflight_agent_story_free::SPEC,
            Gate::PreflightTargetEndpointsThreadReady => {
                &preflight_target_endpoints_thread_ready::SPEC
            }
            Gate::ModelNoLegacyModelRefs => &model_no_legacy_model_refs::SPEC,
            Gate::ModelNoLegacyApiRefs => &model_no_legacy_api_refs::SPEC,
            Gate::ModelThreadApiPresent => &model_thread_api_present::SPEC,
            Gate::ModelThreadModelPresent => &model_thread_model_present::SPEC,
            Gate::MatrixNoBlockedOrgs => &matrix_no_blocked_orgs::SPEC,
            Gate::MatrixNoFailedPlans => &matrix_no_failed_plans::SPEC,
        }
    }

    /// The anchor's gate id (`preflight.endpoint_story_free`, …).
    pub fn id(self) -> &'static str {
        self.spec().id
    }

    pub fn from_id(id: &str) -> Option<Gate> {
        Gate::ALL.into_iter().find(|gate| gate.id() == id)
    }

    /// The report the gate reads.
    pub fn input(self) -> InputKind {
        self.spec().input
    }

    /// What passing means.
    pub fn checks(self) -> &'static str {
        self.spec().checks
    }

    /// What to do when the gate fails.
    pub fn remedy(self) -> &'static str {
        self.spec().remedy
    }

    /// Judges the gate on its input document (already loaded and known to be a JSON object).
    pub fn evaluate_document(self, document: &Value) -> Verdict {
        (self.spec().evaluate)(document)
    }

    /// Judges the gate on whatever state its input is in.
    pub fn evaluate(self, input: &GateInput) -> Verdict {
        match &input.state {
            InputState::Loaded { value, .. } => self.evaluate_document(value),
            InputState::Missing(problem) => Verdict::missing(format!(
                "{} {}: {}",
                self.input().label(),
                input.path.display(),
                problem
            )),
        }
    }
}

/// One gate's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateResult {
    pub gate: Gate,
    pub status: GateStatus,
    pub detail: String,
    /// A failed gate the operator chose to proceed past with `--allow-unsafe`.
    pub overridden: bool,
}

impl GateResult {
    pub fn ok(&self) -> bool {
        self.status == GateStatus::Pass
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.gate.id(),
            "ok": self.ok(),
            "status": self.status.as_str(),
            "detail": self.detail,
            "input": self.gate.input().key(),
            "overridden": self.overridden,
        })
    }

    /// The gate's section of the Markdown report.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let status = match (self.status, self.overridden) {
            (GateStatus::Pass, _) => "PASS".to_string(),
            (GateStatus::Fail, true) => "FAIL (overridden with --allow-unsafe)".to_string(),
            (GateStatus::Fail, false) => "FAIL".to_string(),
            (GateStatus::MissingInput, _) => "MISSING INPUT (fails closed)".to_string(),
        };
        let _ = writeln!(out, "### `{}`: {status}", self.gate.id());
        let _ = writeln!(out);
        let _ = writeln!(out, "- Checks: {}", self.gate.checks());
        let _ = writeln!(out, "- Input: {}", self.gate.input().label());
        let _ = writeln!(out, "- Detail: {}", md_inline(&self.detail));
        if !self.ok() {
            let remedy = match self.status {
                GateStatus::MissingInput => self.gate.input().remedy(),
                _ => self.gate.remedy(),
            };
            let _ = writeln!(out, "- Action: {remedy}");
        }
        out
    }
}

/// Every gate's result, in registry order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub gates: Vec<GateResult>,
}

impl Evaluation {
    /// Judges every gate. With `allow_unsafe`, failed gates (not missing inputs) are marked
    /// overridden; their status stays `fail`.
    pub fn run(inputs: &GateInputs, allow_unsafe: bool) -> Evaluation {
        let gates = Gate::ALL
            .into_iter()
            .map(|gate| {
                let verdict = gate.evaluate(inputs.get(gate.input()));
                GateResult {
                    gate,
                    overridden: allow_unsafe && verdict.status == GateStatus::Fail,
                    status: verdict.status,
                    detail: verdict.detail,
                }
            })
            .collect();
        Evaluation { gates }
    }

    /// Every gate passed.
    pub fn ok(&self) -> bool {
        self.gates.iter().all(GateResult::ok)
    }

    /// Every gate passed, or failed and was overridden; no input is missing.
    pub fn proceed(&self) -> bool {
        self.gates.iter().all(|gate| gate.ok() || gate.overridden)
    }

    pub fn passed(&self) -> usize {
        self.gates.iter().filter(|gate| gate.ok()).count()
    }

    /// Ids of the gates that did not pass (failed or missing input).
    pub fn failed_ids(&self) -> Vec<&'static str> {
        self.ids(|gate| !gate.ok())
    }

    pub fn overridden_ids(&self) -> Vec<&'static str> {
        self.ids(|gate| gate.overridden)
    }

    pub fn missing_input_ids(&self) -> Vec<&'static str> {
        self.ids(|gate| gate.status == GateStatus::MissingInput)
    }

    fn ids(&self, keep: impl Fn(&GateResult) -> bool) -> Vec<&'static str> {
        self.gates
            .iter()
            .filter(|gate| keep(gate))
            .map(|gate| gate.gate.id())
            .collect()
    }

    pub fn get(&self, gate: Gate) -> Option<&GateResult> {
        self.gates.iter().find(|result| result.gate == gate)
    }
}

/// The hot-deploy gate report (`hot-deploy-gates.json` and `.md`).
#[derive(Debug, Clone)]
pub struct GateReport {
    pub run_id: Option<String>,
    /// RFC 3339 time of the envelope (the caller owns the clock).
    pub created_at: String,
    pub allow_unsafe: bool,
    pub inputs: GateInputs,
    pub evaluation: Evaluation,
}

impl GateReport {
    /// Loads the three inputs (never failing: problems become `missing_input` gates) and
    /// judges every gate.
    pub fn build(
        inputs: GateInputs,
        allow_unsafe: bool,
        run_id: Option<String>,
        created_at: impl Into<String>,
    ) -> GateReport {
        let evaluation = Evaluation::run(&inputs, allow_unsafe);
        GateReport {
            run_id,
            created_at: created_at.into(),
            allow_unsafe,
            inputs,
            evaluation,
        }
    }

    /// Every gate passed (never widened by `--allow-unsafe`).
    pub fn ok(&self) -> bool {
        self.evaluation.ok()
    }

    /// The wave may go on: every gate passed, or the failed ones were explicitly overridden.
    pub fn proceed(&self) -> bool {
        self.evaluation.proceed()
    }

    /// The anchor's report shape (`ok`, `allowUnsafe`, `runId`, `createdAt`, `inputs`,
    /// `evaluation{ok, totalGates, passedGates, failedGates, gates, blockers}`) plus the gate
    /// status, the overrides and each input's sha256.
    pub fn to_json(&self) -> Value {
        let evaluation = &self.evaluation;
        let blockers: Vec<Value> = evaluation
            .gates
            .iter()
            .filter(|gate| !gate.ok())
            .map(GateResult::to_json)
            .collect();
        let input_status: serde_json::Map<String, Value> = InputKind::ALL
            .into_iter()
            .map(|kind| (kind.key().to_string(), self.inputs.get(kind).status_json()))
            .collect();
        json!({
            "ok": self.ok(),
            "allowUnsafe": self.allow_unsafe,
            "proceed": self.proceed(),
            "runId": self.run_id,
            "createdAt": self.created_at,
            "inputs": {
                "preflightPath": path_string(&self.inputs.preflight.path),
                "modelPlanPath": path_string(&self.inputs.model_plan.path),
                "matrixPath": path_string(&self.inputs.matrix.path),
            },
            "inputStatus": input_status,
            "evaluation": {
                "ok": evaluation.ok(),
                "totalGates": evaluation.gates.len(),
                "passedGates": evaluation.passed(),
                "failedGates": evaluation.gates.len() - evaluation.passed(),
                "gates": evaluation.gates.iter().map(GateResult::to_json).collect::<Vec<_>>(),
                "blockers": blockers,
                "overriddenGates": evaluation.overridden_ids(),
                "missingInputGates": evaluation.missing_input_ids(),
            },
        })
    }

    pub fn to_markdown(&self) -> String {
        let evaluation = &self.evaluation;
        let mut out = String::new();
        let _ = writeln!(out, "# Hot-Deploy Gates");
        let _ = writeln!(out);
        let _ = writeln!(out, "- Generated: {}", self.created_at);
        let _ = writeln!(
            out,
            "- Run ID: {}",
            self.run_id.as_deref().unwrap_or("(none given)")
        );
        let failed = evaluation.gates.len() - evaluation.passed();
        if evaluation.ok() {
            let _ = writeln!(
                out,
                "- Result: PASS (all {} gates passed)",
                evaluation.gates.len()
            );
        } else {
            let _ = writeln!(
                out,
                "- Result: FAIL ({failed} of {} gates did not pass)",
                evaluation.gates.len()
            );
        }
        let overridden = evaluation.overridden_ids();
        let _ = writeln!(
            out,
            "- Allow unsafe: {}",
            match (self.allow_unsafe, overridden.len()) {
                (false, _) => "no".to_string(),
                (true, 0) => "yes (nothing to override)".to_string(),
                (true, n) => format!("yes ({n} failed gate(s) overridden)"),
            }
        );
        let _ = writeln!(
            out,
            "- Proceed: {}",
            if self.proceed() {
                "yes"
            } else {
                "no (a gate failed without override, or an input is missing)"
            }
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "## Inputs");
        let _ = writeln!(out);
        let _ = writeln!(out, "| Input | Path | Status | sha256 |");
        let _ = writeln!(out, "|---|---|---|---|");
        for kind in InputKind::ALL {
            let input = self.inputs.get(kind);
            let (status, sha) = match &input.state {
                InputState::Loaded { sha256, .. } => ("loaded".to_string(), sha256.as_str()),
                InputState::Missing(problem) => (problem.to_string(), "-"),
            };
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} |",
                kind.label(),
                md_cell(&path_string(&input.path)),
                md_cell(&status),
                sha
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "## Gates");
        let _ = writeln!(out);
        let _ = writeln!(out, "| Gate | Status | Detail | Overridden |");
        let _ = writeln!(out, "|---|---|---|---|");
        for gate in &evaluation.gates {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                gate.gate.id(),
                gate.status.as_str(),
                md_cell(&gate.detail),
                if gate.overridden { "yes" } else { "no" }
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "## Blockers");
        let _ = writeln!(out);
        let blockers: Vec<&GateResult> = evaluation.gates.iter().filter(|g| !g.ok()).collect();
        if blockers.is_empty() {
            let _ = writeln!(out, "none");
        } else {
            for gate in &blockers {
                let _ = writeln!(
                    out,
                    "- `{}` ({}{}): {}",
                    gate.gate.id(),
                    gate.status.as_str(),
                    if gate.overridden { ", overridden" } else { "" },
                    md_inline(&gate.detail)
                );
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "## Gate Details");
        for gate in &evaluation.gates {
            let _ = writeln!(out);
            out.push_str(&gate.to_markdown());
        }
        out
    }
}

/// An absence gate of the preflight scan: a readiness flag, the count behind it, and the
/// number of files the scan could not parse.
pub(crate) struct FlagGate {
    pub flag: &'static str,
    pub count: &'static str,
    pub count_name: &'static str,
    pub unparsed: &'static str,
    /// What unparsed files may hide (for the detail line).
    pub hidden: &'static str,
}

/// Passes when the flag is `true`, the count (when present) is 0 and every file parsed.
pub(crate) fn flag_gate(document: &Value, gate: &FlagGate) -> Verdict {
    let flag = match read::boolean(document, gate.flag) {
        Ok(flag) => flag,
        Err(error) => return Verdict::missing(error),
    };
    let count = match read::optional_count(document, gate.count) {
        Ok(count) => count,
        Err(error) => return Verdict::missing(error),
    };
    let unparsed = match read::unparsed_files(document, gate.unparsed) {
        Ok(unparsed) => unparsed,
        Err(error) => return Verdict::missing(error),
    };
    let detail = match count {
        Some(count) => format!("{}={count}", gate.count_name),
        None => format!("{}=?", gate.count_name),
    };
    if !flag {
        return Verdict::fail(detail);
    }
    if let Some(count @ 1..) = count {
        return Verdict::fail(format!(
            "{detail}; {} is true but {} is {count}",
            read::dotted(gate.flag),
            read::dotted(gate.count)
        ));
    }
    if unparsed > 0 {
        return Verdict::fail(format!(
            "{detail}; {unparsed} file(s) did not parse and may hide {}",
            gate.hidden
        ));
    }
    Verdict::pass(detail)
}

/// Passes when the count is 0 and every file parsed.
pub(crate) fn zero_gate(
    document: &Value,
    count: &str,
    count_name: &str,
    unparsed: &str,
    hidden: &str,
) -> Verdict {
    let value = match read::count(document, count) {
        Ok(value) => value,
        Err(error) => return Verdict::missing(error),
    };
    let unparsed = match read::unparsed_files(document, unparsed) {
        Ok(unparsed) => unparsed,
        Err(error) => return Verdict::missing(error),
    };
    let detail = format!("{count_name}={value}");
    if value > 0 {
        Verdict::fail(detail)
    } else if unparsed > 0 {
        Verdict::fail(format!(
            "{detail}; {unparsed} file(s) did not parse and may hide {hidden}"
        ))
    } else {
        Verdict::pass(detail)
    }
}

/// Passes when the count is above 0.
pub(crate) fn positive_gate(document: &Value, count: &str, count_name: &str) -> Verdict {
    match read::count(document, count) {
        Ok(0) => Verdict::fail(format!("{count_name}=0")),
        Ok(value) => Verdict::pass(format!("{count_name}={value}")),
        Err(error) => Verdict::missing(error),
    }
}

/// A matrix gate: the count the summary states, recomputed from the rows (the rows win when
/// they show more, so a summary that under-counts cannot pass the gate).
pub(crate) struct MatrixCount {
    /// `/summary/blocked`.
    pub summary: &'static str,
    /// `blocked`.
    pub name: &'static str,
    /// Whether one row counts.
    pub counts_row: fn(&Value) -> bool,
}

pub(crate) fn matrix_gate(document: &Value, gate: &MatrixCount) -> Verdict {
    let rows = match document.get("rows") {
        None | Some(Value::Null) => None,
        Some(Value::Array(rows)) => Some(rows),
        Some(_) => return Verdict::missing("rows is not an array"),
    };
    let stated = match read::optional_count(document, gate.summary) {
        Ok(stated) => stated,
        Err(error) => return Verdict::missing(error),
    };
    let total = match read::optional_count(document, "/summary/totalOrgs") {
        Ok(total) => rows.map(|rows| rows.len() as u64).or(total),
        Err(error) => return Verdict::missing(error),
    };
    let counted: Option<Vec<String>> = rows.map(|rows| {
        rows.iter()
            .filter(|row| (gate.counts_row)(row))
            .map(row_org_id)
            .collect()
    });
    let value = match (stated, &counted) {
        (None, None) => {
            return Verdict::missing(format!(
                "{} and rows are absent",
                read::dotted(gate.summary)
            ))
        }
        (Some(stated), None) => stated,
        (stated, Some(orgs)) => (orgs.len() as u64).max(stated.unwrap_or(0)),
    };
    let mut detail = format!("{}={value}", gate.name);
    if let (Some(stated), Some(orgs)) = (stated, &counted) {
        if stated != orgs.len() as u64 {
            detail.push_str(&format!(
                "; {} says {stated} but {} row(s) count",
                read::dotted(gate.summary),
                orgs.len()
            ));
        }
    }
    if let Some(orgs) = counted.as_ref().filter(|orgs| !orgs.is_empty()) {
        const SHOWN: usize = 5;
        let shown: Vec<&str> = orgs.iter().take(SHOWN).map(String::as_str).collect();
        detail.push_str(&format!("; orgs: {}", shown.join(", ")));
        if orgs.len() > SHOWN {
            detail.push_str(&format!(" (+{} more)", orgs.len() - SHOWN));
        }
    }
    if value > 0 {
        return Verdict::fail(detail);
    }
    if total == Some(0) {
        return Verdict::fail(format!(
            "{detail}; the matrix holds no organisation (nothing was planned)"
        ));
    }
    Verdict::pass(detail)
}

/// A row's `plan.status` (absent: `None`).
pub(crate) fn row_plan_status(row: &Value) -> Option<&str> {
    row.pointer("/plan/status").and_then(Value::as_str)
}

/// A row's org id, for details (`?` when the row does not say).
fn row_org_id(row: &Value) -> String {
    row.pointer("/org/id")
        .or_else(|| row.get("orgId"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .unwrap_or("?")
        .to_string()
}

/// Where the three inputs live under an artifacts root, by the anchor's names.
pub fn default_input_paths(artifacts: &Path) -> [(InputKind, PathBuf); 3] {
    InputKind::ALL.map(|kind| (kind, artifacts.join(kind.default_relative_path())))
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Text for a Markdown table cell: one line, pipes escaped.
pub(crate) fn md_cell(text: &str) -> String {
    md_inline(text).replace('|', "\\|")
}

/// Text for one Markdown line.
pub(crate) fn md_inline(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Field readers shared by the gate modules: each names the JSON path it could not use.
pub(crate) mod read {
    use serde_json::Value;

    /// `pointer` as a boolean; `Err` names what is wrong.
    pub fn boolean(document: &Value, pointer: &str) -> Result<bool, String> {
        match document.pointer(pointer) {
            Some(Value::Bool(value)) => Ok(*value),
            Some(other) => Err(format!(
                "{} is {}, not a boolean",
                dotted(pointer),
                kind(other)
            )),
            None => Err(format!("{} is absent", dotted(pointer))),
        }
    }

    /// `pointer` as a count (a non-negative integer); `Ok(None)` when absent.
    pub fn optional_count(document: &Value, pointer: &str) -> Result<Option<u64>, String> {
        match document.pointer(pointer) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{} is {}, not a count", dotted(pointer), describe(value))),
        }
    }

    /// `pointer` as a count; `Err` when absent or not a count.
    pub fn count(document: &Value, pointer: &str) -> Result<u64, String> {
        optional_count(document, pointer)?.ok_or_else(|| format!("{} is absent", dotted(pointer)))
    }

    /// `/readiness/endpointStoryFree` -> `readiness.endpointStoryFree`.
    pub fn dotted(pointer: &str) -> String {
        pointer.trim_start_matches('/').replace('/', ".")
    }

    fn kind(value: &Value) -> &'static str {
        match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    fn describe(value: &Value) -> String {
        match value {
            Value::Number(number) => number.to_string(),
            other => kind(other).to_string(),
        }
    }

    /// The note appended to an absence gate when files did not parse: they may hide the very
    /// references the gate says are absent (the old scans failed open, §8.18).
    pub fn unparsed_files(document: &Value, pointer: &str) -> Result<u64, String> {
        Ok(optional_count(document, pointer)?.unwrap_or(0))
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! The table-test runner and snapshot text shared by the gate modules.

    use serde_json::Value;

    use super::{Gate, GateResult, GateStatus};

    /// Judges `gate` on each `(name, document, expected status, expected detail)` row and
    /// returns the Markdown of every row, for one snapshot per gate.
    pub fn run_table(gate: Gate, rows: &[(&str, Value, GateStatus, &str)]) -> String {
        let mut markdown = String::new();
        for (name, document, status, detail) in rows {
            let verdict = gate.evaluate_document(document);
            assert_eq!(verdict.status, *status, "{}: row {name}", gate.id());
            assert_eq!(verdict.detail, *detail, "{}: row {name}", gate.id());
            let result = GateResult {
                gate,
                status: verdict.status,
                detail: verdict.detail,
                overridden: false,
            };
            markdown.push_str(&format!("<!-- row: {name} -->\n"));
            markdown.push_str(&result.to_markdown());
            markdown.push('\n');
        }
        markdown
    }
}
