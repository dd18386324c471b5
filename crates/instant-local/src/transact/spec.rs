//! Shape validation of user-facing steps, reproducing the server's `::ops` spec check
//! (`admin/model.clj`): the entity-id check first, then one problem picked the way the server's
//! `explain->validation-errors` picks it (the deepest path, then the longest `in`, then the
//! largest last index, later problems winning ties).
//!
//! Spec's explain output is approximated for unusual shapes (insufficient or extra input, link
//! maps): the `in` path is right, the `expected` predicate is the closest simple name.

use instant_api::ApiError;
use serde_json::{json, Value};

use super::values::is_uuid_text;

/// One spec problem: its path length decides which problem is reported.
struct Problem {
    path_len: usize,
    at: Vec<Value>,
    expected: Value,
}

#[derive(Clone, Copy)]
enum Part {
    Op,
    Etype,
    Eid,
    Args,
    Opts,
    LinkMap,
    Rest,
    Attr,
    AttrId,
}

const BRANCHES: [(&str, &[Part]); 10] = [
    ("create", &[Part::Op, Part::Etype, Part::Eid, Part::Args]),
    (
        "update",
        &[Part::Op, Part::Etype, Part::Eid, Part::Args, Part::Opts],
    ),
    (
        "merge",
        &[Part::Op, Part::Etype, Part::Eid, Part::Args, Part::Opts],
    ),
    ("link", &[Part::Op, Part::Etype, Part::Eid, Part::LinkMap]),
    ("unlink", &[Part::Op, Part::Etype, Part::Eid, Part::LinkMap]),
    ("delete", &[Part::Op, Part::Etype, Part::Eid, Part::Rest]),
    (
        "ruleParams",
        &[Part::Op, Part::Etype, Part::Eid, Part::Args],
    ),
    ("add-attr", &[Part::Op, Part::Attr]),
    ("update-attr", &[Part::Op, Part::Attr]),
    ("delete-attr", &[Part::Op, Part::AttrId]),
];

const OPS_WITH_EID: [&str; 7] = [
    "create",
    "update",
    "merge",
    "link",
    "unlink",
    "delete",
    "ruleParams",
];

/// `coercible-uuid?`
pub fn is_uuid(value: &Value) -> bool {
    value.as_str().is_some_and(is_uuid_text)
}

/// `lookup?`: an encoded lookup string.
pub fn is_encoded_lookup(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.starts_with("lookup__"))
}

/// Validates the steps' shapes; the error is the server's `Validation failed for steps`.
pub fn validate_steps(steps: &[Value]) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    let mut invalid_steps = 0;
    for (index, step) in steps.iter().enumerate() {
        let found = step_problems(index, step);
        if !found.is_empty() {
            invalid_steps += 1;
            // Spec stops collecting after 20 invalid elements (`*coll-error-limit*`).
            if invalid_steps <= 20 {
                problems.extend(found);
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    check_entity_ids(steps)?;
    let mut best = 0;
    for (index, problem) in problems.iter().enumerate() {
        if sort_key(problem) >= sort_key(&problems[best]) {
            best = index;
        }
    }
    let problem = &problems[best];
    Err(ApiError::validation(
        "steps",
        Value::Array(steps.to_vec()),
        vec![json!({"expected": problem.expected, "in": problem.at})],
    ))
}

fn sort_key(problem: &Problem) -> (usize, usize, i64) {
    let last = problem
        .at
        .last()
        .and_then(Value::as_i64)
        .unwrap_or(i64::MIN);
    (problem.path_len, problem.at.len(), last)
}

/// `check-for-invalid-entity-ids!` of the admin layer.
fn check_entity_ids(steps: &[Value]) -> Result<(), ApiError> {
    for (index, step) in steps.iter().enumerate() {
        let Some(items) = step.as_array() else {
            continue;
        };
        let known = items
            .first()
            .and_then(Value::as_str)
            .is_some_and(|op| OPS_WITH_EID.contains(&op));
        if items.len() < 3 || !known {
            continue;
        }
        let eid = &items[2];
        let valid = is_uuid(eid) || is_encoded_lookup(eid) || eid.is_array() || eid.is_object();
        if !valid {
            let shown = match eid {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            return Err(ApiError::validation(
                "steps",
                Value::Array(steps.to_vec()),
                vec![json!({
                    "message": format!("Invalid entity ID '{shown}'. Entity IDs must be UUIDs or lookup references."),
                    "in": [index, 2],
                })],
            ));
        }
    }
    Ok(())
}

fn step_problems(index: usize, step: &Value) -> Vec<Problem> {
    let Some(items) = step.as_array() else {
        // Every branch is a regex spec, which wants a sequential value.
        return vec![Problem {
            path_len: 1,
            at: vec![json!(index)],
            expected: json!(["fn", ["%"], ["or", ["nil?", "%"], ["sequential?", "%"]]]),
        }];
    };
    // The branch the step names decides alone when it fits (every other branch fails on the
    // op name), and a valid step is the common case: its problems are not built.
    let named = items.first().and_then(Value::as_str);
    if let Some((name, parts)) = BRANCHES.iter().find(|(name, _)| Some(*name) == named) {
        if fits_branch(items, name, parts) {
            return Vec::new();
        }
    }
    let mut problems = Vec::new();
    for (name, parts) in BRANCHES {
        match branch_problems(index, items, name, parts) {
            Ok(()) => return Vec::new(),
            Err(mut found) => problems.append(&mut found),
        }
    }
    problems
}

/// Whether `items` fits the branch, i.e. [`branch_problems`] finds nothing.
fn fits_branch(items: &[Value], name: &str, parts: &[Part]) -> bool {
    let mut position = 0;
    for part in parts {
        let Some(item) = items.get(position) else {
            return matches!(part, Part::Opts | Part::Rest);
        };
        let fits = match part {
            Part::Op => item.as_str() == Some(name),
            Part::Etype => item.is_string(),
            Part::Args | Part::Attr => item.is_object(),
            Part::Opts => item.is_null() || item.is_object(),
            Part::AttrId => is_uuid(item),
            Part::Eid => is_uuid(item) || item.is_object() || is_encoded_lookup(item),
            // Link maps and array lookups have nested rules: the full check decides.
            Part::LinkMap => false,
            Part::Rest => return true,
        };
        if !fits {
            return false;
        }
        position += 1;
    }
    position >= items.len()
}

fn branch_problems(
    index: usize,
    items: &[Value],
    name: &str,
    parts: &[Part],
) -> Result<(), Vec<Problem>> {
    let at = |position: usize| vec![json!(index), json!(position)];
    let mut position = 0;
    for part in parts {
        let Some(item) = items.get(position) else {
            return match part {
                Part::Opts | Part::Rest => Ok(()),
                _ => Err(vec![Problem {
                    path_len: part_path_len(*part),
                    at: vec![json!(index)],
                    expected: json!(part_expected(*part, name)),
                }]),
            };
        };
        let problem = |expected: Value| {
            Err(vec![Problem {
                path_len: part_path_len(*part),
                at: at(position),
                expected,
            }])
        };
        match part {
            Part::Op if item.as_str() != Some(name) => return problem(json!([name])),
            Part::Etype if !item.is_string() => return problem(json!("string?")),
            Part::Args | Part::Attr if !item.is_object() => return problem(json!("map?")),
            Part::Opts if !(item.is_null() || item.is_object()) => {
                return Err(vec![Problem {
                    path_len: 5,
                    at: at(position),
                    expected: json!("nil?"),
                }])
            }
            Part::AttrId if !is_uuid(item) => {
                return problem(json!("instant.admin.model/coercible-uuid?"))
            }
            Part::Eid => {
                let found = lookup_problems(item, 3, at(position));
                if !found.is_empty() {
                    return Err(found);
                }
            }
            Part::LinkMap => {
                let Some(map) = item.as_object() else {
                    return problem(json!("map?"));
                };
                for (label, target) in map {
                    let mut base = at(position);
                    base.push(json!(label));
                    base.push(json!(1));
                    let found = link_value_problems(target, base);
                    if !found.is_empty() {
                        return Err(found);
                    }
                }
            }
            Part::Rest => return Ok(()),
            _ => {}
        }
        position += 1;
    }
    if position < items.len() {
        return Err(vec![Problem {
            path_len: 1,
            at: at(position),
            expected: json!(format!("(cat :op #{{\"{name}\"}} :args (cat ...))")),
        }]);
    }
    Ok(())
}

fn part_path_len(part: Part) -> usize {
    match part {
        Part::Op | Part::Attr | Part::AttrId => 2,
        _ => 3,
    }
}

fn part_expected(part: Part, name: &str) -> Value {
    match part {
        Part::Op => json!([name]),
        Part::Etype => json!("string?"),
        Part::Eid => json!(":instant.admin.model/lookup"),
        Part::Args | Part::Attr => json!("map?"),
        Part::LinkMap => json!(":instant.admin.model/link-map"),
        Part::AttrId => json!("instant.admin.model/coercible-uuid?"),
        Part::Opts | Part::Rest => Value::Null,
    }
}

/// Problems of `::lookup` (an `s/or` of a UUID and the three lookup forms); empty when valid.
fn lookup_problems(value: &Value, base: usize, at: Vec<Value>) -> Vec<Problem> {
    if is_uuid(value) || value.is_object() || is_encoded_lookup(value) {
        return Vec::new();
    }
    let tuple = match value.as_array() {
        None => Some(Problem {
            path_len: base + 2,
            at: at.clone(),
            expected: json!("vector?"),
        }),
        Some(items) if items.len() != 2 => Some(Problem {
            path_len: base + 2,
            at: at.clone(),
            expected: json!(["=", ["count", "%"], 2]),
        }),
        Some(items) if !items[0].is_string() => {
            let mut inner = at.clone();
            inner.push(json!(0));
            Some(Problem {
                path_len: base + 3,
                at: inner,
                expected: json!("string?"),
            })
        }
        Some(_) => None,
    };
    let Some(tuple) = tuple else {
        return Vec::new();
    };
    vec![
        Problem {
            path_len: base + 1,
            at: at.clone(),
            expected: json!("instant.admin.model/coercible-uuid?"),
        },
        tuple,
        Problem {
            path_len: base + 2,
            at: at.clone(),
            expected: json!("map?"),
        },
        Problem {
            path_len: base + 2,
            at,
            expected: json!("instant.admin.model/lookup?"),
        },
    ]
}

/// Problems of `::link-value`: one lookup, or a collection of lookups.
fn link_value_problems(value: &Value, at: Vec<Value>) -> Vec<Problem> {
    let single = lookup_problems(value, 5, at.clone());
    if single.is_empty() {
        return single;
    }
    let mut problems = single;
    match value.as_array() {
        Some(items) => {
            for (position, item) in items.iter().enumerate() {
                let mut inner = at.clone();
                inner.push(json!(position));
                let found = lookup_problems(item, 5, inner);
                if !found.is_empty() {
                    problems.extend(found);
                    return problems;
                }
            }
            Vec::new()
        }
        None => {
            problems.push(Problem {
                path_len: 5,
                at,
                expected: json!("coll?"),
            });
            problems
        }
    }
}
