//! Per-file analysis: one JS/TS source text in, its findings out.
//!
//! Everything here works on the syntax tree produced by `oxc_parser`. Comments never reach the
//! tree, and a string literal only counts where a string *is* the use (a module specifier, a
//! namespace name used as a key, an endpoint path). A file that does not parse falls back to a
//! line-based text scan ([`text_scan`]) so that its evidence is still counted (fail closed), and
//! the file is reported as unparsed.

use std::collections::HashMap;

use oxc_allocator::Allocator;
use oxc_ast::ast::{
    Argument, BindingPattern, CallExpression, ExportAllDeclaration, ExportFromDeclaration,
    Expression, ImportDeclaration, ImportDeclarationSpecifier, ImportExpression, JSXElementName,
    JSXOpeningElement, ObjectProperty, PropertyKey, StaticMemberExpression, StringLiteral,
    TSImportEqualsDeclaration, TSImportType, TSImportTypeQualifier, TSModuleReference, TSTypeName,
    TSTypeReference, TemplateLiteral, VariableDeclarator,
};
use oxc_ast_visit::{walk, Visit};
use oxc_parser::Parser;
use oxc_span::SourceType;
use serde::Serialize;

/// The model-plan item names. They are part of the report contract (anchor §3.5) and are used
/// as the `item` of every [`Finding`].
pub mod items {
    pub const STORY_IMPORT: &str = "@ekairos/story import";
    pub const USE_STORY: &str = "useStory";
    pub const CREATE_STORY: &str = "createStory";
    pub const STORY_RUNNER: &str = "storyRunner";
    pub const STORY_VALUE: &str = "StoryValue";
    pub const OTHER_STORY_API: &str = "other @ekairos/story API";
    pub const THREAD_IMPORT: &str = "@ekairos/thread import";
    pub const CREATE_THREAD: &str = "createThread";
    pub const GET_THREAD_RUNTIME: &str = "getThreadRuntime";
    pub const THREAD_START: &str = "thread/start rpc";
    pub const OTHER_THREAD_API: &str = "other @ekairos/thread API";
    pub const REACTOR_BUILDER: &str = "reactor builder";
    pub const REACTOR_FACTORY: &str = "reactor factory";
    pub const REACTOR_FIELD: &str = "reactor field";
}

/// The five namespaces written by `@ekairos/story`.
pub const LEGACY_NAMESPACES: [&str; 5] = [
    "context_contexts",
    "context_events",
    "story_executions",
    "story_steps",
    "story_parts",
];

/// The six namespaces read by `@ekairos/thread`.
pub const THREAD_NAMESPACES: [&str; 6] = [
    "thread_threads",
    "thread_contexts",
    "thread_items",
    "thread_executions",
    "thread_steps",
    "thread_parts",
];

const STORY_PACKAGE: &str = "@ekairos/story";
const THREAD_PACKAGE: &str = "@ekairos/thread";
const STORY_CALLS: [&str; 3] = [items::USE_STORY, items::CREATE_STORY, items::STORY_RUNNER];
const THREAD_CALLS: [&str; 2] = [items::CREATE_THREAD, items::GET_THREAD_RUNTIME];
const MAX_TEXT_CHARS: usize = 200;

/// What a finding is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    /// `@ekairos/story` imported, re-exported, required or dynamically imported.
    StoryImport,
    /// A story API used: `useStory(`, `createStory(`, `storyRunner(`, `StoryValue`, or any
    /// other export of `@ekairos/story` called or used.
    StoryApi,
    /// `@ekairos/thread` imported, re-exported, required or dynamically imported.
    ThreadImport,
    /// A thread API used: `createThread(`, `getThreadRuntime(`, a `thread/start` endpoint, or
    /// any other export of `@ekairos/thread` called.
    ThreadApi,
    /// Reactor configuration: `create*Reactor(`, `.reactor(`, a `reactor` property.
    Reactor,
    /// A legacy namespace name used as a key, member, or string literal.
    LegacyModel,
    /// A thread namespace name used as a key, member, or string literal.
    ThreadModel,
    /// An entity declared with `i.entity(...)` (only meaningful in `instant.schema.*`).
    EntityDeclaration,
}

/// How a finding was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Via {
    /// From the syntax tree.
    Syntax,
    /// From the text fallback of a file that did not parse (may include comments).
    Text,
    /// From the file's path (a `.../thread/start/route.ts` defines the endpoint).
    Path,
}

/// One piece of evidence at one place in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    pub category: Category,
    /// The model-plan item this finding counts under (see [`items`], or a namespace name, or
    /// the declared entity name for [`Category::EntityDeclaration`]).
    pub item: String,
    /// What the syntax is, e.g. `call of useStory (imported as us) from '@ekairos/story'`.
    pub detail: String,
    /// The source line, trimmed and shortened.
    pub text: String,
    pub via: Via,
}

/// Where and why a file failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParseFailure {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// The result of analysing one source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAnalysis {
    pub findings: Vec<Finding>,
    /// `Some` when the text did not parse; `findings` then come from [`text_scan`].
    pub parse_error: Option<ParseFailure>,
}

/// Parses `source` as `source_type` and collects its findings. A JavaScript module that fails
/// to parse is retried as a script (sloppy-mode CommonJS); if it still fails, the first syntax
/// error is reported and the findings come from the text fallback.
///
/// The allocator is reset before returning, so one allocator can serve many files.
pub fn analyze_source(
    allocator: &mut Allocator,
    source: &str,
    source_type: SourceType,
) -> FileAnalysis {
    let first = parse_and_collect(allocator, source, source_type);
    allocator.reset();
    let failure = match first {
        Ok(findings) => {
            return FileAnalysis {
                findings,
                parse_error: None,
            }
        }
        Err(failure) => failure,
    };
    if source_type.is_javascript() && source_type.is_module() {
        let retry = parse_and_collect(allocator, source, source_type.with_script(true));
        allocator.reset();
        if let Ok(findings) = retry {
            return FileAnalysis {
                findings,
                parse_error: None,
            };
        }
    }
    FileAnalysis {
        findings: text_scan(source),
        parse_error: Some(failure),
    }
}

fn parse_and_collect(
    allocator: &Allocator,
    source: &str,
    source_type: SourceType,
) -> Result<Vec<Finding>, ParseFailure> {
    let ret = Parser::new(allocator, source, source_type).parse();
    if ret.panicked || ret.diagnostics.has_errors() {
        let lines = LineIndex::new(source);
        let first = ret.diagnostics.errors().next();
        let offset = first
            .and_then(|d| d.labels.first())
            .map_or(0, |label| label.offset());
        let (line, column) = lines.position(source, offset);
        let message = first.map_or_else(
            || "the parser stopped without a diagnostic".to_owned(),
            |d| d.message.to_string(),
        );
        return Err(ParseFailure {
            line,
            column,
            message,
        });
    }
    let mut collector = Collector::default();
    collector.visit_program(&ret.program);
    Ok(collector.finish(source))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Package {
    Story,
    Thread,
}

/// `@ekairos/story` or one of its subpaths; likewise for thread. Anything else is `None`.
fn classify_module(specifier: &str) -> Option<Package> {
    fn is(specifier: &str, package: &str) -> bool {
        specifier
            .strip_prefix(package)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
    if is(specifier, STORY_PACKAGE) {
        Some(Package::Story)
    } else if is(specifier, THREAD_PACKAGE) {
        Some(Package::Thread)
    } else {
        None
    }
}

fn is_reactor_factory(name: &str) -> bool {
    name.len() >= "createReactor".len() && name.starts_with("create") && name.ends_with("Reactor")
}

fn namespace_category(name: &str) -> Option<Category> {
    if LEGACY_NAMESPACES.contains(&name) {
        Some(Category::LegacyModel)
    } else if THREAD_NAMESPACES.contains(&name) {
        Some(Category::ThreadModel)
    } else {
        None
    }
}

/// A local name bound to an ekairos package (import, require, `import =`, dynamic import).
#[derive(Debug, Clone, Copy)]
struct Binding<'a> {
    package: Package,
    specifier: &'a str,
    /// The exported name; `None` for a namespace or default binding (`import * as s`,
    /// `import s from`, `const s = require(...)`).
    imported: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UseKind {
    Call,
    Type,
    Jsx,
}

impl UseKind {
    fn noun(self) -> &'static str {
        match self {
            UseKind::Call => "call",
            UseKind::Type => "type use",
            UseKind::Jsx => "JSX element",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Name(&'a str),
    Member {
        object: Option<&'a str>,
        property: &'a str,
    },
}

/// A call, type reference or JSX element whose meaning depends on the file's bindings;
/// resolved once the whole file has been visited (imports may follow uses).
#[derive(Debug, Clone, Copy)]
struct Use<'a> {
    target: Target<'a>,
    offset: u32,
    kind: UseKind,
}

#[derive(Debug, Clone)]
struct Raw {
    offset: u32,
    category: Category,
    item: String,
    detail: String,
}

#[derive(Default)]
struct Collector<'a> {
    bindings: HashMap<&'a str, Binding<'a>>,
    uses: Vec<Use<'a>>,
    raw: Vec<Raw>,
}

impl<'a> Collector<'a> {
    fn push(&mut self, offset: u32, category: Category, item: &str, detail: String) {
        self.raw.push(Raw {
            offset,
            category,
            item: item.to_owned(),
            detail,
        });
    }

    fn module_finding(&mut self, package: Package, specifier: &str, offset: u32, how: &str) {
        let (category, item) = match package {
            Package::Story => (Category::StoryImport, items::STORY_IMPORT),
            Package::Thread => (Category::ThreadImport, items::THREAD_IMPORT),
        };
        self.push(offset, category, item, format!("{how} '{specifier}'"));
    }

    fn bind(&mut self, local: &'a str, binding: Binding<'a>) {
        self.bindings.insert(local, binding);
    }

    /// Binds the names of `const <pattern> = <module>` (a namespace for an identifier, the
    /// property names for an object pattern).
    fn bind_pattern(&mut self, pattern: &BindingPattern<'a>, module: Binding<'a>) {
        match pattern {
            BindingPattern::BindingIdentifier(id) => self.bind(id.name.as_str(), module),
            BindingPattern::ObjectPattern(object) => {
                for property in &object.properties {
                    let Some(imported) = property_key_name(&property.key) else {
                        continue;
                    };
                    let local = match &property.value {
                        BindingPattern::BindingIdentifier(id) => Some(id.name.as_str()),
                        BindingPattern::AssignmentPattern(assign) => match &assign.left {
                            BindingPattern::BindingIdentifier(id) => Some(id.name.as_str()),
                            _ => None,
                        },
                        _ => None,
                    };
                    if let Some(local) = local {
                        self.bind(
                            local,
                            Binding {
                                imported: Some(imported),
                                ..module
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(mut self, source: &str) -> Vec<Finding> {
        let uses = std::mem::take(&mut self.uses);
        for u in uses {
            for (category, item, detail) in self.resolve(u) {
                self.push(u.offset, category, item, detail);
            }
        }
        if self.raw.is_empty() {
            return Vec::new();
        }
        let lines = LineIndex::new(source);
        let mut findings: Vec<Finding> = self
            .raw
            .into_iter()
            .map(|raw| {
                let (line, column) = lines.position(source, raw.offset);
                Finding {
                    line,
                    column,
                    category: raw.category,
                    item: raw.item,
                    detail: raw.detail,
                    text: lines.text(source, line),
                    via: Via::Syntax,
                }
            })
            .collect();
        sort_and_dedup(&mut findings);
        findings
    }

    fn resolve(&self, u: Use<'a>) -> Vec<(Category, &'static str, String)> {
        let mut out = Vec::new();
        let (binding, local, extra_property) = match u.target {
            Target::Name(name) => (self.bindings.get(name), name, None),
            Target::Member { object, property } => {
                match object.and_then(|o| self.bindings.get(o).map(|b| (o, b))) {
                    Some((object, binding)) => (Some(binding), object, Some(property)),
                    None => {
                        if let Some(found) = by_member_name(property, u.kind) {
                            out.push(found);
                        }
                        return out;
                    }
                }
            }
        };
        let Some(binding) = binding else {
            if let Target::Name(name) = u.target {
                if let Some(found) = by_name(name, u.kind) {
                    out.push(found);
                }
            }
            return out;
        };
        // `ns.member` on a namespace binding uses export `member`; `x.member` on a named
        // export uses `x`, and a `.reactor(` / `.createXReactor(` on it is also reactor config.
        let (used, shown) = match (binding.imported, extra_property) {
            (None, Some(property)) => (property, format!("{local}.{property}")),
            (None, None) => ("default", format!("default export (as {local})")),
            (Some(imported), _) if imported != local => {
                (imported, format!("{imported} (as {local})"))
            }
            (Some(imported), _) => (imported, imported.to_owned()),
        };
        let detail = format!("{} of {shown} from '{}'", u.kind.noun(), binding.specifier);
        match binding.package {
            Package::Story => {
                let item = [
                    items::USE_STORY,
                    items::CREATE_STORY,
                    items::STORY_RUNNER,
                    items::STORY_VALUE,
                ]
                .into_iter()
                .find(|known| *known == used)
                .unwrap_or(items::OTHER_STORY_API);
                out.push((Category::StoryApi, item, detail));
            }
            Package::Thread if u.kind == UseKind::Type => {}
            Package::Thread => {
                if let Some(item) = THREAD_CALLS.into_iter().find(|known| *known == used) {
                    out.push((Category::ThreadApi, item, detail));
                } else if is_reactor_factory(used) {
                    out.push((Category::Reactor, items::REACTOR_FACTORY, detail));
                } else {
                    out.push((Category::ThreadApi, items::OTHER_THREAD_API, detail));
                }
            }
        }
        if let (Some(_), Some(property)) = (binding.imported, extra_property) {
            if let Some(found) = by_member_name(property, u.kind) {
                if found.0 == Category::Reactor {
                    out.push(found);
                }
            }
        }
        out
    }
}

/// A call or type use of a well-known name that is not bound to an ekairos import.
fn by_name(name: &str, kind: UseKind) -> Option<(Category, &'static str, String)> {
    match kind {
        UseKind::Call => {
            if let Some(item) = STORY_CALLS.into_iter().find(|known| *known == name) {
                Some((Category::StoryApi, item, format!("call of {name}")))
            } else if let Some(item) = THREAD_CALLS.into_iter().find(|known| *known == name) {
                Some((Category::ThreadApi, item, format!("call of {name}")))
            } else if is_reactor_factory(name) {
                Some((
                    Category::Reactor,
                    items::REACTOR_FACTORY,
                    format!("call of {name}"),
                ))
            } else {
                None
            }
        }
        UseKind::Type if name == items::STORY_VALUE => Some((
            Category::StoryApi,
            items::STORY_VALUE,
            format!("type use of {name}"),
        )),
        _ => None,
    }
}

/// A call `x.<property>(` or qualified type `X.<property>` on an object that is not an
/// ekairos namespace.
fn by_member_name(property: &str, kind: UseKind) -> Option<(Category, &'static str, String)> {
    match kind {
        UseKind::Call if property == "reactor" => Some((
            Category::Reactor,
            items::REACTOR_BUILDER,
            "call of .reactor(...)".to_owned(),
        )),
        UseKind::Call => by_name(property, kind)
            .map(|(category, item, _)| (category, item, format!("call of .{property}(...)"))),
        UseKind::Type => by_name(property, kind),
        UseKind::Jsx => None,
    }
}

fn property_key_name<'a>(key: &PropertyKey<'a>) -> Option<&'a str> {
    match key {
        PropertyKey::StaticIdentifier(id) => Some(id.name.as_str()),
        PropertyKey::StringLiteral(s) => Some(s.value.as_str()),
        _ => None,
    }
}

/// The value of a string literal or an expression-free template literal.
fn static_string<'a>(expr: &Expression<'a>) -> Option<&'a str> {
    match expr {
        Expression::StringLiteral(s) => Some(s.value.as_str()),
        Expression::TemplateLiteral(t) if t.expressions.is_empty() => t
            .quasis
            .first()
            .and_then(|q| q.value.cooked)
            .map(|c| c.as_str()),
        _ => None,
    }
}

fn unwrap_expression<'b, 'a>(mut expr: &'b Expression<'a>) -> &'b Expression<'a> {
    loop {
        expr = match expr {
            Expression::ParenthesizedExpression(e) => &e.expression,
            Expression::AwaitExpression(e) => &e.argument,
            Expression::TSAsExpression(e) => &e.expression,
            Expression::TSSatisfiesExpression(e) => &e.expression,
            Expression::TSNonNullExpression(e) => &e.expression,
            Expression::TSTypeAssertion(e) => &e.expression,
            _ => return expr,
        };
    }
}

/// The module specifier of `require("<static>")`.
fn require_specifier<'a>(call: &CallExpression<'a>) -> Option<&'a str> {
    match &call.callee {
        Expression::Identifier(id) if id.name.as_str() == "require" => {}
        _ => return None,
    }
    call.arguments
        .first()
        .and_then(Argument::as_expression)
        .and_then(static_string)
}

/// `require("<pkg>")`, `import("<pkg>")` (possibly awaited) or `.member` of one of them.
fn module_of_initializer<'a>(init: &Expression<'a>) -> Option<Binding<'a>> {
    let expr = unwrap_expression(init);
    let specifier = match expr {
        Expression::CallExpression(call) => require_specifier(call),
        Expression::ImportExpression(import) => static_string(&import.source),
        Expression::StaticMemberExpression(member) => {
            let inner = module_of_initializer(&member.object)?;
            return Some(Binding {
                imported: Some(member.property.name.as_str()),
                ..inner
            });
        }
        _ => None,
    }?;
    let package = classify_module(specifier)?;
    Some(Binding {
        package,
        specifier,
        imported: None,
    })
}

fn target_of<'a>(callee: &Expression<'a>) -> Option<(Target<'a>, u32)> {
    match unwrap_expression(callee) {
        Expression::Identifier(id) => Some((Target::Name(id.name.as_str()), id.span.start)),
        Expression::StaticMemberExpression(member) => {
            let object = match unwrap_expression(&member.object) {
                Expression::Identifier(id) => Some(id.name.as_str()),
                _ => None,
            };
            Some((
                Target::Member {
                    object,
                    property: member.property.name.as_str(),
                },
                member.property.span.start,
            ))
        }
        _ => None,
    }
}

impl<'a> Visit<'a> for Collector<'a> {
    fn visit_import_declaration(&mut self, it: &ImportDeclaration<'a>) {
        let specifier = it.source.value.as_str();
        let Some(package) = classify_module(specifier) else {
            return;
        };
        let how = if it.import_kind.is_type() {
            "type import of"
        } else {
            "import of"
        };
        self.module_finding(package, specifier, it.span.start, how);
        for spec in it.specifiers.iter().flatten() {
            let (local, imported) = match spec {
                ImportDeclarationSpecifier::ImportSpecifier(s) => {
                    (s.local.name.as_str(), Some(s.imported.name().as_str()))
                }
                ImportDeclarationSpecifier::ImportDefaultSpecifier(s) => {
                    (s.local.name.as_str(), None)
                }
                ImportDeclarationSpecifier::ImportNamespaceSpecifier(s) => {
                    (s.local.name.as_str(), None)
                }
            };
            self.bind(
                local,
                Binding {
                    package,
                    specifier,
                    imported,
                },
            );
        }
    }

    fn visit_export_from_declaration(&mut self, it: &ExportFromDeclaration<'a>) {
        let specifier = it.source.value.as_str();
        if let Some(package) = classify_module(specifier) {
            self.module_finding(package, specifier, it.span.start, "re-export from");
        }
    }

    fn visit_export_all_declaration(&mut self, it: &ExportAllDeclaration<'a>) {
        let specifier = it.source.value.as_str();
        if let Some(package) = classify_module(specifier) {
            self.module_finding(package, specifier, it.span.start, "re-export * from");
        }
    }

    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        if let Some(specifier) = static_string(&it.source) {
            if let Some(package) = classify_module(specifier) {
                self.module_finding(package, specifier, it.span.start, "dynamic import() of");
            }
        }
        walk::walk_import_expression(self, it);
    }

    fn visit_ts_import_equals_declaration(&mut self, it: &TSImportEqualsDeclaration<'a>) {
        if let TSModuleReference::ExternalModuleReference(external) = &it.module_reference {
            let specifier = external.expression.value.as_str();
            if let Some(package) = classify_module(specifier) {
                self.module_finding(package, specifier, it.span.start, "import = require() of");
                self.bind(
                    it.id.name.as_str(),
                    Binding {
                        package,
                        specifier,
                        imported: None,
                    },
                );
            }
        }
    }

    fn visit_ts_import_type(&mut self, it: &TSImportType<'a>) {
        let specifier = it.source.value.as_str();
        if let Some(package) = classify_module(specifier) {
            self.module_finding(package, specifier, it.span.start, "type-level import() of");
            if package == Package::Story {
                let name = match &it.qualifier {
                    Some(TSImportTypeQualifier::Identifier(id)) => Some(id.name.as_str()),
                    Some(TSImportTypeQualifier::QualifiedName(q)) => Some(q.right.name.as_str()),
                    None => None,
                };
                if let Some(name) = name {
                    let item = if name == items::STORY_VALUE {
                        items::STORY_VALUE
                    } else {
                        items::OTHER_STORY_API
                    };
                    self.push(
                        it.span.start,
                        Category::StoryApi,
                        item,
                        format!("type use of {name} from '{specifier}'"),
                    );
                }
            }
        }
        walk::walk_ts_import_type(self, it);
    }

    fn visit_variable_declarator(&mut self, it: &VariableDeclarator<'a>) {
        if let Some(init) = &it.init {
            if let Some(module) = module_of_initializer(init) {
                self.bind_pattern(&it.id, module);
            }
        }
        walk::walk_variable_declarator(self, it);
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        if let Some(specifier) = require_specifier(it) {
            if let Some(package) = classify_module(specifier) {
                self.module_finding(package, specifier, it.span.start, "require() of");
            }
        } else if let Some((target, offset)) = target_of(&it.callee) {
            self.uses.push(Use {
                target,
                offset,
                kind: UseKind::Call,
            });
        }
        walk::walk_call_expression(self, it);
    }

    fn visit_ts_type_reference(&mut self, it: &TSTypeReference<'a>) {
        let target = match &it.type_name {
            TSTypeName::IdentifierReference(id) => Some(Target::Name(id.name.as_str())),
            TSTypeName::QualifiedName(q) => Some(Target::Member {
                object: match &q.left {
                    TSTypeName::IdentifierReference(id) => Some(id.name.as_str()),
                    _ => None,
                },
                property: q.right.name.as_str(),
            }),
            TSTypeName::ThisExpression(_) => None,
        };
        if let Some(target) = target {
            self.uses.push(Use {
                target,
                offset: it.span.start,
                kind: UseKind::Type,
            });
        }
        walk::walk_ts_type_reference(self, it);
    }

    fn visit_jsx_opening_element(&mut self, it: &JSXOpeningElement<'a>) {
        if let JSXElementName::IdentifierReference(id) = &it.name {
            self.uses.push(Use {
                target: Target::Name(id.name.as_str()),
                offset: id.span.start,
                kind: UseKind::Jsx,
            });
        }
        walk::walk_jsx_opening_element(self, it);
    }

    fn visit_object_property(&mut self, it: &ObjectProperty<'a>) {
        if let Some(name) = property_key_name(&it.key) {
            let offset = oxc_span::GetSpan::span(&it.key).start;
            if name == "reactor" {
                let form = if it.shorthand {
                    "shorthand property { reactor }"
                } else if it.method {
                    "method reactor() { ... }"
                } else {
                    "property reactor: ..."
                };
                self.push(
                    offset,
                    Category::Reactor,
                    items::REACTOR_FIELD,
                    form.to_owned(),
                );
            }
            if let Expression::CallExpression(call) = &it.value {
                if let Expression::StaticMemberExpression(member) = &call.callee {
                    if member.property.name.as_str() == "entity" {
                        self.push(
                            offset,
                            Category::EntityDeclaration,
                            name,
                            format!("entity {name} declared with .entity(...)"),
                        );
                    }
                }
            }
        }
        walk::walk_object_property(self, it);
    }

    fn visit_property_key(&mut self, it: &PropertyKey<'a>) {
        if let PropertyKey::StaticIdentifier(id) = it {
            let name = id.name.as_str();
            if let Some(category) = namespace_category(name) {
                self.push(
                    id.span.start,
                    category,
                    name,
                    format!("property key {name}"),
                );
            }
        }
        walk::walk_property_key(self, it);
    }

    fn visit_static_member_expression(&mut self, it: &StaticMemberExpression<'a>) {
        let name = it.property.name.as_str();
        if let Some(category) = namespace_category(name) {
            self.push(
                it.property.span.start,
                category,
                name,
                format!("member access .{name}"),
            );
        }
        walk::walk_static_member_expression(self, it);
    }

    fn visit_string_literal(&mut self, it: &StringLiteral<'a>) {
        let value = it.value.as_str();
        if let Some(category) = namespace_category(value) {
            self.push(
                it.span.start,
                category,
                value,
                format!("string literal \"{value}\""),
            );
        } else if value.contains("thread/start") {
            self.push(
                it.span.start,
                Category::ThreadApi,
                items::THREAD_START,
                "string naming the thread/start endpoint".to_owned(),
            );
        }
    }

    fn visit_template_literal(&mut self, it: &TemplateLiteral<'a>) {
        for quasi in &it.quasis {
            if quasi.value.raw.as_str().contains("thread/start") {
                self.push(
                    quasi.span.start,
                    Category::ThreadApi,
                    items::THREAD_START,
                    "template literal naming the thread/start endpoint".to_owned(),
                );
            }
        }
        walk::walk_template_literal(self, it);
    }
}

fn sort_and_dedup(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| {
        (a.line, a.column, a.category, &a.item).cmp(&(b.line, b.column, b.category, &b.item))
    });
    findings.dedup_by(|a, b| {
        a.line == b.line && a.column == b.column && a.category == b.category && a.item == b.item
    });
}

/// Byte offsets of line starts, for offset -> (line, column) and line text.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// 1-based line and character column of a byte offset.
    pub(crate) fn position(&self, source: &str, offset: u32) -> (u32, u32) {
        let offset = (offset as usize).min(source.len());
        let index = self.starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.starts[index];
        let column = source
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (index as u32 + 1, column as u32 + 1)
    }

    /// The trimmed text of a 1-based line, shortened to a readable length.
    pub(crate) fn text(&self, source: &str, line: u32) -> String {
        let index = (line as usize).saturating_sub(1);
        let Some(&start) = self.starts.get(index) else {
            return String::new();
        };
        let end = self
            .starts
            .get(index + 1)
            .map_or(source.len(), |next| next - 1);
        shorten(source.get(start..end).unwrap_or("").trim())
    }
}

pub(crate) fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_TEXT_CHARS).collect();
    out.push('…');
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Byte positions where `word` occurs with identifier boundaries on both sides.
fn word_positions<'t>(line: &'t str, word: &'t str) -> impl Iterator<Item = usize> + 't {
    line.match_indices(word).filter_map(move |(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        let bounded = !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char);
        bounded.then_some(at)
    })
}

/// True when `line[at..]` continues, after optional spaces, with `(`.
fn followed_by_paren(line: &str, at: usize) -> bool {
    line[at..].trim_start().starts_with('(')
}

/// The line-based fallback for a file that does not parse. It applies the anchor's textual
/// rules (so it does see comments and strings): better an over-count than evidence lost.
pub fn text_scan(source: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (index, raw_line) in source.lines().enumerate() {
        let line_no = index as u32 + 1;
        let mut hit = |at: usize, category: Category, item: &str, detail: &str| {
            findings.push(Finding {
                line: line_no,
                column: raw_line[..at].chars().count() as u32 + 1,
                category,
                item: item.to_owned(),
                detail: format!("{detail} (text fallback: file does not parse)"),
                text: shorten(raw_line.trim()),
                via: Via::Text,
            });
        };
        let lower = raw_line.to_ascii_lowercase();
        if let Some(at) = lower.find("ekairos/story") {
            let at = if lower[..at].ends_with('@') {
                at - 1
            } else {
                at
            };
            hit(
                at,
                Category::StoryImport,
                items::STORY_IMPORT,
                "mentions ekairos/story",
            );
        }
        if let Some(at) = lower.find("ekairos/thread") {
            let at = if lower[..at].ends_with('@') {
                at - 1
            } else {
                at
            };
            hit(
                at,
                Category::ThreadImport,
                items::THREAD_IMPORT,
                "mentions ekairos/thread",
            );
        }
        for name in STORY_CALLS {
            let call = name != items::STORY_RUNNER;
            if let Some(at) = word_positions(raw_line, name)
                .find(|&at| !call || followed_by_paren(raw_line, at + name.len()))
            {
                hit(at, Category::StoryApi, name, "word");
            }
        }
        if let Some(at) = word_positions(raw_line, items::STORY_VALUE).next() {
            hit(at, Category::StoryApi, items::STORY_VALUE, "word");
        }
        for name in THREAD_CALLS {
            if let Some(at) = word_positions(raw_line, name)
                .find(|&at| followed_by_paren(raw_line, at + name.len()))
            {
                hit(at, Category::ThreadApi, name, "call");
            }
        }
        if let Some(at) = raw_line.find("thread/start") {
            hit(
                at,
                Category::ThreadApi,
                items::THREAD_START,
                "mentions thread/start",
            );
        }
        if let Some(at) = reactor_factory_call(raw_line) {
            hit(at, Category::Reactor, items::REACTOR_FACTORY, "call");
        }
        if let Some(at) = raw_line
            .match_indices(".reactor")
            .map(|(at, _)| at)
            .find(|&at| {
                let rest = at + ".reactor".len();
                !raw_line[rest..].chars().next().is_some_and(is_ident_char)
                    && followed_by_paren(raw_line, rest)
            })
        {
            hit(at, Category::Reactor, items::REACTOR_BUILDER, "call");
        }
        if let Some(at) = word_positions(raw_line, "reactor").find(|&at| {
            raw_line[at + "reactor".len()..]
                .trim_start()
                .starts_with(':')
        }) {
            hit(at, Category::Reactor, items::REACTOR_FIELD, "key");
        }
        for name in LEGACY_NAMESPACES.iter().chain(THREAD_NAMESPACES.iter()) {
            if let Some(at) = word_positions(raw_line, name).next() {
                let category = namespace_category(name).expect("a namespace name");
                hit(at, category, name, "word");
            }
        }
    }
    sort_and_dedup(&mut findings);
    findings
}

/// Position of `create<ident>Reactor` followed by `(` (an identifier that starts with `create`
/// and ends with `Reactor`).
fn reactor_factory_call(line: &str) -> Option<usize> {
    line.match_indices("Reactor").find_map(|(at, _)| {
        let end = at + "Reactor".len();
        if line[end..].chars().next().is_some_and(is_ident_char) || !followed_by_paren(line, end) {
            return None;
        }
        let start = line[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_ident_char(*c))
            .last()
            .map_or(at, |(i, _)| i);
        line[start..end].starts_with("create").then_some(start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyze(source: &str, file: &str) -> FileAnalysis {
        let mut allocator = Allocator::default();
        analyze_source(
            &mut allocator,
            source,
            SourceType::from_path(file).expect("known extension"),
        )
    }

    fn summary(analysis: &FileAnalysis) -> Vec<String> {
        analysis
            .findings
            .iter()
            .map(|f| {
                format!(
                    "{}:{} {:?} {} | {}",
                    f.line, f.column, f.category, f.item, f.detail
                )
            })
            .collect()
    }

    #[test]
    fn module_specifiers_are_exact() {
        assert_eq!(classify_module("@ekairos/story"), Some(Package::Story));
        assert_eq!(
            classify_module("@ekairos/story/react"),
            Some(Package::Story)
        );
        assert_eq!(classify_module("@ekairos/storybook"), None);
        assert_eq!(classify_module("@ekairos/thread"), Some(Package::Thread));
        assert_eq!(classify_module("ekairos/story"), None);
    }

    #[test]
    fn aliased_and_namespace_uses_resolve() {
        let analysis = analyze(
            "run();\nimport { useStory as us } from '@ekairos/story';\nimport * as T from '@ekairos/thread';\nfunction run() { us(); T.createThread(); T.createChatReactor(); }\n",
            "a.ts",
        );
        expect_test::expect![[r#"
            [
                "2:1 StoryImport @ekairos/story import | import of '@ekairos/story'",
                "3:1 ThreadImport @ekairos/thread import | import of '@ekairos/thread'",
                "4:18 StoryApi useStory | call of useStory (as us) from '@ekairos/story'",
                "4:26 ThreadApi createThread | call of T.createThread from '@ekairos/thread'",
                "4:44 Reactor reactor factory | call of T.createChatReactor from '@ekairos/thread'",
            ]
        "#]]
        .assert_debug_eq(&summary(&analysis));
    }

    #[test]
    fn text_fallback_finds_words() {
        let findings = text_scan("import { useStory } from \"@ekairos/story\"\nconst r = createXReactor ();\nx.reactor(1); ({reactor: 1})\n// story_steps\n");
        let got: Vec<_> = findings
            .iter()
            .map(|f| format!("{}:{} {}", f.line, f.column, f.item))
            .collect();
        assert_eq!(
            got,
            [
                "1:27 @ekairos/story import",
                "2:11 reactor factory",
                "3:2 reactor builder",
                "3:17 reactor field",
                "4:4 story_steps",
            ]
        );
    }
}
