//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> anyhow::Result<u8>`
//! returning the exit code (0 ok, 1 a check failed); an `Err` exits 2.
pub mod eval;
pub mod figures;
pub mod hooks;
pub mod parity;
pub mod probe;
pub mod reproduce;
pub mod retrain;
pub mod run;
pub mod sae;
pub mod segment;
pub mod surgery;
pub mod train;
pub mod weights;
pub mod world;
