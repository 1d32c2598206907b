//! Reads every manifest file below the config directory, in a stable order.
//!
//! Stable order matters: it makes diagnostics and translation deterministic.
//! Hidden files and directories (editor swap files, `.git`) and anything that
//! is not `*.yaml`/`*.yml` are ignored. Links are followed only when they
//! stay inside the directory, so a manifests tree cannot pull in files from
//! elsewhere; linked directories are never entered (no loops), and say so.
//! Only regular files are opened: a FIFO named `x.yaml` would block the read
//! forever, and a socket or device is no manifest. Reads are bounded by
//! `MAX_FILE_BYTES` even when a file grows while it is read.
//!
//! `load_dir_cached` does the same walk with a `FileCache`: every file is
//! still listed and `stat`ed under the same rules, but one whose identity
//! (device, inode, length, mtime and ctime with nanoseconds) is unchanged
//! since it was last read keeps the text read then. A file changed within
//! `SETTLE_TIME` of being read is read again next time (a second write in
//! the same clock tick would leave its timestamps unchanged).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::diag::{Code, Diagnostic, Pos};

/// Files larger than this are refused rather than parsed.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Directories nested deeper than this are not entered.
const MAX_DEPTH: usize = 32;

/// One manifest file as read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as the user would open it: the config dir joined with the
    /// file's relative path.
    pub path: PathBuf,
    pub text: String,
}

/// True for names that edgeplane reads: `*.yaml`/`*.yml`, not hidden, not an
/// editor's temporary file.
pub fn is_manifest_name(name: &str) -> bool {
    if name.starts_with('.') || name.starts_with('#') || name.ends_with('~') {
        return false;
    }
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Lists and reads all manifests under `root`. Problems with single files
/// are diagnostics; they never stop the others from being read.
pub fn load_dir(root: &Path) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let d = scan(root, None, SystemTime::now());
    (d.files, d.diagnostics)
}

/// As `load_dir`, reading only the files that changed since the last call
/// with the same cache; the others keep the text read then. The files and
/// diagnostics are exactly those `load_dir` would return.
pub fn load_dir_cached(root: &Path, cache: &mut FileCache) -> DirRead {
    scan(root, Some(cache), SystemTime::now())
}

/// What one `load_dir_cached` found, and how much of it was read.
#[derive(Clone, Debug, Default)]
pub struct DirRead {
    pub files: Vec<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
    pub stats: ReadStats,
}

/// How many manifests were read from disk and how many kept their cached
/// text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Files opened and read (new, changed, or not yet settled).
    pub read: usize,
    /// Files whose identity was unchanged: their cached text was used.
    pub reused: usize,
}

/// A file changed less than this before it was read is read again on the
/// next load even if its timestamps look unchanged: file timestamps come
/// from a clock that advances in ticks, so two writes in one tick leave
/// them equal.
pub const SETTLE_TIME: Duration = Duration::from_secs(1);
/// The same for timestamps without sub-second part (a file system that
/// stores whole seconds, or two for FAT).
pub const COARSE_SETTLE_TIME: Duration = Duration::from_secs(2);

/// The text of every manifest read by `load_dir_cached`, with the identity
/// of the file it was read from. Entries of files no longer listed are
/// dropped at each load.
#[derive(Debug, Default)]
pub struct FileCache {
    entries: HashMap<PathBuf, CacheEntry>,
}

impl FileCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Files remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Debug)]
struct CacheEntry {
    stamp: Stamp,
    /// Read at least the settle time after its last change: unchanged
    /// timestamps then mean unchanged content.
    settled: bool,
    text: String,
}

/// What identifies a file's content without reading it.
#[cfg(unix)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

#[cfg(unix)]
fn stamp(meta: &std::fs::Metadata) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    Some(Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    })
}

/// Elsewhere no ctime and inode: every file is read every time.
#[cfg(not(unix))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp;

#[cfg(not(unix))]
fn stamp(_meta: &std::fs::Metadata) -> Option<Stamp> {
    None
}

/// True when the file's last change (mtime and ctime) lies far enough
/// before `now` that a later write would show in its timestamps: a cached
/// copy of a file read at `now` can then be trusted while its identity is
/// unchanged.
pub fn is_settled(meta: &std::fs::Metadata, now: SystemTime) -> bool {
    stamp(meta).is_some_and(|s| settled(&s, now))
}

#[cfg(unix)]
fn settled(s: &Stamp, now: SystemTime) -> bool {
    let nanos = |(sec, nsec): (i64, i64)| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
    let margin = if s.mtime.1 == 0 && s.ctime.1 == 0 {
        COARSE_SETTLE_TIME
    } else {
        SETTLE_TIME
    };
    let Ok(since_epoch) = now.duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let limit = since_epoch.as_nanos() as i128 - margin.as_nanos() as i128;
    nanos(s.mtime) < limit && nanos(s.ctime) < limit
}

#[cfg(not(unix))]
fn settled(_s: &Stamp, _now: SystemTime) -> bool {
    false
}

/// One walk of the directory.
struct Scan<'a> {
    canon_root: PathBuf,
    /// When this scan started: the reference for `settled`.
    started: SystemTime,
    cache: Option<&'a mut FileCache>,
    /// This scan's cache entries; they replace the old ones at the end.
    next: HashMap<PathBuf, CacheEntry>,
    out: DirRead,
}

/// `started` is when the scan began: a file read now is trusted from its
/// `stat` next time only if it was last changed `SETTLE_TIME` before.
fn scan(root: &Path, cache: Option<&mut FileCache>, started: SystemTime) -> DirRead {
    let mut out = DirRead::default();
    let canon_root = match std::fs::canonicalize(root) {
        Ok(p) => p,
        Err(e) => {
            out.diagnostics.push(
                Diagnostic::error(
                    Pos::new(root, 0, 0),
                    None,
                    format!("cannot read the config directory: {e}"),
                )
                .with_code(Code::Unreadable),
            );
            // Nothing is listed: forget everything.
            if let Some(c) = cache {
                c.entries.clear();
            }
            return out;
        }
    };
    let mut s = Scan {
        canon_root,
        started,
        cache,
        next: HashMap::new(),
        out,
    };
    s.walk(root, 0);
    let Scan {
        cache,
        next,
        mut out,
        ..
    } = s;
    if let Some(c) = cache {
        c.entries = next;
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

impl Scan<'_> {
    /// Reads `path` (already checked to be, or to link to, a regular file
    /// inside the root), or takes its cached text when `meta` (its `stat`)
    /// shows the same file as when it was read.
    fn take(&mut self, path: &Path, meta: Option<std::fs::Metadata>) {
        if let Some(cache) = self.cache.as_deref_mut()
            && let Some(now) = meta.as_ref().and_then(stamp)
            && let Some(e) = cache.entries.remove(path)
            && e.settled
            && e.stamp == now
        {
            self.out.files.push(SourceFile {
                path: path.to_path_buf(),
                text: e.text.clone(),
            });
            self.out.stats.reused += 1;
            self.next.insert(path.to_path_buf(), e);
            return;
        }
        self.out.stats.read += 1;
        let Some((file, meta)) = read_one(path, &mut self.out.diagnostics) else {
            return;
        };
        if self.cache.is_some()
            && let Some(st) = stamp(&meta)
        {
            self.next.insert(
                path.to_path_buf(),
                CacheEntry {
                    stamp: st,
                    settled: settled(&st, self.started),
                    text: file.text.clone(),
                },
            );
        }
        self.out.files.push(file);
    }

    fn walk(&mut self, dir: &Path, depth: usize) {
        if depth > MAX_DEPTH {
            self.out.diagnostics.push(Diagnostic::warning(
                Pos::new(dir, 0, 0),
                None,
                format!("directory nested deeper than {MAX_DEPTH} levels is not read"),
            ));
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                // A directory removed while we walk is an ordinary race.
                if e.kind() != std::io::ErrorKind::NotFound {
                    self.out.diagnostics.push(
                        Diagnostic::error(
                            Pos::new(dir, 0, 0),
                            None,
                            format!("cannot list directory: {e}"),
                        )
                        .with_code(Code::Unreadable),
                    );
                }
                return;
            }
        };
        let mut names: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        names.sort();
        for (name, path) in names {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                self.walk(&path, depth + 1);
                continue;
            }
            let meta = if ft.is_symlink() {
                match std::fs::canonicalize(&path) {
                    Ok(target) if target.is_dir() => {
                        self.out.diagnostics.push(Diagnostic::warning(
                            Pos::new(&path, 0, 0),
                            None,
                            "link to a directory is not followed; the files below it are not read",
                        ));
                        continue;
                    }
                    _ if !is_manifest_name(&name) => continue,
                    Ok(target) if target.starts_with(&self.canon_root) && target.is_file() => {
                        // The target's identity, for the cache.
                        std::fs::metadata(&target).ok()
                    }
                    Ok(_) => {
                        self.out.diagnostics.push(Diagnostic::warning(
                            Pos::new(&path, 0, 0),
                            None,
                            "link points outside the config directory (or not to a file); not read",
                        ));
                        continue;
                    }
                    // Dangling link: nothing to read.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    // A loop of links, or a path too deep to resolve.
                    Err(e) => {
                        self.out.diagnostics.push(Diagnostic::warning(
                            Pos::new(&path, 0, 0),
                            None,
                            format!("link cannot be resolved ({e}); not read"),
                        ));
                        continue;
                    }
                }
            } else if !is_manifest_name(&name) {
                continue;
            } else if !ft.is_file() {
                self.out.diagnostics.push(not_regular(&path, ft));
                continue;
            } else {
                Some(meta)
            };
            self.take(&path, meta);
        }
    }
}

/// Opens for reading with `O_NONBLOCK`: a FIFO then opens at once instead
/// of waiting for a writer (the file type is checked on the open handle).
/// For regular files it changes nothing.
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK);
    opts.open(path)
}

fn not_regular(path: &Path, ft: std::fs::FileType) -> Diagnostic {
    #[cfg(unix)]
    let what = {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_block_device() || ft.is_char_device() {
            "a device"
        } else {
            "of an unknown file type"
        }
    };
    #[cfg(not(unix))]
    let what = {
        let _ = ft;
        "of an unknown file type"
    };
    Diagnostic::warning(
        Pos::new(path, 0, 0),
        None,
        format!("{what}, not a regular file; not read"),
    )
}

fn too_large(path: &Path, size: &str) -> Diagnostic {
    Diagnostic::error(
        Pos::new(path, 0, 0),
        None,
        format!("file is {size} bytes; manifests larger than {MAX_FILE_BYTES} bytes are not read"),
    )
    .with_code(Code::Unreadable)
}

/// Reads one file; also returns its `stat` as taken on the open handle
/// before reading (a change during the read shows as a different identity
/// next time).
fn read_one(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<(SourceFile, std::fs::Metadata)> {
    let read = open_nonblocking(path).and_then(|file| {
        let meta = file.metadata()?;
        Ok((file, meta))
    });
    let (file, meta) = match read {
        Ok(r) => r,
        // Deleted between listing and reading: the next event re-reads.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            diags.push(
                Diagnostic::error(Pos::new(path, 0, 0), None, format!("cannot read file: {e}"))
                    .with_code(Code::Unreadable),
            );
            return None;
        }
    };
    // Replaced by something else since it was listed.
    if !meta.is_file() {
        diags.push(not_regular(path, meta.file_type()));
        return None;
    }
    if meta.len() > MAX_FILE_BYTES {
        diags.push(too_large(path, &meta.len().to_string()));
        return None;
    }
    // Never more than the limit, even if the file grows meanwhile.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    if let Err(e) = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes) {
        diags.push(
            Diagnostic::error(Pos::new(path, 0, 0), None, format!("cannot read file: {e}"))
                .with_code(Code::Unreadable),
        );
        return None;
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        diags.push(too_large(path, &format!("more than {MAX_FILE_BYTES}")));
        return None;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Some((
            SourceFile {
                path: path.to_path_buf(),
                text,
            },
            meta,
        )),
        Err(e) => {
            let (line, column) = line_col_of_byte(e.as_bytes(), e.utf8_error().valid_up_to());
            diags.push(
                Diagnostic::error(
                    Pos::new(path, line, column),
                    None,
                    "file is not valid UTF-8 text",
                )
                .with_code(Code::Unreadable),
            );
            None
        }
    }
}

fn line_col_of_byte(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_and_ignored() {
        assert!(is_manifest_name("vs.yaml"));
        assert!(is_manifest_name("vs.yml"));
        assert!(!is_manifest_name(".vs.yaml.swp"));
        assert!(!is_manifest_name(".#vs.yaml"));
        assert!(!is_manifest_name("vs.yaml~"));
        assert!(!is_manifest_name("#vs.yaml#"));
        assert!(!is_manifest_name("notes.txt"));
    }

    #[test]
    fn reads_sorted_recursive_and_reports_bad_utf8() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("b/c"))?;
        std::fs::write(dir.path().join("b/c/z.yaml"), "z: 1\n")?;
        std::fs::write(dir.path().join("a.yml"), "a: 1\n")?;
        std::fs::write(dir.path().join(".hidden.yaml"), "h: 1\n")?;
        std::fs::write(dir.path().join("bad.yaml"), b"ok: 1\nx: \xff\n")?;
        let (files, diags) = load_dir(dir.path());
        let names: Vec<_> = files
            .iter()
            .map(|f| f.path.strip_prefix(dir.path()).map(Path::to_path_buf))
            .collect::<Result<_, _>>()?;
        assert_eq!(
            names,
            vec![PathBuf::from("a.yml"), PathBuf::from("b/c/z.yaml")]
        );
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].pos.line, diags[0].pos.column), (2, 4));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_opened_and_links_say_why_not()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::write(d.join("ok.yaml"), "a: 1\n")?;
        let fifo = d.join("x.yaml");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status()?;
        assert!(status.success());
        let _sock = std::os::unix::net::UnixListener::bind(d.join("z.yaml"))?;
        std::fs::create_dir(d.join("y.yaml"))?;
        std::os::unix::fs::symlink("/", d.join("root"))?;
        std::os::unix::fs::symlink("loop-b.yaml", d.join("loop-a.yaml"))?;
        std::os::unix::fs::symlink("loop-a.yaml", d.join("loop-b.yaml"))?;
        std::os::unix::fs::symlink("gone.yaml", d.join("dangling.yaml"))?;
        let (files, diags) = load_dir(d);
        assert_eq!(files.len(), 1, "{files:?}");
        let said: Vec<(String, String)> = diags
            .iter()
            .map(|x| {
                let name = x
                    .pos
                    .file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                (name.unwrap_or_default(), x.message.clone())
            })
            .collect();
        assert!(diags.iter().all(|x| !x.is_error()), "{said:?}");
        let has = |file: &str, text: &str| said.iter().any(|(f, m)| f == file && m.contains(text));
        assert!(has("x.yaml", "a FIFO, not a regular file"), "{said:?}");
        assert!(has("z.yaml", "a socket, not a regular file"), "{said:?}");
        assert!(
            has("root", "link to a directory is not followed"),
            "{said:?}"
        );
        assert!(has("loop-a.yaml", "link cannot be resolved"), "{said:?}");
        assert!(has("loop-b.yaml", "link cannot be resolved"), "{said:?}");
        assert_eq!(said.len(), 5, "{said:?}");
        // Opened directly (as when a file is swapped for a FIFO after it was
        // listed), a FIFO does not block either.
        let mut direct = Vec::new();
        assert!(read_one(&fifo, &mut direct).is_none());
        assert!(direct[0].message.contains("a FIFO"), "{direct:?}");
        Ok(())
    }

    /// A Kubernetes ConfigMap volume: `x.yaml -> ..data/x.yaml`, `..data ->
    /// ..2024_01_01_00_00_00.1/`. Read once, silently.
    #[cfg(unix)]
    #[test]
    fn configmap_volume_layout_reads_without_warnings() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir(d.join("..2024_01_01_00_00_00.1"))?;
        std::fs::write(d.join("..2024_01_01_00_00_00.1/x.yaml"), "a: 1\n")?;
        std::os::unix::fs::symlink("..2024_01_01_00_00_00.1", d.join("..data"))?;
        std::os::unix::fs::symlink("..data/x.yaml", d.join("x.yaml"))?;
        let (files, diags) = load_dir(d);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, d.join("x.yaml"));
        Ok(())
    }

    /// The cache gives what `load_dir` gives, reading only what changed.
    #[cfg(unix)]
    #[test]
    fn cached_loads_read_only_changed_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir(d.join("sub"))?;
        for (name, text) in [
            ("a.yaml", "a: 1\n"),
            ("b.yaml", "b: 1\n"),
            ("sub/c.yaml", "c: 1\n"),
        ] {
            std::fs::write(d.join(name), text)?;
        }
        std::fs::write(d.join("bad.yaml"), b"x: \xff\n")?;
        std::os::unix::fs::symlink("sub/c.yaml", d.join("link.yaml"))?;
        let mut cache = FileCache::new();
        // As if every file had been written long before.
        let later = || SystemTime::now() + Duration::from_secs(60);
        let check = |r: &DirRead| {
            let (files, diags) = load_dir(d);
            assert_eq!(r.files, files);
            assert_eq!(r.diagnostics, diags);
        };
        let r = scan(d, Some(&mut cache), later());
        check(&r);
        assert_eq!(r.stats, ReadStats { read: 5, reused: 0 });
        assert_eq!(cache.len(), 4, "unreadable files are not cached");
        let r = scan(d, Some(&mut cache), later());
        check(&r);
        assert_eq!(r.stats, ReadStats { read: 1, reused: 4 });

        // An editor's save (new file renamed over the old), an in-place
        // append, a link retargeted, a file deleted.
        std::fs::write(d.join(".a.tmp"), "a: 2\n")?;
        std::fs::rename(d.join(".a.tmp"), d.join("a.yaml"))?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("b.yaml"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"c: 2\n"))?;
        std::fs::remove_file(d.join("link.yaml"))?;
        std::os::unix::fs::symlink("a.yaml", d.join("link.yaml"))?;
        std::fs::remove_file(d.join("bad.yaml"))?;
        let r = scan(d, Some(&mut cache), later());
        check(&r);
        assert_eq!(r.stats, ReadStats { read: 3, reused: 1 });
        assert_eq!(r.files[0].text, "a: 2\n");
        assert_eq!(r.files[1].text, "b: 1\nc: 2\n");
        assert_eq!(r.files[2].text, "a: 2\n");
        assert_eq!(cache.len(), 4);
        Ok(())
    }

    /// A file read right after it was written is read again next time,
    /// even if a same-length rewrite in the same clock tick left its
    /// timestamps as they were.
    #[cfg(unix)]
    #[test]
    fn recently_changed_files_are_read_again() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("a.yaml");
        std::fs::write(&p, "a: 1\n")?;
        let mut cache = FileCache::new();
        let now = SystemTime::now();
        let r = scan(dir.path(), Some(&mut cache), now);
        assert_eq!(r.stats, ReadStats { read: 1, reused: 0 });
        assert!(!is_settled(&std::fs::metadata(&p)?, now));
        // Same length, same inode; possibly the same timestamps.
        std::fs::write(&p, "a: 2\n")?;
        let r = scan(dir.path(), Some(&mut cache), now);
        assert_eq!(r.stats, ReadStats { read: 1, reused: 0 });
        assert_eq!(r.files[0].text, "a: 2\n");
        // Once settled, trusted.
        let later = now + SETTLE_TIME + Duration::from_secs(1);
        assert!(is_settled(&std::fs::metadata(&p)?, later));
        scan(dir.path(), Some(&mut cache), later);
        let r = scan(dir.path(), Some(&mut cache), later);
        assert_eq!(r.stats, ReadStats { read: 0, reused: 1 });
        Ok(())
    }

    #[test]
    fn too_large_is_refused_from_its_size() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let big = std::fs::File::create(dir.path().join("big.yaml"))?;
        big.set_len(MAX_FILE_BYTES + 1)?;
        let (files, diags) = load_dir(dir.path());
        assert!(files.is_empty());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("larger than"), "{diags:?}");
        Ok(())
    }
}
