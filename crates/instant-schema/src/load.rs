//! Loading a schema file in any shape we meet: `instant.schema.ts`, the DSL serialisation
//! `{entities, links, rooms}`, a wrapped `{schema: …}`, and the server form `{refs, blobs}`
//! (bare or wrapped, as schema pull returns it).

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::{Schema, ShapeError};
use crate::server::ServerSchema;
use crate::typescript::{self, TypeScriptError};

/// Which shape a schema document had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaFormat {
    /// `instant.schema.ts`, evaluated natively.
    TypeScript,
    /// The DSL serialisation `{entities, links, rooms}`.
    Json,
    /// `{schema: {entities, …}}`, as the phase-1 generator writes it.
    JsonWrapped,
    /// The server form `{refs, blobs}`.
    Server,
    /// `{schema: {refs, blobs}, …}`, as schema pull returns it.
    ServerWrapped,
}

impl SchemaFormat {
    /// The name reports use (`schemaType`), compatible with the old scripts where they overlap.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaFormat::TypeScript => "typescript",
            SchemaFormat::Json => "json",
            SchemaFormat::JsonWrapped => "json:wrapped",
            SchemaFormat::Server => "server",
            SchemaFormat::ServerWrapped => "server:wrapped",
        }
    }
}

impl fmt::Display for SchemaFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schema in the form it was given.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaDocument {
    Dsl(Schema),
    Server(ServerSchema),
}

/// A loaded schema and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSchema {
    pub path: PathBuf,
    pub format: SchemaFormat,
    pub document: SchemaDocument,
}

impl LoadedSchema {
    /// The schema in DSL form (converted when the file was in server form).
    pub fn dsl(&self) -> Cow<'_, Schema> {
        match &self.document {
            SchemaDocument::Dsl(schema) => Cow::Borrowed(schema),
            SchemaDocument::Server(server) => Cow::Owned(server.to_dsl()),
        }
    }

    /// The schema in server form. A DSL schema has no attribute ids; the planner gives the
    /// attributes it creates deterministic ones.
    pub fn server(&self) -> Cow<'_, ServerSchema> {
        match &self.document {
            SchemaDocument::Dsl(schema) => Cow::Owned(schema.to_server()),
            SchemaDocument::Server(server) => Cow::Borrowed(server),
        }
    }
}

/// Why a schema file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unsupported schema file extension (expected .ts, .mts, .tsx, .cts or .json)")]
    UnsupportedExtension { path: PathBuf },
    #[error("{path}:{line}:{column}: invalid JSON: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {source}")]
    Shape {
        path: PathBuf,
        #[source]
        source: ShapeError,
    },
    #[error(transparent)]
    TypeScript(#[from] TypeScriptError),
    #[error("unknown built-in schema `{name}` (known: {known})")]
    UnknownBuiltin { name: String, known: String },
    #[error("{path}: invalid schema: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<ShapeError>,
    },
}

/// Loads a schema file, choosing the reader by extension and, for JSON, by shape.
pub fn load_schema_file(path: &Path) -> Result<LoadedSchema, SchemaError> {
    let extension = path
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "ts" | "mts" | "tsx" | "cts" => {
            let value = typescript::evaluate_schema_file(path)?;
            from_evaluated_typescript(path, &value)
        }
        "json" => {
            let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            load_schema_json(path, &text)
        }
        _ => Err(SchemaError::UnsupportedExtension {
            path: path.to_path_buf(),
        }),
    }
}

/// Loads a TypeScript schema whose text is already in memory (the built-in schemas).
pub fn load_schema_typescript(path: &Path, source: &str) -> Result<LoadedSchema, SchemaError> {
    let value = typescript::evaluate_schema_source(path, source)?;
    from_evaluated_typescript(path, &value)
}

fn from_evaluated_typescript(path: &Path, value: &Value) -> Result<LoadedSchema, SchemaError> {
    let schema = Schema::from_dsl_json(value).map_err(|source| SchemaError::Shape {
        path: path.to_path_buf(),
        source,
    })?;
    checked(path, SchemaFormat::TypeScript, SchemaDocument::Dsl(schema))
}

/// Loads a schema from JSON text; `path` is used in messages only.
pub fn load_schema_json(path: &Path, text: &str) -> Result<LoadedSchema, SchemaError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text).map_err(|err| SchemaError::Json {
        path: path.to_path_buf(),
        line: err.line(),
        column: err.column(),
        message: strip_position(&err.to_string()),
    })?;
    let (format, document) = document_from_json(&value).map_err(|source| SchemaError::Shape {
        path: path.to_path_buf(),
        source,
    })?;
    checked(path, format, document)
}

fn checked(
    path: &Path,
    format: SchemaFormat,
    document: SchemaDocument,
) -> Result<LoadedSchema, SchemaError> {
    if let SchemaDocument::Dsl(schema) = &document {
        let problems = schema.validate();
        if !problems.is_empty() {
            return Err(SchemaError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
    }
    Ok(LoadedSchema {
        path: path.to_path_buf(),
        format,
        document,
    })
}

/// Recognises the shape of a JSON schema document.
pub fn document_from_json(value: &Value) -> Result<(SchemaFormat, SchemaDocument), ShapeError> {
    let shape_error = |message: &str| ShapeError {
        at: "(root)".into(),
        message: message.into(),
    };
    let root = value
        .as_object()
        .ok_or_else(|| shape_error("expected a JSON object holding a schema"))?;
    if root.contains_key("entities") {
        return Ok((
            SchemaFormat::Json,
            SchemaDocument::Dsl(Schema::from_dsl_json(value)?),
        ));
    }
    if root.contains_key("refs") || root.contains_key("blobs") {
        return Ok((
            SchemaFormat::Server,
            SchemaDocument::Server(ServerSchema::from_json(value)?),
        ));
    }
    if let Some(inner @ Value::Object(inner_obj)) = root.get("schema") {
        let prefix = |source: ShapeError| ShapeError {
            at: format!("schema.{}", source.at).replace("schema.(root)", "schema"),
            message: source.message,
        };
        if inner_obj.contains_key("entities") {
            let schema = Schema::from_dsl_json(inner).map_err(prefix)?;
            return Ok((SchemaFormat::JsonWrapped, SchemaDocument::Dsl(schema)));
        }
        if inner_obj.contains_key("refs") || inner_obj.contains_key("blobs") {
            let server = ServerSchema::from_json(inner).map_err(prefix)?;
            return Ok((SchemaFormat::ServerWrapped, SchemaDocument::Server(server)));
        }
    }
    if root.contains_key("new-schema") || root.contains_key("current-schema") {
        return Err(shape_error(
            "this is a schema plan response; extract `current-schema` or `new-schema` into its own file",
        ));
    }
    Err(shape_error(
        "not a schema: expected `{entities, links, rooms}`, `{refs, blobs}` or either wrapped in `{schema: …}`",
    ))
}

/// serde_json appends " at line L column C" to its messages; the location is printed separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn load(text: &str) -> Result<LoadedSchema, SchemaError> {
        load_schema_json(Path::new("in.json"), text)
    }

    #[test]
    fn recognises_every_json_shape() {
        let dsl = r#"{"entities":{"a":{"attrs":{}}},"links":{},"rooms":{}}"#;
        let server = r#"{"refs":{},"blobs":{"a":{"id":{"id":"x","value-type":"blob","cardinality":"one","forward-identity":["y","a","id"],"unique?":true,"index?":false,"required?":false}}}}"#;
        let formats: Vec<&str> = [
            dsl.to_string(),
            format!(r#"{{"schema":{dsl},"ok":true}}"#),
            format!("\u{feff}{server}"),
            format!(r#"{{"schema":{server},"attrs":[],"app-title":"t"}}"#),
        ]
        .iter()
        .map(|text| load(text).unwrap().format.as_str())
        .collect();
        expect![[r#"["json", "json:wrapped", "server", "server:wrapped"]"#]]
            .assert_eq(&format!("{formats:?}"));
    }

    #[test]
    fn errors_name_the_file_and_place() {
        let cases = [
            "{\"entities\": {\n  \"a\": }",
            "[1, 2]",
            r#"{"current-schema":{},"new-schema":{},"steps":[]}"#,
            r#"{"schema":{"entities":{"a":{"attrs":{"x":{"valueType":"text"}}}}}}"#,
            r#"{"entities":{"a":{"attrs":{}}},"links":{"l":{"forward":{"on":"a","has":"one","label":"b"},"reverse":{"on":"zzz","has":"many","label":"c"}}}}"#,
        ];
        let messages: Vec<String> = cases
            .iter()
            .map(|text| load(text).unwrap_err().to_string())
            .collect();
        expect![[r#"
            [
                "in.json:2:8: invalid JSON: expected value",
                "in.json: (root): expected a JSON object holding a schema",
                "in.json: (root): this is a schema plan response; extract `current-schema` or `new-schema` into its own file",
                "in.json: schema.entities.a.attrs.x.valueType: unknown value type `text` (expected string, number, boolean, date, json or any)",
                "in.json: invalid schema: links.l.reverse.on: link `l` points at `zzz`, which is not an entity of this schema",
            ]
        "#]]
        .assert_debug_eq(&messages);
    }

    #[test]
    fn unsupported_extension_is_refused() {
        let err = load_schema_file(Path::new("schema.yaml")).unwrap_err();
        expect!["schema.yaml: unsupported schema file extension (expected .ts, .mts, .tsx, .cts or .json)"]
            .assert_eq(&err.to_string());
    }
}
