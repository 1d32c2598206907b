//! Where manifests come from: a directory on disk, read and watched.
//!
//! `fs` turns the directory into an ordered list of `(path, text)`; `watch`
//! says when to read it again. Neither knows what a manifest means, and
//! neither ever writes into the directory.

pub mod fs;
pub mod watch;

pub use fs::{SourceFile, load_dir};
