//! Seeded random streams: sam3lab's one RNG ([`sam3lab_util::rng::Rng`], ChaCha8, raw words only).
//! Every image draws from its own stream, `Rng::for_item(seed, split, index)`, so the same seed gives
//! the same world across dependency upgrades and however the work is split across threads.

pub use sam3lab_util::rng::Rng;
