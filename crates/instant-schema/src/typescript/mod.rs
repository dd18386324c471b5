//! Loads `instant.schema.ts` natively: parse with oxc, evaluate the declarative subset a
//! schema module uses, and produce exactly what `JSON.stringify(schema)` prints in Node with
//! `@instantdb/core@1.0.67` (values and key order).
//!
//! What is evaluated:
//! - `const`/`let`/`var` declarations in order (with destructuring), literals, template
//!   literals, object/array literals with spreads, shorthand/computed/quoted/numeric keys,
//!   member access, `?.`, `??`, `||`, `&&`, `?:`, `+` and simple arithmetic;
//! - TypeScript-only syntax is transparent (`as`, `satisfies`, `!`, `<T>x`, generics, type
//!   annotations, `type`/`interface` declarations);
//! - the `i` builder imported from any `@instantdb/*` package;
//! - relative imports and re-exports, resolved on disk and evaluated on first use.
//!
//! Anything that needs a JavaScript engine (calls other than the DSL, `new`, loops,
//! assignments, npm packages) is reported as an error with `file:line:col`. Imported
//! bindings are resolved on first use, so unused imports (types, helpers from npm packages)
//! do no harm, while every top-level statement of an evaluated module runs, in order.
//!
//! Deliberate refusals where Node would print something odd rather than fail: entity or link
//! names that are `Object.prototype` properties (`constructor`, `toString`, `__proto__`),
//! `__proto__: x` in object literals, non-object `entities`/`i.entity(...)` arguments,
//! enums, getters/setters, array holes.

mod dsl;
mod eval;
mod loader;
mod ops;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

/// Which export holds the schema, in order of preference.
const SCHEMA_EXPORT_NAMES: [&str; 4] = ["default", "schema", "appSchema", "instantSchema"];

/// Stack for the evaluation thread: the parser recurses per nesting level, and the
/// evaluator's own depth limits are sized against this.
const EVALUATION_STACK_BYTES: usize = 64 << 20;

/// Evaluates a schema module from disk; relative imports are resolved from the file's directory.
pub fn evaluate_schema_file(path: &Path) -> Result<serde_json::Value, TypeScriptError> {
    let source = std::fs::read_to_string(path).map_err(|error| TypeScriptError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    evaluate_schema_source(path, &source)
}

/// Same, with the entry module's text given (used for built-in schemas compiled into the
/// binary); relative imports, if any, still resolve on disk against `path`'s directory.
pub fn evaluate_schema_source(
    path: &Path,
    source: &str,
) -> Result<serde_json::Value, TypeScriptError> {
    run_with_large_stack(|| {
        let mut loader = loader::Loader::new(path, source);
        let module = loader.load_entry()?;
        for name in SCHEMA_EXPORT_NAMES {
            let Some(value) = loader.export_if_present(&module, name)? else {
                continue;
            };
            let json = ops::to_json(&value).map_err(|error| loader.error_at_module(error, path))?;
            return match json {
                Some(json @ serde_json::Value::Object(_)) => Ok(json),
                _ => Err(TypeScriptError::NotASchema {
                    path: path.to_path_buf(),
                    export: name.to_owned(),
                    found: value.describe(),
                }),
            };
        }
        Err(TypeScriptError::NoSchemaExport {
            path: path.to_path_buf(),
        })
    })
}

/// Runs `work` on a thread with a generous stack, so deeply nested input meets our depth
/// limits (which report an error) before it meets the end of the stack.
fn run_with_large_stack<T: Send, F: FnOnce() -> T + Send>(work: F) -> T {
    // Shared so that, if no thread can be started, the work still runs here.
    let slot = std::sync::Mutex::new(Some(work));
    let take = || slot.lock().ok().and_then(|mut work| work.take());
    let outcome = std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("instant-schema-ts".into())
            .stack_size(EVALUATION_STACK_BYTES)
            .spawn_scoped(scope, || take().map(|work| work()))
            .ok()?;
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    match outcome {
        Some(result) => result,
        None => match take() {
            Some(work) => work(),
            None => unreachable!("the work ran or is still in the slot"),
        },
    }
}

/// A position in a source file, printed as `path:line:column` (both 1-based; the column
/// counts characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// Why a schema module could not be evaluated. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum TypeScriptError {
    #[error("{}: cannot read schema file: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{location}: syntax error: {message}")]
    Syntax {
        location: SourceLocation,
        message: String,
    },

    /// A relative import whose file is missing or unreadable.
    #[error("{location}: cannot import `{specifier}`: {reason}")]
    Import {
        location: SourceLocation,
        specifier: String,
        reason: String,
    },

    #[error("{location}: import cycle: {cycle}")]
    ImportCycle {
        location: SourceLocation,
        cycle: String,
    },

    /// A value imported from an npm package was needed.
    #[error(
        "{location}: cannot evaluate import of `{package}` (package imports need Node to run); \
         export the schema to JSON (for example `JSON.stringify(schema)`) and pass the .json \
         file instead"
    )]
    PackageImport {
        location: SourceLocation,
        package: String,
    },

    /// Something that needs real execution, an unknown DSL name, a wrong argument shape, ...
    #[error("{location}: {message}")]
    Evaluation {
        location: SourceLocation,
        message: String,
    },

    #[error(
        "{location}: nested too deeply (more than {limit} levels); simplify the schema module"
    )]
    TooDeep {
        location: SourceLocation,
        limit: usize,
    },

    #[error(
        "{}: no schema export (expected `export default`, or an export named `schema`, \
         `appSchema` or `instantSchema`)",
        path.display()
    )]
    NoSchemaExport { path: PathBuf },

    #[error("{}: the `{export}` export is {found}, not a schema object", path.display())]
    NotASchema {
        path: PathBuf,
        export: String,
        found: String,
    },
}
