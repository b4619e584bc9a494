//! sam3lab-probes (placeholder)
