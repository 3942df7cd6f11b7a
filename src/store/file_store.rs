//! Tokens in files, shared by every process of one user: see [`FileStore`].

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;

use super::encryption::{CacheEncryptionKey, to_hex};
use super::envelope::{Codec, to_unix_ms};
use super::key::CacheKey;
use super::token_store::{MemoryStore, StoreError, StoreLock, TokenStore};
use crate::future::BoxFuture;
use crate::oauth::token::AccessToken;

/// The largest token file read back; anything larger is not m2m's.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A [`TokenStore`] in a directory: what lets `m2m token` and `m2m call`
/// reuse a token across runs, as `az` and `gcloud` do.
///
/// - **Files**: one per [`CacheKey`], named by its SHA-256 form
///   (`<key>.token`), so no client id or scope is in a name; created with
///   mode 0600 in a directory of mode 0700 (created so, or an empty one
///   tightened to it; a directory open to others that holds other files,
///   or a shared sticky one such as `/tmp` itself, is refused).
/// - **Contents**: the envelope of the Redis store, the access token always
///   AES-256-GCM encrypted with the [`CacheEncryptionKey`] given (from
///   `M2M_CACHE_KEY`, or derived from the client's secret): no file ever
///   holds a token or a client secret in clear. A file that does not read
///   back (another key, tampered, foreign) is a miss and is overwritten.
/// - **Writes** go to a fresh temporary file that is renamed over the old
///   one: a reader sees the old token or the new one, never half of one.
/// - **One fetch across processes**: [`TokenStore::try_lock`] is an
///   exclusive `flock` on `<key>.lock`, which the system releases when the
///   holder exits, so a crashed holder never blocks the others. Processes
///   that do not get it watch the file for the holder's token.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use m2m::auth::{CacheEncryptionKey, CacheSettings, FileStore, TokenCache};
/// # use m2m::auth::clock::{RandomJitter, SystemClock};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = CacheEncryptionKey::derive_from_secret(std::env::var("CLIENT_SECRET")?.as_bytes())?;
/// let store = FileStore::open("/home/me/.cache/m2m", key)?;
/// let cache = TokenCache::new(Arc::new(store), Arc::new(SystemClock), Arc::new(RandomJitter), CacheSettings::default());
/// # Ok(()) }
/// ```
pub struct FileStore {
    dir: PathBuf,
    codec: Codec,
    /// What this process read or wrote: [`TokenStore::peek`] answers from it.
    local: MemoryStore,
    /// The refresh locks this process holds: dropping the file releases it.
    locks: Mutex<HashMap<CacheKey, HeldLock>>,
}

struct HeldLock {
    owner: String,
    _file: File,
}

impl FileStore {
    /// Opens (creating it if needed) the directory `dir` as a token store
    /// whose tokens are encrypted with `key`.
    pub fn open(dir: impl Into<PathBuf>, key: CacheEncryptionKey) -> Result<Self, StoreError> {
        let dir = dir.into();
        prepare_dir(&dir)?;
        Ok(Self {
            dir,
            codec: Codec::new(Some(Arc::new(key))),
            local: MemoryStore::with_capacity(64),
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn token_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.token", key.as_str()))
    }

    fn lock_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.lock", key.as_str()))
    }

    /// Held while a token file is replaced or compared and removed, so that
    /// `remove_if_same` never removes a token another process just wrote.
    fn write_guard(&self, key: &CacheKey) -> Result<File, StoreError> {
        let path = self.dir.join(format!("{}.write", key.as_str()));
        let file = open_private(&path, false).map_err(|e| io_error("open the write guard", e))?;
        file.lock()
            .map_err(|e| io_error("lock the write guard", e))?;
        Ok(file)
    }

    /// The token in the file, if there is one this store can read.
    fn read(&self, key: &CacheKey) -> Result<Option<AccessToken>, StoreError> {
        let file = match File::open(self.token_path(key)) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("open the token file", error)),
        };
        let mut raw = Vec::new();
        (&file)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(|e| io_error("read the token file", e))?;
        if raw.len() as u64 > MAX_FILE_BYTES {
            tracing::debug!(key = key.short(), "token file too large: ignored");
            return Ok(None);
        }
        match self.codec.decode(key, &raw) {
            Ok(token) => {
                self.local.insert(key, &token);
                Ok(Some(token))
            }
            Err(why) => {
                tracing::debug!(key = key.short(), %why, "token file not taken");
                Ok(None)
            }
        }
    }

    fn write(&self, key: &CacheKey, token: &AccessToken) -> Result<(), StoreError> {
        let sealed = self.codec.encode(key, token)?;
        let temp = self
            .dir
            .join(format!(".{}.{}.tmp", key.as_str(), random_hex()?));
        let written = open_private(&temp, true)
            .and_then(|mut file| file.write_all(&sealed).and_then(|()| file.sync_all()));
        if let Err(error) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error("write the token file", error));
        }
        let _guard = self.write_guard(key)?;
        fs::rename(&temp, self.token_path(key)).map_err(|e| {
            let _ = fs::remove_file(&temp);
            io_error("replace the token file", e)
        })?;
        self.local.insert(key, token);
        Ok(())
    }

    fn delete(&self, key: &CacheKey) -> Result<(), StoreError> {
        match fs::remove_file(self.token_path(key)) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(io_error("remove the token file", error)),
        }
    }

    fn delete_if_same(&self, key: &CacheKey, rejected: &HeaderValue) -> Result<bool, StoreError> {
        let _guard = self.write_guard(key)?;
        let same = self
            .read(key)?
            .is_some_and(|stored| stored.is_sent_as(rejected));
        if same {
            self.delete(key)?;
        }
        Ok(same)
    }

    fn lock(&self, key: &CacheKey) -> Result<Option<StoreLock>, StoreError> {
        let file = open_private(&self.lock_path(key), false)
            .map_err(|e| io_error("open the lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(error)) => {
                return Err(io_error("lock the lock file", error));
            }
        }
        // The last holder may have stored its token and let go between the
        // caller's look in the store and this grant: then there is nothing
        // to fetch. Decline; the cache takes that token from the store.
        let known = self.local.peek(key);
        if let Some(stored) = self.read(key)?
            && known.is_none_or(|known| is_later(&stored, &known))
        {
            tracing::debug!(
                key = key.short(),
                "a newer token was stored just before the refresh lock was granted: not fetching"
            );
            return Ok(None);
        }
        let owner = random_hex()?;
        self.held().insert(
            key.clone(),
            HeldLock {
                owner: owner.clone(),
                _file: file,
            },
        );
        Ok(Some(StoreLock::owned(owner)))
    }

    fn release(&self, key: &CacheKey, lock: &StoreLock) {
        let mut held = self.held();
        if held
            .get(key)
            .is_some_and(|h| Some(h.owner.as_str()) == lock.owner())
        {
            held.remove(key);
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, HeldLock>> {
        // Every critical section leaves the map whole: poisoning is ignored.
        self.locks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl TokenStore for FileStore {
    fn peek(&self, key: &CacheKey) -> Option<AccessToken> {
        self.local.peek(key)
    }

    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<AccessToken>, StoreError>> {
        Box::pin(std::future::ready(self.read(key)))
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a AccessToken,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(std::future::ready(self.write(key, token)))
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), StoreError>> {
        self.local.forget(key);
        Box::pin(std::future::ready(self.delete(key)))
    }

    fn remove_if_same<'a>(
        &'a self,
        key: &'a CacheKey,
        rejected: &'a HeaderValue,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.local.forget(key);
        Box::pin(std::future::ready(self.delete_if_same(key, rejected)))
    }

    /// An exclusive `flock` on the key's lock file, held until
    /// [`TokenStore::unlock`] or the end of the process; `ttl` is not needed
    /// (the system releases the lock of a process that died).
    fn try_lock<'a>(
        &'a self,
        key: &'a CacheKey,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        Box::pin(std::future::ready(self.lock(key)))
    }

    fn unlock<'a>(
        &'a self,
        key: &'a CacheKey,
        lock: StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.release(key, &lock);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Creates `dir` with mode 0700, or makes an existing one 0700; refuses a
/// shared (sticky) directory such as `/tmp`.
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    let fail = |what: &str, error: io::Error| {
        StoreError::with_source(
            format!(
                "cannot {what} the cache directory {}: {error}",
                dir.display()
            ),
            error,
        )
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| fail("create", e))?;
    let metadata = fs::metadata(dir).map_err(|e| fail("read", e))?;
    if !metadata.is_dir() {
        return Err(StoreError::new(format!(
            "the cache directory {} is not a directory",
            dir.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o1000 != 0 {
            return Err(StoreError::new(format!(
                "the cache directory {} is a shared directory (sticky bit): name a directory of your own",
                dir.display()
            )));
        }
        if mode != 0o700 {
            // An empty directory (just made with `mkdir`) is made private;
            // one that holds other files is not m2m's to change.
            let empty = fs::read_dir(dir)
                .map_err(|e| fail("read", e))?
                .next()
                .is_none();
            if !empty {
                return Err(StoreError::new(format!(
                    "the cache directory {} has mode {mode:o} and holds other files: name a directory of your own, or `chmod 700` it",
                    dir.display()
                )));
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| fail("restrict to mode 0700", e))?;
            tracing::debug!(dir = %dir.display(), mode = format!("{mode:o}"), "empty cache directory restricted to mode 0700");
        }
    }
    Ok(())
}

/// Opens `path` for writing with mode 0600: a new file (`create_new`), or
/// the existing one.
fn open_private(path: &Path, create_new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn io_error(what: &str, error: io::Error) -> StoreError {
    StoreError::with_source(format!("cannot {what}: {error}"), error)
}

/// 128 random bits in hex: lock owners and temporary file names.
fn random_hex() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StoreError::new("no randomness"))?;
    Ok(to_hex(&bytes))
}

/// Whether `a` expires later than `b` (tokens are told apart by expiry;
/// the files keep milliseconds).
fn is_later(a: &AccessToken, b: &AccessToken) -> bool {
    to_unix_ms(a.expires_at()) > to_unix_ms(b.expires_at())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use secrecy::SecretString;

    use super::*;

    const TOKEN: &str = "file-store-test-token-5b8e";

    fn key(client: &str) -> CacheKey {
        CacheKey::new("Custom", "https://idp.test/token", client, ["s"], None)
    }

    fn token(value: &str, expires_in: u64) -> AccessToken {
        let expires_at = SystemTime::now() + Duration::from_secs(expires_in);
        AccessToken::new(SecretString::from(value), "Bearer", expires_at, None).unwrap()
    }

    fn secret_key(secret: &str) -> CacheEncryptionKey {
        CacheEncryptionKey::derive_from_secret(secret.as_bytes()).unwrap()
    }

    /// A path that does not exist yet, in a directory removed when the
    /// returned guard is dropped.
    fn temp_dir() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("store");
        (root, dir)
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn a_token_written_by_one_store_is_read_by_another_and_never_in_clear() {
        let (_root, dir) = temp_dir();
        let dir = dir.join("nested");
        let writer = FileStore::open(&dir, secret_key("client-secret")).unwrap();
        writer
            .put(&key("a"), &token(TOKEN, 3600), Duration::ZERO)
            .await
            .unwrap();

        let reader = FileStore::open(&dir, secret_key("client-secret")).unwrap();
        assert!(reader.peek(&key("a")).is_none(), "nothing read yet");
        let back = reader.get(&key("a")).await.unwrap().unwrap();
        assert!(back.is_sent_as(token(TOKEN, 1).authorization()));
        assert!(reader.peek(&key("a")).is_some(), "kept in process");
        assert!(reader.get(&key("b")).await.unwrap().is_none());

        let other_secret = FileStore::open(&dir, secret_key("another-secret")).unwrap();
        assert!(other_secret.get(&key("a")).await.unwrap().is_none());

        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "no temporary file left: {name}");
            let text = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
            assert!(!text.contains(TOKEN), "{name} holds the token");
            assert!(!text.contains("client-secret"), "{name} holds the secret");
            #[cfg(unix)]
            assert_eq!(mode(&path), 0o600, "{name}");
        }
        #[cfg(unix)]
        assert_eq!(mode(&dir), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn an_empty_open_directory_is_tightened_and_a_shared_one_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (_root, dir) = temp_dir();
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        FileStore::open(&dir, secret_key("s")).unwrap();
        assert_eq!(mode(&dir), 0o700);

        fs::write(dir.join("someone-elses-file"), b"x").unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let error = FileStore::open(&dir, secret_key("s")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("has mode 755 and holds other files"),
            "{error}"
        );
        assert_eq!(mode(&dir), 0o755, "left as it was");
        fs::remove_file(dir.join("someone-elses-file")).unwrap();

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        let error = FileStore::open(&dir, secret_key("s")).unwrap_err();
        assert!(error.to_string().contains("sticky"), "{error}");

        let (_other, file) = temp_dir();
        fs::write(&file, b"x").unwrap();
        assert!(FileStore::open(&file, secret_key("s")).is_err());
    }

    #[tokio::test]
    async fn one_lock_holder_per_key_and_a_declined_lock_when_a_newer_token_is_there() {
        let (_root, dir) = temp_dir();
        let one = FileStore::open(&dir, secret_key("s")).unwrap();
        let two = FileStore::open(&dir, secret_key("s")).unwrap();
        let ttl = Duration::from_secs(30);

        let lock = one.try_lock(&key("a"), ttl).await.unwrap().unwrap();
        assert!(two.try_lock(&key("a"), ttl).await.unwrap().is_none());
        assert!(two.try_lock(&key("b"), ttl).await.unwrap().is_some());
        // Another owner's lock value does not release it.
        one.unlock(&key("a"), StoreLock::owned("someone-else"))
            .await
            .unwrap();
        assert!(two.try_lock(&key("a"), ttl).await.unwrap().is_none());

        one.put(&key("a"), &token(TOKEN, 3600), ttl).await.unwrap();
        one.unlock(&key("a"), lock).await.unwrap();
        // `two` knows no token for `a`: the one just stored is newer.
        assert!(two.try_lock(&key("a"), ttl).await.unwrap().is_none());
        assert!(two.get(&key("a")).await.unwrap().is_some());
        // Now that it knows it, the lock is granted (to replace it).
        assert!(two.try_lock(&key("a"), ttl).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn remove_if_same_spares_a_newer_token_and_garbage_is_a_miss() {
        let (_root, dir) = temp_dir();
        let store = FileStore::open(&dir, secret_key("s")).unwrap();
        let old = token("old-token", 100);
        let new = token("new-token", 200);
        store.put(&key("a"), &new, Duration::ZERO).await.unwrap();
        assert!(
            !store
                .remove_if_same(&key("a"), old.authorization())
                .await
                .unwrap()
        );
        assert!(store.get(&key("a")).await.unwrap().is_some());
        assert!(
            store
                .remove_if_same(&key("a"), new.authorization())
                .await
                .unwrap()
        );
        assert!(store.get(&key("a")).await.unwrap().is_none());

        fs::write(store.token_path(&key("a")), b"garbage").unwrap();
        assert!(store.get(&key("a")).await.unwrap().is_none());
        let huge = vec![b' '; MAX_FILE_BYTES as usize + 10];
        fs::write(store.token_path(&key("a")), huge).unwrap();
        assert!(store.get(&key("a")).await.unwrap().is_none());
        store.put(&key("a"), &new, Duration::ZERO).await.unwrap();
        assert!(store.get(&key("a")).await.unwrap().is_some());
    }

    #[test]
    fn debug_shows_the_directory_only() {
        let (_root, dir) = temp_dir();
        let store = FileStore::open(&dir, secret_key("debug-secret")).unwrap();
        let debug = format!("{store:?}");
        assert!(debug.starts_with("FileStore { dir: "), "{debug}");
        assert!(!debug.contains("debug-secret"));
    }
}
