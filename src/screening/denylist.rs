//! The operator's own denylist: a text file of addresses, one a line, with `#` comments and blank
//! lines allowed and hex case ignored. It is read again when the file changes, so an operator can
//! add an address without restarting the service.
//!
//! ```text
//! # OFAC addition, 2024-05-01
//! 0x8576aCC5C05D6Ce88f4e49bf65BdF0C62F91353C
//! 0x1da5821544e25c636c1417ba96ade4cf6d2f9b5a   # lower case is fine
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use alloy::primitives::Address;

/// Why the denylist could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DenylistError {
    /// The file could not be read (missing, unreadable).
    #[error("reading denylist {}: {source}", path.display())]
    Io {
        /// The denylist file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// A line that is neither an address, a comment nor blank.
    #[error("denylist {}, line {line}: {text:?} is not an address", path.display())]
    InvalidLine {
        /// The denylist file.
        path: PathBuf,
        /// The line's number, counting from 1.
        line: usize,
        /// The line, comment and surrounding blanks removed.
        text: String,
    },
}

/// The result type of this module.
pub type Result<T, E = DenylistError> = std::result::Result<T, E>;

/// A parsed denylist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denylist {
    addresses: HashSet<Address>,
}

impl Denylist {
    /// Parses the file format above; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut addresses = HashSet::new();
        for (index, line) in text.lines().enumerate() {
            let entry = line.split_once('#').map_or(line, |(entry, _comment)| entry).trim();
            if entry.is_empty() {
                continue;
            }
            // Address parsing ignores case, so a checksum typo never hides an address.
            let address = entry.parse::<Address>().ok().filter(|_| entry.starts_with("0x"));
            let address = address.ok_or_else(|| DenylistError::InvalidLine {
                path: path.to_path_buf(),
                line: index + 1,
                text: entry.to_string(),
            })?;
            addresses.insert(address);
        }
        Ok(Self { addresses })
    }

    /// True when `address` is listed.
    pub fn contains(&self, address: &Address) -> bool {
        self.addresses.contains(address)
    }

    /// How many addresses are listed.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// True when no address is listed.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}

/// A denylist file and its last parsed contents, re-read when the file changes.
#[derive(Debug)]
pub struct DenylistFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    list: Arc<Denylist>,
}

/// What tells a changed file from the one already parsed: its modification time and its length,
/// since a file system may keep mtimes to the second and an edit can land in the same one.
type Stamp = (Option<SystemTime>, u64);

impl DenylistFile {
    /// Reads and parses `path`; an unreadable file or an invalid line is an error now rather than
    /// at the first screening.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let io = |source| DenylistError::Io { path: path.clone(), source };
        let stamp = stamp(&std::fs::metadata(&path).map_err(io)?);
        let list = Denylist::parse(&path, &std::fs::read_to_string(&path).map_err(io)?)?;
        Ok(Self { loaded: Mutex::new(Loaded { stamp, list: Arc::new(list) }), path })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current list: the one already parsed when the file has not changed (one metadata
    /// read), else the file parsed again. A file that has become unreadable or invalid is an
    /// error, not a silent fall-back to the old list, and is tried again on the next call.
    pub async fn current(&self) -> Result<Arc<Denylist>> {
        let io = |source| DenylistError::Io { path: self.path.clone(), source };
        let stamp = stamp(&tokio::fs::metadata(&self.path).await.map_err(io)?);
        {
            let loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if loaded.stamp == stamp {
                return Ok(loaded.list.clone());
            }
        }
        let text = tokio::fs::read_to_string(&self.path).await.map_err(io)?;
        let list = Arc::new(Denylist::parse(&self.path, &text)?);
        tracing::info!(path = %self.path.display(), addresses = list.len(), "denylist reloaded");
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *loaded = Loaded { stamp, list: list.clone() };
        Ok(list)
    }
}

fn stamp(metadata: &std::fs::Metadata) -> Stamp {
    (metadata.modified().ok(), metadata.len())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::address;

    use super::*;

    const ALICE: Address = address!("0x8576aCC5C05D6Ce88f4e49bf65BdF0C62F91353C");
    const BOB: Address = address!("0x1da5821544e25c636c1417ba96ade4cf6d2f9b5a");

    fn parse(text: &str) -> Result<Denylist> {
        Denylist::parse(Path::new("denylist.txt"), text)
    }

    #[test]
    fn comments_blank_lines_and_any_case() {
        let list = parse(
            "# sanctioned\n\n  0x8576ACC5C05D6CE88F4E49BF65BDF0C62F91353C  \n\
             0x1da5821544e25c636c1417ba96ade4cf6d2f9b5a # trailing comment\n   # indented\n",
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.contains(&ALICE) && list.contains(&BOB));
        assert!(!list.contains(&Address::ZERO));
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn an_invalid_line_names_its_number() {
        let err = parse("# header\n0x8576aCC5C05D6Ce88f4e49bf65BdF0C62F91353C\n\n0x1234 # short\n")
            .unwrap_err();
        assert!(
            matches!(&err, DenylistError::InvalidLine { line: 4, text, .. } if text == "0x1234"),
            "{err}"
        );
        assert_eq!(err.to_string(), r#"denylist denylist.txt, line 4: "0x1234" is not an address"#);
        // Without the 0x prefix it is not taken for an address either.
        let err = parse("8576aCC5C05D6Ce88f4e49bf65BdF0C62F91353C").unwrap_err();
        assert!(matches!(err, DenylistError::InvalidLine { line: 1, .. }));
    }

    #[tokio::test]
    async fn reloads_when_the_file_changes() {
        let path = std::env::temp_dir().join(format!(
            "pactum-denylist-{}-{:?}.txt",
            std::process::id(),
            SystemTime::now()
        ));
        std::fs::write(&path, format!("{ALICE}\n")).unwrap();
        let file = DenylistFile::open(&path).unwrap();
        assert!(file.current().await.unwrap().contains(&ALICE));

        std::fs::write(&path, format!("{ALICE}\n{BOB}\n")).unwrap();
        assert!(file.current().await.unwrap().contains(&BOB));

        // A broken edit is an error until it is fixed, never the old list.
        std::fs::write(&path, format!("{ALICE}\nnot an address\n")).unwrap();
        assert!(matches!(file.current().await, Err(DenylistError::InvalidLine { line: 2, .. })));
        std::fs::write(&path, "# emptied\n").unwrap();
        assert!(file.current().await.unwrap().is_empty());

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(file.current().await, Err(DenylistError::Io { .. })));
    }

    #[test]
    fn a_missing_file_is_an_error_at_open() {
        let err = DenylistFile::open("/nonexistent/pactum-denylist.txt").unwrap_err();
        assert!(matches!(err, DenylistError::Io { .. }), "{err}");
    }
}
