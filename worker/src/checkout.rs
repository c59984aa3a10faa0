//! The checkout read boundary: every file the worker reads from a cloned repository (its
//! instruction files, PR templates, the files a plan names, the files shown in a repair
//! round, the existence checks of a plan) goes through [`Checkout`].
//!
//! A repository is untrusted content. A symlink in it is content, never a door: a link
//! `docs/ref -> /proc/self` would otherwise make `docs/ref/environ` the worker's
//! environment (its tokens). So a path is resolved one component at a time below the root:
//! a symlink in any component is refused, as are `..`, absolute paths, `.git/`, and
//! anything that is not a regular file (a FIFO would block the worker, a device would read
//! the machine). The opened file is checked to be the very inode that was inspected
//! (a swap between the check and the open is refused), and what is read is capped.
//!
//! The clone runs with `core.symlinks=false` as a second wall (`crate::adapters::git`): links are
//! checked out as small plain files holding the link text, which is harmless to read.
//! The context walk (fleet-context) never follows links either.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fleet_edits::PathFault;

/// Why a path of the checkout may not be read. `Display` completes "cannot read the
/// file: ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the path is empty")]
    Empty,
    #[error("absolute paths are not allowed; use a path relative to the repository root")]
    Absolute,
    #[error("`..` would leave the repository; use a path relative to the repository root")]
    ParentDir,
    #[error("files under `.git/` are git's own state, not the repository's content")]
    GitDir,
    #[error("`{component}` is a symbolic link; the agent does not follow links")]
    Symlink { component: String },
    #[error("`{ancestor}` is not a directory")]
    NotADirectory { ancestor: String },
    #[error("the file does not exist")]
    Missing,
    #[error("the path is not a regular file (a directory, FIFO, socket or device)")]
    NotARegularFile,
    #[error("the file has other hard links; the agent reads only plain checked-out files")]
    HardLinked,
    #[error("the file changed while it was being opened")]
    Changed,
    #[error("the file is {bytes} bytes, over the {limit}-byte limit for this read")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("the file could not be read: {0}")]
    Io(String),
}

/// A cloned repository, read only through checked paths.
#[derive(Debug, Clone)]
pub struct Checkout {
    root: PathBuf,
}

/// What [`Checkout::read_prefix`] returns: the text (lossy UTF-8) and whether it was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    pub text: String,
    pub truncated: bool,
}

impl Checkout {
    /// The checkout rooted at `root` (the directory the clone created).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A repository-relative path in its normal form (`a/b/c`), or why it may not be read.
    /// The same rules hold for paths read back from a plan comment.
    pub fn relative(path: &str) -> Result<String, Refused> {
        // The edit path's rules (fleet_edits), so that what may be written may be read.
        fleet_edits::relative_path(path).map_err(|fault| match fault {
            PathFault::Empty => Refused::Empty,
            PathFault::Absolute => Refused::Absolute,
            PathFault::ParentDir => Refused::ParentDir,
            PathFault::GitDir => Refused::GitDir,
        })
    }

    /// Walks `path` one component at a time: no component may be a symlink, every
    /// ancestor must be a real directory. The last component's location and metadata, or
    /// `None` when some component does not exist.
    fn walk(&self, path: &str) -> Result<Option<(PathBuf, std::fs::Metadata)>, Refused> {
        let rel = Self::relative(path)?;
        let parts: Vec<&str> = rel.split('/').collect();
        let mut current = self.root.clone();
        for (i, part) in parts.iter().enumerate() {
            current.push(part);
            let shown = || parts[..=i].join("/");
            let meta = match std::fs::symlink_metadata(&current) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                    // An ancestor is a file (checked below, so only on a race).
                    return Err(Refused::NotADirectory { ancestor: shown() });
                }
                Err(e) => return Err(Refused::Io(e.kind().to_string())),
            };
            if meta.file_type().is_symlink() {
                return Err(Refused::Symlink { component: shown() });
            }
            if i + 1 == parts.len() {
                return Ok(Some((current, meta)));
            }
            if !meta.is_dir() {
                return Err(Refused::NotADirectory { ancestor: shown() });
            }
        }
        Err(Refused::Empty)
    }

    /// Resolves `path` through [`Self::walk`]: it must exist and be a regular file with a
    /// single link. Returns its location and its metadata.
    fn resolve(&self, path: &str) -> Result<(PathBuf, std::fs::Metadata), Refused> {
        let (full, meta) = self.walk(path)?.ok_or(Refused::Missing)?;
        if !meta.is_file() {
            return Err(Refused::NotARegularFile);
        }
        if meta.nlink() > 1 {
            return Err(Refused::HardLinked);
        }
        Ok((full, meta))
    }

    /// Whether `path` is a regular file the boundary would read.
    pub fn is_file(&self, path: &str) -> bool {
        self.resolve(path).is_ok()
    }

    /// Whether `path` may be created: its normal form is valid and no existing ancestor is
    /// a symlink or a file (a plan's `new file`).
    pub fn may_create(&self, path: &str) -> Result<(), Refused> {
        match self.walk(path)? {
            Some((_, meta)) if !meta.is_file() => Err(Refused::NotARegularFile),
            _ => Ok(()),
        }
    }

    /// Opens `path` after [`Self::resolve`] and checks the opened file is the inspected one.
    fn open(&self, path: &str) -> Result<(std::fs::File, u64), Refused> {
        let (full, meta) = self.resolve(path)?;
        let file = std::fs::File::open(&full).map_err(|e| Refused::Io(e.kind().to_string()))?;
        let opened = file
            .metadata()
            .map_err(|e| Refused::Io(e.kind().to_string()))?;
        // A component swapped for a link between the check and the open lands elsewhere:
        // the inode differs.
        if opened.dev() != meta.dev() || opened.ino() != meta.ino() || !opened.is_file() {
            return Err(Refused::Changed);
        }
        Ok((file, opened.len()))
    }

    /// The whole file as text (lossy UTF-8); refused when it is over `max_bytes`.
    pub fn read_text(&self, path: &str, max_bytes: u64) -> Result<String, Refused> {
        let (file, len) = self.open(path)?;
        if len > max_bytes {
            return Err(Refused::TooLarge {
                bytes: len,
                limit: max_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        // `take`: the file may grow after the size was read.
        file.take(max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Refused::Io(e.kind().to_string()))?;
        if bytes.len() as u64 > max_bytes {
            return Err(Refused::TooLarge {
                bytes: bytes.len() as u64,
                limit: max_bytes,
            });
        }
        Ok(into_text(bytes))
    }

    /// At most `max_bytes` of the file (cut at a character boundary), and whether it was cut.
    pub fn read_prefix(&self, path: &str, max_bytes: usize) -> Result<Prefix, Refused> {
        let (file, _) = self.open(path)?;
        let mut bytes = Vec::new();
        file.take(max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Refused::Io(e.kind().to_string()))?;
        let truncated = bytes.len() > max_bytes;
        let mut text = into_text(bytes);
        if truncated {
            let mut cut = max_bytes.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        Ok(Prefix { text, truncated })
    }
}

fn into_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("src/inner")).expect("mkdir");
        std::fs::write(dir.path().join("src/inner/a.py"), "print('a')\n").expect("write");
        std::fs::write(dir.path().join("README.md"), "# r\n").expect("write");
        dir
    }

    #[test]
    fn plain_files_are_read() {
        let dir = repo();
        let checkout = Checkout::new(dir.path());
        assert_eq!(
            checkout.read_text("src/inner/a.py", 1024).as_deref(),
            Ok("print('a')\n")
        );
        assert_eq!(
            checkout.read_text("./src//inner\\a.py", 1024).as_deref(),
            Ok("print('a')\n")
        );
        assert!(checkout.is_file("README.md"));
        assert_eq!(checkout.read_text("nope.md", 10), Err(Refused::Missing));
        assert_eq!(
            checkout.read_text("src/inner", 10),
            Err(Refused::NotARegularFile)
        );
    }

    #[test]
    fn a_symlink_in_the_middle_component_is_refused() {
        let dir = repo();
        // `src/ref -> /proc/self`: `src/ref/environ` is the reader's environment.
        symlink("/proc/self", dir.path().join("src/ref")).expect("symlink");
        // A link that stays inside is refused too: a link is content, never a door.
        symlink("inner", dir.path().join("src/alias")).expect("symlink");
        symlink("/etc/passwd", dir.path().join("last.md")).expect("symlink");
        let checkout = Checkout::new(dir.path());
        assert_eq!(
            checkout.read_text("src/ref/environ", 1 << 20),
            Err(Refused::Symlink {
                component: "src/ref".into()
            })
        );
        assert_eq!(
            checkout.read_text("src/alias/a.py", 1 << 20),
            Err(Refused::Symlink {
                component: "src/alias".into()
            })
        );
        assert_eq!(
            checkout.read_prefix("last.md", 100),
            Err(Refused::Symlink {
                component: "last.md".into()
            })
        );
        assert!(!checkout.is_file("src/ref/environ"));
        assert!(checkout.may_create("src/ref/new.py").is_err());
        assert!(checkout.may_create("src/inner/new.py").is_ok());
        assert!(checkout.may_create("README.md/x").is_err());
    }

    #[test]
    fn parent_dirs_absolute_paths_and_git_are_refused() {
        let dir = repo();
        let checkout = Checkout::new(dir.path());
        for (path, refused) in [
            ("../../etc/passwd", Refused::ParentDir),
            ("src/../../x", Refused::ParentDir),
            ("/etc/passwd", Refused::Absolute),
            ("/proc/self/environ", Refused::Absolute),
            ("C:\\x", Refused::Absolute),
            (".git/config", Refused::GitDir),
        ] {
            assert_eq!(checkout.read_text(path, 1 << 20), Err(refused), "{path}");
        }
        assert_eq!(checkout.read_text("./", 1 << 20), Err(Refused::Empty));
        assert_eq!(Checkout::relative("./a//b/./c").as_deref(), Ok("a/b/c"));
    }

    #[test]
    fn fifos_and_oversized_files_are_refused() {
        let dir = repo();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let checkout = Checkout::new(dir.path());
        // Refused without opening: opening a FIFO for reading would block.
        assert_eq!(
            checkout.read_text("pipe", 1 << 20),
            Err(Refused::NotARegularFile)
        );
        assert!(!checkout.is_file("pipe"));
        assert_eq!(
            checkout.read_text("src/inner/a.py", 4),
            Err(Refused::TooLarge {
                bytes: 11,
                limit: 4
            })
        );
        assert_eq!(
            checkout.read_prefix("src/inner/a.py", 5),
            Ok(Prefix {
                text: "print".into(),
                truncated: true
            })
        );
        // A hard link to a file elsewhere is not checked-out content.
        std::fs::hard_link(dir.path().join("README.md"), dir.path().join("linked.md"))
            .expect("hard link");
        assert_eq!(
            checkout.read_text("linked.md", 100),
            Err(Refused::HardLinked)
        );
    }
}
