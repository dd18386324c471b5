//! `threadmig gates`: the nine hot-deploy gates (`fleet::gates`) on the preflight scan, the
//! model plan and the org matrix, written to `hot-deploy-gates.{json,md}`.
//!
//! Exit codes: 0 every gate passed, 1 a gate failed or its input is missing (also with
//! `--allow-unsafe`, which records the override and sets `proceed` but never turns a failed
//! gate into a passed one), 2 the report could not be written.

use anyhow::Context;
use fleet::gates::{self, GateInputs, GateReport, InputKind};
use serde_json::json;

use crate::cli::GatesArgs;
use crate::output::{now_rfc3339, print_json, write_atomic};
use crate::Outcome;

pub fn run(args: GatesArgs, json: bool) -> anyhow::Result<Outcome> {
    if let Some(run_id) = &args.run_id {
        migration::evidence::validate_run_id(run_id)
            .map_err(|error| anyhow::anyhow!("--run-id: {error}"))?;
    }
    let default = |kind: InputKind| args.artifacts.join(kind.default_relative_path());
    let preflight = args
        .preflight
        .clone()
        .unwrap_or_else(|| default(InputKind::Preflight));
    let model_plan = args
        .model_plan
        .clone()
        .unwrap_or_else(|| default(InputKind::ModelPlan));
    let matrix = args
        .matrix
        .clone()
        .unwrap_or_else(|| default(InputKind::Matrix));
    let reports = args.artifacts.join("reports");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| reports.join(gates::REPORT_JSON));
    let out_md = args
        .out_md
        .clone()
        .unwrap_or_else(|| reports.join(gates::REPORT_MD));

    let inputs = GateInputs::load(&preflight, &model_plan, &matrix);
    let report = GateReport::build(
        inputs,
        args.allow_unsafe,
        args.run_id.clone(),
        now_rfc3339(),
    );
    let mut body =
        serde_json::to_vec_pretty(&report.to_json()).context("serialising the gate report")?;
    body.push(b'\n');
    write_atomic(&out, &body)?;
    write_atomic(&out_md, report.to_markdown().as_bytes())?;

    let evaluation = &report.evaluation;
    if json {
        print_json(&json!({
            "ok": report.ok(),
            "allowUnsafe": report.allow_unsafe,
            "proceed": report.proceed(),
            "runId": report.run_id,
            "passedGates": evaluation.passed(),
            "totalGates": evaluation.gates.len(),
            "failedGates": evaluation.failed_ids(),
            "overriddenGates": evaluation.overridden_ids(),
            "missingInputGates": evaluation.missing_input_ids(),
            "out": out,
            "outMd": out_md,
        }))?;
    } else {
        for gate in &evaluation.gates {
            println!(
                "{:<14} {:<42} {}{}",
                gate.status.as_str(),
                gate.gate.id(),
                gate.detail,
                if gate.overridden { " [overridden]" } else { "" }
            );
        }
        println!(
            "{} of {} gates passed; {}",
            evaluation.passed(),
            evaluation.gates.len(),
            match (report.ok(), report.proceed()) {
                (true, _) => "safe to deploy",
                (false, true) => "NOT safe: failed gates overridden with --allow-unsafe",
                (false, false) => "NOT safe to deploy",
            }
        );
        println!("wrote {} and {}", out.display(), out_md.display());
    }
    Ok(if report.ok() {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}
