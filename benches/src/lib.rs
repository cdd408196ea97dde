//! Shared helpers for the benches live here as they appear.
