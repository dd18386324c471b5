//! Evaluates one module's oxc AST: top-level declarations in order, then its exports.
//!
//! Only the declarative subset of JavaScript a schema file needs is understood; anything
//! that would need a real engine is reported with its location instead of being guessed.

use std::collections::HashMap;
use std::rc::Rc;

use indexmap::IndexMap;
use oxc_allocator::Allocator;
use oxc_ast::ast::{
    Argument, ArrayExpressionElement, BinaryOperator, BindingPattern, CallExpression, ChainElement,
    Declaration, ExportDefaultDeclarationKind, Expression, ImportDeclarationSpecifier,
    LogicalOperator, MemberExpression, ObjectPropertyKind, PropertyKey, PropertyKind, SourceType,
    Statement, StringLiteral, TemplateLiteral, UnaryOperator, VariableDeclarationKind,
};
use oxc_parser::Parser;
use oxc_span::{GetSpan, Span};

use super::dsl;
use super::loader::{
    opaque_or_message, ExportEntry, ImportBinding, ImportedName, Loader, ModuleExports,
    ModuleRequest, SourceFile,
};
use super::ops::{
    self, get_property, is_truthy, iterate, own_entries, plain_object, strict_equals, to_js_string,
    to_number, to_property_key, OpError, OpResult,
};
use super::value::{number_to_string, truncate, Class, Function, PropertyMap, Value};
use super::{SourceLocation, TypeScriptError};

/// Maximum expression nesting, counted across modules (an import resolved mid-expression
/// continues the count), so that evaluation never exhausts the stack.
pub(crate) const MAX_EVAL_DEPTH: usize = 256;

/// Maximum bracket nesting (or run of prefix operators) accepted before parsing: the parser
/// recurses once per level and has no limit of its own.
const MAX_SOURCE_NESTING: usize = 1000;

/// Maximum number of right-nesting operators (`=>`, `=`, `**`, `? :`, `new`) in one file.
/// These nest without brackets (`a => b => c`), so only their total bounds the parser's
/// recursion; schema files use a handful per declaration.
const MAX_CHAINING_OPERATORS: usize = 8000;

pub(crate) fn evaluate_module(
    loader: &mut Loader,
    source: &Rc<SourceFile>,
) -> Result<ModuleExports, TypeScriptError> {
    match find_excessive_nesting(&source.text) {
        Some(Excess::Nesting(offset)) => {
            return Err(TypeScriptError::TooDeep {
                location: source.location(offset as u32),
                limit: MAX_SOURCE_NESTING,
            });
        }
        Some(Excess::ChainingOperators(offset)) => {
            return Err(TypeScriptError::Evaluation {
                location: source.location(offset as u32),
                message: format!(
                    "more than {MAX_CHAINING_OPERATORS} `=`, `=>`, `**`, `?` and `new` \
                     operators in one file; too complex to parse safely"
                ),
            });
        }
        None => {}
    }
    let allocator = Allocator::default();
    let source_type = SourceType::from_path(&source.path)
        .unwrap_or_else(|_| SourceType::ts())
        .with_module(true);
    let parsed = Parser::new(&allocator, &source.text, source_type).parse();
    if let Some(diagnostic) = parsed.diagnostics.errors().next() {
        let offset = diagnostic
            .labels
            .first()
            .map(|label| label.offset())
            .unwrap_or(0);
        return Err(TypeScriptError::Syntax {
            location: source.location(offset),
            message: diagnostic.message.to_string(),
        });
    }
    if parsed.panicked {
        return Err(TypeScriptError::Syntax {
            location: source.location(0),
            message: "the parser gave up on this file".into(),
        });
    }

    let mut module = ModuleEvaluator {
        loader,
        source: Rc::clone(source),
        bindings: HashMap::new(),
        declared: HashMap::new(),
        exports: IndexMap::new(),
        local_exports: Vec::new(),
        star_exports: Vec::new(),
    };
    let body = &parsed.program.body;
    for statement in body {
        module.hoist_statement(statement)?;
    }
    for statement in body {
        module.run_statement(statement)?;
    }
    module.finish()
}

/// A top-level name and what it currently holds.
enum Binding {
    /// `let`/`const`/`class` before its declaration has run (the temporal dead zone).
    Uninitialized,
    Value(Value),
    /// Imported; resolved and replaced by `Value` on first use.
    Import(Rc<ImportBinding>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeclarationKind {
    Var,
    Other,
}

struct ModuleEvaluator<'l> {
    loader: &'l mut Loader,
    source: Rc<SourceFile>,
    bindings: HashMap<String, Binding>,
    declared: HashMap<String, DeclarationKind>,
    exports: IndexMap<String, ExportEntry>,
    /// `export { local as exported }` and `export const ...`, resolved once the body ran.
    local_exports: Vec<(String, String, Span)>,
    star_exports: Vec<ModuleRequest>,
}

/// The parts of an evaluated member expression `object.key`.
struct Member {
    object: Value,
    key: String,
    key_span: Span,
    value: Value,
}

type EvalResult<T> = Result<T, TypeScriptError>;

impl ModuleEvaluator<'_> {
    // ----- locations and errors -------------------------------------------------------

    fn location(&self, span: Span) -> SourceLocation {
        self.source.location(span.start)
    }

    fn error(&self, span: Span, message: impl Into<String>) -> TypeScriptError {
        TypeScriptError::Evaluation {
            location: self.location(span),
            message: message.into(),
        }
    }

    /// Attaches this location to an operation's error.
    fn at<T>(&self, span: Span, result: OpResult<T>) -> EvalResult<T> {
        result.map_err(|error| opaque_or_message(error, self.location(span)))
    }

    /// The source text of a node, shortened to one line for messages.
    fn snippet(&self, span: Span) -> String {
        let text = self
            .source
            .text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("");
        let first_line = text.lines().next().unwrap_or("").trim();
        let mut shown = truncate(first_line, 60);
        if text.trim().lines().nth(1).is_some() && !shown.ends_with('…') {
            shown.push('…');
        }
        shown
    }

    fn request(&self, specifier: &StringLiteral<'_>, span: Span) -> ModuleRequest {
        ModuleRequest {
            specifier: specifier.value.to_string(),
            base_directory: self.source.directory(),
            location: self.location(span),
        }
    }

    // ----- declarations ---------------------------------------------------------------

    fn declare(
        &mut self,
        name: &str,
        kind: DeclarationKind,
        binding: Binding,
        span: Span,
    ) -> EvalResult<()> {
        match self.declared.get(name) {
            Some(DeclarationKind::Var) if kind == DeclarationKind::Var => return Ok(()),
            Some(_) => {
                return Err(self.error(span, format!("`{name}` is declared more than once")));
            }
            None => {}
        }
        self.declared.insert(name.to_owned(), kind);
        self.bindings.insert(name.to_owned(), binding);
        Ok(())
    }

    /// Imports, functions and the names of `let`/`const`/`var`/`class` exist before any
    /// statement runs, as in JavaScript.
    fn hoist_statement(&mut self, statement: &Statement<'_>) -> EvalResult<()> {
        if let Some(declaration) = statement.as_declaration() {
            return self.hoist_declaration(declaration);
        }
        match statement {
            Statement::ImportDeclaration(import) => {
                if import.import_kind.is_type() {
                    return Ok(());
                }
                let Some(specifiers) = &import.specifiers else {
                    // `import './side-effect'`: nothing to bind, and no effects we could honour.
                    return Ok(());
                };
                for specifier in specifiers {
                    let (local, imported) = match specifier {
                        ImportDeclarationSpecifier::ImportSpecifier(specifier) => {
                            if specifier.import_kind.is_type() {
                                continue;
                            }
                            (
                                &specifier.local,
                                ImportedName::Named(specifier.imported.name().to_string()),
                            )
                        }
                        ImportDeclarationSpecifier::ImportDefaultSpecifier(specifier) => {
                            (&specifier.local, ImportedName::Named("default".into()))
                        }
                        ImportDeclarationSpecifier::ImportNamespaceSpecifier(specifier) => {
                            (&specifier.local, ImportedName::Namespace)
                        }
                    };
                    let binding = Rc::new(ImportBinding {
                        request: self.request(&import.source, import.span),
                        imported,
                    });
                    self.declare(
                        &local.name,
                        DeclarationKind::Other,
                        Binding::Import(binding),
                        local.span,
                    )?;
                }
                Ok(())
            }
            Statement::ExportDeclaration(export) => self.hoist_declaration(&export.declaration),
            Statement::ExportDefaultDeclaration(export) => match &export.declaration {
                ExportDefaultDeclarationKind::FunctionDeclaration(function) => {
                    if let Some(id) = &function.id {
                        let value = local_function(format!("function `{}`", id.name));
                        self.declare(
                            &id.name,
                            DeclarationKind::Other,
                            Binding::Value(value),
                            id.span,
                        )?;
                    }
                    Ok(())
                }
                ExportDefaultDeclarationKind::ClassDeclaration(class) => {
                    if let Some(id) = &class.id {
                        self.declare(
                            &id.name,
                            DeclarationKind::Other,
                            Binding::Uninitialized,
                            id.span,
                        )?;
                    }
                    Ok(())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn hoist_declaration(&mut self, declaration: &Declaration<'_>) -> EvalResult<()> {
        match declaration {
            Declaration::VariableDeclaration(variables) if !variables.declare => {
                let is_var = variables.kind == VariableDeclarationKind::Var;
                for declarator in &variables.declarations {
                    let mut names = Vec::new();
                    pattern_names(&declarator.id, &mut names);
                    for (name, span) in names {
                        if is_var {
                            self.declare(
                                &name,
                                DeclarationKind::Var,
                                Binding::Value(Value::Undefined),
                                span,
                            )?;
                        } else {
                            self.declare(
                                &name,
                                DeclarationKind::Other,
                                Binding::Uninitialized,
                                span,
                            )?;
                        }
                    }
                }
                Ok(())
            }
            // Overload signatures and `declare function` have no body and no runtime value.
            Declaration::FunctionDeclaration(function) if function.body.is_some() => {
                if let Some(id) = &function.id {
                    let value = local_function(format!("function `{}`", id.name));
                    self.declare(
                        &id.name,
                        DeclarationKind::Other,
                        Binding::Value(value),
                        id.span,
                    )?;
                }
                Ok(())
            }
            Declaration::ClassDeclaration(class) if !class.declare => {
                if let Some(id) = &class.id {
                    self.declare(
                        &id.name,
                        DeclarationKind::Other,
                        Binding::Uninitialized,
                        id.span,
                    )?;
                }
                Ok(())
            }
            Declaration::TSEnumDeclaration(enumeration) if !enumeration.declare => self.declare(
                &enumeration.id.name,
                DeclarationKind::Other,
                Binding::Uninitialized,
                enumeration.id.span,
            ),
            _ => Ok(()),
        }
    }

    fn run_declaration(&mut self, declaration: &Declaration<'_>) -> EvalResult<()> {
        match declaration {
            Declaration::VariableDeclaration(variables) => {
                if variables.declare {
                    return Ok(());
                }
                if matches!(
                    variables.kind,
                    VariableDeclarationKind::Using | VariableDeclarationKind::AwaitUsing
                ) {
                    return Err(
                        self.error(variables.span, "`using` declarations need real execution")
                    );
                }
                for declarator in &variables.declarations {
                    let value = match &declarator.init {
                        Some(init) => self.eval(init)?,
                        // `var x;` keeps its value; `let x;` becomes undefined.
                        None if variables.kind == VariableDeclarationKind::Var => continue,
                        None => Value::Undefined,
                    };
                    self.bind_pattern(&declarator.id, value)?;
                }
                Ok(())
            }
            Declaration::ClassDeclaration(class) => {
                if let Some(id) = &class.id {
                    if !class.declare {
                        let value = local_function(format!("class `{}`", id.name));
                        self.bindings
                            .insert(id.name.to_string(), Binding::Value(value));
                    }
                }
                Ok(())
            }
            Declaration::TSEnumDeclaration(enumeration) => {
                if !enumeration.declare {
                    let value = Value::opaque(
                        Some(self.location(enumeration.span)),
                        format!(
                            "TypeScript enum `{}` is not supported; use a plain object \
                             (`{{ ... }} as const`) instead",
                            enumeration.id.name
                        ),
                    );
                    self.bindings
                        .insert(enumeration.id.name.to_string(), Binding::Value(value));
                }
                Ok(())
            }
            // Hoisted already, or types only.
            Declaration::FunctionDeclaration(_)
            | Declaration::TSTypeAliasDeclaration(_)
            | Declaration::TSInterfaceDeclaration(_)
            | Declaration::TSExternalModuleDeclaration(_)
            | Declaration::TSNamespaceDeclaration(_)
            | Declaration::TSGlobalDeclaration(_) => Ok(()),
            Declaration::TSImportEqualsDeclaration(import) => Err(self.error(
                import.span,
                "`import x = ...` is not supported; use an ES `import` statement",
            )),
        }
    }

    fn run_statement(&mut self, statement: &Statement<'_>) -> EvalResult<()> {
        if let Some(declaration) = statement.as_declaration() {
            return self.run_declaration(declaration);
        }
        match statement {
            Statement::ImportDeclaration(_)
            | Statement::EmptyStatement(_)
            | Statement::TSNamespaceExportDeclaration(_) => Ok(()),
            Statement::ExportDeclaration(export) => {
                self.run_declaration(&export.declaration)?;
                for (name, span) in declared_value_names(&export.declaration) {
                    self.local_exports.push((name.clone(), name, span));
                }
                Ok(())
            }
            Statement::ExportDefaultDeclaration(export) => {
                let value = match &export.declaration {
                    ExportDefaultDeclarationKind::FunctionDeclaration(function) => {
                        let name = function.id.as_ref().map(|id| id.name.to_string());
                        local_function(match name {
                            Some(name) => format!("function `{name}`"),
                            None => "the default-exported function".into(),
                        })
                    }
                    ExportDefaultDeclarationKind::ClassDeclaration(class) => {
                        let value = local_function("the default-exported class".into());
                        if let Some(id) = &class.id {
                            self.bindings
                                .insert(id.name.to_string(), Binding::Value(value.clone()));
                        }
                        value
                    }
                    ExportDefaultDeclarationKind::TSInterfaceDeclaration(_) => return Ok(()),
                    other => match other.as_expression() {
                        Some(expression) => self.eval(expression)?,
                        None => return Ok(()),
                    },
                };
                self.add_export("default", ExportEntry::Value(value), export.span)
            }
            Statement::ExportNamedDeclaration(export) => {
                if export.export_kind.is_type() {
                    return Ok(());
                }
                for specifier in &export.specifiers {
                    if specifier.export_kind.is_type() {
                        continue;
                    }
                    self.local_exports.push((
                        specifier.exported.name().to_string(),
                        specifier.local.name().to_string(),
                        specifier.span,
                    ));
                }
                Ok(())
            }
            Statement::ExportFromDeclaration(export) => {
                if export.export_kind.is_type() {
                    return Ok(());
                }
                for specifier in &export.specifiers {
                    if specifier.export_kind.is_type() {
                        continue;
                    }
                    let binding = Rc::new(ImportBinding {
                        request: self.request(&export.source, export.span),
                        imported: ImportedName::Named(specifier.local.name().to_string()),
                    });
                    self.add_export(
                        &specifier.exported.name(),
                        ExportEntry::Import(binding),
                        specifier.span,
                    )?;
                }
                Ok(())
            }
            Statement::ExportAllDeclaration(export) => {
                if export.export_kind.is_type() {
                    return Ok(());
                }
                let request = self.request(&export.source, export.span);
                match &export.exported {
                    Some(name) => {
                        let binding = Rc::new(ImportBinding {
                            request,
                            imported: ImportedName::Namespace,
                        });
                        self.add_export(&name.name(), ExportEntry::Import(binding), export.span)
                    }
                    None => {
                        self.star_exports.push(request);
                        Ok(())
                    }
                }
            }
            Statement::TSExportAssignment(export) => Err(self.error(
                export.span,
                "`export = ...` is not supported; use `export default ...`",
            )),
            other => Err(self.error(
                other.span(),
                format!(
                    "cannot evaluate {} `{}`: a schema module may only contain imports, \
                     declarations and exports (anything else needs real execution)",
                    statement_kind(other),
                    self.snippet(other.span())
                ),
            )),
        }
    }

    fn add_export(&mut self, name: &str, entry: ExportEntry, span: Span) -> EvalResult<()> {
        if self.exports.contains_key(name) {
            return Err(self.error(span, format!("`{name}` is exported more than once")));
        }
        self.exports.insert(name.to_owned(), entry);
        Ok(())
    }

    fn finish(mut self) -> EvalResult<ModuleExports> {
        for (exported, local, span) in std::mem::take(&mut self.local_exports) {
            let entry = match self.bindings.get(&local) {
                Some(Binding::Value(value)) => ExportEntry::Value(value.clone()),
                Some(Binding::Import(binding)) => ExportEntry::Import(Rc::clone(binding)),
                Some(Binding::Uninitialized) => ExportEntry::Value(Value::Undefined),
                // Not a value: a type or interface, which TypeScript erases from exports.
                None => continue,
            };
            self.add_export(&exported, entry, span)?;
        }
        Ok(ModuleExports {
            path: self.source.path.clone(),
            entries: self.exports,
            star_exports: self.star_exports,
        })
    }

    fn bind_pattern(&mut self, pattern: &BindingPattern<'_>, value: Value) -> EvalResult<()> {
        self.enter(pattern.span())?;
        let result = self.bind_pattern_inner(pattern, value);
        self.leave();
        result
    }

    fn bind_pattern_inner(&mut self, pattern: &BindingPattern<'_>, value: Value) -> EvalResult<()> {
        match pattern {
            BindingPattern::BindingIdentifier(id) => {
                self.bindings
                    .insert(id.name.to_string(), Binding::Value(value));
                Ok(())
            }
            BindingPattern::AssignmentPattern(assignment) => {
                let value = match value {
                    Value::Undefined => self.eval(&assignment.right)?,
                    value => value,
                };
                self.bind_pattern(&assignment.left, value)
            }
            BindingPattern::ObjectPattern(object) => {
                if value.is_nullish() {
                    return Err(self.error(
                        object.span,
                        format!("cannot destructure {}", value.describe()),
                    ));
                }
                let mut used_keys = Vec::new();
                for property in &object.properties {
                    let key = self.property_key(&property.key, property.computed)?;
                    let property_value = self.at(property.span, get_property(&value, &key))?;
                    used_keys.push(key);
                    self.bind_pattern(&property.value, property_value)?;
                }
                if let Some(rest) = &object.rest {
                    let mut props = PropertyMap::new();
                    for (key, entry) in self.at(rest.span, own_entries(&value, true))? {
                        if !used_keys.contains(&key) {
                            props.insert(&key, entry);
                        }
                    }
                    let rest_value = self.at(rest.span, plain_object(props))?;
                    self.bind_pattern(&rest.argument, rest_value)?;
                }
                Ok(())
            }
            BindingPattern::ArrayPattern(array) => {
                let items = self.at(array.span, iterate(&value))?;
                for (index, element) in array.elements.iter().enumerate() {
                    if let Some(element) = element {
                        let item = items.get(index).cloned().unwrap_or(Value::Undefined);
                        self.bind_pattern(element, item)?;
                    }
                }
                if let Some(rest) = &array.rest {
                    let remaining = items.get(array.elements.len()..).unwrap_or(&[]).to_vec();
                    let rest_value =
                        self.at(rest.span, Value::array(remaining).map_err(ops::too_deep))?;
                    self.bind_pattern(&rest.argument, rest_value)?;
                }
                Ok(())
            }
        }
    }

    // ----- expressions ------------------------------------------------------------------

    fn enter(&mut self, span: Span) -> EvalResult<()> {
        if self.loader.depth >= MAX_EVAL_DEPTH {
            return Err(TypeScriptError::TooDeep {
                location: self.location(span),
                limit: MAX_EVAL_DEPTH,
            });
        }
        self.loader.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.loader.depth -= 1;
    }

    fn eval(&mut self, expression: &Expression<'_>) -> EvalResult<Value> {
        self.enter(expression.span())?;
        let result = self.eval_inner(expression);
        self.leave();
        result
    }

    fn eval_inner(&mut self, expression: &Expression<'_>) -> EvalResult<Value> {
        let span = expression.span();
        match expression {
            Expression::BooleanLiteral(literal) => Ok(Value::Bool(literal.value)),
            Expression::NullLiteral(_) => Ok(Value::Null),
            Expression::NumericLiteral(literal) => Ok(Value::Number(literal.value)),
            Expression::StringLiteral(literal) => self.string_literal(literal),
            Expression::TemplateLiteral(template) => self.template(template),
            Expression::Identifier(identifier) => self.identifier(&identifier.name, span),
            Expression::ArrayExpression(array) => {
                let mut elements = Vec::with_capacity(array.elements.len());
                for element in &array.elements {
                    match element {
                        ArrayExpressionElement::SpreadElement(spread) => {
                            let value = self.eval(&spread.argument)?;
                            elements.extend(self.at(spread.span, iterate(&value))?);
                        }
                        ArrayExpressionElement::Elision(elision) => {
                            return Err(self.error(
                                elision.span,
                                "array holes (`[a, , b]`) are not supported; write `undefined`",
                            ));
                        }
                        other => match other.as_expression() {
                            Some(expression) => elements.push(self.eval(expression)?),
                            None => {
                                return Err(self.error(other.span(), "unsupported array element"))
                            }
                        },
                    }
                }
                self.at(span, Value::array(elements).map_err(ops::too_deep))
            }
            Expression::ObjectExpression(object) => {
                let mut props = PropertyMap::new();
                for property in &object.properties {
                    match property {
                        ObjectPropertyKind::SpreadProperty(spread) => {
                            let value = self.eval(&spread.argument)?;
                            self.at(spread.span, ops::spread_into(&mut props, &value))?;
                        }
                        ObjectPropertyKind::ObjectProperty(property) => {
                            if property.kind != PropertyKind::Init {
                                return Err(self.error(
                                    property.span,
                                    "getters and setters need real execution",
                                ));
                            }
                            let key = self.property_key(&property.key, property.computed)?;
                            let sets_prototype = key == "__proto__"
                                && !property.computed
                                && !property.shorthand
                                && !property.method;
                            if sets_prototype {
                                return Err(self.error(
                                    property.span,
                                    "`__proto__: ...` sets the prototype; not supported",
                                ));
                            }
                            let value = if property.method {
                                local_function(format!("method `{key}`"))
                            } else {
                                self.eval(&property.value)?
                            };
                            props.insert(&key, value);
                        }
                    }
                }
                self.at(span, plain_object(props))
            }
            Expression::ParenthesizedExpression(inner) => self.eval(&inner.expression),
            // TypeScript-only syntax: the value is the inner expression's.
            Expression::TSAsExpression(inner) => self.eval(&inner.expression),
            Expression::TSSatisfiesExpression(inner) => self.eval(&inner.expression),
            Expression::TSTypeAssertion(inner) => self.eval(&inner.expression),
            Expression::TSNonNullExpression(inner) => self.eval(&inner.expression),
            Expression::TSInstantiationExpression(inner) => self.eval(&inner.expression),
            Expression::UnaryExpression(unary) => {
                let operand = self.eval(&unary.argument)?;
                match unary.operator {
                    UnaryOperator::UnaryNegation => {
                        Ok(Value::Number(-self.at(span, to_number(&operand))?))
                    }
                    UnaryOperator::UnaryPlus => {
                        Ok(Value::Number(self.at(span, to_number(&operand))?))
                    }
                    UnaryOperator::LogicalNot => {
                        Ok(Value::Bool(!self.at(span, is_truthy(&operand))?))
                    }
                    UnaryOperator::Void => Ok(Value::Undefined),
                    UnaryOperator::Typeof => match operand {
                        Value::Opaque(opaque) => self.at(span, Err(OpError::Opaque(opaque))),
                        operand => Ok(Value::string(operand.type_name())),
                    },
                    UnaryOperator::BitwiseNot | UnaryOperator::Delete => Err(self.error(
                        span,
                        format!(
                            "the `{}` operator is not supported",
                            unary.operator.as_str()
                        ),
                    )),
                }
            }
            Expression::BinaryExpression(binary) => {
                let left = self.eval(&binary.left)?;
                let right = self.eval(&binary.right)?;
                self.at(span, binary_operation(binary.operator, &left, &right))
            }
            Expression::LogicalExpression(logical) => {
                let left = self.eval(&logical.left)?;
                let take_left = match logical.operator {
                    LogicalOperator::Or => self.at(span, is_truthy(&left))?,
                    LogicalOperator::And => !self.at(span, is_truthy(&left))?,
                    LogicalOperator::Coalesce => match &left {
                        Value::Opaque(opaque) => {
                            return self.at(span, Err(OpError::Opaque(Rc::clone(opaque))))
                        }
                        left => !left.is_nullish(),
                    },
                };
                if take_left {
                    Ok(left)
                } else {
                    self.eval(&logical.right)
                }
            }
            Expression::ConditionalExpression(conditional) => {
                let test = self.eval(&conditional.test)?;
                if self.at(span, is_truthy(&test))? {
                    self.eval(&conditional.consequent)
                } else {
                    self.eval(&conditional.alternate)
                }
            }
            Expression::SequenceExpression(sequence) => {
                let mut last = Value::Undefined;
                for expression in &sequence.expressions {
                    last = self.eval(expression)?;
                }
                Ok(last)
            }
            Expression::ChainExpression(chain) => {
                let value = match &chain.expression {
                    ChainElement::CallExpression(call) => self.call(call)?,
                    ChainElement::TSNonNullExpression(inner) => {
                        self.chain_part(&inner.expression)?
                    }
                    other => match other.as_member_expression() {
                        Some(member) => self.member(member)?.map(|member| member.value),
                        None => return Err(self.error(other.span(), "unsupported optional chain")),
                    },
                };
                Ok(value.unwrap_or(Value::Undefined))
            }
            Expression::CallExpression(_)
            | Expression::StaticMemberExpression(_)
            | Expression::ComputedMemberExpression(_) => {
                Ok(self.chain_part(expression)?.unwrap_or(Value::Undefined))
            }
            Expression::ArrowFunctionExpression(_) => {
                Ok(local_function("an arrow function".into()))
            }
            Expression::FunctionExpression(function) => Ok(local_function(match &function.id {
                Some(id) => format!("function `{}`", id.name),
                None => "a function expression".into(),
            })),
            Expression::ClassExpression(_) => Ok(local_function("a class expression".into())),
            // Module code runs with `this === undefined`.
            Expression::ThisExpression(_) => Ok(Value::Undefined),
            other => Err(self.error(
                span,
                format!(
                    "cannot evaluate {} `{}`: this needs real execution; a schema module \
                     may only use literals, constants, spreads and the `i` schema DSL",
                    expression_kind(other),
                    self.snippet(span)
                ),
            )),
        }
    }

    fn string_literal(&self, literal: &StringLiteral<'_>) -> EvalResult<Value> {
        if literal.lone_surrogates {
            return Err(self.error(
                literal.span,
                "strings with lone surrogates are not supported",
            ));
        }
        Ok(Value::string(&literal.value))
    }

    fn template(&mut self, template: &TemplateLiteral<'_>) -> EvalResult<Value> {
        let mut text = String::new();
        for (index, quasi) in template.quasis.iter().enumerate() {
            let cooked = match &quasi.value.cooked {
                Some(cooked) if !quasi.lone_surrogates => cooked,
                _ => {
                    return Err(self.error(
                        quasi.span,
                        "unsupported escape sequence in template literal",
                    ));
                }
            };
            text.push_str(cooked);
            if let Some(expression) = template.expressions.get(index) {
                let value = self.eval(expression)?;
                text.push_str(&self.at(expression.span(), to_js_string(&value))?);
            }
        }
        Ok(Value::string(&text))
    }

    fn identifier(&mut self, name: &str, span: Span) -> EvalResult<Value> {
        match self.bindings.get(name) {
            Some(Binding::Value(value)) => Ok(value.clone()),
            Some(Binding::Uninitialized) => {
                Err(self.error(span, format!("`{name}` is used before its declaration")))
            }
            Some(Binding::Import(binding)) => {
                let binding = Rc::clone(binding);
                let value = self.loader.resolve_import(&binding)?;
                self.bindings
                    .insert(name.to_owned(), Binding::Value(value.clone()));
                Ok(value)
            }
            None => match name {
                "undefined" => Ok(Value::Undefined),
                "NaN" => Ok(Value::Number(f64::NAN)),
                "Infinity" => Ok(Value::Number(f64::INFINITY)),
                "i" => Err(self.error(
                    span,
                    "`i` is not defined; import it with `import { i } from \"@instantdb/core\"`",
                )),
                _ => Err(self.error(
                    span,
                    format!(
                        "`{name}` is not defined in this module (globals and undeclared names \
                         need Node to run)"
                    ),
                )),
            },
        }
    }

    fn property_key(&mut self, key: &PropertyKey<'_>, computed: bool) -> EvalResult<String> {
        if !computed {
            match key {
                PropertyKey::StaticIdentifier(identifier) => {
                    return Ok(identifier.name.to_string())
                }
                PropertyKey::StringLiteral(literal) => {
                    if literal.lone_surrogates {
                        return Err(
                            self.error(literal.span, "keys with lone surrogates are not supported")
                        );
                    }
                    return Ok(literal.value.to_string());
                }
                PropertyKey::NumericLiteral(literal) => return Ok(number_to_string(literal.value)),
                PropertyKey::PrivateIdentifier(identifier) => {
                    return Err(self.error(identifier.span, "private names are not supported"));
                }
                _ => {}
            }
        }
        match key.as_expression() {
            Some(expression) => {
                let value = self.eval(expression)?;
                self.at(expression.span(), to_property_key(&value))
            }
            None => Err(self.error(key.span(), "unsupported property key")),
        }
    }

    /// Evaluates a link of a member/call chain; `None` means an optional link (`?.`) met
    /// `null`/`undefined` and the whole chain is `undefined`.
    fn chain_part(&mut self, expression: &Expression<'_>) -> EvalResult<Option<Value>> {
        if let Some(member) = expression.as_member_expression() {
            self.enter(expression.span())?;
            let result = self.member(member);
            self.leave();
            return Ok(result?.map(|member| member.value));
        }
        match expression {
            Expression::CallExpression(call) => {
                self.enter(call.span)?;
                let result = self.call(call);
                self.leave();
                result
            }
            Expression::TSNonNullExpression(inner) => self.chain_part(&inner.expression),
            other => self.eval(other).map(Some),
        }
    }

    fn member(&mut self, member: &MemberExpression<'_>) -> EvalResult<Option<Member>> {
        let Some(object) = self.chain_part(member.object())? else {
            return Ok(None);
        };
        if member.optional() && object.is_nullish() {
            return Ok(None);
        }
        let (key, key_span) = match member {
            MemberExpression::StaticMemberExpression(member) => {
                (member.property.name.to_string(), member.property.span)
            }
            MemberExpression::ComputedMemberExpression(member) => {
                let key = self.eval(&member.expression)?;
                let key_span = member.expression.span();
                (self.at(key_span, to_property_key(&key))?, key_span)
            }
            MemberExpression::PrivateFieldExpression(member) => {
                return Err(self.error(member.span, "private fields are not supported"));
            }
        };
        let value = self.at(member.span(), get_property(&object, &key))?;
        Ok(Some(Member {
            object,
            key,
            key_span,
            value,
        }))
    }

    fn call(&mut self, call: &CallExpression<'_>) -> EvalResult<Option<Value>> {
        let (callee, context) = match call.callee.as_member_expression() {
            Some(member) => {
                let Some(member) = self.member(member)? else {
                    return Ok(None);
                };
                let context = (member.object, member.key, member.key_span);
                (member.value, Some(context))
            }
            None => match self.chain_part(&call.callee)? {
                Some(callee) => (callee, None),
                None => return Ok(None),
            },
        };
        if call.optional && callee.is_nullish() {
            return Ok(None);
        }
        let mut arguments = Vec::with_capacity(call.arguments.len());
        for argument in &call.arguments {
            match argument {
                Argument::SpreadElement(spread) => {
                    let value = self.eval(&spread.argument)?;
                    arguments.extend(self.at(spread.span, iterate(&value))?);
                }
                other => match other.as_expression() {
                    Some(expression) => arguments.push(self.eval(expression)?),
                    None => return Err(self.error(other.span(), "unsupported argument")),
                },
            }
        }
        let result = match &callee {
            Value::Function(function) => match &**function {
                Function::Builder(builder) => dsl::call_builder(*builder, &arguments),
                Function::Method { receiver, method } => dsl::call_method(receiver, *method),
                Function::Local { description } => Err(OpError::Message(format!(
                    "cannot call {description} (`{}`): only the `i` schema DSL can be \
                     called without Node",
                    self.snippet(call.callee.span())
                ))),
            },
            Value::Opaque(opaque) => Err(OpError::Opaque(Rc::clone(opaque))),
            _ => {
                let (span, message) = self.not_callable_message(call, context.as_ref());
                return Err(self.error(span, message));
            }
        };
        self.at(call.span, result).map(Some)
    }

    /// Explains a call of something that is not a function, naming the DSL's vocabulary
    /// when the receiver is one of its objects.
    fn not_callable_message(
        &self,
        call: &CallExpression<'_>,
        context: Option<&(Value, String, Span)>,
    ) -> (Span, String) {
        if let Some((Value::Object(object), key, key_span)) = context {
            let message = match object.class {
                Class::SchemaBuilder => Some(format!(
                    "unknown schema type `i.{key}()`; value types are `i.string()`, \
                     `i.number()`, `i.boolean()`, `i.date()`, `i.json()` and `i.any()` \
                     (builders: `i.entity`, `i.schema`, `i.graph`)"
                )),
                Class::DataAttrDef => Some(format!(
                    "unknown attribute modifier `.{key}()`; expected `.optional()`, \
                     `.unique()`, `.indexed()` or `.clientRequired()`"
                )),
                Class::EntityDef => Some(format!(
                    "`.{key}()` is not a method of `i.entity(...)` (it has `.asType()`)"
                )),
                Class::InstantSchemaDef => Some(format!(
                    "`.{key}()` is not a method of `i.schema(...)` (it has `.withRoomSchema()`)"
                )),
                Class::Plain | Class::InstantPackageNamespace => None,
            };
            if let Some(message) = message {
                return (*key_span, message);
            }
        }
        (
            call.span,
            format!(
                "cannot call `{}`: it is not a function this evaluator knows (only the `i` \
                 schema DSL can be called without Node)",
                self.snippet(call.callee.span())
            ),
        )
    }
}

fn local_function(description: String) -> Value {
    Value::Function(Rc::new(Function::Local { description }))
}

fn binary_operation(operator: BinaryOperator, left: &Value, right: &Value) -> OpResult<Value> {
    for operand in [left, right] {
        if let Value::Opaque(opaque) = operand {
            return Err(OpError::Opaque(Rc::clone(opaque)));
        }
    }
    let numbers = || -> OpResult<(f64, f64)> { Ok((to_number(left)?, to_number(right)?)) };
    Ok(match operator {
        BinaryOperator::Addition => {
            let is_stringy = |value: &Value| {
                matches!(value, Value::String(_) | Value::Array(_) | Value::Object(_))
            };
            if is_stringy(left) || is_stringy(right) {
                let text = format!("{}{}", to_js_string(left)?, to_js_string(right)?);
                Value::string(&text)
            } else {
                let (a, b) = numbers()?;
                Value::Number(a + b)
            }
        }
        BinaryOperator::Subtraction => numbers().map(|(a, b)| Value::Number(a - b))?,
        BinaryOperator::Multiplication => numbers().map(|(a, b)| Value::Number(a * b))?,
        BinaryOperator::Division => numbers().map(|(a, b)| Value::Number(a / b))?,
        BinaryOperator::Remainder => numbers().map(|(a, b)| Value::Number(a % b))?,
        BinaryOperator::Exponential => numbers().map(|(a, b)| Value::Number(a.powf(b)))?,
        BinaryOperator::StrictEquality => Value::Bool(strict_equals(left, right)?),
        BinaryOperator::StrictInequality => Value::Bool(!strict_equals(left, right)?),
        BinaryOperator::LessThan
        | BinaryOperator::LessEqualThan
        | BinaryOperator::GreaterThan
        | BinaryOperator::GreaterEqualThan => {
            let ordering = match (left, right) {
                (Value::String(a), Value::String(b)) => {
                    Some(a.encode_utf16().cmp(b.encode_utf16()))
                }
                (Value::Number(a), Value::Number(b)) => a.partial_cmp(b),
                _ => {
                    return Err(OpError::Message(
                        "comparisons are supported between two numbers or two strings only".into(),
                    ))
                }
            };
            Value::Bool(match (operator, ordering) {
                (_, None) => false,
                (BinaryOperator::LessThan, Some(ordering)) => ordering.is_lt(),
                (BinaryOperator::LessEqualThan, Some(ordering)) => ordering.is_le(),
                (BinaryOperator::GreaterThan, Some(ordering)) => ordering.is_gt(),
                (_, Some(ordering)) => ordering.is_ge(),
            })
        }
        other => {
            return Err(OpError::Message(format!(
                "the `{}` operator is not supported",
                other.as_str()
            )))
        }
    })
}

/// Names a `let`/`const`/`var`/function/class declaration introduces, for `export`.
fn declared_value_names(declaration: &Declaration<'_>) -> Vec<(String, Span)> {
    let mut names = Vec::new();
    match declaration {
        Declaration::VariableDeclaration(variables) if !variables.declare => {
            for declarator in &variables.declarations {
                pattern_names(&declarator.id, &mut names);
            }
        }
        Declaration::FunctionDeclaration(function) if function.body.is_some() => {
            if let Some(id) = &function.id {
                names.push((id.name.to_string(), id.span));
            }
        }
        Declaration::ClassDeclaration(class) if !class.declare => {
            if let Some(id) = &class.id {
                names.push((id.name.to_string(), id.span));
            }
        }
        Declaration::TSEnumDeclaration(enumeration) if !enumeration.declare => {
            names.push((enumeration.id.name.to_string(), enumeration.id.span));
        }
        _ => {}
    }
    names
}

fn pattern_names(pattern: &BindingPattern<'_>, names: &mut Vec<(String, Span)>) {
    match pattern {
        BindingPattern::BindingIdentifier(id) => names.push((id.name.to_string(), id.span)),
        BindingPattern::AssignmentPattern(assignment) => pattern_names(&assignment.left, names),
        BindingPattern::ObjectPattern(object) => {
            for property in &object.properties {
                pattern_names(&property.value, names);
            }
            if let Some(rest) = &object.rest {
                pattern_names(&rest.argument, names);
            }
        }
        BindingPattern::ArrayPattern(array) => {
            for element in array.elements.iter().flatten() {
                pattern_names(element, names);
            }
            if let Some(rest) = &array.rest {
                pattern_names(&rest.argument, names);
            }
        }
    }
}

fn statement_kind(statement: &Statement<'_>) -> &'static str {
    match statement {
        Statement::ExpressionStatement(_) => "the statement",
        Statement::BlockStatement(_) => "the block",
        Statement::IfStatement(_) => "the `if` statement",
        Statement::ForStatement(_)
        | Statement::ForInStatement(_)
        | Statement::ForOfStatement(_) => "the `for` loop",
        Statement::WhileStatement(_) | Statement::DoWhileStatement(_) => "the `while` loop",
        Statement::SwitchStatement(_) => "the `switch` statement",
        Statement::TryStatement(_) => "the `try` statement",
        Statement::ThrowStatement(_) => "the `throw` statement",
        _ => "the statement",
    }
}

fn expression_kind(expression: &Expression<'_>) -> &'static str {
    match expression {
        Expression::NewExpression(_) => "the `new` expression",
        Expression::AwaitExpression(_) => "the `await` expression",
        Expression::AssignmentExpression(_) | Expression::UpdateExpression(_) => "the assignment",
        Expression::TaggedTemplateExpression(_) => "the tagged template",
        Expression::ImportExpression(_) => "the dynamic import",
        Expression::BigIntLiteral(_) => "the BigInt literal",
        Expression::RegExpLiteral(_) => "the regular expression",
        Expression::YieldExpression(_) => "the `yield` expression",
        Expression::JSXElement(_) | Expression::JSXFragment(_) => "the JSX element",
        _ => "the expression",
    }
}

enum Excess {
    Nesting(usize),
    ChainingOperators(usize),
}

/// Whether the byte at `index` starts an operator that nests to the right without
/// brackets: assignment or arrow `=` (not `==`, `!=`, `<=`, `>=`), `**`, the conditional
/// `?` (not `?.`, `??`, `?:`), or the keyword `new`.
fn is_chaining_operator(bytes: &[u8], index: usize) -> bool {
    let previous = index
        .checked_sub(1)
        .and_then(|before| bytes.get(before).copied());
    let next = bytes.get(index + 1).copied();
    let is_word = |byte: Option<u8>| {
        byte.is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$')
    };
    match bytes.get(index).copied().unwrap_or(0) {
        b'=' => next != Some(b'=') && !matches!(previous, Some(b'=' | b'!' | b'<' | b'>')),
        b'*' => next == Some(b'*'),
        b'?' => !matches!(next, Some(b'.' | b'?' | b':')) && previous != Some(b'?'),
        b'n' => {
            bytes
                .get(index..)
                .is_some_and(|rest| rest.starts_with(b"new"))
                && !is_word(previous)
                && !is_word(bytes.get(index + 3).copied())
        }
        _ => false,
    }
}

/// Finds where bracket nesting (or a run of prefix operators such as `!!!!`) exceeds what
/// the parser can take without risking the stack. This is a lexical approximation: it
/// skips comments, strings and template text, which is all it needs to bound the depth.
fn find_excessive_nesting(text: &str) -> Option<Excess> {
    let bytes = text.as_bytes();
    let mut chaining_operators = 0usize;
    // Open brackets; `$` marks a template substitution `${`.
    let mut open: Vec<u8> = Vec::new();
    let mut in_template_text = false;
    let mut prefix_run = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_template_text {
            match byte {
                b'\\' => index += 1,
                b'`' => in_template_text = false,
                b'$' if bytes.get(index + 1) == Some(&b'{') => {
                    open.push(b'$');
                    in_template_text = false;
                    index += 1;
                }
                _ => {}
            }
            index += 1;
            continue;
        }
        match byte {
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
                continue;
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                index += 2;
                while index < bytes.len()
                    && !(bytes[index] == b'*' && bytes.get(index + 1) == Some(&b'/'))
                {
                    index += 1;
                }
                index += 2;
                continue;
            }
            b'\'' | b'"' => {
                let quote = byte;
                index += 1;
                while index < bytes.len() && bytes[index] != quote && bytes[index] != b'\n' {
                    if bytes[index] == b'\\' {
                        index += 1;
                    }
                    index += 1;
                }
            }
            b'`' => in_template_text = true,
            b'(' | b'[' | b'{' | b'<' => open.push(byte),
            b')' | b']' => {
                open.pop();
            }
            // Only a generic's closing `>` undoes an opening `<`.
            b'>' if open.last() == Some(&b'<') => {
                open.pop();
            }
            b'}' if open.pop() == Some(b'$') => in_template_text = true,
            _ => {}
        }
        if matches!(byte, b'!' | b'~' | b'+' | b'-') {
            prefix_run += 1;
        } else if !byte.is_ascii_whitespace() {
            prefix_run = 0;
        }
        if is_chaining_operator(bytes, index) {
            chaining_operators += 1;
            if chaining_operators > MAX_CHAINING_OPERATORS {
                return Some(Excess::ChainingOperators(index));
            }
        }
        if open.len() + prefix_run > MAX_SOURCE_NESTING {
            return Some(Excess::Nesting(index));
        }
        index += 1;
    }
    None
}
