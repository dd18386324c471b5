//! Reading the query object into forms, with the server's checks and rewrites
//! (`db/instaql.clj`: `coerce-forms!`, `coerce-option-map!`, `coerce-where-cond`,
//! `collapse-coerced-conds`, `combine-or-where-conds`, then the `::forms` spec).

use instant_api::ApiError;
use serde_json::{json, Map, Value};

use super::plan::Catalogue;

/// One node of the query: a namespace (top level) or a link label (below).
#[derive(Debug, Clone)]
pub struct Form {
    pub key: String,
    /// The keys leading to this form, as the server reports them in `in`.
    pub in_path: Vec<Value>,
    pub options: Options,
    pub children: Vec<Form>,
}

/// The `$` options after coercion.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub where_conds: Vec<Cond>,
    pub order: Option<Order>,
    pub limit: Option<i64>,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub offset: Option<i64>,
    pub after: Option<Cursor>,
    pub before: Option<Cursor>,
    pub after_inclusive: bool,
    pub before_inclusive: bool,
    pub aggregate: bool,
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub key: String,
    pub desc: bool,
}

/// A page cursor `[entityId, attrId, value, createdAt?]`.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub entity_id: Value,
    pub attr_id: String,
    pub value: Value,
    pub created_at: Option<i64>,
}

/// A `where` condition after the server's rewriting. `Path` values are still raw JSON; the spec
/// check ([`check_specs`]) validates their shape before anything reads them.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Path { path: Vec<String>, value: Value },
    Or(Vec<Cond>),
    And(Vec<Cond>),
}

struct State<'a> {
    root: &'a Value,
    in_path: Vec<Value>,
    level: usize,
    etype: Option<String>,
}

impl State<'_> {
    fn at(&self, extra: &[&str]) -> Vec<Value> {
        let mut path = self.in_path.clone();
        path.extend(extra.iter().map(|key| json!(key)));
        path
    }

    fn fail(&self, error: Value) -> ApiError {
        ApiError::validation("query", self.root.clone(), vec![error])
    }
}

/// Reads the (rule-params-free) query object into forms, checking it as the server does.
pub fn read_forms(catalogue: &Catalogue, root: &Value) -> Result<Vec<Form>, ApiError> {
    let state = State {
        root,
        in_path: Vec::new(),
        level: 0,
        etype: None,
    };
    let forms = read_level(catalogue, &state, root)?;
    check_specs(root, &forms)?;
    Ok(forms)
}

fn read_level(catalogue: &Catalogue, state: &State, value: &Value) -> Result<Vec<Form>, ApiError> {
    let object = value
        .as_object()
        .ok_or_else(|| state.fail(json!({"expected": "map?", "in": state.in_path})))?;
    let mut forms = Vec::with_capacity(object.len());
    for (key, node) in object {
        let mut in_path = state.in_path.clone();
        in_path.push(json!(key));
        let etype = if state.level == 0 {
            Some(key.clone())
        } else {
            state
                .etype
                .as_deref()
                .and_then(|etype| catalogue.link_etype(etype, key))
        };
        let form_state = State {
            root: state.root,
            in_path,
            level: state.level,
            etype,
        };
        let node = node.as_object().ok_or_else(|| {
            form_state.fail(json!({"expected": "map?", "in": form_state.in_path}))
        })?;
        let options_state = State {
            root: state.root,
            in_path: form_state.at(&["$"]),
            level: state.level,
            etype: form_state.etype.clone(),
        };
        let options = read_options(catalogue, &options_state, node.get("$"))?;
        let mut rest = node.clone();
        rest.shift_remove("$");
        let child_state = State {
            root: state.root,
            in_path: form_state.in_path.clone(),
            level: state.level + 1,
            etype: form_state.etype.clone(),
        };
        let children = read_level(catalogue, &child_state, &Value::Object(rest))?;
        forms.push(Form {
            key: key.clone(),
            in_path: form_state.in_path,
            options,
            children,
        });
    }
    Ok(forms)
}

const OPTION_KEYS: [&str; 12] = [
    "where",
    "order",
    "limit",
    "first",
    "last",
    "offset",
    "before",
    "after",
    "beforeInclusive",
    "afterInclusive",
    "aggregate",
    "fields",
];

/// Clojure truthiness: `nil` and `false` are absent.
fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|value| !matches!(value, Value::Null | Value::Bool(false)))
}

fn read_options(
    catalogue: &Catalogue,
    state: &State,
    options: Option<&Value>,
) -> Result<Options, ApiError> {
    let empty = Map::new();
    let x = match options {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(object)) => object,
        // The server would fail on a non-map `$` with an internal error; a validation error
        // names the place instead.
        Some(_) => return Err(state.fail(json!({"expected": "map?", "in": state.in_path}))),
    };
    let mut options = Options::default();

    if let Some(where_value) = present(x.get("where")) {
        let where_map = where_value
            .as_object()
            .ok_or_else(|| state.fail(json!({"expected": "map?", "in": state.at(&["where"])})))?;
        for (key, value) in where_map {
            options
                .where_conds
                .extend(coerce_where_cond(catalogue, state, key, value)?);
        }
    }

    if let Some(order_value) = present(x.get("order")) {
        let order_map = order_value
            .as_object()
            .ok_or_else(|| state.fail(json!({"expected": "map?", "in": state.at(&["order"])})))?;
        options.order = coerce_order(state, order_map)?;
    }

    options.limit = positive(state, x, "limit")?;
    options.first = positive(state, x, "first")?;
    options.last = positive(state, x, "last")?;
    if let Some(offset) = present(x.get("offset")) {
        match offset.as_i64() {
            Some(offset) if offset >= 0 => options.offset = Some(offset),
            _ => {
                return Err(state.fail(json!({
                    "expected": "supported-options?",
                    "in": state.at(&["offset"]),
                    "message": format!(
                        "The offset field must be a non-negative integer. Got {}.",
                        to_json(offset)
                    ),
                })))
            }
        }
    }
    if let Some(after) = present(x.get("after")) {
        options.after = Some(read_cursor(state, "after", after)?);
    }
    if let Some(inclusive) = x.get("afterInclusive").filter(|value| !value.is_null()) {
        options.after_inclusive = read_boolean(state, "afterInclusive", inclusive)?;
    }
    if let Some(before) = present(x.get("before")) {
        options.before = Some(read_cursor(state, "before", before)?);
    }
    if let Some(inclusive) = x.get("beforeInclusive").filter(|value| !value.is_null()) {
        options.before_inclusive = read_boolean(state, "beforeInclusive", inclusive)?;
    }
    if let Some(aggregate) = present(x.get("aggregate")) {
        if aggregate.as_str() != Some("count") {
            return Err(state.fail(json!({
                "expected": "supported-options?",
                "in": state.at(&["aggregate"]),
                "message": format!(
                    "The aggregate field only accepts \"count\", got {}.",
                    to_json(aggregate)
                ),
            })));
        }
        options.aggregate = true;
    }

    let fields = present(x.get("fields"));
    if let Some(fields) = fields {
        if !fields.is_array() {
            return Err(state.fail(json!({
                "expected": "array?",
                "in": state.at(&["fields"]),
                "message": "The `fields` property should be an array of field names.",
            })));
        }
    }

    if x.keys().any(|key| !OPTION_KEYS.contains(&key.as_str())) {
        return Err(state.fail(json!({
            "expected": "supported-options?",
            "in": state.in_path,
            "message": "We only support `where`, `order`, `limit`, `offset`, `before`, and `after` clauses.",
        })));
    }

    if state.level > 0
        && (options.offset.is_some() || options.after.is_some() || options.before.is_some())
    {
        return Err(state.fail(json!({
            "expected": "supported-options?",
            "in": state.in_path,
            "message": "We currently only support `offset`, `before`, and `after` clauses on the top-level field. Limit fields will be ignored",
        })));
    }

    let limit_names: Vec<&str> = [
        (options.limit.is_some(), "`limit`"),
        (options.first.is_some(), "`first`"),
        (options.last.is_some(), "`last`"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if limit_names.len() > 1 {
        return Err(state.fail(json!({
            "expected": "supported-options?",
            "in": state.in_path,
            "message": format!("Only provide one of {}.", limit_names.join(" or ")),
        })));
    }

    // Non-string field names are caught by the spec check, after every form is read.
    options.fields = fields.and_then(Value::as_array).map(|names| {
        names
            .iter()
            .filter_map(|name| name.as_str().map(str::to_string))
            .collect()
    });
    Ok(options)
}

fn positive(state: &State, x: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(value) = present(x.get(name)) else {
        return Ok(None);
    };
    match value.as_i64() {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => Err(state.fail(json!({
            "expected": "supported-options?",
            "in": state.at(&[name]),
            "message": format!(
                "The {name} field must be a positive integer. Got {}.",
                to_json(value)
            ),
        }))),
    }
}

fn read_boolean(state: &State, name: &str, value: &Value) -> Result<bool, ApiError> {
    value
        .as_bool()
        .ok_or_else(|| state.fail(json!({"expected": "boolean?", "in": state.at(&[name])})))
}

fn read_cursor(state: &State, name: &str, value: &Value) -> Result<Cursor, ApiError> {
    let fail = |message: String| {
        state.fail(json!({"expected": "join-row?", "in": state.at(&[name]), "message": message}))
    };
    let items = value.as_array().ok_or_else(|| {
        fail(format!(
            "Expected a join row for the cursor, got {}.",
            to_json(value)
        ))
    })?;
    if items.len() != 3 && items.len() != 4 {
        return Err(fail(format!(
            "Expected a join row with 4 items for the cursor, got {}.",
            to_json(value)
        )));
    }
    let attr_id = items[1].as_str().and_then(canonical_uuid).ok_or_else(|| {
        fail(format!(
            "Expected a join row with a uuid attribute id in the second position, got {}.",
            to_json(&items[1])
        ))
    })?;
    let created_at = match items.get(3) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(t) => Some(t.as_i64().ok_or_else(|| {
            fail(format!(
                "Expected a join row with an integer created_at in the last position, got {}.",
                to_json(t)
            ))
        })?),
    };
    Ok(Cursor {
        entity_id: items[0].clone(),
        attr_id,
        value: items[2].clone(),
        created_at,
    })
}

fn coerce_order(state: &State, order: &Map<String, Value>) -> Result<Option<Order>, ApiError> {
    match order.len() {
        0 => Ok(None),
        1 => {
            let (key, direction) = order.iter().next().expect("one entry");
            match direction.as_str() {
                Some("asc") => Ok(Some(Order {
                    key: key.clone(),
                    desc: false,
                })),
                Some("desc") => Ok(Some(Order {
                    key: key.clone(),
                    desc: true,
                })),
                _ => Err(state.fail(json!({
                    "expected": "valid-direction?",
                    "in": state.at(&["order", key]),
                    "message": format!(
                        "We only support \"asc\" or \"desc\" in the `order` clause. Got {}.",
                        to_json(direction)
                    ),
                }))),
            }
        }
        _ => Err(state.fail(json!({
            "expected": "single-key?",
            "in": state.at(&["order"]),
            "message": format!(
                "We only support a single key in the `order` clause. Got {}.",
                order.keys().map(String::as_str).collect::<Vec<_>>().join(",")
            ),
        }))),
    }
}

/// Splits a dotted key as Java's `String.split` does (trailing empty segments dropped).
pub fn split_path(key: &str) -> Vec<String> {
    let mut parts: Vec<String> = key.split('.').map(str::to_string).collect();
    if key.is_empty() {
        return parts;
    }
    while parts.last().is_some_and(String::is_empty) {
        parts.pop();
    }
    parts
}

/// `where-value-valid?`: a string, number or boolean.
pub fn is_where_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn is_null_true(value: &Value) -> bool {
    value.as_object().is_some_and(|object| {
        object.len() == 1 && object.get("$isNull") == Some(&Value::Bool(true))
    })
}

fn grow_paths(path: &[String]) -> Vec<Vec<String>> {
    (1..=path.len()).map(|n| path[..n].to_vec()).collect()
}

fn is_null_cond(path: Vec<String>) -> Cond {
    Cond::Path {
        path,
        value: json!({"$isNull": true}),
    }
}

fn coerce_where_cond(
    catalogue: &Catalogue,
    state: &State,
    key: &str,
    value: &Value,
) -> Result<Vec<Cond>, ApiError> {
    let conds = match (key, value) {
        ("or", Value::Array(alternatives)) => {
            let maps = alternatives
                .iter()
                .map(|alternative| {
                    alternative.as_object().ok_or_else(|| {
                        state.fail(json!({"expected": "map?", "in": state.at(&["or"])}))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut conds = Vec::new();
            for entries in combine_or(catalogue, state.etype.as_deref(), &maps) {
                let mut inner = Vec::new();
                for (key, value) in &entries {
                    inner.extend(coerce_where_cond(catalogue, state, key, value)?);
                }
                conds.push(Cond::And(inner));
            }
            if conds.is_empty() {
                return Err(state.fail(json!({
                    "expected": "non-empty-list?",
                    "in": state.at(&["or"]),
                    "message": "The list of `or` conditions can't be empty.",
                })));
            }
            vec![Cond::Or(conds)]
        }
        ("and", Value::Array(parts)) => {
            let mut conds = Vec::new();
            for part in parts {
                let part = part.as_object().ok_or_else(|| {
                    state.fail(json!({"expected": "map?", "in": state.at(&["and"])}))
                })?;
                for (key, value) in part {
                    conds.extend(coerce_where_cond(catalogue, state, key, value)?);
                }
            }
            if conds.is_empty() {
                return Err(state.fail(json!({
                    "expected": "non-empty-list?",
                    "in": state.at(&["and"]),
                    "message": "The list of `and` conditions can't be empty.",
                })));
            }
            vec![Cond::And(conds)]
        }
        (_, Value::Object(args)) if args.contains_key("$not") || args.contains_key("$ne") => {
            // A `$not` only sees entities holding a value; the server adds `$isNull`
            // alternatives for every prefix of the path so missing values match too.
            let mut args = args.clone();
            if let Some(ne) = args.shift_remove("$ne") {
                args.insert("$not".into(), ne);
            }
            let path = split_path(key);
            let mut alternatives = vec![Cond::Path {
                path: path.clone(),
                value: Value::Object(args),
            }];
            let mut null_paths = grow_paths(&path);
            if catalogue.indexed_path(state.etype.as_deref(), &path) {
                null_paths.pop();
            }
            alternatives.extend(null_paths.into_iter().map(is_null_cond));
            vec![Cond::Or(alternatives)]
        }
        (_, Value::Object(args)) if args.get("$isNull") == Some(&Value::Bool(true)) => {
            let path = split_path(key);
            let conds: Vec<Cond> = grow_paths(&path).into_iter().map(is_null_cond).collect();
            if conds.len() == 1 {
                vec![Cond::And(conds)]
            } else {
                vec![Cond::Or(conds)]
            }
        }
        _ => vec![Cond::Path {
            path: split_path(key),
            value: value.clone(),
        }],
    };
    Ok(collapse(conds))
}

/// `combine-or-where-conds`: single-key scalar alternatives (and `$isNull: true` on an indexed
/// attribute) on the same key become one `in` condition.
fn combine_or(
    catalogue: &Catalogue,
    etype: Option<&str>,
    alternatives: &[&Map<String, Value>],
) -> Vec<Vec<(String, Value)>> {
    let mut uncombined: Vec<Vec<(String, Value)>> = Vec::new();
    let mut combined: indexmap::IndexMap<String, Vec<Value>> = indexmap::IndexMap::new();
    for alternative in alternatives {
        let single = (alternative.len() == 1)
            .then(|| alternative.iter().next())
            .flatten();
        let combinable = single.filter(|(key, value)| {
            (is_null_true(value) && catalogue.indexed_path(etype, &split_path(key)))
                || (is_where_scalar(value) && !key.starts_with('$'))
        });
        match combinable {
            Some((key, value)) => {
                let value = if is_null_true(value) {
                    Value::Null
                } else {
                    value.clone()
                };
                combined.entry(key.clone()).or_default().push(value);
            }
            None => uncombined.push(
                alternative
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
            ),
        }
    }
    uncombined.extend(
        combined
            .into_iter()
            .map(|(key, values)| vec![(key, json!({ "in": values }))]),
    );
    uncombined
}

/// `collapse-coerced-conds`: nested `or`s (and `and`s) are flattened into their parent and
/// single-condition groups are unwrapped.
fn collapse(conds: Vec<Cond>) -> Vec<Cond> {
    let mut out = Vec::with_capacity(conds.len());
    for cond in conds {
        match cond {
            Cond::Or(inner) => {
                let mut flat = Vec::new();
                for c in collapse(inner) {
                    match c {
                        Cond::Or(nested) => flat.extend(nested),
                        other => flat.push(other),
                    }
                }
                if flat.len() == 1 {
                    out.extend(flat);
                } else {
                    out.push(Cond::Or(flat));
                }
            }
            Cond::And(inner) => {
                let mut flat = Vec::new();
                for c in collapse(inner) {
                    match c {
                        Cond::And(nested) => flat.extend(nested),
                        other => flat.push(other),
                    }
                }
                if flat.len() == 1 {
                    out.extend(flat);
                } else {
                    out.push(Cond::And(flat));
                }
            }
            path => out.push(path),
        }
    }
    out
}

/// The server conforms the coerced forms to its spec and reports the first problem as
/// `Validation failed for coerced-query` with `in` pointing into the coerced forms
/// (`[formIndex, "option-map", "where-conds", condIndex, 1, …]`). The hint's `input` here is
/// the query itself rather than the server's internal coerced forms.
fn check_specs(root: &Value, forms: &[Form]) -> Result<(), ApiError> {
    fn walk(forms: &[Form], prefix: &[Value]) -> Option<(String, Vec<Value>)> {
        for (index, form) in forms.iter().enumerate() {
            let mut at = prefix.to_vec();
            at.push(json!(index));
            let mut options_at = at.clone();
            options_at.push(json!("option-map"));
            for (cond_index, cond) in form.options.where_conds.iter().enumerate() {
                let mut cond_at = options_at.clone();
                cond_at.push(json!("where-conds"));
                cond_at.push(json!(cond_index));
                if let Some(problem) = check_cond(cond, cond_at) {
                    return Some(problem);
                }
            }
            let mut child_at = at.clone();
            child_at.push(json!("child-forms"));
            if let Some(problem) = walk(&form.children, &child_at) {
                return Some(problem);
            }
        }
        None
    }
    match walk(forms, &[]) {
        Some((expected, at)) => Err(ApiError::validation(
            "coerced-query",
            root.clone(),
            vec![json!({"expected": expected, "in": at})],
        )),
        None => check_field_names(root, forms, &[]),
    }
}

fn check_field_names(root: &Value, forms: &[Form], prefix: &[Value]) -> Result<(), ApiError> {
    for (index, form) in forms.iter().enumerate() {
        let mut at = prefix.to_vec();
        at.push(json!(index));
        if let Some(raw) = raw_fields(root, &form.in_path) {
            if let Some(position) = raw.iter().position(|name| !name.is_string()) {
                let mut field_at = at.clone();
                field_at.extend([json!("option-map"), json!("fields"), json!(position)]);
                return Err(ApiError::validation(
                    "coerced-query",
                    root.clone(),
                    vec![json!({"expected": "string?", "in": field_at})],
                ));
            }
        }
        at.push(json!("child-forms"));
        check_field_names(root, &form.children, &at)?;
    }
    Ok(())
}

fn raw_fields<'a>(root: &'a Value, in_path: &[Value]) -> Option<&'a Vec<Value>> {
    let mut node = root;
    for key in in_path {
        node = node.get(key.as_str()?)?;
    }
    node.get("$")?.get("fields")?.as_array()
}

const WHERE_OPS: [&str; 11] = [
    "in", "$in", "$not", "$ne", "$isNull", "$gt", "$gte", "$lt", "$lte", "$like", "$ilike",
];

fn check_cond(cond: &Cond, at: Vec<Value>) -> Option<(String, Vec<Value>)> {
    match cond {
        Cond::Or(conds) | Cond::And(conds) => {
            let tag = if matches!(cond, Cond::Or(_)) {
                "or"
            } else {
                "and"
            };
            conds.iter().enumerate().find_map(|(index, cond)| {
                let mut inner = at.clone();
                inner.push(json!(tag));
                inner.push(json!(index));
                check_cond(cond, inner)
            })
        }
        Cond::Path { value, .. } => {
            let mut value_at = at;
            value_at.push(json!(1));
            check_where_value(value, value_at)
        }
    }
}

fn check_where_value(value: &Value, at: Vec<Value>) -> Option<(String, Vec<Value>)> {
    if is_where_scalar(value) {
        return None;
    }
    let Some(args) = value.as_object() else {
        return Some(("instant.db.instaql/where-value-valid?".into(), at));
    };
    let with = |key: &str| {
        let mut inner = at.clone();
        inner.push(json!(key));
        inner
    };
    for (key, arg) in args {
        let problem = match key.as_str() {
            "in" | "$in" => match arg.as_array() {
                None => Some(("vector?".to_string(), with(key))),
                Some(items) => items
                    .iter()
                    .position(|item| !(item.is_null() || is_where_scalar(item)))
                    .map(|position| {
                        let mut inner = with(key);
                        inner.push(json!(position));
                        ("instant.db.instaql/in-value-valid?".to_string(), inner)
                    }),
            },
            "$not" | "$ne" => (!is_where_scalar(arg)).then(|| {
                (
                    "instant.db.instaql/where-value-valid?".to_string(),
                    with(key),
                )
            }),
            "$isNull" => (!arg.is_boolean()).then(|| ("boolean?".to_string(), with(key))),
            "$gt" | "$gte" | "$lt" | "$lte" | "$like" | "$ilike" => {
                (!is_where_scalar(arg)).then(|| ("boolean?".to_string(), with(key)))
            }
            _ => None,
        };
        if problem.is_some() {
            return problem;
        }
    }
    if args.keys().any(|key| !WHERE_OPS.contains(&key.as_str())) {
        return Some(("instant.db.instaql/where-value-valid-keys?".into(), at));
    }
    None
}

/// Cheshire's rendering of a JSON value inside a message.
pub fn to_json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A canonical (lowercase, hyphenated) UUID, if `text` is one in hyphenated form.
pub fn canonical_uuid(text: &str) -> Option<String> {
    if text.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(text)
        .ok()
        .map(|uuid| uuid.hyphenated().to_string())
}
