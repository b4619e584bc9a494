//! sam3lab-figures (placeholder)
