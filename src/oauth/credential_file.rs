//! Credential files, read again at every token request: a client secret, a
//! private key and its certificate, a client assertion.
//!
//! No watcher thread: the file is opened anew when a token is requested
//! (a symbolic link is followed then, so the atomic symlink swap with which
//! Kubernetes updates a projected volume is seen at once), read up to a
//! limit (a 10 MB file is refused after the limit, not read whole), and
//! compared by SHA-256 with what was read last: only a changed content is
//! parsed again. Reads run on Tokio's blocking pool, not on a runtime
//! worker. Token requests are rare (one per token lifetime), so reading a
//! small file each time costs nothing and misses no change, even one that
//! keeps the length and the modification time.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use secrecy::{ExposeSecret, SecretSlice};

use super::error::{CredentialError, CredentialKind, CredentialOrigin, CredentialProblem};

/// The most bytes read of a client secret or a client assertion file
/// (a Kubernetes service-account token is about 1 KB).
pub(crate) const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;
/// The most bytes read of a PEM key or certificate file (a chain included).
pub(crate) const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// One credential file: what it holds and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialFile {
    pub(crate) kind: CredentialKind,
    pub(crate) path: PathBuf,
}

impl CredentialFile {
    pub(crate) fn new(kind: CredentialKind, path: impl Into<PathBuf>) -> Self {
        Self {
            kind,
            path: path.into(),
        }
    }

    fn limit(&self) -> u64 {
        match self.kind {
            CredentialKind::ClientAssertion | CredentialKind::ClientSecret => MAX_SECRET_FILE_BYTES,
            CredentialKind::PrivateKey | CredentialKind::Certificate => MAX_PEM_FILE_BYTES,
        }
    }

    /// The error `problem` about this file.
    pub(crate) fn error(&self, problem: CredentialProblem) -> CredentialError {
        CredentialError {
            credential: self.kind,
            origin: CredentialOrigin::File(self.path.clone()),
            problem,
        }
    }

    /// Reads the file now, on this thread.
    pub(crate) fn read_blocking(&self) -> Result<SecretSlice<u8>, CredentialError> {
        read_capped(&self.path, self.limit()).map_err(|problem| self.error(problem))
    }

    /// Reads the file on Tokio's blocking pool (on this thread outside a
    /// runtime).
    pub(crate) async fn read(&self) -> Result<SecretSlice<u8>, CredentialError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.read_blocking();
        };
        let file = self.clone();
        runtime
            .spawn_blocking(move || file.read_blocking())
            .await
            .unwrap_or_else(|e| {
                Err(self.error(CredentialProblem::Unreadable {
                    reason: format!("the read did not finish ({e})"),
                }))
            })
    }
}

fn read_capped(path: &Path, limit: u64) -> Result<SecretSlice<u8>, CredentialProblem> {
    let unreadable = |e: std::io::Error| CredentialProblem::Unreadable {
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    let bytes = SecretSlice::from(bytes);
    if bytes.expose_secret().len() as u64 > limit {
        return Err(CredentialProblem::TooLarge { limit });
    }
    Ok(bytes)
}

/// The text of a secret file: its whole content less surrounding
/// whitespace (the trailing newline editors and `echo` add, a `\r\n`).
pub(crate) fn trimmed_text(
    file: &CredentialFile,
    bytes: &SecretSlice<u8>,
) -> Result<secrecy::SecretString, CredentialError> {
    let text = std::str::from_utf8(bytes.expose_secret()).map_err(|_| {
        file.error(CredentialProblem::Invalid {
            reason: "it is not UTF-8 text".into(),
        })
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(file.error(CredentialProblem::Empty));
    }
    Ok(text.to_owned().into())
}

/// The text of the credential file at `path` (a secret; a PEM key,
/// certificate or bundle of them) less surrounding whitespace, read within
/// the limit of its `kind`, which names it in errors.
pub(crate) fn read_text(
    kind: CredentialKind,
    path: &Path,
) -> Result<secrecy::SecretString, CredentialError> {
    let file = CredentialFile::new(kind, path);
    trimmed_text(&file, &file.read_blocking()?)
}

/// The parser of a [`Reloading`] value: the files' contents, in order.
type Parse<T> = dyn Fn(&[SecretSlice<u8>]) -> Result<T, CredentialError> + Send + Sync;

/// A value made from files, made again when their content changes.
pub(crate) struct Reloading<T> {
    files: Vec<CredentialFile>,
    parse: Box<Parse<T>>,
    loaded: Mutex<Loaded<T>>,
    /// How many times a changed content was parsed and taken.
    changes: AtomicU64,
}

struct Loaded<T> {
    digest: [u8; 32],
    value: Arc<T>,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Reads and parses `files` now (at configuration time: a missing file
    /// fails here, before any request).
    pub(crate) fn load(
        files: Vec<CredentialFile>,
        parse: impl Fn(&[SecretSlice<u8>]) -> Result<T, CredentialError> + Send + Sync + 'static,
    ) -> Result<Self, CredentialError> {
        let contents = files
            .iter()
            .map(CredentialFile::read_blocking)
            .collect::<Result<Vec<_>, _>>()?;
        let value = parse(&contents)?;
        Ok(Self {
            loaded: Mutex::new(Loaded {
                digest: digest_of(&contents),
                value: Arc::new(value),
            }),
            files,
            parse: Box::new(parse),
            changes: AtomicU64::new(0),
        })
    }

    /// The value read last, without reading the files.
    pub(crate) fn last(&self) -> Arc<T> {
        Arc::clone(&self.loaded.lock().unwrap_or_else(|e| e.into_inner()).value)
    }

    /// How many times the files' content changed and was taken since they
    /// were loaded.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The value for the files as they are now: read again, parsed again
    /// only if their content changed. A file that became unreadable or
    /// unusable is an error (the last good value is not used in its place:
    /// whoever replaced it should hear of it).
    pub(crate) async fn current(&self) -> Result<Arc<T>, CredentialError> {
        let mut contents = Vec::with_capacity(self.files.len());
        for file in &self.files {
            contents.push(file.read().await?);
        }
        let digest = digest_of(&contents);
        {
            let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            if loaded.digest == digest {
                return Ok(Arc::clone(&loaded.value));
            }
        }
        let value = Arc::new((self.parse)(&contents)?);
        let paths: Vec<String> = self
            .files
            .iter()
            .map(|file| file.path.display().to_string())
            .collect();
        tracing::info!(
            files = %paths.join(", "),
            "a credential file changed on disk: read again"
        );
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Loaded {
            digest,
            value: Arc::clone(&value),
        };
        self.changes.fetch_add(1, Ordering::AcqRel);
        Ok(value)
    }

    /// The files, in order.
    pub(crate) fn files(&self) -> &[CredentialFile] {
        &self.files
    }
}

/// SHA-256 over the length-prefixed contents.
fn digest_of(contents: &[SecretSlice<u8>]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    for content in contents {
        let bytes = content.expose_secret();
        context.update(&(bytes.len() as u64).to_be_bytes());
        context.update(bytes);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_without_reading_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, vec![b'a'; 10 * 1024 * 1024]).unwrap();
        let file = CredentialFile::new(CredentialKind::ClientSecret, &path);
        let error = file.read_blocking().unwrap_err();
        assert_eq!(
            error.problem,
            CredentialProblem::TooLarge {
                limit: MAX_SECRET_FILE_BYTES
            }
        );
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn whitespace_around_a_secret_is_not_part_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let file = CredentialFile::new(CredentialKind::ClientSecret, &path);
        std::fs::write(&path, "s3cret\r\n").unwrap();
        let text = trimmed_text(&file, &file.read_blocking().unwrap()).unwrap();
        assert_eq!(text.expose_secret(), "s3cret");
        std::fs::write(&path, " \n").unwrap();
        let error = trimmed_text(&file, &file.read_blocking().unwrap()).unwrap_err();
        assert_eq!(error.problem, CredentialProblem::Empty);
    }

    #[tokio::test]
    async fn a_value_is_parsed_again_only_when_the_content_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "one").unwrap();
        let parses = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&parses);
        let file = CredentialFile::new(CredentialKind::ClientSecret, &path);
        let reloading = Reloading::load(vec![file.clone()], move |contents| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            trimmed_text(&file, &contents[0])
        })
        .unwrap();
        assert_eq!(reloading.current().await.unwrap().expose_secret(), "one");
        assert_eq!(parses.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Same length, same second: the content tells.
        std::fs::write(&path, "two").unwrap();
        assert_eq!(reloading.current().await.unwrap().expose_secret(), "two");
        assert_eq!(reloading.current().await.unwrap().expose_secret(), "two");
        assert_eq!(parses.load(std::sync::atomic::Ordering::SeqCst), 2);
        std::fs::remove_file(&path).unwrap();
        let error = reloading.current().await.unwrap_err();
        assert!(
            matches!(error.problem, CredentialProblem::Unreadable { .. }),
            "{error}"
        );
    }
}
