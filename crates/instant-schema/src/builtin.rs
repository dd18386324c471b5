//! Schemas that ship with threadmig, written as `instant.schema.ts` files in `schemas/` and
//! loaded by the same native TypeScript loader as any user's file.

use std::path::Path;

use crate::load::{load_schema_typescript, LoadedSchema, SchemaError};

/// A schema compiled into the binary. Refer to one on the command line as `builtin:<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinSchema {
    /// `@ekairos/thread` V1: the migration target.
    ThreadV1,
    /// The legacy `@ekairos/story` model (G2): the migration source.
    LegacyStory,
    /// The migration-domain app the old scripts wrote runs, steps and artifacts into.
    MigrationDomain,
}

impl BuiltinSchema {
    pub const ALL: [BuiltinSchema; 3] = [
        BuiltinSchema::ThreadV1,
        BuiltinSchema::LegacyStory,
        BuiltinSchema::MigrationDomain,
    ];

    /// The prefix that marks a built-in schema where a file path is expected.
    pub const PREFIX: &'static str = "builtin:";

    pub fn name(self) -> &'static str {
        match self {
            BuiltinSchema::ThreadV1 => "thread-v1",
            BuiltinSchema::LegacyStory => "legacy-story",
            BuiltinSchema::MigrationDomain => "migration-domain",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|builtin| builtin.name() == name)
    }

    /// The TypeScript source as shipped.
    pub fn source(self) -> &'static str {
        match self {
            BuiltinSchema::ThreadV1 => include_str!("../schemas/thread-v1.ts"),
            BuiltinSchema::LegacyStory => include_str!("../schemas/legacy-story.ts"),
            BuiltinSchema::MigrationDomain => include_str!("../schemas/migration-domain.ts"),
        }
    }

    /// Loads the schema. The reported path is `builtin:<name>`.
    pub fn load(self) -> Result<LoadedSchema, SchemaError> {
        let path = format!("{}{}", Self::PREFIX, self.name());
        load_schema_typescript(Path::new(&path), self.source())
    }
}

/// Loads `builtin:<name>` or a schema file path.
pub fn load_schema(spec: &str) -> Result<LoadedSchema, SchemaError> {
    match spec.strip_prefix(BuiltinSchema::PREFIX) {
        Some(name) => BuiltinSchema::from_name(name)
            .ok_or_else(|| SchemaError::UnknownBuiltin {
                name: name.to_string(),
                known: BuiltinSchema::ALL
                    .map(|builtin| format!("{}{}", BuiltinSchema::PREFIX, builtin.name()))
                    .join(", "),
            })?
            .load(),
        None => crate::load::load_schema_file(Path::new(spec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_loads_and_validates() {
        for builtin in BuiltinSchema::ALL {
            let loaded = builtin
                .load()
                .unwrap_or_else(|err| panic!("{}: {err}", builtin.name()));
            assert!(
                !loaded.dsl().entities.is_empty(),
                "{} has entities",
                builtin.name()
            );
        }
    }

    #[test]
    fn thread_v1_has_the_six_thread_namespaces_and_their_links() {
        let schema = BuiltinSchema::ThreadV1.load().unwrap().dsl().into_owned();
        for entity in [
            "thread_threads",
            "thread_contexts",
            "thread_items",
            "thread_executions",
            "thread_steps",
            "thread_parts",
        ] {
            assert!(schema.entities.contains_key(entity), "missing {entity}");
        }
        let parts_key = &schema.entities["thread_parts"].attrs["key"];
        assert!(parts_key.required && parts_key.unique && parts_key.indexed);
        let link = &schema.links["threadContextsCurrentExecution"];
        assert_eq!(
            (link.forward.on.as_str(), link.forward.label.as_str()),
            ("thread_contexts", "currentExecution")
        );
        assert_eq!(link.reverse.label, "currentOf");
    }

    #[test]
    fn unknown_builtin_is_named() {
        let err = load_schema("builtin:thread-v9").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown built-in schema `thread-v9` (known: builtin:thread-v1, builtin:legacy-story, builtin:migration-domain)"
        );
    }
}
