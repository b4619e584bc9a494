//! sam3lab-eval (placeholder)
