//! Where a receiver writes: a regular file (written under a temporary name
//! in the same directory and renamed over the target only when the
//! transfer is complete), or something that is not a regular file (a
//! character device such as /dev/null, a FIFO, a terminal) or `-` for
//! standard output, which is written directly and never renamed over:
//! renaming a file over /dev/null would replace the device for the whole
//! machine.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

pub enum Output {
    /// A regular file, written as `part` and renamed to `target` at the end.
    File {
        target: PathBuf,
        part: PathBuf,
        file: Option<File>,
    },
    /// A device, FIFO or socket, opened as it is.
    Direct {
        target: PathBuf,
        file: Option<File>,
    },
    Stdout,
}

impl Output {
    /// Opens the destination before any transfer starts, so an unwritable
    /// or missing directory fails at once, with the path in the message.
    /// An existing regular file is replaced only with `force`.
    pub fn open(target: &Path, force: bool) -> Result<Output, String> {
        if target.as_os_str() == "-" {
            return Ok(Output::Stdout);
        }
        match std::fs::metadata(target) {
            Ok(m) if m.is_dir() => {
                return Err(format!(
                    "{} is a directory: give a file name",
                    target.display()
                ))
            }
            Ok(m) if m.is_file() && !force => {
                return Err(format!(
                    "{} exists: choose another --out or add --force to replace it",
                    target.display()
                ))
            }
            Ok(m) if !m.is_file() => {
                let t = m.file_type();
                let what = if t.is_fifo() {
                    "FIFO"
                } else if t.is_char_device() {
                    "character device"
                } else if t.is_block_device() {
                    "block device"
                } else {
                    "special file"
                };
                // A FIFO blocks here until a reader opens it: that is its
                // contract, and the transfer cannot start before anyway.
                let file = OpenOptions::new()
                    .write(true)
                    .open(target)
                    .map_err(|e| format!("opening the {what} {}: {e}", target.display()))?;
                return Ok(Output::Direct {
                    target: target.to_path_buf(),
                    file: Some(file),
                });
            }
            _ => {}
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "{}: the directory {} does not exist",
                target.display(),
                dir.display()
            ));
        }
        let name = target
            .file_name()
            .ok_or_else(|| format!("{}: not a file name", target.display()))?;
        let part = dir.join(format!(
            ".{}.part-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)
            .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
        // A signal mid-transfer must not leave the partial copy behind.
        xdptcp_tools::shutdown::remove_on_signal(&part);
        Ok(Output::File {
            target: target.to_path_buf(),
            part,
            file: Some(file),
        })
    }

    /// True when the received bytes go to standard output (so reports go
    /// to standard error instead).
    pub fn is_stdout(&self) -> bool {
        matches!(self, Output::Stdout)
    }

    /// The writer for the data; each output is taken once.
    pub fn take_writer(&mut self) -> Option<Box<dyn Write + Send>> {
        // The receiver writes in batches of 64-256 KiB already; a write at
        // least this large goes straight through instead of being copied
        // into the buffer first.
        const BUF: usize = 64 * 1024;
        match self {
            Output::File { file, .. } | Output::Direct { file, .. } => file
                .take()
                .map(|f| Box::new(std::io::BufWriter::with_capacity(BUF, f)) as _),
            Output::Stdout => Some(Box::new(std::io::BufWriter::with_capacity(
                BUF,
                std::io::stdout(),
            ))),
        }
    }

    /// The transfer is complete: a regular file takes its final name.
    pub fn commit(&self) -> Result<(), String> {
        match self {
            Output::File { target, part, .. } => {
                xdptcp_tools::shutdown::keep_on_signal(part);
                std::fs::rename(part, target).map_err(|e| {
                    format!("renaming {} to {}: {e}", part.display(), target.display())
                })
            }
            _ => Ok(()),
        }
    }

    /// The transfer failed: a regular file's partial copy is removed;
    /// anything else keeps what was written (there is nothing to undo).
    pub fn abandon(&self) {
        if let Output::File { part, .. } = self {
            let _ = std::fs::remove_file(part);
            xdptcp_tools::shutdown::keep_on_signal(part);
        }
    }

    /// How to name the output in messages.
    pub fn describe(&self) -> String {
        match self {
            Output::File { target, .. } | Output::Direct { target, .. } => {
                target.display().to_string()
            }
            Output::Stdout => "standard output".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Output;
    use std::io::Write;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("xdptcp-out-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_regular_file_appears_only_when_committed() {
        let d = tmpdir("commit");
        let target = d.join("x.bin");
        let mut o = Output::open(&target, false).unwrap();
        o.take_writer().unwrap().write_all(b"abc").unwrap();
        assert!(!target.exists());
        o.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"abc");
        // Exists now: refused without force, replaced with it.
        let e = Output::open(&target, false).err().unwrap();
        assert!(e.contains("--force"), "{e}");
        let o = Output::open(&target, true).unwrap();
        o.abandon();
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"abc",
            "abandon keeps the old file"
        );
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_or_unwritable_directory_fails_before_anything_starts() {
        let d = tmpdir("missing");
        let e = Output::open(&d.join("no/such/dir/x"), false).err().unwrap();
        assert!(
            e.contains("does not exist") && e.contains("no/such/dir"),
            "{e}"
        );
        let e = Output::open(&d, true).err().unwrap();
        assert!(e.contains("is a directory"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fifo_is_written_in_place_and_never_renamed() {
        let d = tmpdir("fifo");
        let fifo = d.join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut o = Output::open(&fifo, true).unwrap();
        assert!(matches!(o, Output::Direct { .. }));
        let mut w = o.take_writer().unwrap();
        w.write_all(b"through the pipe").unwrap();
        drop(w);
        o.commit().unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        let t = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&t), "still a FIFO");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
