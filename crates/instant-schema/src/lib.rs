//! Everything about InstantDB schemas, natively in Rust.
//!
//! - [`model`]: the schema as the TypeScript DSL describes it (`i.schema({entities, links, rooms})`).
//! - [`server`]: the server's attribute form (`{refs, blobs}`) used by schema pull and plan.
//! - [`typescript`]: loads `instant.schema.ts` with a real TypeScript parser, evaluating only
//!   the declarative subset a schema file uses (no Node, no regular expressions).
//!
//! **This crate does no network I/O.** The only files it reads are schema files and the
//! relative imports they name.

pub mod builtin;
mod load;
pub mod model;
pub mod phase1;
pub mod plan;
pub mod server;
pub mod severity;
pub mod typescript;

pub use builtin::{load_schema, BuiltinSchema};
pub use load::{
    document_from_json, load_schema_file, load_schema_json, load_schema_typescript, LoadedSchema,
    SchemaDocument, SchemaError, SchemaFormat,
};
pub use model::{Attr, Cardinality, Entity, Link, LinkEnd, Schema, ShapeError, ValueType};
pub use server::{AttrKind, Identity, ServerAttr, ServerSchema};
