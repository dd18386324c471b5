//! `threadmig model-plan --repo R`: the story -> thread model plan
//! (`artifacts/reports/story-thread-model-plan.{json,md}`).

use anyhow::Context;
use code_scan::ModelPlan;
use serde_json::json;

use crate::cli::ModelPlanArgs;
use crate::output;
use crate::Outcome;

pub fn run(args: ModelPlanArgs, json: bool) -> anyhow::Result<Outcome> {
    let scan = code_scan::scan_repository(&args.repo)?;
    let plan = ModelPlan::build(&scan, output::now_rfc3339());
    let mut body = serde_json::to_vec_pretty(&plan).context("serialising the model plan")?;
    body.push(b'\n');
    let markdown = plan.to_markdown();
    output::write_atomic(&args.out, &body)?;
    output::write_atomic(&args.out_md, markdown.as_bytes())?;

    if json {
        output::print_json(&json!({
            "ok": true,
            "summary": plan.summary,
            "outJson": args.out.display().to_string(),
            "outMd": args.out_md.display().to_string(),
        }))?;
    } else {
        let s = &plan.summary;
        println!(
            "legacy model {} | legacy API {} | thread model {} | thread API {} | reactor {} \
             | {} file(s), {} did not parse",
            s.legacy_model_matches,
            s.legacy_api_matches,
            s.thread_model_matches,
            s.thread_api_matches,
            s.reactor_matches,
            s.scanned_files,
            s.unparsed_files
        );
        println!("ready: {}", if s.ready { "yes" } else { "no" });
        for (i, item) in plan.action_items.iter().enumerate() {
            println!("{}. {item}", i + 1);
        }
        println!("wrote {} and {}", args.out.display(), args.out_md.display());
    }
    Ok(if plan.has_findings() {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}
