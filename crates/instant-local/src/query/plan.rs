//! Resolving forms against the attribute catalogue (`query-one`, `->where-cond-attr-pats`,
//! `->value-attr-pat`, `coerce-value-for-typed-comparison!`, `page-info-of-form` in the
//! server's `db/instaql.clj` and `db/model/attr_pat.clj`).

use std::collections::HashMap;

use instant_api::ApiError;
use instant_schema::Cardinality;
use serde_json::{json, Value};

use super::dates;
use super::forms::{canonical_uuid, is_where_scalar, to_json, Cond, Cursor, Form, Order};
use crate::store::AttrRow;

/// The live attributes of an app with the lookups queries need.
pub struct Catalogue {
    attrs: Vec<AttrRow>,
    forward: HashMap<(String, String), usize>,
    reverse: HashMap<(String, String), usize>,
    by_id: HashMap<String, usize>,
}

impl Catalogue {
    pub fn new(attrs: Vec<AttrRow>) -> Catalogue {
        let mut forward = HashMap::new();
        let mut reverse = HashMap::new();
        let mut by_id = HashMap::new();
        for (index, row) in attrs.iter().enumerate() {
            forward.insert((row.etype().to_string(), row.label().to_string()), index);
            if let Some(rev) = &row.attr.reverse_identity {
                reverse.insert((rev.etype.clone(), rev.label.clone()), index);
            }
            by_id.insert(row.id().to_string(), index);
        }
        Catalogue {
            attrs,
            forward,
            reverse,
            by_id,
        }
    }

    pub fn forward(&self, etype: &str, label: &str) -> Option<&AttrRow> {
        self.forward
            .get(&(etype.to_string(), label.to_string()))
            .map(|&index| &self.attrs[index])
    }

    pub fn reverse(&self, etype: &str, label: &str) -> Option<&AttrRow> {
        self.reverse
            .get(&(etype.to_string(), label.to_string()))
            .map(|&index| &self.attrs[index])
    }

    fn by_id(&self, id: &str) -> Option<&AttrRow> {
        self.by_id.get(id).map(|&index| &self.attrs[index])
    }

    /// The namespace a link label leads to from `etype`, either direction.
    pub fn link_etype(&self, etype: &str, label: &str) -> Option<String> {
        if let Some(attr) = self.forward(etype, label) {
            return attr
                .attr
                .reverse_identity
                .as_ref()
                .map(|rev| rev.etype.clone());
        }
        self.reverse(etype, label)
            .map(|attr| attr.etype().to_string())
    }

    /// `indexed-attr?`: whether the last segment of `path` is an indexed forward attribute.
    pub fn indexed_path(&self, etype: Option<&str>, path: &[String]) -> bool {
        let Some((last, links)) = path.split_last() else {
            return false;
        };
        let mut etype = etype.map(str::to_string);
        for label in links {
            etype = etype.and_then(|etype| self.link_etype(&etype, label));
        }
        etype
            .and_then(|etype| self.forward(&etype, last))
            .is_some_and(|attr| attr.attr.index)
    }

    /// `ea-ids-for-etype`: the cardinality-one attributes of `etype`, refs included, in
    /// catalogue order.
    pub fn entity_attrs(&self, etype: &str) -> impl Iterator<Item = &AttrRow> {
        let etype = etype.to_string();
        self.attrs
            .iter()
            .filter(move |row| row.etype() == etype && row.attr.cardinality == Cardinality::One)
    }
}

/// A resolved form.
#[derive(Debug)]
pub struct FormPlan {
    pub key: String,
    pub etype: Option<String>,
    /// An unknown namespace, where attribute or link: the form yields nothing.
    pub missing: bool,
    pub filter: Filter,
    pub order: Option<Order>,
    /// Pagination, top level only.
    pub page: Option<Page>,
    pub fields: Option<Vec<String>>,
    pub aggregate: bool,
    pub children: Vec<ChildPlan>,
}

#[derive(Debug)]
pub struct ChildPlan {
    pub link: Option<Link>,
    pub form: FormPlan,
}

#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub attr_pk: i64,
    pub forward: bool,
    /// Has-one in the traversed direction: the shape `inference?` makes singular.
    pub singular: bool,
}

#[derive(Debug)]
pub struct Page {
    pub limit: Option<i64>,
    pub last: bool,
    pub offset: Option<i64>,
    pub desc: bool,
    pub key: OrderKey,
    pub after: Option<(Cursor, bool)>,
    pub before: Option<(Cursor, bool)>,
}

#[derive(Debug, Clone)]
pub enum OrderKey {
    CreatedAt,
    Attr { attr_pk: i64, date: bool },
}

/// A compiled `where`. The top-level plain conditions share their link variables (the server
/// names them by namespace and depth, so `{"a.x": 1, "a.y": 2}` needs one linked `a` holding
/// both); conditions under `or`/`and` are independent existence tests.
#[derive(Debug, Default)]
pub struct Filter {
    pub shared: Vec<PathTest>,
    pub groups: Vec<Node>,
}

#[derive(Debug)]
pub enum Node {
    Path(PathTest),
    And(Vec<Node>),
    Or(Vec<Node>),
}

#[derive(Debug)]
pub struct PathTest {
    pub steps: Vec<Step>,
    pub etype: String,
    pub test: Test,
}

#[derive(Debug)]
pub struct Step {
    pub attr_pk: i64,
    pub forward: bool,
    /// The variable the step binds: target namespace and depth.
    pub var: (String, usize),
}

/// What a condition reads on its entity.
#[derive(Debug, Clone)]
pub enum Target {
    Blob {
        attr_pk: i64,
        /// Whether the attribute's triples are in the value indexes (unique or indexed).
        indexed: bool,
    },
    /// The `id` attribute: the entity's own id.
    Id,
    Ref {
        attr_pk: i64,
        forward: bool,
    },
}

#[derive(Debug, Clone)]
pub enum Matcher {
    Json(Value),
    /// Epoch milliseconds, for indexed `date` attributes.
    Millis(f64),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone)]
pub enum Test {
    Eq {
        target: Target,
        values: Vec<Matcher>,
    },
    Not {
        target: Target,
        value: Matcher,
    },
    IsNull {
        target: Target,
        want_null: bool,
    },
    Compare {
        target: Target,
        op: CmpOp,
        data_type: String,
        value: Matcher,
    },
    Like {
        target: Target,
        pattern: String,
        insensitive: bool,
    },
}

/// A `where` attribute or link that does not exist: the form yields nothing.
struct Missing;

enum PlanError {
    Missing,
    Api(ApiError),
}

impl From<ApiError> for PlanError {
    fn from(error: ApiError) -> Self {
        PlanError::Api(error)
    }
}

impl From<Missing> for PlanError {
    fn from(_: Missing) -> Self {
        PlanError::Missing
    }
}

struct Ctx<'a> {
    catalogue: &'a Catalogue,
    root: &'a Value,
}

/// Plans every top-level form, in query order.
pub fn plan_forms(
    catalogue: &Catalogue,
    root: &Value,
    forms: &[Form],
) -> Result<Vec<FormPlan>, ApiError> {
    let ctx = Ctx { catalogue, root };
    forms
        .iter()
        .map(|form| plan_form(&ctx, form, Some(form.key.clone()), 0))
        .collect()
}

fn plan_form(
    ctx: &Ctx,
    form: &Form,
    etype: Option<String>,
    level: usize,
) -> Result<FormPlan, ApiError> {
    let options = &form.options;
    let (missing, filter) = match etype.as_deref() {
        None => (true, Filter::default()),
        Some(etype) => {
            let no_id = level == 0
                && options.where_conds.is_empty()
                && ctx.catalogue.forward(etype, "id").is_none();
            if no_id {
                (true, Filter::default())
            } else {
                match plan_where(ctx, form, etype, level) {
                    Ok(filter) => (false, filter),
                    Err(PlanError::Missing) => (true, Filter::default()),
                    Err(PlanError::Api(error)) => return Err(error),
                }
            }
        }
    };

    let wants_page = options.limit.is_some()
        || options.first.is_some()
        || options.last.is_some()
        || options.offset.is_some()
        || options.before.is_some()
        || options.after.is_some()
        || options.order.is_some();
    let page = match (&etype, missing) {
        (Some(etype), false) if level == 0 && wants_page => Some(plan_page(ctx, form, etype)?),
        _ => None,
    };

    let mut children = Vec::with_capacity(form.children.len());
    for child in &form.children {
        let link = match etype.as_deref() {
            Some(parent) => resolve_link(ctx, parent, &child.key)?,
            None => None,
        };
        let child_etype = link.as_ref().map(|(_, etype)| etype.clone());
        let plan = plan_form(ctx, child, child_etype, level + 1)?;
        children.push(ChildPlan {
            link: link.map(|(link, _)| link),
            form: plan,
        });
    }

    if options.aggregate && !children.is_empty() {
        return Err(ApiError::validation(
            "query",
            ctx.root.clone(),
            vec![json!({
                "expected": "valid-query?",
                "in": with(&form.in_path, &["$", "aggregate"]),
                "message": "You can not combine aggregates with child queries at this time.",
            })],
        ));
    }

    Ok(FormPlan {
        key: form.key.clone(),
        etype,
        missing,
        filter,
        order: options.order.clone(),
        page,
        fields: options.fields.clone(),
        aggregate: options.aggregate,
        children,
    })
}

fn with(path: &[Value], extra: &[&str]) -> Vec<Value> {
    let mut path = path.to_vec();
    path.extend(extra.iter().map(|key| json!(key)));
    path
}

fn needs_link_error(attr: &AttrRow, etype: &str, label: &str) -> ApiError {
    ApiError::validation(
        "attr",
        serde_json::to_value(&attr.attr).unwrap_or(Value::Null),
        vec![json!({"message": format!("{etype}.{label} needs to be a link")})],
    )
}

/// `->guarded-ref-attr-pat`: an unknown label is no link (empty children), a blob label is an
/// error.
fn resolve_link(ctx: &Ctx, etype: &str, label: &str) -> Result<Option<(Link, String)>, ApiError> {
    let forward = ctx.catalogue.forward(etype, label);
    let Some(attr) = forward.or_else(|| ctx.catalogue.reverse(etype, label)) else {
        return Ok(None);
    };
    if !attr.is_ref() {
        return Err(needs_link_error(attr, etype, label));
    }
    let (next, singular) = if forward.is_some() {
        let next = attr
            .attr
            .reverse_identity
            .as_ref()
            .map(|rev| rev.etype.clone())
            .unwrap_or_default();
        (next, attr.attr.cardinality == Cardinality::One)
    } else {
        (attr.etype().to_string(), attr.attr.unique)
    };
    Ok(Some((
        Link {
            attr_pk: attr.attr_pk,
            forward: forward.is_some(),
            singular,
        },
        next,
    )))
}

fn plan_page(ctx: &Ctx, form: &Form, etype: &str) -> Result<Page, ApiError> {
    let options = &form.options;
    let order = options.order.clone().unwrap_or(Order {
        key: "serverCreatedAt".into(),
        desc: false,
    });
    let created_at = order.key == "serverCreatedAt";
    let order_in = with(&form.in_path, &["$", "order"]);
    let fail = |errors: Vec<Value>| ApiError::validation("query", ctx.root.clone(), errors);
    let order_attr = if created_at {
        ctx.catalogue.forward(etype, "id")
    } else {
        ctx.catalogue.forward(etype, &order.key)
    };
    let Some(order_attr) = order_attr else {
        let name = if created_at { "id" } else { order.key.as_str() };
        return Err(fail(vec![json!({
            "expected": "supported-order?",
            "in": order_in,
            "message": format!("There is no `{name}` attribute for {etype}."),
        })]));
    };
    if !created_at {
        let name = format!("{}.{}", order_attr.etype(), order_attr.label());
        let mut messages = Vec::new();
        if !order_attr.attr.index {
            messages.push(format!("The `{name}` attribute is not indexed. Only indexed and typed attributes can be used to order by."));
        }
        if order_attr.attr.checked_data_type.is_none() {
            messages.push(format!("The `{name}` attribute is not typed. Only typed and indexed attributes can be used to order by."));
        }
        if order_attr.attr.cardinality != Cardinality::One {
            messages.push(format!("The `{name}` attribute has cardinality `{}`. Only attributes with cardinality `one` can be used to order by.", order_attr.attr.cardinality.as_str()));
        }
        if !messages.is_empty() {
            return Err(fail(
                messages
                    .into_iter()
                    .map(|message| {
                        json!({"expected": "supported-order?", "in": order_in, "message": message})
                    })
                    .collect(),
            ));
        }
    }
    for (name, cursor) in [("before", &options.before), ("after", &options.after)] {
        let Some(cursor) = cursor else { continue };
        if cursor.attr_id != order_attr.id() {
            let label_of = |attr: &AttrRow| {
                if attr.label() == "id" {
                    "serverCreatedAt".to_string()
                } else {
                    attr.label().to_string()
                }
            };
            let why = match ctx.catalogue.by_id(&cursor.attr_id) {
                Some(cursor_attr) => format!(
                    "The query orders by `{}`, but the query that returned the cursor orders by `{}`.",
                    label_of(order_attr),
                    label_of(cursor_attr)
                ),
                None => format!(
                    "The query orders by `{}`, but the query that returned the cursor orders by a missing attribute.",
                    label_of(order_attr)
                ),
            };
            return Err(fail(vec![json!({
                "expected": "valid-cursor?",
                "in": with(&form.in_path, &["$", name]),
                "message": format!("Invalid {name} cursor. {why}"),
            })]));
        }
    }
    Ok(Page {
        limit: options.limit.or(options.first).or(options.last),
        last: options.last.is_some(),
        offset: options.offset,
        desc: order.desc,
        key: if created_at {
            OrderKey::CreatedAt
        } else {
            OrderKey::Attr {
                attr_pk: order_attr.attr_pk,
                date: order_attr.attr.checked_data_type.as_deref() == Some("date"),
            }
        },
        after: options
            .after
            .clone()
            .map(|cursor| (cursor, options.after_inclusive)),
        before: options
            .before
            .clone()
            .map(|cursor| (cursor, options.before_inclusive)),
    })
}

fn plan_where(ctx: &Ctx, form: &Form, etype: &str, level: usize) -> Result<Filter, PlanError> {
    let mut filter = Filter::default();
    for cond in &form.options.where_conds {
        match cond {
            Cond::Path { path, value } => {
                filter
                    .shared
                    .push(plan_path(ctx, form, etype, level, path, value)?);
            }
            other => filter
                .groups
                .push(plan_node(ctx, form, etype, level, other)?),
        }
    }
    Ok(filter)
}

fn plan_node(
    ctx: &Ctx,
    form: &Form,
    etype: &str,
    level: usize,
    cond: &Cond,
) -> Result<Node, PlanError> {
    Ok(match cond {
        Cond::Path { path, value } => Node::Path(plan_path(ctx, form, etype, level, path, value)?),
        Cond::And(conds) => Node::And(
            conds
                .iter()
                .map(|cond| plan_node(ctx, form, etype, level, cond))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(conds) => Node::Or(
            conds
                .iter()
                .map(|cond| plan_node(ctx, form, etype, level, cond))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// The value side of a condition once the server has reduced it (`$in` → a set, any other
/// operator map → its first entry).
enum WhereArg<'a> {
    Scalar(&'a Value),
    Set(&'a Vec<Value>),
    Op(&'a str, &'a Value),
}

fn plan_path(
    ctx: &Ctx,
    form: &Form,
    root_etype: &str,
    root_level: usize,
    path: &[String],
    value: &Value,
) -> Result<PathTest, PlanError> {
    let Some((label, links)) = path.split_last() else {
        return Err(PlanError::Missing);
    };
    let mut etype = root_etype.to_string();
    let mut level = root_level;
    let mut steps = Vec::with_capacity(links.len());
    for link in links {
        let forward = ctx.catalogue.forward(&etype, link);
        let attr = forward
            .or_else(|| ctx.catalogue.reverse(&etype, link))
            .ok_or(Missing)?;
        if !attr.is_ref() {
            return Err(needs_link_error(attr, &etype, link).into());
        }
        let next = if forward.is_some() {
            attr.attr
                .reverse_identity
                .as_ref()
                .map(|rev| rev.etype.clone())
                .unwrap_or_default()
        } else {
            attr.etype().to_string()
        };
        level += 1;
        steps.push(Step {
            attr_pk: attr.attr_pk,
            forward: forward.is_some(),
            var: (next.clone(), level),
        });
        etype = next;
    }

    let arg = match value {
        Value::Object(args) => match args.iter().next() {
            Some((op, Value::Array(items))) if op == "in" || op == "$in" => WhereArg::Set(items),
            // The spec check has refused any other `$in` shape already.
            Some((op, _)) if op == "in" || op == "$in" => return Err(PlanError::Missing),
            Some((op, arg)) => WhereArg::Op(op, arg),
            None => return Err(PlanError::Missing),
        },
        scalar => WhereArg::Scalar(scalar),
    };

    let test = if let WhereArg::Op("$isNull", want) = arg {
        ctx.catalogue.forward(&etype, "id").ok_or(Missing)?;
        let forward = ctx.catalogue.forward(&etype, label);
        let attr = forward
            .or_else(|| ctx.catalogue.reverse(&etype, label))
            .ok_or(Missing)?;
        Test::IsNull {
            target: target_of(attr, forward.is_some()),
            want_null: want.as_bool().unwrap_or(false),
        }
    } else {
        value_test(ctx, form, &etype, label, &arg)?
    };
    Ok(PathTest { steps, etype, test })
}

fn target_of(attr: &AttrRow, forward: bool) -> Target {
    if attr.is_ref() {
        Target::Ref {
            attr_pk: attr.attr_pk,
            forward,
        }
    } else if forward && attr.label() == "id" {
        Target::Id
    } else {
        Target::Blob {
            attr_pk: attr.attr_pk,
            indexed: crate::store::in_value_index(&attr.attr),
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

struct Typing<'a> {
    ctx: &'a Ctx<'a>,
    attr: &'a AttrRow,
    in_path: Vec<Value>,
}

impl Typing<'_> {
    fn name(&self) -> String {
        format!("{}.{}", self.attr.etype(), self.attr.label())
    }

    fn fail(&self, expected: &str, in_path: Vec<Value>, message: String) -> ApiError {
        ApiError::validation(
            "query",
            self.ctx.root.clone(),
            vec![json!({"expected?": expected, "in": in_path, "message": message})],
        )
    }

    fn invalid_value(&self, data_type: &str, value: &Value, in_path: Vec<Value>) -> ApiError {
        self.fail(
            &format!("{data_type}?"),
            in_path,
            format!(
                "The data type of `{}` is `{data_type}`, but the query got the value `{}` of type `{}`.",
                self.name(),
                to_json(value),
                json_type(value)
            ),
        )
    }

    fn invalid_date(&self, expected: &str, value: &Value, in_path: Vec<Value>) -> ApiError {
        self.fail(
            expected,
            in_path,
            format!(
                "The data type of `{}` is `date`, but the query got value `{}` of type `{}`.",
                self.name(),
                to_json(value),
                json_type(value)
            ),
        )
    }

    /// `coerce-value-data-value!` for one equality value; dates become epoch milliseconds.
    fn coerce(&self, data_type: &str, value: &Value) -> Result<Matcher, ApiError> {
        let at = self.in_path.clone();
        let ok = match (data_type, value) {
            (_, Value::Null) => return Ok(Matcher::Null),
            ("string", Value::String(_))
            | ("number", Value::Number(_))
            | ("boolean", Value::Bool(_)) => true,
            ("string" | "number" | "boolean", _) => false,
            ("date", Value::Number(number)) => {
                return dates::number_millis(number)
                    .map(|ms| Matcher::Millis(ms as f64))
                    .ok_or_else(|| self.invalid_date("timestamp?", value, at));
            }
            ("date", Value::String(text)) => {
                if matches!(text.as_str(), "tomorrow" | "now" | "yesterday" | "today") {
                    return Err(self.invalid_date("date-string?", value, at));
                }
                return dates::parse_date(text)
                    .map(|ms| Matcher::Millis(ms as f64))
                    .ok_or_else(|| self.invalid_date("date-string?", value, at));
            }
            ("date", _) => false,
            _ => true,
        };
        if ok {
            Ok(Matcher::Json(value.clone()))
        } else {
            Err(self.invalid_value(data_type, value, at))
        }
    }

    /// `coerce-value-for-typed-comparison!` on a plain value: typed attributes check the
    /// value's type; only indexed ones compare on the coerced (date-parsed) value.
    fn equality(&self, value: &Value) -> Result<Matcher, ApiError> {
        match self.attr.attr.checked_data_type.as_deref() {
            Some(data_type) => {
                let coerced = self.coerce(data_type, value)?;
                Ok(if self.attr.attr.index {
                    coerced
                } else {
                    raw(value)
                })
            }
            None => Ok(raw(value)),
        }
    }
}

fn raw(value: &Value) -> Matcher {
    if value.is_null() {
        Matcher::Null
    } else {
        Matcher::Json(value.clone())
    }
}

fn value_test(
    ctx: &Ctx,
    form: &Form,
    etype: &str,
    label: &str,
    arg: &WhereArg,
) -> Result<Test, PlanError> {
    let forward = ctx.catalogue.forward(etype, label);
    let attr = forward
        .or_else(|| ctx.catalogue.reverse(etype, label))
        .ok_or(Missing)?;
    let target = target_of(attr, forward.is_some());
    let where_in = with(&form.in_path, &["$", "where", label]);
    let fail = |error: Value| ApiError::validation("query", ctx.root.clone(), vec![error]);

    let test = if attr.is_ref() {
        let not_uuid = |shown: &Value| {
            fail(json!({
                "expected": "uuid?",
                "in": where_in,
                "message": format!("Expected {label} to be a uuid, got {}", to_json(shown)),
            }))
        };
        let uuid_of = |value: &Value| value.as_str().and_then(canonical_uuid);
        match arg {
            WhereArg::Scalar(value) => Test::Eq {
                target,
                values: vec![Matcher::Json(Value::String(
                    uuid_of(value).ok_or_else(|| not_uuid(value))?,
                ))],
            },
            WhereArg::Set(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items.iter() {
                    let id = uuid_of(item).ok_or_else(|| {
                        fail(json!({
                            "expected": "uuid?",
                            "in": where_in,
                            "message": format!(
                                "Expected {label} to match on a uuid, found {} in {}",
                                to_json(item),
                                to_json(&Value::Array(items.to_vec()))
                            ),
                        }))
                    })?;
                    values.push(Matcher::Json(Value::String(id)));
                }
                Test::Eq { target, values }
            }
            WhereArg::Op("$not", value) => Test::Not {
                target,
                value: Matcher::Json(Value::String(
                    uuid_of(value).ok_or_else(|| not_uuid(&json!({"$not": value})))?,
                )),
            },
            WhereArg::Op(op, value) => {
                let mut shown = serde_json::Map::new();
                shown.insert(op.to_string(), (*value).clone());
                return Err(not_uuid(&Value::Object(shown)).into());
            }
        }
    } else {
        let typing = Typing {
            ctx,
            attr,
            in_path: where_in.clone(),
        };
        match arg {
            WhereArg::Scalar(value) => Test::Eq {
                target,
                values: vec![typing.equality(value)?],
            },
            WhereArg::Set(items) => {
                let values = items
                    .iter()
                    .map(|item| typing.equality(item))
                    .collect::<Result<Vec<_>, _>>()?;
                if items.iter().any(Value::is_null) && !(forward.is_some() && attr.attr.index) {
                    let mut at = with(&form.in_path, &["$", "where", "$in"]);
                    at.push(Value::Array(items.to_vec()));
                    return Err(fail(json!({
                        "expected?": "indexed?",
                        "in": at,
                        "message": format!(
                            "Only indexed attrs can check for `nil` in `$in`. {}.{} is not indexed.",
                            attr.etype(),
                            attr.label()
                        ),
                    }))
                    .into());
                }
                Test::Eq { target, values }
            }
            WhereArg::Op("$not", value) => Test::Not {
                target,
                value: typing.equality(value)?,
            },
            WhereArg::Op(op, value) => comparison(&typing, target, op, value, &where_in)?,
        }
    };
    Ok(test)
}

fn comparison(
    typing: &Typing,
    target: Target,
    op: &str,
    value: &Value,
    where_in: &[Value],
) -> Result<Test, ApiError> {
    let attr = &typing.attr.attr;
    let name = typing.name();
    if !attr.index {
        return Err(typing.fail(
            "indexed?",
            where_in.to_vec(),
            format!("The `{name}` attribute must be indexed to use comparison operators."),
        ));
    }
    let Some(data_type) = attr.checked_data_type.clone() else {
        return Err(typing.fail(
            "checked-data-type?",
            where_in.to_vec(),
            format!(
                "The `{name}` attribute must have an enforced type to use comparison operators."
            ),
        ));
    };
    let mut at = where_in.to_vec();
    at.push(json!(op));
    let like = matches!(op, "$like" | "$ilike");
    if like && !value.is_string() {
        return Err(typing.fail(
            "string?",
            at,
            format!(
                "The $like value for `{name}` must be a string, but the query got the value `{}` of type `{}`.",
                to_json(value),
                json_type(value)
            ),
        ));
    }
    let coerced = match (data_type.as_str(), value) {
        ("date", Value::Number(number)) => Matcher::Millis(
            dates::number_millis(number)
                .ok_or_else(|| typing.invalid_date("timestamp?", value, at.clone()))?
                as f64,
        ),
        ("date", Value::String(text)) => Matcher::Millis(
            dates::parse_date(text)
                .ok_or_else(|| typing.invalid_date("date-string?", value, at.clone()))?
                as f64,
        ),
        ("string", Value::String(_))
        | ("number", Value::Number(_))
        | ("boolean", Value::Bool(_)) => Matcher::Json(value.clone()),
        (data_type, _) => return Err(typing.invalid_value(data_type, value, at)),
    };
    if like {
        // `triples_extract_string_value(value) LIKE …`: only string attributes hold strings.
        let Matcher::Json(Value::String(pattern)) = coerced else {
            return Err(typing.invalid_value(&data_type, value, at));
        };
        return Ok(Test::Like {
            target,
            pattern,
            insensitive: op == "$ilike",
        });
    }
    let op = match op {
        "$gt" => CmpOp::Gt,
        "$gte" => CmpOp::Gte,
        "$lt" => CmpOp::Lt,
        "$lte" => CmpOp::Lte,
        // The spec only lets operator keys through; anything else never reaches here.
        _ => CmpOp::Gt,
    };
    debug_assert!(is_where_scalar(value));
    Ok(Test::Compare {
        target,
        op,
        data_type,
        value: coerced,
    })
}
