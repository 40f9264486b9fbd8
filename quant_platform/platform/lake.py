"""The lake: raw vendor files archived as released, content-addressed and never overwritten.

Layout `raw/<vendor>/<dataset>/<partition>/<sha256>.<ext>`. Never write a file in place: write a temp
name and rename, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from quant_platform.errors import ConfigError


@dataclass(frozen=True)
class ArchivedFile:
    path: str
    sha256: str
    size: int
    is_new: bool


class Lake:
    """A local folder or an object store (any URI pyarrow.fs understands: s3://, gs://, file://)."""

    def __init__(self, url: str):
        self.url = url
        try:
            if "://" in url:
                self.fs, root = pafs.FileSystem.from_uri(url)
            else:
                self.fs, root = pafs.LocalFileSystem(), os.path.abspath(url)
        except Exception as exc:  # pyarrow raises several types for a bad URI
            raise ConfigError(f"QP_LAKE_URL {url!r} is not a usable filesystem: {exc}") from exc
        self.root = root.rstrip("/")
        self._local = isinstance(self.fs, pafs.LocalFileSystem)

    def full_path(self, relative: str) -> str:
        return f"{self.root}/{relative.lstrip('/')}"

    def raw_path(self, vendor: str, dataset: str, partition: str, sha256: str, ext: str) -> str:
        for part in (vendor, dataset, partition, ext):
            if not part or "/" in part or ".." in part:
                raise ValueError(f"unsafe lake path component {part!r}")
        return f"raw/{vendor}/{dataset}/{partition}/{sha256}.{ext}"

    def archive_raw(self, vendor: str, dataset: str, partition: str, body: bytes, ext: str) -> ArchivedFile:
        """Store `body` once; the same bytes again are a no-op, different bytes a new revision."""
        sha = hashlib.sha256(body).hexdigest()
        rel = self.raw_path(vendor, dataset, partition, sha, ext)
        if self.exists(rel):
            return ArchivedFile(rel, sha, len(body), is_new=False)
        self.write_atomic(rel, body)
        if self._local:
            os.chmod(self.full_path(rel), 0o444)  # raw files are evidence: read-only once archived
        return ArchivedFile(rel, sha, len(body), is_new=True)

    def revisions(self, vendor: str, dataset: str, partition: str) -> list[str]:
        """Paths of every archived revision of a partition, oldest first (by modification time)."""
        base = self.full_path(f"raw/{vendor}/{dataset}/{partition}")
        infos = self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        files = [i for i in infos if i.type == pafs.FileType.File and not i.base_name.startswith(".")]
        files.sort(key=lambda i: (i.mtime_ns or 0, i.base_name))
        return [i.path[len(self.root) + 1 :] for i in files]

    def find_raw(self, vendor: str, dataset: str, sha256: str) -> str | None:
        """Locate an archived file by its sha256 in any partition of a dataset."""
        base = self.full_path(f"raw/{vendor}/{dataset}")
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        for i in infos:
            if i.type == pafs.FileType.File and i.base_name.startswith(sha256 + "."):
                return i.path[len(self.root) + 1 :]
        return None

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self.full_path(relative)).type == pafs.FileType.File

    def read(self, relative: str) -> bytes:
        with self.fs.open_input_stream(self.full_path(relative)) as f:
            return f.read()

    def write_atomic(self, relative: str, body: bytes) -> None:
        final = self.full_path(relative)
        parent = final.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        if not self._local:
            # Object-store PUTs are atomic: a reader sees the whole object or none.
            with self.fs.open_output_stream(final) as f:
                f.write(body)
            return
        tmp = f"{parent}/.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
