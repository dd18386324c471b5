//! One module per command: each takes its parsed arguments and returns an [`Outcome`].

mod gen;
mod model_plan;
mod scan;
mod schema;
mod serve;
mod transform;

use crate::cli::{Cli, Command};
use crate::Outcome;

pub fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    let json = cli.json;
    match cli.command {
        Command::Schema(command) => schema::run(command, json),
        Command::Scan(args) => scan::run(args, json),
        Command::ModelPlan(args) => model_plan::run(args, json),
        Command::Serve(args) => serve::run(args, json),
        Command::Transform(args) => transform::run(args, json),
        Command::Gen(args) => gen::run(args, json),
    }
}
