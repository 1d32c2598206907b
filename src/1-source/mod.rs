//! Where manifests come from: a directory on disk, read and watched, or
//! the keys below a prefix in etcd, listed and watched (`etcd`).
//!
//! `fs` turns the directory into an ordered list of `(path, text)`; `watch`
//! says when to read it again. Neither knows what a manifest means, and
//! neither ever writes into the directory. `load_dir_cached` keeps each
//! file's text between loads and reads again only the files that changed.

pub mod etcd;
pub mod fs;
pub mod watch;

pub use fs::{DirRead, FileCache, ReadStats, SourceFile, load_dir, load_dir_cached};
