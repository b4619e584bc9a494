//! sam3lab-surgery (placeholder)
