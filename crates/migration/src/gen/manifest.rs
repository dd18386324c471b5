//! `manifest.json`: what was generated and what the migration must do with it.
//!
//! ```text
//! { "format": "threadmig-gen-manifest/1", "preset", "seed", "baseTime", "content",
//!   "engineCompatible", "fileFormat", "orgCount",
//!   "rates": {<case>: rate},                 // standard orgs; other roles inject nothing
//!   "catalogue": [{kind, category, handling, rule, ruleKnown, engineCompatible, defaultRate,
//!                  description}],            // ruleKnown: the transform has this rule id
//!   "excludedCases": [{kind, reason}],
//!   "totals": {"rows": {<ns>: n}, "cases": {<case>: n}, "rejected": {<ns>: n}},
//!   "orgs": [{index, orgId, name, slug, role, credentials, targetEvents,
//!             "rows": {<ns>: n}, "caseCounts": {<case>: n},
//!             "expected": {"rejected": {<ns>: n}, "migrated": {<legacy ns>: n}},
//!             "files": [{path, namespace?, rows?, bytes, sha256}],
//!             "cases": [{kind, namespace, ids, handling, rule, detail?}]}] }
//! ```
//!
//! No timestamp and no absolute path: the same configuration gives the same bytes. Cases are
//! spooled to a file per org while generating and streamed into the manifest at the end.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::cases::CaseKind;
use super::ns::Ns;
use super::time::{iso_ms, BASE_TIME_MS};
use super::{CaseRecord, GenConfig, GenError, OrgSummary, Targets};

pub const FORMAT: &str = "threadmig-gen-manifest/1";

/// One org's cases, one JSON object per line, while the org is generated.
pub struct CaseSpool {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl CaseSpool {
    pub fn create(dir: &Path, index: usize) -> Result<CaseSpool, GenError> {
        let path = dir.join(format!(
            ".manifest-cases-{index}.{}.tmp",
            std::process::id()
        ));
        let file = File::create(&path).map_err(|error| GenError::io(&path, error))?;
        Ok(CaseSpool {
            path,
            writer: BufWriter::new(file),
        })
    }

    pub fn write(&mut self, case: &CaseRecord) -> Result<(), GenError> {
        let value = case_json(case);
        let result = serde_json::to_writer(&mut self.writer, &value)
            .map_err(io::Error::other)
            .and_then(|()| self.writer.write_all(b"\n"));
        result.map_err(|error| GenError::io(&self.path, error))
    }

    pub fn finish(mut self) -> Result<PathBuf, GenError> {
        self.writer
            .flush()
            .map_err(|error| GenError::io(&self.path, error))?;
        Ok(self.path)
    }
}

/// A case as the manifest lists it.
pub fn case_json(case: &CaseRecord) -> Value {
    let mut map = Map::new();
    map.insert("kind".into(), json!(case.kind.id()));
    map.insert("namespace".into(), json!(case.namespace));
    map.insert("ids".into(), json!(case.ids));
    map.insert("handling".into(), json!(case.kind.handling()));
    map.insert("rule".into(), json!(case.kind.rule()));
    if !case.detail.is_null() {
        map.insert("detail".into(), case.detail.clone());
    }
    Value::Object(map)
}

/// Whether the transform knows the rule id (`crate::rules`).
pub fn rule_known(kind: CaseKind) -> bool {
    crate::rules::Rule::parse(kind.rule()).is_some()
}

pub fn catalogue() -> Value {
    Value::Array(
        CaseKind::ALL
            .iter()
            .map(|kind| {
                json!({
                    "kind": kind.id(),
                    "category": kind.category(),
                    "handling": kind.handling(),
                    "rule": kind.rule(),
                    "ruleKnown": rule_known(*kind),
                    "engineCompatible": kind.engine_compatible(),
                    "defaultRate": kind.default_rate(),
                    "description": kind.description(),
                })
            })
            .collect(),
    )
}

fn ns_counts(counts: &BTreeMap<Ns, u64>, legacy_always: bool) -> Value {
    let mut map = Map::new();
    for ns in Ns::ALL {
        let count = counts.get(&ns).copied().unwrap_or(0);
        if count > 0 || (legacy_always && ns.is_legacy()) {
            map.insert(ns.name().into(), json!(count));
        }
    }
    Value::Object(map)
}

fn case_counts(counts: &BTreeMap<CaseKind, u64>) -> Value {
    let mut map = Map::new();
    for (kind, count) in counts {
        map.insert(kind.id().into(), json!(count));
    }
    Value::Object(map)
}

/// Writes the manifest atomically; returns its path.
pub fn write(
    config: &GenConfig,
    targets: &Targets<'_>,
    orgs: &[OrgSummary],
    spools: &[PathBuf],
    excluded: &[CaseKind],
) -> Result<PathBuf, GenError> {
    let path = targets.manifest_dir.join("manifest.json");
    let tmp = targets
        .manifest_dir
        .join(format!(".manifest.json.{}.tmp", std::process::id()));
    let rates = config.effective_rates();
    let mut rate_map = Map::new();
    for (kind, rate) in rates.iter() {
        if !kind.is_fleet() {
            rate_map.insert(kind.id().into(), json!(rate));
        }
    }
    let mut total_rows = BTreeMap::new();
    let mut total_cases = BTreeMap::new();
    let mut total_rejected = BTreeMap::new();
    for org in orgs {
        for (ns, count) in &org.rows {
            *total_rows.entry(*ns).or_insert(0) += count;
        }
        for (kind, count) in &org.cases {
            *total_cases.entry(*kind).or_insert(0) += count;
        }
        for (ns, count) in &org.rejected {
            *total_rejected.entry(*ns).or_insert(0) += count;
        }
    }
    let header = json!({
        "format": FORMAT,
        "preset": config.preset.as_str(),
        "seed": config.seed,
        "baseTime": iso_ms(BASE_TIME_MS),
        "content": config.content.as_str(),
        "engineCompatible": config.engine_compatible,
        "fileFormat": targets.files.as_ref().map(|(_, format)| format.as_str()),
        "orgCount": orgs.len(),
        "rates": rate_map,
        "catalogue": catalogue(),
        "excludedCases": excluded.iter().map(|kind| json!({
            "kind": kind.id(),
            "reason": "an InstantDB server cannot hold it (written to a workspace)",
        })).collect::<Vec<_>>(),
        "totals": {
            "rows": ns_counts(&total_rows, true),
            "cases": case_counts(&total_cases),
            "rejected": ns_counts(&total_rejected, false),
        },
    });
    let result = (|| -> io::Result<()> {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::new(file);
        // The header object without its closing brace, then "orgs".
        let header_text = serde_json::to_string_pretty(&header).map_err(io::Error::other)?;
        let open = header_text.trim_end().trim_end_matches('}').trim_end();
        out.write_all(open.as_bytes())?;
        out.write_all(b",\n  \"orgs\": [")?;
        for (index, (org, spool)) in orgs.iter().zip(spools).enumerate() {
            if index > 0 {
                out.write_all(b",")?;
            }
            let mut migrated = BTreeMap::new();
            for ns in Ns::ALL.into_iter().filter(|ns| ns.is_legacy()) {
                let rows = org.rows.get(&ns).copied().unwrap_or(0);
                let rejected = org.rejected.get(&ns).copied().unwrap_or(0);
                migrated.insert(ns, rows.saturating_sub(rejected));
            }
            let entry = json!({
                "index": org.plan.index,
                "orgId": org.plan.org_id,
                "name": org.plan.name,
                "slug": org.plan.slug,
                "role": org.plan.role.as_str(),
                "credentials": org.credentials,
                "targetEvents": org.plan.target_events,
                "rows": ns_counts(&org.rows, true),
                "caseCounts": case_counts(&org.cases),
                "expected": {
                    "rejected": ns_counts(&org.rejected, false),
                    "migrated": ns_counts(&migrated, true),
                },
                "files": org.files,
            });
            let text = serde_json::to_string(&entry).map_err(io::Error::other)?;
            out.write_all(b"\n    ")?;
            out.write_all(&text.as_bytes()[..text.len() - 1])?;
            out.write_all(b",\"cases\":[")?;
            let mut first = true;
            let reader = io::BufReader::new(File::open(spool)?);
            for line in io::BufRead::split(reader, b'\n') {
                let line = line?;
                if line.is_empty() {
                    continue;
                }
                out.write_all(if first { b"\n      " } else { b",\n      " })?;
                out.write_all(&line)?;
                first = false;
            }
            out.write_all(b"]}")?;
        }
        out.write_all(b"\n  ]\n}\n")?;
        out.flush()?;
        out.into_inner()
            .map_err(|error| error.into_error())?
            .sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(GenError::io(&path, error));
    }
    Ok(path)
}
