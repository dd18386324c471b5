//! `threadmig scan --repo R`: the preflight readiness scan (`artifacts/preflight/scan.json`
//! and its Markdown summary).

use anyhow::Context;
use code_scan::PreflightReport;
use serde_json::json;

use crate::cli::ScanArgs;
use crate::output;
use crate::Outcome;

pub fn run(args: ScanArgs, json: bool) -> anyhow::Result<Outcome> {
    let scan = code_scan::scan_repository(&args.repo)?;
    let report = PreflightReport::build(&scan, output::now_rfc3339());
    let mut body = serde_json::to_vec_pretty(&report).context("serialising the scan report")?;
    body.push(b'\n');
    let markdown = report.to_markdown();
    output::write_atomic(&args.out, &body)?;
    output::write_atomic(&args.out_md, markdown.as_bytes())?;

    if json {
        output::print_json(&json!({
            "ok": true,
            "ready": report.readiness.overall,
            "counts": report.counts,
            "readiness": report.readiness,
            "parseErrors": report.parse_errors.len(),
            "out": args.out.display().to_string(),
            "outMd": args.out_md.display().to_string(),
        }))?;
    } else {
        let c = &report.counts;
        println!(
            "scanned {} JS/TS file(s) under {} ({} did not parse): story import lines {}, \
             story API lines {}, thread import lines {}",
            c.scanned_files,
            scan.repo.join(&scan.scan_root).display(),
            c.unparsed_files,
            c.story_imports,
            c.old_apis,
            c.thread_imports
        );
        let r = &report.readiness;
        let failing: Vec<&str> = [
            ("endpointStoryFree", r.endpoint_story_free),
            ("agentStoryFree", r.agent_story_free),
            (
                "endpointThreadEvidencePresent",
                r.endpoint_thread_evidence_present,
            ),
            (
                "agentThreadEvidencePresent",
                r.agent_thread_evidence_present,
            ),
            ("targetAgentEndpointsReady", r.target_agent_endpoints_ready),
            ("legacyModelMigrated", r.legacy_model_migrated),
            (
                "threadModelEvidencePresent",
                r.thread_model_evidence_present,
            ),
            ("allFilesParsed", r.all_files_parsed),
        ]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
        if failing.is_empty() {
            println!("ready: yes");
        } else {
            println!("ready: no (failing: {})", failing.join(", "));
        }
        println!("wrote {} and {}", args.out.display(), args.out_md.display());
    }
    Ok(if report.has_findings() {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}
