//! File storage (nexent-api.md §1.9, §6.1): objects through the `object_store` crate (the local
//! filesystem under the data dir by default; any store the crate supports by configuration), the
//! original file name, size, content type and upload time in SQLite, and signed, expiring download
//! URLs that this server checks itself.
//!
//! Object names look like Nexent's, `{folder}/{YYYYmmddHHMMSS}_{uuid}{ext}`; a name a client sends is
//! validated before use: no `..`, no absolute paths, no backslashes, no NUL, no empty segments, so
//! nothing can escape the storage root. Uploads are streamed (never whole in memory) and only appear
//! under their name once complete.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use hmac::{Hmac, KeyInit, Mac};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::Sha256;
use sqlx::Row;

use crate::db::Database;
use crate::disk::DiskReserve;

use crate::clock::now_millis;

/// The folder uploads go to when the client names none.
pub const DEFAULT_FOLDER: &str = "attachments";
/// Default per-file upload limit (configurable).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// The longest a signed download URL lives (Nexent's clients ask for at most a week).
pub const MAX_URL_LIFETIME_SECONDS: i64 = 7 * 24 * 3600;
const MAX_OBJECT_NAME_BYTES: usize = 1024;
const SECRET_FILE: &str = "storage.secret";
/// How many bytes of an upload arrive between two looks at the disk reserve.
const RESERVE_CHECK_EVERY: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("Invalid object name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("File {0} not found")]
    NotFound(String),
    #[error("File {name} is larger than the limit of {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    #[error("the signed URL is invalid or has expired")]
    BadSignature,
    #[error(
        "Storage quota of {limit} bytes is used up ({used} bytes stored); delete files or raise storage_quota_bytes"
    )]
    QuotaExceeded { limit: u64, used: u64 },
    #[error(transparent)]
    LowDisk(#[from] crate::disk::LowDisk),
    #[error("storage error: {0}")]
    Store(#[from] object_store::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// A stored object's record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub object_name: String,
    pub file_name: String,
    pub size: u64,
    pub content_type: String,
    pub upload_time_ms: i64,
}

/// Checks a client-supplied object name and turns it into a store path.
pub fn validate_object_name(name: &str) -> Result<ObjectPath, StorageError> {
    let invalid = |reason| Err(StorageError::InvalidName { name: name.to_owned(), reason });
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_OBJECT_NAME_BYTES {
        return invalid("it is too long");
    }
    if name.contains('\0') || name.chars().any(char::is_control) {
        return invalid("it contains control characters");
    }
    if name.contains('\\') {
        return invalid("it contains a backslash");
    }
    if name.starts_with('/') || name.ends_with('/') {
        return invalid("it must be relative and name a file");
    }
    for segment in name.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return invalid("it contains an empty, '.' or '..' segment");
        }
    }
    ObjectPath::parse(name).or(invalid("it is not a valid object path"))
}

/// Validates a folder name (an object-name prefix).
pub fn validate_folder(folder: &str) -> Result<String, StorageError> {
    let folder = folder.trim().trim_matches('/');
    let folder = if folder.is_empty() { DEFAULT_FOLDER } else { folder };
    validate_object_name(folder)?;
    Ok(folder.to_owned())
}

/// `{folder}/{YYYYmmddHHMMSS}_{uuid}{ext}`, the extension taken from the original name.
pub fn new_object_name(folder: &str, file_name: &str) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let extension = Path::new(file_name)
        .extension()
        .and_then(|extension| extension.to_str())
        .filter(|extension| extension.len() <= 16 && extension.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(|extension| format!(".{}", extension.to_ascii_lowercase()))
        .unwrap_or_default();
    format!("{folder}/{stamp}_{}{extension}", uuid::Uuid::new_v4().simple())
}

/// Nexent's content types by extension (§6.1); anything else is `application/octet-stream`.
pub fn content_type_for(file_name: &str) -> &'static str {
    let extension = Path::new(file_name).extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "zip" => "application/zip",
        "rar" => "application/x-rar-compressed",
        "tar" => "application/x-tar",
        "gz" => "application/gzip",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "avi" => "video/x-msvideo",
        "mov" => "video/quicktime",
        "wmv" => "video/x-ms-wmv",
        _ => "application/octet-stream",
    }
}

/// Signs and checks download URLs: HMAC-SHA256 over the object name and the expiry time, with a secret
/// generated once per data dir.
#[derive(Clone)]
pub struct UrlSigner {
    secret: Arc<Vec<u8>>,
}

/// 64 random bytes (four v4 UUIDs from the OS's generator) as hex.
fn random_secret_hex() -> String {
    let mut secret = Vec::with_capacity(64);
    for _ in 0..4 {
        secret.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    secret.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl UrlSigner {
    /// Loads the data dir's secret, creating it (random, mode 0600) on first use.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        let path = data_dir.join(SECRET_FILE);
        if let Ok(secret) = std::fs::read(&path)
            && secret.len() >= 32
        {
            return Ok(Self { secret: Arc::new(secret) });
        }
        let hex = random_secret_hex();
        crate::config_sync::write_atomically(&path, &hex)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(Self { secret: Arc::new(hex.into_bytes()) })
    }

    /// The deployment's secret, kept in the shared database, so a URL one node signs is valid on every
    /// node. The first node to start makes it; the others read the one that won.
    pub async fn shared(db: &Database) -> Result<Self, StorageError> {
        let hex = random_secret_hex();
        sqlx::query(
            "INSERT INTO deployment_secret (name, secret) VALUES ('url_signing', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&hex)
        .execute(db.pool())
        .await?;
        let secret: String = sqlx::query_scalar("SELECT secret FROM deployment_secret WHERE name = 'url_signing'")
            .fetch_one(db.pool())
            .await?;
        Ok(Self { secret: Arc::new(secret.into_bytes()) })
    }

    fn mac(&self, object_name: &str, expires_at: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(object_name.as_bytes());
        mac.update(b"\n");
        mac.update(expires_at.to_string().as_bytes());
        mac
    }

    /// The signature for `object_name` valid until `expires_at` (Unix seconds), as lowercase hex.
    pub fn sign(&self, object_name: &str, expires_at: i64) -> String {
        self.mac(object_name, expires_at).finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Accepts a signature only if it matches (in constant time), has not expired, and does not claim a
    /// longer life than a URL is ever signed for (a leaked secret or an old signer must not mint URLs
    /// that never expire).
    pub fn verify(&self, object_name: &str, expires_at: i64, signature: &str) -> Result<(), StorageError> {
        let now = now_millis() / 1000;
        if expires_at < now || expires_at > now.saturating_add(MAX_URL_LIFETIME_SECONDS + 60) {
            return Err(StorageError::BadSignature);
        }
        // Exactly the 64 lowercase hex digits `sign` writes: no other spelling of the same bytes passes.
        if signature.len() != 64 || !signature.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(StorageError::BadSignature);
        }
        let bytes: Vec<u8> =
            (0..64).step_by(2).filter_map(|at| u8::from_str_radix(&signature[at..at + 2], 16).ok()).collect();
        self.mac(object_name, expires_at).verify_slice(&bytes).map_err(|_| StorageError::BadSignature)
    }
}

/// Where File Management keeps the bytes of stored files (their records are always in SQLite).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StorageBackend {
    /// `objects/` under the data dir.
    #[default]
    Local,
    S3(S3Config),
}

/// A bucket of an S3-compatible store. `endpoint` is for self-hosted stores (MinIO and the like); without it
/// the AWS endpoint of `region` is used.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Allow a plain `http://` endpoint (a store on this machine or the local network).
    pub allow_http: bool,
}

/// An object being read: its record (when known) and its bytes as a stream.
pub struct ObjectDownload {
    pub object: StoredObject,
    pub body: BoxStream<'static, Result<Bytes, StorageError>>,
}

#[derive(Clone)]
pub struct FileStorage {
    store: Arc<dyn ObjectStore>,
    db: Database,
    signer: UrlSigner,
    pub max_upload_bytes: u64,
    /// Most bytes all stored objects may take together (`None`: only the disk limits them).
    pub quota_bytes: Option<u64>,
    /// Free space kept on the disk the objects are written to (none for a remote store).
    reserve: DiskReserve,
}

impl FileStorage {
    /// Storage on the local filesystem under `root`.
    pub fn local(root: &Path, db: Database, signer: UrlSigner, max_upload_bytes: u64) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root)?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true);
        Ok(Self::with_store(Arc::new(store), db, signer, max_upload_bytes))
    }

    /// Storage in a bucket of an S3-compatible store (AWS, MinIO, Ceph, Garage, ...).
    pub fn s3(config: &S3Config, db: Database, signer: UrlSigner, max_upload_bytes: u64) -> Result<Self, StorageError> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(config.region.as_deref().unwrap_or("us-east-1"))
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = config.endpoint.as_deref().filter(|endpoint| !endpoint.is_empty()) {
            // Self-hosted stores answer on one host with the bucket in the path.
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        Ok(Self::with_store(Arc::new(builder.build()?), db, signer, max_upload_bytes))
    }

    /// Storage on any `object_store` backend.
    pub fn with_store(store: Arc<dyn ObjectStore>, db: Database, signer: UrlSigner, max_upload_bytes: u64) -> Self {
        Self { store, db, signer, max_upload_bytes, quota_bytes: None, reserve: DiskReserve::none() }
    }

    /// Refuses uploads that would leave less than the reserve free on the disk the objects go to.
    pub fn with_reserve(mut self, reserve: DiskReserve) -> Self {
        self.reserve = reserve;
        self
    }

    /// Caps what all stored objects may take together.
    pub fn with_quota(mut self, quota_bytes: Option<u64>) -> Self {
        self.quota_bytes = quota_bytes;
        self
    }

    /// Bytes of every stored object, from the records.
    pub async fn used_bytes(&self) -> Result<u64, StorageError> {
        let used: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM storage_object")
            .fetch_one(self.db.pool())
            .await?;
        Ok(used.max(0) as u64)
    }

    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    /// Streams an upload into a new object under `folder`. Nothing is visible under the name until the
    /// whole body arrived; an oversized or broken upload leaves nothing behind.
    pub async fn upload(
        &self,
        folder: &str,
        file_name: &str,
        mut body: BoxStream<'_, Result<Bytes, std::io::Error>>,
    ) -> Result<StoredObject, StorageError> {
        let folder = validate_folder(folder)?;
        let object_name = new_object_name(&folder, file_name);
        let path = validate_object_name(&object_name)?;
        // Checked before and while the bytes arrive, so a full quota costs the client no upload.
        let used = match self.quota_bytes {
            Some(limit) => {
                let used = self.used_bytes().await?;
                if used >= limit {
                    return Err(StorageError::QuotaExceeded { limit, used });
                }
                used
            }
            None => 0,
        };
        self.reserve.check(0)?;
        let mut writer = WriteMultipart::new(self.store.put_multipart(&path).await?);
        let mut size: u64 = 0;
        // The reserve is asked again every few MiB as the body arrives (a statvfs each time).
        let mut next_reserve_check = RESERVE_CHECK_EVERY;
        let outcome: Result<(), StorageError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                if size > self.max_upload_bytes {
                    return Err(StorageError::TooLarge { name: file_name.to_owned(), limit: self.max_upload_bytes });
                }
                if size >= next_reserve_check {
                    self.reserve.check(chunk.len() as u64)?;
                    next_reserve_check = size + RESERVE_CHECK_EVERY;
                }
                if let Some(limit) = self.quota_bytes
                    && used + size > limit
                {
                    return Err(StorageError::QuotaExceeded { limit, used });
                }
                writer.wait_for_capacity(4).await?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            let _ = writer.abort().await;
            return Err(error);
        }
        writer.finish().await?;
        let object = StoredObject {
            object_name: object_name.clone(),
            file_name: file_name.to_owned(),
            size,
            content_type: content_type_for(file_name).to_owned(),
            upload_time_ms: now_millis(),
        };
        let recorded = sqlx::query(
            "INSERT INTO storage_object (object_name, file_name, size, content_type, upload_time) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&object.object_name)
        .bind(&object.file_name)
        .bind(object.size as i64)
        .bind(&object.content_type)
        .bind(object.upload_time_ms)
        .execute(self.db.pool())
        .await;
        if let Err(error) = recorded {
            let _ = self.store.delete(&path).await;
            return Err(error.into());
        }
        Ok(object)
    }

    /// Moves an object into another folder (its file part unchanged), keeping its record.
    pub async fn move_to_folder(&self, object: &StoredObject, folder: &str) -> Result<StoredObject, StorageError> {
        let folder = validate_folder(folder)?;
        let file_part = object.object_name.rsplit('/').next().unwrap_or(&object.object_name);
        let target = format!("{folder}/{file_part}");
        if target == object.object_name {
            return Ok(object.clone());
        }
        let from = validate_object_name(&object.object_name)?;
        let to = validate_object_name(&target)?;
        self.store.rename(&from, &to).await?;
        sqlx::query("UPDATE storage_object SET object_name = $1 WHERE object_name = $2")
            .bind(&target)
            .bind(&object.object_name)
            .execute(self.db.pool())
            .await?;
        Ok(StoredObject { object_name: target, ..object.clone() })
    }

    /// The object's record; objects put into the store by other means get one from the store's metadata.
    pub async fn describe(&self, object_name: &str) -> Result<StoredObject, StorageError> {
        let path = validate_object_name(object_name)?;
        let meta = match self.store.head(&path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Err(StorageError::NotFound(object_name.to_owned())),
            Err(error) => return Err(error.into()),
        };
        let row = sqlx::query("SELECT file_name, content_type, upload_time FROM storage_object WHERE object_name = $1")
            .bind(object_name)
            .fetch_optional(self.db.pool())
            .await?;
        let base_name = object_name.rsplit('/').next().unwrap_or(object_name).to_owned();
        Ok(match row {
            Some(row) => StoredObject {
                object_name: object_name.to_owned(),
                file_name: row.get("file_name"),
                size: meta.size,
                content_type: row.get("content_type"),
                upload_time_ms: row.get("upload_time"),
            },
            None => StoredObject {
                object_name: object_name.to_owned(),
                content_type: content_type_for(&base_name).to_owned(),
                file_name: base_name,
                size: meta.size,
                upload_time_ms: meta.last_modified.timestamp_millis(),
            },
        })
    }

    pub async fn download(&self, object_name: &str) -> Result<ObjectDownload, StorageError> {
        let object = self.describe(object_name).await?;
        let path = validate_object_name(object_name)?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(StorageError::NotFound(object_name.to_owned())),
            Err(error) => return Err(error.into()),
        };
        let body = result.into_stream().map(|chunk| chunk.map_err(StorageError::from)).boxed();
        Ok(ObjectDownload { object, body })
    }

    /// An object's bytes, refusing objects over `limit` bytes (checked as they stream, not by the record).
    pub async fn read_bounded(&self, object_name: &str, limit: u64) -> Result<(StoredObject, Vec<u8>), StorageError> {
        let download = self.download(object_name).await?;
        let mut bytes = Vec::new();
        let mut body = download.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(StorageError::TooLarge { name: object_name.to_owned(), limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((download.object, bytes))
    }

    /// Deletes an object; deleting a missing one succeeds, as Nexent (and S3) do.
    pub async fn delete(&self, object_name: &str) -> Result<(), StorageError> {
        let path = validate_object_name(object_name)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        sqlx::query("DELETE FROM storage_object WHERE object_name = $1")
            .bind(object_name)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Objects under `prefix` (a folder or name prefix), sorted by name, at most `limit`.
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<StoredObject>, StorageError> {
        let prefix = prefix.trim_matches('/');
        // List from the prefix's folder (everything when it has none), then keep names that match.
        let root = match prefix.rsplit_once('/') {
            Some((folder, _)) => Some(validate_object_name(folder)?),
            None => None,
        };
        let mut metas: Vec<object_store::ObjectMeta> = Vec::new();
        let mut stream = self.store.list(root.as_ref());
        while let Some(meta) = stream.next().await {
            let meta = meta?;
            if meta.location.as_ref().starts_with(prefix) {
                metas.push(meta);
            }
        }
        metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        metas.truncate(limit);
        let mut objects = Vec::with_capacity(metas.len());
        for meta in metas {
            let name = meta.location.to_string();
            let base_name = name.rsplit('/').next().unwrap_or(&name).to_owned();
            objects.push(StoredObject {
                content_type: content_type_for(&base_name).to_owned(),
                file_name: base_name,
                object_name: name,
                size: meta.size,
                upload_time_ms: meta.last_modified.timestamp_millis(),
            });
        }
        Ok(objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_cannot_escape_the_root() {
        for good in ["attachments/20250101120000_abc.png", "a/b/c.txt", "知识/文件.pdf"] {
            assert!(validate_object_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../etc/passwd", "a/../b", "/etc/passwd", "a\\b", "a\0b", "a//b", "./a", "a/", "a/./b"] {
            assert!(validate_object_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_names_follow_nexents_shape() {
        let name = new_object_name("attachments", "Report.Final.PDF");
        let (folder, file) = name.split_once('/').expect("folder");
        assert_eq!(folder, "attachments");
        assert!(file.ends_with(".pdf"));
        assert_eq!(file.find('_'), Some(14));
        assert_eq!(new_object_name("x", "no-extension").rsplit('.').count(), 1);
    }

    #[test]
    fn signatures_check_name_expiry_and_every_character() {
        let dir = tempfile::tempdir().expect("dir");
        let signer = UrlSigner::open(dir.path()).expect("signer");
        let expires = now_millis() / 1000 + 60;
        let signature = signer.sign("a/b.txt", expires);
        assert!(signer.verify("a/b.txt", expires, &signature).is_ok());
        assert!(signer.verify("a/c.txt", expires, &signature).is_err());
        assert!(signer.verify("a/b.txt", expires + 1, &signature).is_err());
        let far = now_millis() / 1000 + MAX_URL_LIFETIME_SECONDS * 10;
        assert!(signer.verify("a/b.txt", far, &signer.sign("a/b.txt", far)).is_err(), "lifetime capped");
        let mut tampered = signature.clone().into_bytes();
        tampered[10] = if tampered[10] == b'0' { b'1' } else { b'0' };
        assert!(signer.verify("a/b.txt", expires, &String::from_utf8(tampered).expect("hex")).is_err());
        assert!(signer.verify("a/b.txt", expires, &signature.to_uppercase()).is_err(), "one spelling only");
        let multibyte = format!("a\u{e9}{}", "a".repeat(61));
        assert_eq!(multibyte.len(), 64);
        assert!(signer.verify("a/b.txt", expires, &multibyte).is_err(), "no panic on non-ASCII");
        let past = now_millis() / 1000 - 1;
        assert!(signer.verify("a/b.txt", past, &signer.sign("a/b.txt", past)).is_err());
        // The secret persists: a reopened signer accepts the same signature.
        let reopened = UrlSigner::open(dir.path()).expect("reopen");
        assert!(reopened.verify("a/b.txt", expires, &signature).is_ok());
    }
}
