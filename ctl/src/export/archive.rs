//! The hub's export stream, a tar archive (ustar or pax) of the export's files: checked
//! whole before anything is extracted, then extracted all at once.
//!
//! The hub is outside input. Invariants: an entry is accepted only if it is a plain file
//! whose name is a relative path of plain parts (no absolute path, no `..`, no `.`, no
//! empty part, no backslash, no hidden part: aloftctl keeps its partial files under hidden
//! names, and the export never writes one), each name once; an archive is complete only
//! when its end-of-archive marker (two zero blocks) follows the last entry and the
//! sidecar is its last file; the data files must be exactly those the sidecar lists, with
//! its sizes and SHA-256 digests. Extraction goes through [`DirOutput`], so every file
//! appears at once or none does.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use aloft_dataset::output::check_path;
use aloft_dataset::{DirOutput, ExportError, FileEntry, Output};

/// The largest sidecar read into memory.
const SIDECAR_LIMIT: u64 = 64 << 20;

/// Why an export stream was refused, or is not complete yet.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The stream ended before the archive did: more bytes may complete it.
    #[error("the export stream ended early ({0})")]
    Incomplete(String),
    /// The stream is not a tar archive that can be read.
    #[error("the hub's export stream is not a readable tar archive: {0}")]
    Malformed(String),
    /// An entry's name would leave the output directory or is not plain.
    #[error(
        "the hub's export stream has an entry named {name:?}, which is not a plain relative file name"
    )]
    BadName {
        /// The name, as far as it is text.
        name: String,
    },
    /// An entry is not a plain file (a link, a directory, a device).
    #[error("the hub's export stream has {name:?} as a {kind}; only plain files are accepted")]
    NotAFile {
        /// Its name.
        name: String,
        /// What it is.
        kind: String,
    },
    /// Two entries have the same name.
    #[error("the hub's export stream has {name:?} twice")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The archive has no sidecar as its last file.
    #[error("the hub's export stream has no sidecar {name} as its last file")]
    NoSidecar {
        /// The sidecar's name.
        name: String,
    },
    /// The data files are not the ones the sidecar lists.
    #[error("the hub's export stream does not match its sidecar: {0}")]
    Inconsistent(String),
    /// Reading the downloaded stream failed.
    #[error("reading the downloaded export stream: {0}")]
    Io(#[source] io::Error),
}

/// One file of a checked archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name (`/`-separated, checked).
    pub name: String,
    /// Its size, bytes.
    pub size: u64,
}

/// Checks an entry's name; returns it as text.
pub fn checked_name(bytes: &[u8]) -> Result<String, ArchiveError> {
    let bad = || ArchiveError::BadName {
        name: String::from_utf8_lossy(bytes).into_owned(),
    };
    let name = std::str::from_utf8(bytes).map_err(|_| bad())?;
    check_path(name).map_err(|_| bad())?;
    if name
        .split('/')
        .any(|part| part.starts_with('.') || part.chars().any(char::is_control))
    {
        return Err(bad());
    }
    Ok(name.to_owned())
}

/// Checks the archive in `file` (from its start): every entry a plain file with a plain
/// name, the end-of-archive marker after the last one, the sidecar `sidecar` last.
/// [`ArchiveError::Incomplete`] when the bytes end before the archive does.
pub fn check(file: &mut File, sidecar: &str) -> Result<Vec<Member>, ArchiveError> {
    file.seek(SeekFrom::Start(0)).map_err(ArchiveError::Io)?;
    let len = file.metadata().map_err(ArchiveError::Io)?.len();
    let mut reader = io::BufReader::new(&*file);
    let mut members = Vec::new();
    let mut seen = BTreeSet::new();
    // Where the bytes after the last entry start.
    let mut end_of_entries = 0u64;
    {
        let mut archive = tar::Archive::new(&mut reader);
        let entries = archive
            .entries()
            .map_err(|e| malformed_or_short(e, false))?;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    // The tar reader says a read came up short in words only.
                    let short = e.kind() == io::ErrorKind::UnexpectedEof
                        || e.to_string().contains("entire block")
                        || e.to_string().contains("EOF");
                    return Err(malformed_or_short(e, short));
                }
            };
            let kind = entry.header().entry_type();
            if kind == tar::EntryType::XGlobalHeader {
                continue;
            }
            let name = checked_name(&entry.path_bytes())?;
            if !kind.is_file() {
                return Err(ArchiveError::NotAFile {
                    name,
                    kind: kind_name(kind).to_owned(),
                });
            }
            if !seen.insert(name.clone()) {
                return Err(ArchiveError::Duplicate { name });
            }
            let size = entry.size();
            end_of_entries = entry
                .raw_file_position()
                .checked_add(size.div_ceil(512) * 512)
                .ok_or_else(|| ArchiveError::Malformed(format!("{name} is too large")))?;
            members.push(Member { name, size });
        }
    }
    if end_of_entries > len {
        return Err(ArchiveError::Incomplete(format!(
            "{} of {end_of_entries} bytes of its last file",
            len
        )));
    }
    let trailer = len - end_of_entries;
    if trailer < 1024 {
        return Err(ArchiveError::Incomplete(
            "no end-of-archive marker".to_owned(),
        ));
    }
    file.seek(SeekFrom::Start(end_of_entries))
        .map_err(ArchiveError::Io)?;
    let mut rest = (&*file).take(trailer);
    let mut block = [0u8; 8192];
    loop {
        let n = rest.read(&mut block).map_err(ArchiveError::Io)?;
        if n == 0 {
            break;
        }
        if block[..n].iter().any(|b| *b != 0) {
            return Err(ArchiveError::Malformed(
                "bytes that are not an entry after the last entry".to_owned(),
            ));
        }
    }
    match members.last() {
        Some(last) if last.name == sidecar => Ok(members),
        _ => Err(ArchiveError::NoSidecar {
            name: sidecar.to_owned(),
        }),
    }
}

fn malformed_or_short(e: io::Error, short: bool) -> ArchiveError {
    if short {
        ArchiveError::Incomplete(e.to_string())
    } else {
        ArchiveError::Malformed(e.to_string())
    }
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Directory => "directory",
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "non-file entry",
    }
}

/// The sidecar's list of files, as far as extraction checks it.
#[derive(Debug, serde::Deserialize)]
struct SidecarFiles {
    files: Vec<ListedFile>,
}

#[derive(Debug, serde::Deserialize)]
struct ListedFile {
    path: String,
    bytes: u64,
    sha256: String,
}

/// Extracts a checked archive into `out` (nothing is visible until its commit) and checks
/// the data files against the sidecar; calls `done` after each file. Returns the files.
pub fn extract(
    file: &mut File,
    members: &[Member],
    out: &mut DirOutput,
    done: &mut dyn FnMut(usize),
) -> Result<Vec<FileEntry>, ExtractError> {
    file.seek(SeekFrom::Start(0)).map_err(ArchiveError::Io)?;
    let mut archive = tar::Archive::new(io::BufReader::new(&*file));
    let mut written = Vec::new();
    let mut sidecar = Vec::new();
    let mut index = 0;
    for entry in archive.entries().map_err(ArchiveError::Io)? {
        let mut entry = entry.map_err(ArchiveError::Io)?;
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            continue;
        }
        let name = checked_name(&entry.path_bytes())?;
        let Some(member) = members.get(index).filter(|m| m.name == name) else {
            return Err(
                ArchiveError::Malformed(format!("{name} changed since it was checked")).into(),
            );
        };
        index += 1;
        let is_sidecar = index == members.len();
        if is_sidecar && member.size > SIDECAR_LIMIT {
            return Err(ArchiveError::Inconsistent(format!(
                "the sidecar is {} bytes, more than a sidecar can be",
                member.size
            ))
            .into());
        }
        let entry_file = out.file(&name, "", "", &mut |w| {
            if is_sidecar {
                sidecar.clear();
                entry
                    .read_to_end(&mut sidecar)
                    .map_err(ExportError::write)?;
                w.write_all(&sidecar).map_err(ExportError::write)
            } else {
                io::copy(&mut entry, w)
                    .map(drop)
                    .map_err(ExportError::write)
            }
        })?;
        written.push(entry_file);
        done(index);
    }
    if index != members.len() {
        return Err(
            ArchiveError::Malformed("entries vanished since they were checked".into()).into(),
        );
    }
    let listed: SidecarFiles = serde_json::from_slice(&sidecar)
        .map_err(|e| ArchiveError::Inconsistent(format!("the sidecar is not readable: {e}")))?;
    let data = &written[..written.len().saturating_sub(1)];
    for f in data {
        match listed.files.iter().find(|l| l.path == f.path) {
            None => {
                return Err(ArchiveError::Inconsistent(format!(
                    "{} is not listed in the sidecar",
                    f.path
                ))
                .into());
            }
            Some(l) if l.bytes != f.bytes || l.sha256 != f.sha256 => {
                return Err(ArchiveError::Inconsistent(format!(
                    "{} has {} bytes with SHA-256 {}, the sidecar says {} bytes with {}",
                    f.path, f.bytes, f.sha256, l.bytes, l.sha256
                ))
                .into());
            }
            Some(_) => {}
        }
    }
    if let Some(l) = listed
        .files
        .iter()
        .find(|l| !data.iter().any(|f| f.path == l.path))
    {
        return Err(ArchiveError::Inconsistent(format!(
            "the sidecar lists {}, which the stream does not hold",
            l.path
        ))
        .into());
    }
    Ok(written)
}

/// Why extraction failed: the archive, or writing the files.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The archive.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Writing (an existing file without `--force`, a full disk).
    #[error(transparent)]
    Write(#[from] ExportError),
}

/// Whether `path` exists (as anything, a dangling link too).
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    /// A tar of `entries` (name bytes, type, data) written with raw headers, so that any
    /// name and type can be made; `end` adds the end-of-archive marker.
    fn raw_tar(entries: &[(Vec<u8>, u8, Vec<u8>)], end: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_old();
            let n = name.len().min(99);
            h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::new(*kind));
            if *kind == b'2' {
                h.set_link_name("/etc/passwd").unwrap();
            }
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        if end {
            out.extend_from_slice(&[0u8; 1024]);
        }
        out
    }

    fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                out.extend(walkdir(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        t.write_all(bytes).unwrap();
        let f = t.reopen().unwrap();
        (t, f)
    }

    #[test]
    fn a_complete_archive_with_its_sidecar_last_is_accepted() {
        let tar = raw_tar(
            &[
                (b"a.csv".to_vec(), b'0', b"x\n".to_vec()),
                (b"a.sidecar.json".to_vec(), b'0', b"{}".to_vec()),
            ],
            true,
        );
        let (_t, mut f) = file_of(&tar);
        let members = check(&mut f, "a.sidecar.json").unwrap();
        assert_eq!(members.len(), 2);
        for cut in [
            0,
            100,
            512,
            600,
            1024,
            1536,
            tar.len() - 1024,
            tar.len() - 1,
        ] {
            let (_t, mut f) = file_of(&tar[..cut]);
            let e = check(&mut f, "a.sidecar.json").unwrap_err();
            assert!(matches!(e, ArchiveError::Incomplete(_)), "cut {cut}: {e}");
        }
    }

    #[test]
    fn hostile_entries_are_refused_by_kind() {
        let side = (b"a.sidecar.json".to_vec(), b'0', b"{}".to_vec());
        for (name, kind) in [
            (&b"../../x"[..], b'0'),
            (b"/tmp/x", b'0'),
            (b"a/../../x", b'0'),
            (b".hidden", b'0'),
            (b"x", b'2'),
            (b"x", b'1'),
            (b"d", b'5'),
            (b"x\xff", b'0'),
        ] {
            let tar = raw_tar(&[(name.to_vec(), kind, Vec::new()), side.clone()], true);
            let (_t, mut f) = file_of(&tar);
            let e = check(&mut f, "a.sidecar.json").unwrap_err();
            assert!(
                matches!(
                    e,
                    ArchiveError::BadName { .. } | ArchiveError::NotAFile { .. }
                ),
                "{name:?}: {e}"
            );
        }
        let tar = raw_tar(&[(b"a.csv".to_vec(), b'0', Vec::new())], true);
        let (_t, mut f) = file_of(&tar);
        assert!(matches!(
            check(&mut f, "a.sidecar.json").unwrap_err(),
            ArchiveError::NoSidecar { .. }
        ));
        let tar = raw_tar(&[side.clone(), side.clone()], true);
        let (_t, mut f) = file_of(&tar);
        assert!(matches!(
            check(&mut f, "a.sidecar.json").unwrap_err(),
            ArchiveError::Duplicate { .. }
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any name and type: accepted only as a plain file with a plain name.
        #[test]
        fn any_entry_is_accepted_only_when_plain(
            name in proptest::collection::vec(any::<u8>(), 1..40),
            kind in prop_oneof![Just(b'0'), Just(b'1'), Just(b'2'), Just(b'3'), Just(b'5'), Just(b'6'), any::<u8>()],
            data in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            let side = (b"s.sidecar.json".to_vec(), b'0', b"{}".to_vec());
            let tar = raw_tar(&[(name.clone(), kind, data), side], true);
            let (_t, mut f) = file_of(&tar);
            if let Ok(members) = check(&mut f, "s.sidecar.json") {
                for m in &members {
                    prop_assert!(checked_name(m.name.as_bytes()).is_ok());
                    prop_assert!(!m.name.starts_with('/') && !m.name.split('/').any(|p| p == ".." || p.is_empty()));
                }
            }
        }

        /// Whatever the entries, checking and extracting writes nothing outside the output
        /// directory, and nothing visible inside it unless the whole archive is accepted.
        #[test]
        fn extraction_of_any_entries_stays_inside_and_is_all_or_nothing(
            entries in proptest::collection::vec(
                (
                    prop_oneof![
                        Just(b"a.csv".to_vec()),
                        Just(b"../a.csv".to_vec()),
                        Just(b"/a.csv".to_vec()),
                        Just(b"w/../../a.csv".to_vec()),
                        Just(b"w/b.csv".to_vec()),
                        proptest::collection::vec(any::<u8>(), 1..12),
                    ],
                    prop_oneof![Just(b'0'), Just(b'2'), Just(b'5'), any::<u8>()],
                    proptest::collection::vec(any::<u8>(), 0..600),
                ),
                0..4,
            ),
        ) {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("out");
            let mut all: Vec<(Vec<u8>, u8, Vec<u8>)> = entries;
            all.push((b"s.sidecar.json".to_vec(), b'0', br#"{"files":[]}"#.to_vec()));
            let tar = raw_tar(&all, true);
            let (_t, mut f) = file_of(&tar);
            let accepted = check(&mut f, "s.sidecar.json").and_then(|members| {
                let mut out = DirOutput::new(&dir, false).unwrap();
                match extract(&mut f, &members, &mut out, &mut |_| {}) {
                    Ok(_) => {
                        out.commit().unwrap();
                        Ok(())
                    }
                    Err(ExtractError::Archive(a)) => Err(a),
                    Err(ExtractError::Write(e)) => Err(ArchiveError::Malformed(e.to_string())),
                }
            });
            let outside: Vec<_> = std::fs::read_dir(root.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name() != "out")
                .collect();
            prop_assert!(outside.is_empty(), "{:?}", outside);
            if accepted.is_err() && dir.exists() {
                let inside: Vec<_> = walkdir(&dir);
                prop_assert!(inside.is_empty(), "{:?}", inside);
            }
        }

        /// Arbitrary bytes are refused or read, never a panic; a cut archive is never complete.
        #[test]
        fn arbitrary_bytes_and_cut_archives_are_never_complete(
            junk in proptest::collection::vec(any::<u8>(), 0..3000),
            cut in 0usize..2560,
        ) {
            let (_t, mut f) = file_of(&junk);
            let _ = check(&mut f, "s.sidecar.json");
            let tar = raw_tar(&[
                (b"a.csv".to_vec(), b'0', vec![7u8; 700]),
                (b"s.sidecar.json".to_vec(), b'0', b"{}".to_vec()),
            ], true);
            let cut = cut.min(tar.len() - 1);
            let (_t, mut f) = file_of(&tar[..cut]);
            prop_assert!(check(&mut f, "s.sidecar.json").is_err());
        }
    }
}
