//! `threadmig schema show|diff|phase1|plan`.

mod plan_report;

use std::fmt::Write as _;

use anyhow::Context;
use instant_schema::phase1::{generate_phase1, Phase1Input, Phase1Meta};
use instant_schema::plan::{
    existing_app_schema, instructions, plan, Instruction, PlanOptions, PlanStep,
};
use instant_schema::severity::Gate;
use instant_schema::{load_schema, LoadedSchema, Schema, SchemaDocument, ServerSchema};
use serde_json::json;

use crate::cli::{SchemaCommand, SchemaDiffArgs, SchemaPhase1Args, SchemaShowArgs};
use crate::output::{now_rfc3339, print_json, write_atomic};
use crate::Outcome;

pub fn run(command: SchemaCommand, json: bool) -> anyhow::Result<Outcome> {
    match command {
        SchemaCommand::Show(args) => show(args, json),
        SchemaCommand::Diff(args) => diff(args, json),
        SchemaCommand::Phase1(args) => phase1(args, json),
        SchemaCommand::Plan(args) => plan_report::run(args, json),
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
            let mut flags = vec![if attr.required {
                "required"
            } else {
                "optional"
            }];
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

fn diff(args: SchemaDiffArgs, json: bool) -> anyhow::Result<Outcome> {
    let current = load(&args.current)?;
    let desired = load(&args.desired)?;
    let options = PlanOptions {
        check_types: !args.no_check_types,
        supports_background_updates: !args.no_background_updates,
    };
    // A pulled schema is the app as it is, ids included; a DSL file stands for an app that
    // already has that schema.
    let current_server: ServerSchema = match &current.document {
        SchemaDocument::Server(server) => server.clone(),
        SchemaDocument::Dsl(schema) => existing_app_schema(schema),
    };
    let header = json!({
        "current": {"source": args.current, "schemaType": current.format.as_str()},
        "desired": {"source": args.desired, "schemaType": desired.format.as_str()},
        "options": {
            "check_types": options.check_types,
            "supports_background_updates": options.supports_background_updates,
        },
    });
    match plan(&current_server, &desired.dsl(), options) {
        Ok(plan) => {
            let gate = plan.gate();
            let counts = plan.counts();
            if json {
                let mut out = header;
                out["steps"] = serde_json::to_value(&plan.steps)?;
                out["severity"] = serde_json::to_value(counts)?;
                out["countsByType"] = serde_json::to_value(plan.counts_by_type())?;
                out["gate"] = serde_json::to_value(gate)?;
                out["errors"] = json!([]);
                print_json(&out)?;
            } else {
                print!("{}", render_plan(&plan.steps, &current_server));
                println!(
                    "{} steps: {} critical, {} warning, {} review, {} safe",
                    counts.total(),
                    counts.critical,
                    counts.warning,
                    counts.review,
                    counts.safe
                );
                println!("gate: {}", gate.as_str());
            }
            Ok(if gate == Gate::Safe {
                Outcome::Ok
            } else {
                Outcome::Findings
            })
        }
        Err(errors) => {
            if json {
                let mut out = header;
                out["steps"] = json!([]);
                out["gate"] = serde_json::to_value(errors.gate())?;
                out["errors"] = errors
                    .errors
                    .iter()
                    .map(|error| {
                        json!({
                            "kind": error.kind,
                            "entity": error.etype,
                            "label": error.label,
                            "message": error.message,
                        })
                    })
                    .collect();
                out["serverError"] = errors.to_envelope();
                print_json(&out)?;
            } else {
                println!("the server would refuse this schema:");
                for error in &errors.errors {
                    println!("  {}", error.message);
                }
                println!("gate: {}", errors.gate().as_str());
            }
            Ok(Outcome::Findings)
        }
    }
}

/// The plan as a table: one row per step with its severity, type, target and description.
fn render_plan(steps: &[PlanStep], current: &ServerSchema) -> String {
    if steps.is_empty() {
        return "no steps: the desired schema is already in place\n".into();
    }
    instructions_table(&instructions(steps, current))
}

/// Plan instructions as an aligned text table (`schema diff` and the `schema plan` report).
fn instructions_table(steps: &[Instruction]) -> String {
    let rows: Vec<[String; 5]> = steps
        .iter()
        .map(|step| {
            [
                step.index.to_string(),
                step.severity.as_str().to_string(),
                step.step_type.clone(),
                step.target.clone().unwrap_or_else(|| "-".into()),
                step.summary.clone(),
            ]
        })
        .collect();
    let header = ["#", "severity", "type", "target", "description"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(
            out,
            "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    }
    out
}

fn phase1(args: SchemaPhase1Args, json: bool) -> anyhow::Result<Outcome> {
    let loaded = load(&args.schema_file)?;
    let diagnostics = match &args.diagnostics {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|err| {
                anyhow::anyhow!(
                    "{}:{}:{}: invalid JSON",
                    path.display(),
                    err.line(),
                    err.column()
                )
            })?;
            Some(value)
        }
        None => None,
    };
    let input = Phase1Input {
        diagnostics: diagnostics.as_ref(),
        only_orgs: args.orgs.iter().map(|org| org.trim().to_string()).collect(),
        remove_links: args.remove_links.iter().cloned().collect(),
    };
    let result = generate_phase1(&loaded.dsl(), &input).map_err(|err| match &args.diagnostics {
        Some(path) => anyhow::anyhow!("{}: {err}", path.display()),
        None => anyhow::anyhow!("{err}"),
    })?;
    let meta = Phase1Meta {
        generated_at: now_rfc3339(),
        source_schema: args.schema_file.clone(),
        schema_type: Some(loaded.format.as_str().to_string()),
        diagnostics_file: args
            .diagnostics
            .as_ref()
            .map(|path| path.display().to_string()),
    };
    let mut report = serde_json::to_vec_pretty(&result.to_report(&meta))?;
    report.push(b'\n');
    write_atomic(&args.out, &report)?;
    write_atomic(&args.out_md, result.to_markdown(&meta).as_bytes())?;
    let summary = json!({
        "ok": true,
        "outFile": args.out,
        "outMd": args.out_md,
        "removedLinks": result.removed_links,
        "missingLinks": result.missing_links,
    });
    if json {
        print_json(&summary)?;
    } else {
        println!(
            "removed {} link(s): {}",
            result.removed_links.len(),
            result.removed_links.join(", ")
        );
        if !result.missing_links.is_empty() {
            println!("not in the schema: {}", result.missing_links.join(", "));
        }
        println!("wrote {} and {}", args.out.display(), args.out_md.display());
    }
    Ok(Outcome::Ok)
}
