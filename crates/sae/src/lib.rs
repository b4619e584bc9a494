//! sam3lab-sae (placeholder)
