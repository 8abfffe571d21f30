//! `nymvisor fleet …`: the group's records on etcd, read and changed through the same fleet
//! jobs `run` uses (in the sandboxed helper unless `network_helper` is off).

use anyhow::{Result, bail};
use nymvisor_core::env::Env;
use nymvisor_core::helper::fleet::{FleetOp, FleetReply, Membership};
use nymvisor_core::instance::Instance;
use nymvisor_core::model::fleet::FleetHold;

use crate::args::{FleetCommand, OutputFormat};
use crate::output::{out, outln};

pub async fn fleet(command: FleetCommand, env: &Env) -> Result<()> {
    let instance = Instance::open(env)?;
    let link = crate::network::fleet_for_command(&instance, env)?;
    let (op, output) = match command {
        FleetCommand::Status(args) => (FleetOp::Status, args.output),
        FleetCommand::Hold { reason } => {
            let by = Membership::of(&instance).member;
            let hold = FleetHold {
                reason,
                by,
                since: nymvisor_core::model::now(),
            };
            (FleetOp::Hold { hold: Some(hold) }, OutputFormat::Text)
        }
        FleetCommand::Unhold => (FleetOp::Hold { hold: None }, OutputFormat::Text),
        FleetCommand::Release { member, force } => {
            (FleetOp::ReleaseMember { member, force }, OutputFormat::Text)
        }
        FleetCommand::Retry { version } => (FleetOp::Retry { version }, OutputFormat::Text),
        FleetCommand::Forget { member } => (FleetOp::ForgetMember { member }, OutputFormat::Text),
    };
    match link.call(op).await {
        Err(e) => bail!("{e}"),
        Ok(FleetReply::Status { view, member }) => match output {
            OutputFormat::Json => crate::commands::print_json(&view)?,
            OutputFormat::Text => out!("{}", view.to_text(&member, instance.config.fleet.slots)),
        },
        Ok(FleetReply::Done { note }) => outln!("{note}"),
        Ok(other) => bail!("unexpected answer from the fleet job: {other:?}"),
    }
    Ok(())
}
