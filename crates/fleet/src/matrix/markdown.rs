//! `schema-plan-org-matrix.md`: the old report's sections, in English throughout (the old one
//! mixed in Spanish headings), with the issue code and reason of every row.

use std::fmt::Write as _;

use crate::issues::text::cell;

use super::{MatrixReport, PlanStatus};

pub(super) fn render(report: &MatrixReport) -> String {
    let summary = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "# Clerk Org Schema Plan Matrix\n");
    let _ = writeln!(out, "- Generated: {}", report.created_at);
    if let Some(run_id) = &report.run_id {
        let _ = writeln!(out, "- Run: `{run_id}`");
    }
    let _ = writeln!(
        out,
        "- Schema source: `{}` ({}, sha256 `{}`)",
        report.schema_source,
        report.schema_type,
        short_hash(&report.schema_sha256)
    );
    let _ = writeln!(out, "- Instant API: {}", report.instant_api_uri);
    let _ = writeln!(
        out,
        "- Organisation directory: {}",
        match (&report.workspace, &report.clerk_api_uri) {
            (Some(workspace), _) => format!("workspace `{workspace}`"),
            (None, Some(clerk)) => format!("Clerk {clerk}"),
            (None, None) => "none".into(),
        }
    );
    let _ = writeln!(out, "- Total organizations: {}", summary.total_orgs);
    let _ = writeln!(out, "- Planned OK: {}", summary.planned_ok);
    let _ = writeln!(
        out,
        "- Missing instant credentials: {}",
        summary.missing_instant_credentials
    );
    let _ = writeln!(out, "- Blocked: {}", summary.blocked);
    let _ = writeln!(
        out,
        "- Account mismatch apps: {}",
        summary.account_mismatch_count
    );

    let _ = writeln!(out, "\n## Summary\n");
    let _ = writeln!(out, "- Safe: {}", summary.safe);
    let _ = writeln!(out, "- Review required: {}", summary.review_required);
    let _ = writeln!(out, "- Blocked: {}", summary.blocked);
    let _ = writeln!(out, "- Planned failed: {}", summary.planned_failed);
    let _ = writeln!(out, "- Directory errors: {}", summary.directory_errors);
    let _ = writeln!(
        out,
        "- Total steps: {} (critical {}, warning {})",
        summary.total_steps, summary.total_critical, summary.total_warning
    );
    let _ = writeln!(
        out,
        "- Account mismatch app ids: {}",
        if summary.account_mismatch_app_ids.is_empty() {
            "none".to_string()
        } else {
            summary
                .account_mismatch_app_ids
                .iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        out,
        "- Wave: **{}**",
        if summary.all_safe {
            "safe"
        } else if summary.total_orgs == 0 {
            "not safe (no organisation was planned)"
        } else {
            "not safe"
        }
    );

    let _ = writeln!(out, "\n## Per Org\n");
    let _ = writeln!(
        out,
        "| Org | App | Plan | Gate | Steps | Critical | Warning | Error Kind | Issue | Reason |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for row in &report.rows {
        let counts = &row.plan.summary.counts_by_severity;
        let (steps, critical, warning) = if row.plan.status == PlanStatus::Ok {
            (
                row.plan.summary.total.to_string(),
                counts.critical.to_string(),
                counts.warning.to_string(),
            )
        } else {
            ("-".into(), "-".into(), "-".into())
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {steps} | {critical} | {warning} | {} | `{}` | {} |",
            org_cell(&row.org.id, &row.org.name),
            row.instant
                .app_id
                .as_deref()
                .map(|app| format!("`{app}`"))
                .unwrap_or_else(|| "-".into()),
            status_str(row.plan.status),
            row.plan.gate.as_str(),
            row.plan
                .error_kind
                .map(|kind| match kind {
                    super::ErrorKind::ClerkLookupError => "clerk_lookup_error",
                    super::ErrorKind::AccountMismatch => "account_mismatch",
                    super::ErrorKind::PlanError => "plan_error",
                })
                .unwrap_or("-"),
            row.issue_code().as_str(),
            cell(&row.reason, 140)
        );
    }

    if !report.account_mismatch_apps.is_empty() {
        let _ = writeln!(out, "\n## Apps In Another Account\n");
        let _ = writeln!(out, "| App ID | Organization | Error |");
        let _ = writeln!(out, "|---|---|---|");
        for app in &report.account_mismatch_apps {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                app.app_id,
                org_cell(&app.org_id, &app.org_name),
                cell(&app.error, 220)
            );
        }
    }

    let _ = writeln!(out, "\n## Actions Per App\n");
    let _ = writeln!(out, "| Org | App | Plan ID | Issue | Action |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for row in &report.rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | `{}` | {} |",
            cell(&row.org.id, 80),
            row.instant
                .app_id
                .as_deref()
                .map(|app| format!("`{app}`"))
                .unwrap_or_else(|| "-".into()),
            row.action_plan.plan_id,
            row.issue_code().as_str(),
            cell(
                row.action_plan
                    .steps
                    .first()
                    .map(String::as_str)
                    .unwrap_or(""),
                180
            )
        );
    }
    let _ = writeln!(out, "\n### Action Plan Counts\n");
    if report.action_plans.counts_by_plan_id.is_empty() {
        let _ = writeln!(out, "- none");
    }
    for (plan_id, count) in &report.action_plans.counts_by_plan_id {
        let _ = writeln!(out, "- `{plan_id}`: {count}");
    }

    let pending: Vec<&super::MatrixRow> = report
        .rows
        .iter()
        .filter(|row| row.issue_code() != crate::issues::IssueCode::PlanOk)
        .collect();
    if !pending.is_empty() {
        let _ = writeln!(out, "\n## Action Plans");
        for row in pending {
            let context = crate::issues::ActionContext {
                org_id: &row.org.id,
                app_id: row.instant.app_id.as_deref(),
                schema_source: &report.schema_source,
            };
            let _ = writeln!(out);
            out.push_str(&row.issue_code().markdown(&context, &row.reason));
        }
    }

    let _ = writeln!(out, "\n## Deployment Gate\n");
    let _ = writeln!(
        out,
        "1. Block the wave while any row has `gate=blocked` (failed plans, missing credentials, directory failures and critical steps included)."
    );
    let _ = writeln!(
        out,
        "2. A person signs off every `gate=review` row before it joins the wave."
    );
    let _ = writeln!(out, "3. Proceed only when the wave is `safe`.");
    out
}

fn status_str(status: PlanStatus) -> &'static str {
    match status {
        PlanStatus::Ok => "ok",
        PlanStatus::Skipped => "skipped",
        PlanStatus::Error => "error",
    }
}

fn org_cell(id: &str, name: &str) -> String {
    if name.is_empty() {
        format!("`{}`", cell(id, 80))
    } else {
        format!("`{}` {}", cell(id, 80), cell(name, 60))
    }
}

fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
