//! Small file helpers over glommio (io_uring): whole-file reads, full positional writes,
//! atomic replace (tmp + fdatasync + rename + directory sync); and the log writer's gathered
//! `pwritev`, a plain system call on the shard thread.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, Directory, OpenOptions};

use super::error::StorageError;

pub(crate) fn io_err(
    op: &'static str,
    path: &Path,
    error: impl Into<std::io::Error>,
) -> StorageError {
    StorageError::io(op, path.to_path_buf(), error)
}

fn is_not_found(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::NotFound
}

/// Writes all of `bytes` at `position`, retrying short writes (e.g. near a full disk).
pub(crate) async fn write_all_at(
    file: &BufferedFile,
    path: &Path,
    mut bytes: Vec<u8>,
    mut position: u64,
) -> Result<(), StorageError> {
    while !bytes.is_empty() {
        let len = bytes.len();
        let written = file
            .write_at(bytes.clone(), position)
            .await
            .map_err(|e| io_err("write", path, e))?;
        if written == 0 {
            return Err(io_err(
                "write",
                path,
                std::io::Error::new(std::io::ErrorKind::WriteZero, "wrote 0 bytes"),
            ));
        }
        assert!(written <= len);
        if written == len {
            return Ok(());
        }
        bytes.drain(..written);
        position += written as u64;
    }
    Ok(())
}

/// Writes `pieces`, in order, at `position` with `pwritev(2)` on the calling thread (the
/// kernel copies them into the page cache; nothing is copied here). Retries short writes.
pub(crate) fn write_gathered_at(
    file: &BufferedFile,
    path: &Path,
    pieces: &[&[u8]],
    position: u64,
) -> Result<(), StorageError> {
    let fd = file.as_raw_fd();
    let (mut piece, mut skip, mut at) = (0usize, 0usize, position);
    while piece < pieces.len() {
        let iovecs: Vec<libc::iovec> = pieces[piece..]
            .iter()
            .take(IOVECS_PER_WRITE_MAX)
            .enumerate()
            .map(|(i, p)| {
                let p = if i == 0 { &p[skip..] } else { p };
                libc::iovec {
                    iov_base: p.as_ptr() as *mut libc::c_void,
                    iov_len: p.len(),
                }
            })
            .collect();
        // SAFETY: every iovec points into a live slice of `pieces`; the call reads them only.
        let written = unsafe {
            libc::pwritev(
                fd,
                iovecs.as_ptr(),
                iovecs.len() as libc::c_int,
                at as libc::off_t,
            )
        };
        if written < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_err("write", path, e));
        }
        if written == 0 {
            let e = std::io::Error::new(std::io::ErrorKind::WriteZero, "pwritev wrote 0 bytes");
            return Err(io_err("write", path, e));
        }
        at += written as u64;
        let mut left = written as usize;
        while left > 0 {
            let rest = pieces[piece].len() - skip;
            if left < rest {
                skip += left;
                left = 0;
            } else {
                left -= rest;
                piece += 1;
                skip = 0;
            }
        }
        while piece < pieces.len() && pieces[piece].len() == skip {
            piece += 1;
            skip = 0;
        }
    }
    Ok(())
}

/// iovecs passed to one `pwritev` (the kernel's IOV_MAX is 1024).
const IOVECS_PER_WRITE_MAX: usize = 1024;

/// Reads up to `len` bytes at `position`; shorter only at end of file.
pub(crate) async fn read_at(
    file: &BufferedFile,
    path: &Path,
    position: u64,
    len: usize,
) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let at = position + out.len() as u64;
        let chunk = file
            .read_at(at, len - out.len())
            .await
            .map_err(|e| io_err("read", path, e))?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Whole file, or None if it does not exist. Files over `bytes_max` are an error.
pub(crate) async fn read_file(
    path: &Path,
    bytes_max: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    let file = match BufferedFile::open(path).await {
        Ok(file) => file,
        Err(e) => {
            let e: std::io::Error = e.into();
            if is_not_found(&e) {
                return Ok(None);
            }
            return Err(io_err("open", path, e));
        }
    };
    let size = file
        .file_size()
        .await
        .map_err(|e| io_err("stat", path, e))?;
    if size > bytes_max {
        let _ = file.close().await;
        return Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            position: 0,
            reason: format!("file of {size} bytes exceeds {bytes_max}"),
        });
    }
    let bytes = read_at(&file, path, 0, size as usize).await;
    let _ = file.close().await;
    bytes.map(Some)
}

pub(crate) async fn open_rw(path: &Path, create: bool) -> Result<BufferedFile, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .buffered_open(path)
        .await
        .map_err(|e| io_err("open", path, e))
}

pub(crate) async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let d = Directory::open(dir)
        .await
        .map_err(|e| io_err("open dir", dir, e))?;
    let result = d.sync().await.map_err(|e| io_err("sync dir", dir, e));
    let _ = d.close().await;
    result
}

/// Creates `dir` and any missing parents, each durably: a new directory's entry lives in its
/// parent, which is synced after the creation (else a power cut can take the whole directory,
/// with every synced file in it, away).
pub(crate) async fn create_dir_durable(dir: &Path) -> Result<(), StorageError> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create dir", &d, e)),
        }
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent).await?;
        }
    }
    Ok(())
}

/// Replaces `path` with `bytes` atomically and durably.
pub(crate) async fn write_file_atomic(path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(&tmp)
        .await
        .map_err(|e| io_err("create", &tmp, e))?;
    let written = async {
        write_all_at(&file, &tmp, bytes, 0).await?;
        file.fdatasync()
            .await
            .map_err(|e| io_err("fdatasync", &tmp, e))
    }
    .await;
    let _ = file.close().await;
    written?;
    glommio::io::rename(&tmp, path)
        .await
        .map_err(|e| io_err("rename", path, e))?;
    sync_dir(path.parent().expect("file in a directory")).await
}

/// Writes `bytes` to `path` (create or truncate) and fdatasyncs it, in place.
pub(crate) async fn write_file_synced(path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(path)
        .await
        .map_err(|e| io_err("create", path, e))?;
    let written = async {
        if !bytes.is_empty() {
            write_all_at(&file, path, bytes, 0).await?;
        }
        file.fdatasync()
            .await
            .map_err(|e| io_err("fdatasync", path, e))
    }
    .await;
    let _ = file.close().await;
    written
}

pub(crate) async fn remove_file(path: &Path) -> Result<(), StorageError> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e: std::io::Error = e.into();
            if is_not_found(&e) {
                Ok(())
            } else {
                Err(io_err("remove", path, e))
            }
        }
    }
}

pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("file name").to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathered_write_spans_many_pieces_and_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gathered");
        let done = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .spawn(move || async move {
                let file = open_rw(&path, true).await.unwrap();
                // More pieces than one pwritev takes, of every length from 1 to 7.
                let owned: Vec<Vec<u8>> = (0..3 * IOVECS_PER_WRITE_MAX)
                    .map(|i| vec![i as u8; 1 + i % 7])
                    .collect();
                let pieces: Vec<&[u8]> = owned.iter().map(|p| &p[..]).collect();
                write_gathered_at(&file, &path, &pieces, 100).unwrap();
                let expected: Vec<u8> = owned.concat();
                let on_disk = std::fs::read(&path).unwrap();
                assert_eq!(on_disk.len(), 100 + expected.len());
                assert!(on_disk[..100].iter().all(|&b| b == 0));
                assert_eq!(&on_disk[100..], &expected[..]);
                true
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(done);
    }
}
