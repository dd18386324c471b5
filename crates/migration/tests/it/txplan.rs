//! The tx plan: byte-identical from the same input, canonical order, phases, batch sizes,
//! link grouping, the op policy of a plan file, and input that cannot be planned.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use migration::evidence::sha256_file;
use migration::txplan::{
    build_plan, check_plan, read_summary, PlanError, PlanOptions, ENTITY_ORDER, MAX_LINK_TARGETS,
    PLAN_FILE, SUMMARY_FILE,
};
use migration::TargetNamespace;
use serde_json::Value;

use crate::apply::{legacy_files, planned, scratch, transform, transformed, Scratch};
use crate::extract::ids_of;

fn batches(plan: &Path) -> Vec<Value> {
    std::fs::read_to_string(plan)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn steps(plan: &Path) -> Vec<Value> {
    batches(plan)
        .into_iter()
        .flat_map(|batch| batch["steps"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn the_same_input_gives_a_byte_identical_plan_also_from_a_rerun_transform() {
    let a = planned("same-a", 500);
    let b = planned("same-b", 500);
    let bytes = std::fs::read(&a.plan).unwrap();
    assert_eq!(bytes, std::fs::read(&b.plan).unwrap());
    assert_eq!(
        std::fs::read(a.apply_dir.join(SUMMARY_FILE)).unwrap(),
        std::fs::read(b.apply_dir.join(SUMMARY_FILE)).unwrap()
    );
    // The transform run again from the legacy files: same transform bytes, same plan bytes.
    let rerun = Scratch(scratch("rerun"));
    let transform_dir = transform(legacy_files(), &rerun.0);
    let summary = build_plan(
        &transform_dir,
        &rerun.0.join("03-apply"),
        &PlanOptions {
            batch_size: 500,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::read(rerun.0.join("03-apply").join(PLAN_FILE)).unwrap(),
        bytes
    );
    // The summary carries the sha256 of the plan's bytes, and says what is in it.
    assert_eq!(summary, a.summary);
    assert_eq!(sha256_file(&a.plan).unwrap().0, a.summary.sha256);
    assert_eq!(read_summary(&a.apply_dir).unwrap(), Some(a.summary.clone()));
    assert_eq!(a.summary.batch_size, 500);
    let all = steps(&a.plan);
    assert_eq!(all.len() as u64, a.summary.steps);
    assert_eq!(batches(&a.plan).len() as u64, a.summary.batches);
    let mut by_op: BTreeMap<String, u64> = BTreeMap::new();
    for step in &all {
        *by_op.entry(step[0].as_str().unwrap().into()).or_default() += 1;
    }
    assert_eq!(by_op, a.summary.steps_by_op);
    assert_eq!(
        by_op.keys().collect::<Vec<_>>(),
        ["link", "update"],
        "only update and link"
    );
    let per_ns: u64 = a
        .summary
        .steps_by_namespace
        .values()
        .flat_map(|ops| ops.values())
        .sum();
    assert_eq!(per_ns, a.summary.steps);
}

#[test]
fn steps_are_the_rows_then_the_links_in_canonical_order() {
    let planned = planned("order", 37);
    let transform_dir = transformed();
    let batches = batches(&planned.plan);
    // Batches numbered from 1, full except at a phase end, never mixing entities and links.
    for (index, batch) in batches.iter().enumerate() {
        assert_eq!(batch["batch"], index as u64 + 1);
        let steps = batch["steps"].as_array().unwrap();
        assert!(!steps.is_empty() && steps.len() <= 37);
        let ops: BTreeSet<&str> = steps.iter().map(|s| s[0].as_str().unwrap()).collect();
        assert_eq!(ops.len(), 1, "batch {} mixes {ops:?}", index + 1);
    }
    let all = steps(&planned.plan);
    let mut expected_updates = Vec::new();
    for ns in ENTITY_ORDER {
        for line in std::fs::read_to_string(transform_dir.join(ns.file_name()))
            .unwrap()
            .lines()
        {
            let mut row: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
            let id = row.remove("id").unwrap();
            expected_updates.push(serde_json::json!(["update", ns.as_str(), id, row]));
        }
    }
    let updates: Vec<&Value> = all.iter().filter(|s| s[0] == "update").collect();
    assert_eq!(updates.len(), expected_updates.len());
    for (step, expected) in updates.iter().zip(&expected_updates) {
        assert_eq!(*step, expected);
    }
    // Every update comes before every link.
    let first_link = all.iter().position(|s| s[0] == "link").unwrap();
    assert!(all[first_link..].iter().all(|s| s[0] == "link"));
    assert_eq!(first_link, updates.len());

    // Links: one step per source (no source here has more than MAX_LINK_TARGETS targets),
    // sources in links.ndjson order, and together exactly the link intents.
    let mut intents: BTreeSet<(String, String, String, String)> = BTreeSet::new();
    let mut sources: Vec<(String, String)> = Vec::new();
    for line in std::fs::read_to_string(transform_dir.join("links.ndjson"))
        .unwrap()
        .lines()
    {
        let link: Value = serde_json::from_str(line).unwrap();
        let field = |name: &str| link[name].as_str().unwrap().to_string();
        intents.insert((
            field("from_ns"),
            field("from_id"),
            field("label"),
            field("to_id"),
        ));
        let source = (field("from_ns"), field("from_id"));
        if sources.last() != Some(&source) {
            sources.push(source);
        }
    }
    let links = &all[first_link..];
    assert_eq!(
        links
            .iter()
            .map(|s| (
                s[1].as_str().unwrap().to_string(),
                s[2].as_str().unwrap().to_string()
            ))
            .collect::<Vec<_>>(),
        sources
    );
    let mut planned_intents = BTreeSet::new();
    for step in links {
        for (label, targets) in step[3].as_object().unwrap() {
            let targets: Vec<&str> = match targets {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => {
                    assert!(many.len() > 1, "a single target is written as a string");
                    many.iter().map(|t| t.as_str().unwrap()).collect()
                }
                other => panic!("bad targets {other}"),
            };
            for target in targets {
                planned_intents.insert((
                    step[1].as_str().unwrap().to_string(),
                    step[2].as_str().unwrap().to_string(),
                    label.clone(),
                    target.to_string(),
                ));
            }
        }
    }
    assert_eq!(planned_intents, intents);

    // Another batch size: other bytes and sha256, the same steps in the same order.
    let other = crate::apply::planned("order-other", 500);
    assert_ne!(other.summary.sha256, planned.summary.sha256);
    assert_eq!(steps(&other.plan), all);
}

/// A hand-written transform output: every namespace file (rows given, others empty).
fn hand_transform(dir: &Path, rows: &[(TargetNamespace, &str)], links: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for ns in TargetNamespace::ALL {
        let text: String = rows
            .iter()
            .filter(|(row_ns, _)| *row_ns == ns)
            .map(|(_, row)| format!("{row}\n"))
            .collect();
        std::fs::write(dir.join(ns.file_name()), text).unwrap();
    }
    std::fs::write(dir.join("links.ndjson"), links).unwrap();
}

const ITEM: &str = "00000000-0000-4000-8000-000000000001";
const ITEM2: &str = "00000000-0000-4000-8000-000000000002";

fn item_row(id: &str) -> String {
    format!(r#"{{"id":"{id}","channel":"web","createdAt":1760000000000}}"#)
}

#[test]
fn a_source_with_many_targets_gets_several_link_steps() {
    let tmp = Scratch(scratch("many-targets"));
    let transform_dir = tmp.0.join("02-transform");
    let targets = MAX_LINK_TARGETS + 50;
    let links: String = (0..targets)
        .map(|n| {
            format!(
                "{{\"from_ns\":\"thread_items\",\"from_id\":\"{ITEM}\",\"label\":\"whatsappMessages\",\"to_id\":\"00000000-0000-4000-9000-{n:012}\"}}\n"
            )
        })
        .collect();
    hand_transform(
        &transform_dir,
        &[(TargetNamespace::ThreadItems, &item_row(ITEM))],
        &links,
    );
    let summary = build_plan(
        &transform_dir,
        &tmp.0.join("03-apply"),
        &PlanOptions {
            batch_size: 500,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    assert_eq!(summary.steps_by_op["link"], 2);
    let all = steps(&tmp.0.join("03-apply").join(PLAN_FILE));
    let sizes: Vec<usize> = all[1..]
        .iter()
        .map(|step| step[3]["whatsappMessages"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [MAX_LINK_TARGETS, 50]);
    // Two batches: the entity phase and the link phase.
    assert_eq!(summary.batches, 2);
}

/// (name, rows, links.ndjson text, expected error text)
type Case = (
    &'static str,
    Vec<(TargetNamespace, String)>,
    String,
    &'static str,
);

#[test]
fn input_that_cannot_be_planned_is_one_clear_error_and_no_plan_file() {
    let cases: Vec<Case> = vec![
        (
            "unsorted",
            vec![
                (TargetNamespace::ThreadItems, item_row(ITEM2)),
                (TargetNamespace::ThreadItems, item_row(ITEM)),
            ],
            String::new(),
            "thread_items.ndjson:2: id 00000000-0000-4000-8000-000000000001 is not after",
        ),
        (
            "unknown-attribute",
            vec![(
                TargetNamespace::ThreadItems,
                format!(r#"{{"id":"{ITEM}","channel":"web","role":"user"}}"#),
            )],
            String::new(),
            "thread_items.ndjson:1: attribute \"role\" is not declared on thread_items",
        ),
        (
            "not-a-uuid",
            vec![(
                TargetNamespace::ThreadItems,
                r#"{"id":"thread_1","channel":"web"}"#.to_string(),
            )],
            String::new(),
            "thread_items.ndjson:1: id \"thread_1\" is not a UUID",
        ),
        (
            "malformed",
            vec![(TargetNamespace::ThreadSteps, "{\"id\":".to_string())],
            String::new(),
            "thread_steps.ndjson:1: not a JSON object",
        ),
        (
            "unknown-label",
            vec![(TargetNamespace::ThreadItems, item_row(ITEM))],
            format!(
                "{{\"from_ns\":\"thread_items\",\"from_id\":\"{ITEM}\",\"label\":\"owner\",\"to_id\":\"{ITEM2}\"}}\n"
            ),
            "links.ndjson:1: \"owner\" is not a link label of thread_items",
        ),
        (
            "unsorted-links",
            vec![(TargetNamespace::ThreadItems, item_row(ITEM))],
            format!(
                "{{\"from_ns\":\"thread_items\",\"from_id\":\"{ITEM2}\",\"label\":\"thread\",\"to_id\":\"{ITEM}\"}}\n{{\"from_ns\":\"thread_items\",\"from_id\":\"{ITEM}\",\"label\":\"thread\",\"to_id\":\"{ITEM}\"}}\n"
            ),
            "links.ndjson:2: link thread_items",
        ),
    ];
    for (name, rows, links, expected) in cases {
        let tmp = Scratch(scratch(name));
        let transform_dir = tmp.0.join("02-transform");
        let rows: Vec<(TargetNamespace, &str)> =
            rows.iter().map(|(ns, row)| (*ns, row.as_str())).collect();
        hand_transform(&transform_dir, &rows, &links);
        let apply_dir = tmp.0.join("03-apply");
        let error = build_plan(&transform_dir, &apply_dir, &PlanOptions::default()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(expected), "{name}: {text}");
        assert!(
            matches!(error, PlanError::Invalid { .. }),
            "{name}: {error:?}"
        );
        let left: Vec<_> = std::fs::read_dir(&apply_dir)
            .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: left {left:?}");
    }

    // A transform output without links.ndjson, and a run without any transform output.
    let tmp = Scratch(scratch("incomplete"));
    let transform_dir = tmp.0.join("02-transform");
    hand_transform(&transform_dir, &[], "");
    std::fs::remove_file(transform_dir.join("links.ndjson")).unwrap();
    let error = build_plan(
        &transform_dir,
        &tmp.0.join("03-apply"),
        &PlanOptions::default(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("links.ndjson: missing"),
        "{error}"
    );
    let error = build_plan(
        &tmp.0.join("absent"),
        &tmp.0.join("03-apply"),
        &PlanOptions::default(),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("run `threadmig transform` first"),
        "{error}"
    );
    let error = build_plan(
        &transform_dir,
        &tmp.0.join("03-apply"),
        &PlanOptions {
            batch_size: 0,
            ..PlanOptions::default()
        },
    )
    .unwrap_err();
    assert!(error.to_string().contains("at least 1"), "{error}");
}

#[test]
fn a_plan_file_is_checked_op_by_op() {
    let tmp = Scratch(scratch("check"));
    let write = |name: &str, lines: &[String]| {
        let path = tmp.0.join(name);
        std::fs::write(
            &path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        path
    };
    let update = format!(r#"["update","thread_items","{ITEM}",{{"channel":"web"}}]"#);
    let batch =
        |n: u64, steps: &[&str]| format!("{{\"batch\":{n},\"steps\":[{}]}}", steps.join(","));

    let ok = write(
        "ok.ndjson",
        &[batch(1, &[&update]), batch(2, &[&update, &update])],
    );
    let check = check_plan(&ok, false).unwrap();
    assert_eq!(check.steps, 3);
    assert_eq!(check.batch_count(), 2);
    assert_eq!(check.largest_batch, 2);
    assert_eq!(check.sha256, sha256_file(&ok).unwrap().0);
    assert!(check.destructive.is_empty());

    let delete = format!(r#"["delete","thread_items","{ITEM}"]"#);
    let unlink = format!(r#"["unlink","thread_items","{ITEM}",{{"thread":"{ITEM2}"}}]"#);
    let destructive = write(
        "destructive.ndjson",
        &[batch(1, &[&update]), batch(2, &[&delete, &unlink, &delete])],
    );
    let error = check_plan(&destructive, false).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: the plan holds 3 destructive step(s) (delete 2, unlink 1; first in batch 2): \
             refused without --allow-destructive",
            destructive.display()
        )
    );
    let allowed = check_plan(&destructive, true).unwrap();
    assert_eq!(allowed.destructive["delete"], 2);
    assert_ne!(allowed.batches[0].kind, allowed.batches[1].kind);

    let create = format!(r#"["create","thread_items","{ITEM}",{{}}]"#);
    for (name, lines, expected) in [
        (
            "create",
            vec![batch(1, &[&update, &create])],
            "batch 1, step 2: `create` is not idempotent",
        ),
        (
            "numbering",
            vec![batch(1, &[&update]), batch(3, &[&update])],
            ":2: batch 3 where batch 2 was expected",
        ),
        ("empty", vec![batch(1, &[])], ":1: batch 1 has no steps"),
        (
            "object",
            vec!["{\"tx\": []}".to_string()],
            ":1: not a batch",
        ),
    ] {
        let path = write(&format!("{name}.ndjson"), &lines);
        let error = check_plan(&path, true).unwrap_err();
        assert!(error.to_string().contains(expected), "{name}: {error}");
    }
    // A plan cut short (no final newline) is refused, not half applied.
    let cut = tmp.0.join("cut.ndjson");
    std::fs::write(&cut, batch(1, &[&update])).unwrap();
    let error = check_plan(&cut, false).unwrap_err();
    assert!(error.to_string().contains("truncated"), "{error}");
}

/// Each id's place in an extract folder as the plan reads it: the `.ndjson` files by name,
/// rows in order, first appearance.
fn extract_positions(extract: &Path) -> BTreeMap<String, usize> {
    let mut files: Vec<_> = std::fs::read_dir(extract)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "ndjson"))
        .collect();
    files.sort();
    let mut positions = BTreeMap::new();
    for path in files {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let row: Value = serde_json::from_str(line).unwrap();
            if let Some(id) = row["id"].as_str() {
                let next = positions.len();
                positions.entry(id.to_string()).or_insert(next);
            }
        }
    }
    positions
}

#[test]
fn with_the_extract_rows_and_link_sources_follow_the_legacy_order() {
    let tmp = Scratch(scratch("source-order"));
    let options = PlanOptions {
        batch_size: 50,
        source_order: Some(legacy_files().to_path_buf()),
    };
    let apply_dir = tmp.0.join("03-apply");
    build_plan(transformed(), &apply_dir, &options).unwrap();
    let plan = apply_dir.join(PLAN_FILE);
    let ordered = steps(&plan);
    let positions = extract_positions(legacy_files());
    let place = |id: &str| positions.get(id).copied().unwrap_or(usize::MAX);

    // Updates: namespaces in dependency order; within one, rows by their place in the extract,
    // rows it does not hold (new threads) after them by id.
    let mut expected = Vec::new();
    let mut moved = 0;
    for ns in ENTITY_ORDER {
        let mut ids = ids_of(&transformed().join(ns.file_name()));
        let by_id = ids.clone();
        ids.sort_by_key(|id| (place(id), id.clone()));
        moved += ids.iter().zip(&by_id).filter(|(a, b)| a != b).count();
        expected.extend(ids.into_iter().map(|id| (ns.as_str().to_string(), id)));
    }
    assert!(
        moved > 100,
        "the extract order must differ from id order here ({moved} moved)"
    );
    let updates: Vec<(String, String)> = ordered
        .iter()
        .filter(|s| s[0] == "update")
        .map(|s| (s[1].as_str().unwrap().into(), s[2].as_str().unwrap().into()))
        .collect();
    assert_eq!(updates, expected);

    // Links: per source namespace (alphabetical), sources by their place in the extract.
    let links: Vec<(String, String)> = ordered
        .iter()
        .filter(|s| s[0] == "link")
        .map(|s| (s[1].as_str().unwrap().into(), s[2].as_str().unwrap().into()))
        .collect();
    let mut expected_links = links.clone();
    expected_links.sort_by_key(|(ns, id)| (ns.clone(), place(id), id.clone()));
    assert_eq!(links, expected_links);

    // The same steps as the plan in id order, only reordered; and the same input gives the
    // same bytes again.
    let by_id = planned("source-order-by-id", 50);
    let canonical = |steps: Vec<Value>| {
        let mut texts: Vec<String> = steps.iter().map(Value::to_string).collect();
        texts.sort();
        texts
    };
    let id_ordered = steps(&by_id.plan);
    assert_ne!(ordered, id_ordered);
    assert_eq!(canonical(ordered), canonical(id_ordered));
    let again = tmp.0.join("03-apply-again");
    build_plan(transformed(), &again, &options).unwrap();
    assert_eq!(
        std::fs::read(&plan).unwrap(),
        std::fs::read(again.join(PLAN_FILE)).unwrap()
    );
}
