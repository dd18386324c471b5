//! Module resolution, caching and export lookup.
//!
//! Imports are resolved when a binding is first used, not when the importing module
//! starts: a schema module that imports types or unused helpers from an npm package still
//! evaluates, and a module is only read when one of its values is needed. Each module body
//! is evaluated once, completely and in order, and its exports are cached.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use indexmap::IndexMap;

use super::ops::{plain_object, OpError};
use super::value::{Class, Object, Opaque, OpaqueKind, PropertyMap, Value};
use super::{dsl, eval, SourceLocation, TypeScriptError};

/// How many modules may be mid-evaluation at once (an import chain).
const MAX_IMPORT_DEPTH: usize = 32;

/// Extensions tried after the exact path, in order.
const MODULE_EXTENSIONS: [&str; 7] = ["ts", "tsx", "mts", "cts", "js", "mjs", "jsx"];

/// Index files tried when a specifier names a directory.
const INDEX_FILES: [&str; 4] = ["index.ts", "index.tsx", "index.js", "index.mjs"];

/// A module's text with a line index for locations.
pub(crate) struct SourceFile {
    /// The path as shown in messages.
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(index, _)| index + 1))
            .collect();
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// The 1-based line and character column of a byte offset.
    pub fn location(&self, offset: u32) -> SourceLocation {
        let mut offset = (offset as usize).min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        SourceLocation {
            path: self.path.clone(),
            line,
            column,
        }
    }

    pub fn directory(&self) -> PathBuf {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// `import ... from '<specifier>'` as written, with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct ModuleRequest {
    pub specifier: String,
    /// Directory of the importing file, for relative specifiers.
    pub base_directory: PathBuf,
    pub location: SourceLocation,
}

#[derive(Debug, Clone)]
pub(crate) enum ImportedName {
    Named(String),
    /// `import * as ns` / `export * as ns`.
    Namespace,
}

/// A binding that refers to another module's export; resolved on first use.
#[derive(Debug)]
pub(crate) struct ImportBinding {
    pub request: ModuleRequest,
    pub imported: ImportedName,
}

#[derive(Debug)]
pub(crate) enum ExportEntry {
    Value(Value),
    /// Re-exported, or an exported import: resolved when asked for.
    Import(Rc<ImportBinding>),
}

/// What a module exports, after its body has been evaluated.
#[derive(Debug)]
pub(crate) struct ModuleExports {
    pub path: PathBuf,
    pub entries: IndexMap<String, ExportEntry>,
    /// `export * from '...'`, in order.
    pub star_exports: Vec<ModuleRequest>,
}

enum ModuleState {
    Evaluating,
    Evaluated(Rc<ModuleExports>),
}

/// A relative specifier resolved to a file.
struct ResolvedFile {
    /// Lexically normalised path, for messages.
    display: PathBuf,
    /// Canonical path, to recognise the same file under different spellings.
    key: PathBuf,
}

enum SpecifierKind {
    RelativeFile,
    /// `@instantdb/core`, `@instantdb/react`, ...: only `i` is known.
    InstantPackage,
    OtherPackage,
}

fn specifier_kind(specifier: &str) -> SpecifierKind {
    if specifier.starts_with("./")
        || specifier.starts_with("../")
        || specifier == "."
        || specifier == ".."
        || specifier.starts_with('/')
    {
        SpecifierKind::RelativeFile
    } else if specifier.starts_with("@instantdb/") {
        SpecifierKind::InstantPackage
    } else {
        SpecifierKind::OtherPackage
    }
}

pub(crate) struct Loader {
    entry: ResolvedFile,
    entry_source: String,
    modules: HashMap<PathBuf, ModuleState>,
    /// Modules being evaluated, outermost first: (canonical key, display path).
    evaluating: Vec<(PathBuf, PathBuf)>,
    /// Re-exports being followed, to stop circular `export { x } from` chains.
    resolving: Vec<(PathBuf, String)>,
    /// Expression nesting across all modules being evaluated (see `eval`).
    pub depth: usize,
}

impl Loader {
    pub fn new(entry_path: &Path, entry_source: &str) -> Self {
        let key = std::fs::canonicalize(entry_path).unwrap_or_else(|_| normalize(entry_path));
        Loader {
            entry: ResolvedFile {
                display: entry_path.to_path_buf(),
                key,
            },
            entry_source: entry_source.to_owned(),
            modules: HashMap::new(),
            evaluating: Vec::new(),
            resolving: Vec::new(),
            depth: 0,
        }
    }

    pub fn load_entry(&mut self) -> Result<Rc<ModuleExports>, TypeScriptError> {
        let entry = ResolvedFile {
            display: self.entry.display.clone(),
            key: self.entry.key.clone(),
        };
        self.load(&entry, None)
    }

    /// Turns an operation error at module level (no better location) into a report.
    pub fn error_at_module(&self, error: OpError, path: &Path) -> TypeScriptError {
        let location = SourceLocation {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
        };
        opaque_or_message(error, location)
    }

    fn load(
        &mut self,
        file: &ResolvedFile,
        request: Option<&ModuleRequest>,
    ) -> Result<Rc<ModuleExports>, TypeScriptError> {
        match self.modules.get(&file.key) {
            Some(ModuleState::Evaluated(module)) => return Ok(Rc::clone(module)),
            Some(ModuleState::Evaluating) => {
                let start = self
                    .evaluating
                    .iter()
                    .position(|(key, _)| key == &file.key)
                    .unwrap_or(0);
                let mut chain: Vec<String> = self.evaluating[start..]
                    .iter()
                    .map(|(_, display)| display.display().to_string())
                    .collect();
                chain.push(file.display.display().to_string());
                return Err(TypeScriptError::ImportCycle {
                    location: request_location(request, file),
                    cycle: chain.join(" -> "),
                });
            }
            None => {}
        }
        if self.evaluating.len() >= MAX_IMPORT_DEPTH {
            return Err(TypeScriptError::TooDeep {
                location: request_location(request, file),
                limit: MAX_IMPORT_DEPTH,
            });
        }

        let text = if file.key == self.entry.key {
            self.entry_source.clone()
        } else {
            std::fs::read_to_string(&file.key).map_err(|error| TypeScriptError::Import {
                location: request_location(request, file),
                specifier: request.map_or_else(String::new, |r| r.specifier.clone()),
                reason: format!("cannot read {}: {error}", file.display.display()),
            })?
        };
        let source = Rc::new(SourceFile::new(file.display.clone(), text));

        self.modules
            .insert(file.key.clone(), ModuleState::Evaluating);
        self.evaluating
            .push((file.key.clone(), file.display.clone()));
        let evaluated = if is_json(&file.display) {
            json_module(&source)
        } else {
            eval::evaluate_module(self, &source)
        };
        self.evaluating.pop();
        match evaluated {
            Ok(exports) => {
                let exports = Rc::new(exports);
                self.modules.insert(
                    file.key.clone(),
                    ModuleState::Evaluated(Rc::clone(&exports)),
                );
                Ok(exports)
            }
            Err(error) => {
                self.modules.remove(&file.key);
                Err(error)
            }
        }
    }

    /// The value of an imported binding.
    pub fn resolve_import(&mut self, binding: &ImportBinding) -> Result<Value, TypeScriptError> {
        let request = &binding.request;
        match specifier_kind(&request.specifier) {
            SpecifierKind::InstantPackage => Ok(instant_package_import(binding)),
            SpecifierKind::OtherPackage => Ok(Value::Opaque(Rc::new(Opaque {
                origin: Some(request.location.clone()),
                kind: OpaqueKind::PackageImport {
                    package: package_name(&request.specifier),
                },
            }))),
            SpecifierKind::RelativeFile => {
                let file = resolve_file(request)?;
                let module = self.load(&file, Some(request))?;
                match &binding.imported {
                    ImportedName::Namespace => self.namespace(&module),
                    ImportedName::Named(name) => {
                        self.export_if_present(&module, name)?.ok_or_else(|| {
                            TypeScriptError::Import {
                                location: request.location.clone(),
                                specifier: request.specifier.clone(),
                                reason: format!(
                                    "{} has no export named `{name}`",
                                    module.path.display()
                                ),
                            }
                        })
                    }
                }
            }
        }
    }

    /// The value of `module`'s export `name`, or `None` if it has no such export.
    pub fn export_if_present(
        &mut self,
        module: &Rc<ModuleExports>,
        name: &str,
    ) -> Result<Option<Value>, TypeScriptError> {
        if let Some(entry) = module.entries.get(name) {
            return match entry {
                ExportEntry::Value(value) => Ok(Some(value.clone())),
                ExportEntry::Import(binding) => {
                    let marker = (module.path.clone(), name.to_owned());
                    if self.resolving.contains(&marker) {
                        return Err(TypeScriptError::ImportCycle {
                            location: binding.request.location.clone(),
                            cycle: format!("circular re-export of `{name}`"),
                        });
                    }
                    self.resolving.push(marker);
                    let value = self.resolve_import(binding);
                    self.resolving.pop();
                    value.map(Some)
                }
            };
        }
        // `export *` never re-exports `default`.
        if name == "default" {
            return Ok(None);
        }
        for request in module.star_exports.clone() {
            let Some(source) = self.star_source(&request)? else {
                continue;
            };
            if self.exports_name(&source, name, &mut Vec::new())? {
                return self.export_if_present(&source, name);
            }
        }
        Ok(None)
    }

    /// The module behind `export * from '<request>'`; packages contribute nothing we know.
    fn star_source(
        &mut self,
        request: &ModuleRequest,
    ) -> Result<Option<Rc<ModuleExports>>, TypeScriptError> {
        match specifier_kind(&request.specifier) {
            SpecifierKind::RelativeFile => {
                let file = resolve_file(request)?;
                self.load(&file, Some(request)).map(Some)
            }
            SpecifierKind::InstantPackage | SpecifierKind::OtherPackage => Ok(None),
        }
    }

    fn exports_name(
        &mut self,
        module: &Rc<ModuleExports>,
        name: &str,
        visited: &mut Vec<PathBuf>,
    ) -> Result<bool, TypeScriptError> {
        if module.entries.contains_key(name) {
            return Ok(true);
        }
        if visited.contains(&module.path) {
            return Ok(false);
        }
        visited.push(module.path.clone());
        for request in module.star_exports.clone() {
            if let Some(source) = self.star_source(&request)? {
                if self.exports_name(&source, name, visited)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// All export names of a module, explicit ones first, then those from `export *`.
    fn export_names(
        &mut self,
        module: &Rc<ModuleExports>,
        visited: &mut Vec<PathBuf>,
    ) -> Result<Vec<String>, TypeScriptError> {
        let mut names: Vec<String> = module.entries.keys().cloned().collect();
        if visited.contains(&module.path) {
            return Ok(names);
        }
        visited.push(module.path.clone());
        for request in module.star_exports.clone() {
            if let Some(source) = self.star_source(&request)? {
                for name in self.export_names(&source, visited)? {
                    if name != "default" && !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        Ok(names)
    }

    /// `import * as ns`: a module namespace object, whose keys are sorted.
    fn namespace(&mut self, module: &Rc<ModuleExports>) -> Result<Value, TypeScriptError> {
        let mut names = self.export_names(module, &mut Vec::new())?;
        names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        let mut props = PropertyMap::new();
        for name in names {
            if let Some(value) = self.export_if_present(module, &name)? {
                props.insert(&name, value);
            }
        }
        plain_object(props).map_err(|error| self.error_at_module(error, &module.path))
    }
}

/// Where an import was requested, or the start of the file for the entry module.
fn request_location(request: Option<&ModuleRequest>, file: &ResolvedFile) -> SourceLocation {
    match request {
        Some(request) => request.location.clone(),
        None => SourceLocation {
            path: file.display.clone(),
            line: 1,
            column: 1,
        },
    }
}

/// `i` from an `@instantdb/*` package; every other name is unknown to us.
fn instant_package_import(binding: &ImportBinding) -> Value {
    let package = &binding.request.specifier;
    match &binding.imported {
        ImportedName::Named(name) if name == "i" => dsl::schema_builder(),
        ImportedName::Named(name) => Value::opaque(
            Some(binding.request.location.clone()),
            format!(
                "`{name}` from `{package}` is not part of the schema DSL; only `i` can be \
                 evaluated without Node"
            ),
        ),
        ImportedName::Namespace => {
            let mut props = PropertyMap::new();
            props.insert("i", dsl::schema_builder());
            Value::Object(Rc::new(
                Object::new(Class::InstantPackageNamespace, props)
                    .expect("the namespace object is shallow"),
            ))
        }
    }
}

/// `@scope/name/sub/path` -> `@scope/name`, `name/sub` -> `name`.
fn package_name(specifier: &str) -> String {
    let mut parts = specifier.split('/');
    match (parts.next(), parts.next()) {
        (Some(scope), Some(name)) if scope.starts_with('@') => format!("{scope}/{name}"),
        (Some(name), _) => name.to_owned(),
        _ => specifier.to_owned(),
    }
}

pub(crate) fn opaque_or_message(error: OpError, here: SourceLocation) -> TypeScriptError {
    match error {
        OpError::Message(message) => TypeScriptError::Evaluation {
            location: here,
            message,
        },
        OpError::Opaque(opaque) => {
            let location = opaque.origin.clone().unwrap_or(here);
            match &opaque.kind {
                OpaqueKind::PackageImport { package } => TypeScriptError::PackageImport {
                    location,
                    package: package.clone(),
                },
                OpaqueKind::Unavailable { message } => TypeScriptError::Evaluation {
                    location,
                    message: message.clone(),
                },
            }
        }
    }
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension == "json")
}

/// `import data from './data.json'`: the parsed document is the default export.
fn json_module(source: &SourceFile) -> Result<ModuleExports, TypeScriptError> {
    let document: serde_json::Value =
        serde_json::from_str(&source.text).map_err(|error| TypeScriptError::Syntax {
            location: SourceLocation {
                path: source.path.clone(),
                line: error.line().max(1),
                column: error.column().max(1),
            },
            message: format!("invalid JSON: {error}"),
        })?;
    let value =
        json_to_value(&document).map_err(|error| opaque_or_message(error, source.location(0)))?;
    let mut entries = IndexMap::new();
    entries.insert("default".to_owned(), ExportEntry::Value(value));
    Ok(ModuleExports {
        path: source.path.clone(),
        entries,
        star_exports: Vec::new(),
    })
}

fn json_to_value(document: &serde_json::Value) -> Result<Value, OpError> {
    Ok(match document {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(value) => Value::Bool(*value),
        serde_json::Value::Number(number) => Value::Number(number.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(text) => Value::string(text),
        serde_json::Value::Array(items) => {
            Value::array(items.iter().map(json_to_value).collect::<Result<_, _>>()?)
                .map_err(super::ops::too_deep)?
        }
        serde_json::Value::Object(map) => {
            let mut props = PropertyMap::new();
            for (key, value) in map {
                props.insert(key, json_to_value(value)?);
            }
            plain_object(props)?
        }
    })
}

/// Finds the file a relative specifier names, the way TypeScript-aware Node loaders do.
fn resolve_file(request: &ModuleRequest) -> Result<ResolvedFile, TypeScriptError> {
    let base = normalize(&request.base_directory.join(&request.specifier));
    let mut candidates = Vec::new();
    let names_directory = request.specifier.ends_with('/');
    if !names_directory {
        candidates.push(base.clone());
        for extension in MODULE_EXTENSIONS {
            candidates.push(append_extension(&base, extension));
        }
        // TypeScript sources import each other by their emitted name: './x.js' is x.ts.
        let swapped = match base.extension().and_then(|extension| extension.to_str()) {
            Some("js") => &["ts", "tsx"][..],
            Some("jsx") => &["tsx"][..],
            Some("mjs") => &["mts"][..],
            Some("cjs") => &["cts"][..],
            _ => &[][..],
        };
        for extension in swapped {
            candidates.push(base.with_extension(extension));
        }
    }
    for index in INDEX_FILES {
        candidates.push(base.join(index));
    }
    for candidate in &candidates {
        let is_declaration_file = candidate
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.ends_with(".d.ts"));
        if candidate.is_file() && !is_declaration_file {
            let key = std::fs::canonicalize(candidate).unwrap_or_else(|_| candidate.clone());
            return Ok(ResolvedFile {
                display: candidate.clone(),
                key,
            });
        }
    }
    Err(TypeScriptError::Import {
        location: request.location.clone(),
        specifier: request.specifier.clone(),
        reason: if names_directory {
            format!(
                "no such module (looked for {}/index.ts and friends)",
                base.display()
            )
        } else {
            format!(
                "no such module (looked for {} as is, with .ts/.tsx/.mts/.cts/.js/.mjs/.jsx, \
                 and {}/index.ts)",
                base.display(),
                base.display()
            )
        },
    })
}

fn append_extension(path: &Path, extension: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(".");
    text.push(extension);
    PathBuf::from(text)
}

/// Removes `.` components and folds `..` where possible, without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let can_pop = matches!(out.components().next_back(), Some(Component::Normal(_)));
                if can_pop {
                    out.pop();
                } else if !matches!(
                    out.components().next_back(),
                    Some(Component::RootDir | Component::Prefix(_))
                ) {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
