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
    let report = PreflightReport::build(&scan, utc_now());
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
            "scanned {} files under {} ({} did not parse): {} story imports, {} story API uses, \
             {} thread imports",
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

/// The current UTC time as RFC 3339 with second precision (`2025-01-31T12:00:00Z`), for
/// report envelopes.
pub(super) fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::format_utc(1_735_689_599), "2024-12-31T23:59:59Z");
    }
}
