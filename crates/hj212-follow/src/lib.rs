//! Every reader of the archive (the store, the alert engine, the time-series sink, the
//! auditor's CLI) sees an archived record through [`meaning`]: one place decides which
//! records carry data, which only show a site was there, and what a mark or a checkpoint is.

pub mod meaning;

pub use meaning::{Factor, Field, Interpreted, MarkRequest, Meaning, Upload, identity};
