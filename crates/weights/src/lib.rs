//! sam3lab-weights (placeholder)
