//! `sam3lab sae` (not implemented yet).

#[derive(clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("`sam3lab sae` is not implemented yet")
}
