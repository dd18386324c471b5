//! One module per command: each takes its parsed arguments and returns an [`Outcome`].

mod apply;
mod backfill;
mod demo;
mod diagnose;
mod env;
mod extract;
mod gates;
mod gen;
mod ledger;
mod matrix;
mod migrate;
mod model_plan;
mod pipeline;
mod registry;
mod runbook;
mod scan;
mod schema;
mod serve;
mod status;
mod transform;
mod validate;
mod verify;

use crate::cli::{Cli, Command};
use crate::Outcome;

pub fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    let json = cli.json;
    match cli.command {
        Command::Schema(command) => schema::run(command, json),
        Command::Scan(args) => scan::run(args, json),
        Command::ModelPlan(args) => model_plan::run(args, json),
        Command::Serve(args) => serve::run(args, json),
        Command::Extract(args) => extract::run(args, json),
        Command::Transform(args) => transform::run(args, json),
        Command::Verify(args) => verify::run(args, json),
        Command::TxPlan(args) => apply::run_tx_plan(args, json),
        Command::Apply(args) => apply::run_apply(args, json),
        Command::BackfillConversations(args) => backfill::run(args, json),
        Command::Gen(args) => gen::run(args, json),
        Command::Migrate(args) => migrate::run(args, json),
        Command::Demo(args) => demo::run(args, json),
        Command::Env(crate::cli::EnvCommand::Check(args)) => env::run(args, json),
        Command::Matrix(args) => matrix::run(args, json),
        Command::Diagnose(args) => diagnose::run(args, json),
        Command::Runbook(args) => runbook::run(args, json),
        Command::Gates(args) => gates::run(args, json),
        Command::Status(args) => status::run(args, json),
        Command::Validate(args) => validate::run(args, json),
        Command::Pipeline(args) => pipeline::run(args, json),
        Command::Registry(crate::cli::RegistryCommand::Update(args)) => registry::run(args, json),
        Command::Ledger(command) => ledger::run(command, json),
    }
}
