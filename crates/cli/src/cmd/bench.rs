//! `sam3lab bench` (not implemented yet).

#[derive(clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("`sam3lab bench` is not implemented yet")
}
