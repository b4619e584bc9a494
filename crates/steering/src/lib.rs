//! sam3lab-steering (placeholder)
