//! `threadmig schema show|diff|phase1`.

use std::fmt::Write as _;

use anyhow::Context;
use instant_schema::{load_schema, LoadedSchema, Schema};

use crate::cli::{SchemaCommand, SchemaShowArgs};
use crate::output::print_json;
use crate::Outcome;

pub fn run(command: SchemaCommand, json: bool) -> anyhow::Result<Outcome> {
    match command {
        SchemaCommand::Show(args) => show(args, json),
        SchemaCommand::Diff(args) => diff(args, json),
        SchemaCommand::Phase1(args) => phase1(args, json),
    }
}

fn load(spec: &str) -> anyhow::Result<LoadedSchema> {
    Ok(load_schema(spec)?)
}

fn show(args: SchemaShowArgs, json: bool) -> anyhow::Result<Outcome> {
    let loaded = load(&args.file)?;
    let schema = loaded.dsl();
    if json {
        // Exactly the DSL serialisation, so a TypeScript schema converts to JSON losslessly.
        let text = if args.pretty {
            serde_json::to_string_pretty(&*schema)
        } else {
            serde_json::to_string(&*schema)
        }
        .context("serialising the schema")?;
        println!("{text}");
    } else {
        print!("{}", render_schema(&loaded, &schema));
    }
    Ok(Outcome::Ok)
}

/// A human summary: one block per entity with its attributes and flags, then the links.
fn render_schema(loaded: &LoadedSchema, schema: &Schema) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} entities, {} links",
        loaded.path.display(),
        loaded.format,
        schema.entities.len(),
        schema.links.len()
    );
    for (name, entity) in &schema.entities {
        let _ = writeln!(out, "\n{name}");
        let width = entity.attrs.keys().map(String::len).max().unwrap_or(0);
        for (label, attr) in &entity.attrs {
            let mut flags = vec![if attr.required { "required" } else { "optional" }];
            if attr.indexed {
                flags.push("indexed");
            }
            if attr.unique {
                flags.push("unique");
            }
            let _ = writeln!(
                out,
                "  {label:<width$}  {:<7}  {}",
                attr.value_type.as_str(),
                flags.join(" ")
            );
        }
    }
    if !schema.links.is_empty() {
        let _ = writeln!(out, "\nlinks");
        let width = schema.links.keys().map(String::len).max().unwrap_or(0);
        for (name, link) in &schema.links {
            let (f, r) = (&link.forward, &link.reverse);
            let mut extras = String::new();
            if f.required == Some(true) {
                extras.push_str(" required");
            }
            if let Some(on_delete) = &f.on_delete {
                let _ = write!(extras, " onDelete={on_delete}");
            }
            if let Some(on_delete) = &r.on_delete {
                let _ = write!(extras, " reverse.onDelete={on_delete}");
            }
            let _ = writeln!(
                out,
                "  {name:<width$}  {}.{} ({}) <-> {}.{} ({}){extras}",
                f.on,
                f.label,
                f.has.as_str(),
                r.on,
                r.label,
                r.has.as_str()
            );
        }
    }
    out
}
