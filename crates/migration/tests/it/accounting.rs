//! The accounting invariant on a generated fleet: every legacy row ends in the transform output
//! or in the reject report (as not migrated), namespace by namespace and row by row, and every
//! injected edge case ends with the rule and effect the generator's manifest names.
//!
//! Why this catches a silently dropped row: [`account`] enumerates the rows of the *input*
//! file (not the transform's own counters) and, for each, looks for its id in the target file
//! of its namespace and for a `dropped` entry under its id in `rejects.ndjson`. A row that is
//! in neither is reported by id. The transform's counters cannot hide it either: the per
//! namespace totals are compared with the generator's own row counts. The mutation test at the
//! end removes one migrated row from the output, then one `dropped` report, and checks that
//! each removal is reported by id.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use migration::gen::{generate, FileFormat, GenConfig, Preset, Targets};
use migration::run::{run, Config, Input};
use migration::transform::Options;
use migration::{Effect, LegacyNamespace, Rule, TargetNamespace};
use serde_json::Value;

/// Reads generated JSON: the lone-surrogate escape (valid JSON, not Unicode) is read as
/// U+FFFD, which is what the transform writes in its place.
fn parse(bytes: &[u8]) -> Value {
    let text = std::str::from_utf8(bytes)
        .unwrap()
        .replace("\\ud800", "\\ufffd");
    serde_json::from_str(&text).unwrap()
}

fn canonical(id: &str) -> String {
    id.trim().to_lowercase()
}

/// One entry of `rejects.ndjson`.
#[derive(Debug, Clone)]
struct Report {
    rule: Rule,
    detail: String,
}

/// Everything `02-transform/` says, indexed.
struct Outcome {
    /// Target namespace -> ids written.
    rows: BTreeMap<String, BTreeSet<String>>,
    /// (namespace, id) -> reports.
    reports: HashMap<(String, String), Vec<Report>>,
    /// (from namespace, from id, label) -> targets.
    links: HashMap<(String, String, String), Vec<String>>,
}

fn read_outcome(dir: &Path) -> Outcome {
    let mut rows = BTreeMap::new();
    for ns in TargetNamespace::ALL {
        let text = std::fs::read_to_string(dir.join(ns.file_name())).unwrap();
        let ids = text
            .lines()
            .map(|line| parse(line.as_bytes())["id"].as_str().unwrap().to_string())
            .collect();
        rows.insert(ns.as_str().to_string(), ids);
    }
    let mut reports: HashMap<(String, String), Vec<Report>> = HashMap::new();
    for line in std::fs::read_to_string(dir.join("rejects.ndjson"))
        .unwrap()
        .lines()
    {
        let reject: migration::Reject = serde_json::from_str(line).unwrap();
        reports
            .entry((reject.namespace, canonical(&reject.id)))
            .or_default()
            .push(Report {
                rule: reject.rule,
                detail: reject.detail,
            });
    }
    let mut links: HashMap<(String, String, String), Vec<String>> = HashMap::new();
    for line in std::fs::read_to_string(dir.join("links.ndjson"))
        .unwrap()
        .lines()
    {
        let link: Value = serde_json::from_str(line).unwrap();
        let text = |key: &str| link[key].as_str().unwrap().to_string();
        links
            .entry((text("from_ns"), text("from_id"), text("label")))
            .or_default()
            .push(text("to_id"));
    }
    Outcome {
        rows,
        reports,
        links,
    }
}

/// Every discrepancy between one org's input, its manifest entry and its transform output.
fn account(org: &Value, dataset: &Path, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let input = parse(&std::fs::read(dataset).unwrap());
    let out = read_outcome(dir);
    let dropped = |ns: &str, id: &str| {
        out.reports
            .get(&(ns.to_string(), id.to_string()))
            .is_some_and(|reports| reports.iter().any(|r| r.rule.effect() == Effect::Dropped))
    };

    // Row by row, namespace by namespace.
    for ns in LegacyNamespace::ALL {
        let rows = input[ns.as_str()].as_array().cloned().unwrap_or_default();
        let expected = org["rows"][ns.as_str()].as_u64().unwrap_or(0);
        if rows.len() as u64 != expected {
            problems.push(format!(
                "{ns}: {} rows in the input, {expected} in the manifest",
                rows.len()
            ));
        }
        let written = &out.rows[ns.target().as_str()];
        let mut seen = BTreeSet::new();
        let (mut migrated, mut rejected) = (0u64, 0u64);
        for (index, row) in rows.iter().enumerate() {
            let id = match row["id"].as_str() {
                Some(id) => canonical(id),
                None => format!("#{}", index + 1),
            };
            seen.insert(id.clone());
            match (written.contains(&id), dropped(ns.as_str(), &id)) {
                (true, false) => migrated += 1,
                (false, true) => rejected += 1,
                (false, false) => problems.push(format!(
                    "{ns} {id}: neither migrated nor reported as dropped"
                )),
                (true, true) => {
                    problems.push(format!("{ns} {id}: both migrated and reported as dropped"))
                }
            }
        }
        for id in written.difference(&seen) {
            problems.push(format!(
                "{}: {id} written but not in the input",
                ns.target()
            ));
        }
        let manifest = &org["expected"];
        let want = |key: &str| manifest[key][ns.as_str()].as_u64().unwrap_or(0);
        if (migrated, rejected) != (want("migrated"), want("rejected")) {
            problems.push(format!(
                "{ns}: {migrated} migrated and {rejected} rejected, the manifest expects {} and {}",
                want("migrated"),
                want("rejected")
            ));
        }
    }
    if out.rows["thread_threads"].len() != out.rows["thread_contexts"].len() {
        problems.push("one thread per migrated context".into());
    }

    // Case by case: the rule the manifest names, with the effect it names.
    for case in org["cases"].as_array().unwrap() {
        let kind = case["kind"].as_str().unwrap();
        let ns = case["namespace"].as_str().unwrap();
        let id = canonical(case["ids"][0].as_str().unwrap());
        let rule_id = case["rule"].as_str().unwrap();
        let handling = case["handling"].as_str().unwrap();
        let reports = out
            .reports
            .get(&(ns.to_string(), id.clone()))
            .cloned()
            .unwrap_or_default();
        let legacy = LegacyNamespace::parse(ns);
        let in_output = legacy.is_some_and(|ns| out.rows[ns.target().as_str()].contains(&id));
        let fail = |problems: &mut Vec<String>, what: String| {
            problems.push(format!(
                "case {kind} on {ns} {id}: {what} (reports: {reports:?})"
            ))
        };
        match handling {
            "migrate" => {
                if !in_output {
                    fail(&mut problems, "expected migrated".into());
                }
            }
            "noted" | "repaired" | "link_dropped" | "dropped" => {
                let Some(rule) = Rule::parse(rule_id) else {
                    fail(
                        &mut problems,
                        format!("the transform has no rule {rule_id}"),
                    );
                    continue;
                };
                if rule.effect().as_str() != handling {
                    fail(
                        &mut problems,
                        format!(
                            "rule {rule_id} is {}, not {handling}",
                            rule.effect().as_str()
                        ),
                    );
                }
                if !reports.iter().any(|r| r.rule == rule) {
                    fail(&mut problems, format!("no {rule_id} report"));
                }
                if in_output == (handling == "dropped") {
                    fail(
                        &mut problems,
                        format!("{handling} but in_output={in_output}"),
                    );
                }
            }
            // Not a migrated namespace: a dataset file's rows are reported as such.
            "ignore" => {
                if !reports.iter().any(|r| r.rule == Rule::UnknownNamespace) {
                    fail(&mut problems, "expected an unknown_namespace report".into());
                }
            }
            other => fail(
                &mut problems,
                format!("unexpected handling {other} in a standard org"),
            ),
        }
        // What some cases must also look like in the output.
        match kind {
            "preexisting_thread_key" => {
                let existing = canonical(case["detail"]["existingId"].as_str().unwrap());
                let thread =
                    out.links
                        .get(&("thread_contexts".into(), id.clone(), "thread".into()));
                if thread != Some(&vec![existing.clone()]) {
                    fail(
                        &mut problems,
                        format!("thread should be the existing {existing}, is {thread:?}"),
                    );
                }
            }
            "attr_id_not_uuid" | "step_execution_attr_missing" => {
                let execution = case["detail"]["execution"].as_str().unwrap().to_string();
                let linked =
                    out.links
                        .get(&("thread_steps".into(), id.clone(), "execution".into()));
                if linked != Some(&vec![execution.clone()]) {
                    fail(
                        &mut problems,
                        format!("execution link should be {execution}"),
                    );
                }
            }
            "created_at_missing"
                if ns == "context_events"
                    && !reports.iter().any(|r| {
                        r.rule == Rule::CreatedAtDerived && r.detail.contains(" from ")
                    }) =>
            {
                fail(
                    &mut problems,
                    "createdAt should be derived from a linked row".into(),
                );
            }
            _ => {}
        }
    }
    problems
}

struct Fleet {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    manifest: Value,
}

fn fleet(seed: u64) -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let config = GenConfig::new(Preset::Small, seed);
    let mut targets = Targets {
        files: Some((dir.clone(), FileFormat::Json)),
        engine: None,
        manifest_dir: dir.clone(),
    };
    generate(&config, &mut targets, &mut |_| {}).unwrap();
    let manifest = parse(&std::fs::read(dir.join("manifest.json")).unwrap());
    Fleet {
        _tmp: tmp,
        dir,
        manifest,
    }
}

fn transform_org(fleet: &Fleet, org: &Value) -> std::path::PathBuf {
    let slug = org["slug"].as_str().unwrap();
    let out = fleet.dir.join(slug).join("02-transform");
    run(&Config {
        input: Input::Dataset(fleet.dir.join(slug).join("dataset.json")),
        out_dir: out.clone(),
        options: Options::default(),
        sort_budget: 8 << 20,
    })
    .unwrap();
    out
}

#[test]
fn every_legacy_row_of_a_generated_fleet_is_migrated_or_reported_and_every_case_as_the_manifest_says(
) {
    let fleet = fleet(20260221);
    let orgs = fleet.manifest["orgs"].as_array().unwrap();
    assert_eq!(orgs.len(), 2);
    let mut kinds = BTreeSet::new();
    for org in orgs {
        assert_eq!(org["role"], "standard");
        let out = transform_org(&fleet, org);
        let dataset = fleet
            .dir
            .join(org["slug"].as_str().unwrap())
            .join("dataset.json");
        let problems = account(org, &dataset, &out);
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            org["slug"],
            problems.join("\n")
        );
        for case in org["cases"].as_array().unwrap() {
            kinds.insert(case["kind"].as_str().unwrap().to_string());
        }
    }
    // Every case of a standard org was checked at least once.
    for kind in migration::gen::CaseKind::ALL {
        if !kind.is_fleet() {
            assert!(kinds.contains(kind.id()), "case {} not injected", kind.id());
        }
    }
}

#[test]
fn the_accounting_catches_a_silently_dropped_row_and_a_missing_report() {
    let fleet = fleet(7);
    let org = &fleet.manifest["orgs"][0];
    let out = transform_org(&fleet, org);
    let dataset = fleet
        .dir
        .join(org["slug"].as_str().unwrap())
        .join("dataset.json");
    assert_eq!(account(org, &dataset, &out), Vec::<String>::new());

    // A migrated item vanishes from the output.
    let items = out.join("thread_items.ndjson");
    let original = std::fs::read_to_string(&items).unwrap();
    let (first, rest) = original.split_once('\n').unwrap();
    let lost = parse(first.as_bytes())["id"].as_str().unwrap().to_string();
    std::fs::write(&items, rest).unwrap();
    let problems = account(org, &dataset, &out);
    assert!(
        problems.contains(&format!(
            "context_events {lost}: neither migrated nor reported as dropped"
        )),
        "{problems:?}"
    );
    std::fs::write(&items, &original).unwrap();

    // A dropped row loses its report.
    let rejects = out.join("rejects.ndjson");
    let original = std::fs::read_to_string(&rejects).unwrap();
    let (kept, removed): (Vec<&str>, Vec<&str>) = {
        let mut removed = None;
        let kept = original
            .lines()
            .filter(|line| {
                let reject: migration::Reject = serde_json::from_str(line).unwrap();
                let drop_it = removed.is_none()
                    && reject.namespace == "story_parts"
                    && reject.rule.effect() == Effect::Dropped;
                if drop_it {
                    removed = Some(*line);
                }
                !drop_it
            })
            .collect();
        (kept, removed.into_iter().collect())
    };
    assert_eq!(removed.len(), 1, "the fleet has rejected parts");
    let reject: migration::Reject = serde_json::from_str(removed[0]).unwrap();
    std::fs::write(&rejects, kept.join("\n") + "\n").unwrap();
    let problems = account(org, &dataset, &out);
    assert!(
        problems.contains(&format!(
            "story_parts {}: neither migrated nor reported as dropped",
            canonical(&reject.id)
        )),
        "{problems:?}"
    );
}
