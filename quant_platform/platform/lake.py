"""The lake: raw vendor files archived as released, content-addressed and never overwritten.
Never read or write outside the lake root, and never trust an archived file's bytes without hashing them.

Layout `raw/<vendor>/<dataset>/<partition>/<sha256>.<ext>`. Never write a file in place: write a temp
name and rename, so a reader never sees half a file. Every name is checked against a strict pattern (NAME,
PARTITION, SHA256, EXT); a path from outside (a run tag) is parsed back into those names, and on a local
lake resolved (symlinks included) to a file under the root before it is opened.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from datetime import date

import pyarrow.fs as pafs

from quant_platform.errors import ConfigError, LakeIntegrityError, LakePathError

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # vendor, dataset
PARTITION = re.compile(r"\d{4}-\d{2}-\d{2}|\d{4}|[A-Za-z][A-Za-z0-9_-]{0,63}")  # a date, a year, a series id
SHA256 = re.compile(r"[0-9a-f]{64}")
EXT = re.compile(r"[a-z0-9]{1,8}")
MAX_PATH = 512


@dataclass(frozen=True)
class ArchivedFile:
    path: str
    sha256: str
    size: int
    is_new: bool


@dataclass(frozen=True)
class RawRef:
    """The names a raw path is made of, each checked."""

    vendor: str
    dataset: str
    partition: str
    sha256: str
    ext: str

    @property
    def path(self) -> str:
        return f"raw/{self.vendor}/{self.dataset}/{self.partition}/{self.sha256}.{self.ext}"


def check_name(kind: str, value: object) -> str:
    """`value` if it is a valid lake name of `kind` (vendor, dataset, partition, sha256, ext), else LakePathError."""
    pattern = {"vendor": NAME, "dataset": NAME, "partition": PARTITION, "sha256": SHA256, "ext": EXT}[kind]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise LakePathError(f"lake {kind} {str(value)[:80]!r} is not a valid name ({pattern.pattern})")
    if kind == "partition" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            date.fromisoformat(value)
        except ValueError:
            raise LakePathError(f"lake partition {value!r} is not a real date (YYYY-MM-DD)") from None
    return value


def parse_raw_path(relative: object) -> RawRef:
    """The names of a raw path `raw/<vendor>/<dataset>/<partition>/<sha256>.<ext>`: nothing else is accepted
    (no absolute path, no `..`, no empty or extra component, no backslash)."""
    if not isinstance(relative, str) or not relative or len(relative) > MAX_PATH:
        raise LakePathError(f"lake path {str(relative)[:80]!r} is empty or too long")
    if relative.startswith(("/", "\\")) or "\\" in relative or "\x00" in relative or "://" in relative:
        raise LakePathError(f"lake path {relative[:200]!r} is absolute or not a lake path")
    parts = relative.split("/")
    if ".." in parts or "." in parts:
        raise LakePathError(f"lake path {relative[:200]!r} leads outside the lake (..)")
    if len(parts) != 5 or parts[0] != "raw" or "." not in parts[4]:
        raise LakePathError(f"lake path {relative[:200]!r} is not raw/<vendor>/<dataset>/<partition>/<sha256>.<ext>")
    sha, ext = parts[4].split(".", 1)
    return RawRef(check_name("vendor", parts[1]), check_name("dataset", parts[2]),
                  check_name("partition", parts[3]), check_name("sha256", sha), check_name("ext", ext))


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
            raise ConfigError(f"QP_LAKE_URL {url!r} is not a usable filesystem: {exc}") from None
        self.root = root.rstrip("/")
        self._local = isinstance(self.fs, pafs.LocalFileSystem)

    def full_path(self, relative: str) -> str:
        """The filesystem path of a relative lake path, which must stay under the root (no `..`, not absolute)."""
        if not isinstance(relative, str) or relative.startswith("/") or "\\" in relative or "\x00" in relative:
            raise LakePathError(f"lake path {str(relative)[:200]!r} is absolute or malformed")
        if any(part in ("..", ".") for part in relative.split("/")):
            raise LakePathError(f"lake path {relative[:200]!r} leads outside the lake (..)")
        return f"{self.root}/{relative}"

    def _resolved(self, relative: str) -> str:
        """full_path, and on a local lake the real path (symlinks followed), which must be under the root."""
        full = self.full_path(relative)
        if not self._local:
            return full  # object stores have no symlinks; the names were checked
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(full)
        if os.path.commonpath([real_root, real]) != real_root:
            raise LakePathError(f"lake path {relative[:200]!r} resolves outside the lake root")
        return real

    def raw_path(self, vendor: str, dataset: str, partition: str, sha256: str, ext: str) -> str:
        return RawRef(check_name("vendor", vendor), check_name("dataset", dataset),
                      check_name("partition", partition), check_name("sha256", sha256), check_name("ext", ext)).path

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
        for kind, value in (("vendor", vendor), ("dataset", dataset), ("partition", partition)):
            check_name(kind, value)
        base = self.full_path(f"raw/{vendor}/{dataset}/{partition}")
        infos = self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        files = [i for i in infos if i.type == pafs.FileType.File and not i.base_name.startswith(".")]
        files.sort(key=lambda i: (i.mtime_ns or 0, i.base_name))
        return [i.path[len(self.root) + 1 :] for i in files]

    def find_raw(self, vendor: str, dataset: str, sha256: str) -> str | None:
        """Locate an archived file by its sha256 in any partition of a dataset."""
        for kind, value in (("vendor", vendor), ("dataset", dataset), ("sha256", sha256)):
            check_name(kind, value)
        base = self.full_path(f"raw/{vendor}/{dataset}")
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        for i in infos:
            if i.type == pafs.FileType.File and i.base_name.startswith(sha256 + "."):
                return i.path[len(self.root) + 1 :]
        return None

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self._resolved(relative)).type == pafs.FileType.File

    def read(self, relative: str) -> bytes:
        """The bytes of a file under the lake root (a path leading elsewhere raises LakePathError)."""
        path = self._resolved(relative)
        if self._local:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f:
                return f.read()
        with self.fs.open_input_stream(path) as f:
            return f.read()

    def read_raw(self, relative: str, expected_sha256: str | None = None) -> tuple[RawRef, bytes]:
        """An archived raw file, trusted only once its bytes hash to the sha256 of its name (and to
        `expected_sha256`, the lineage a run claims): else LakeIntegrityError, nothing of it used."""
        ref = parse_raw_path(relative)
        body = self.read(ref.path)
        actual = hashlib.sha256(body).hexdigest()
        if actual != ref.sha256:
            raise LakeIntegrityError(f"sha256 mismatch: {ref.path} now hashes to {actual[:16]}…, not the "
                                     f"{ref.sha256[:16]}… it was archived as (changed on disk); refused")
        if expected_sha256 is not None and actual != expected_sha256:
            raise LakeIntegrityError(f"sha256 mismatch: {ref.path} hashes to {actual[:16]}…, not the "
                                     f"{str(expected_sha256)[:16]}… the run's lineage claims; refused")
        return ref, body

    def write_atomic(self, relative: str, body: bytes) -> None:
        final = self.full_path(relative)
        parent = final.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        if not self._local:
            # Object-store PUTs are atomic: a reader sees the whole object or none.
            with self.fs.open_output_stream(final) as f:
                f.write(body)
            return
        final = self._resolved(relative)
        tmp = f"{os.path.dirname(final)}/.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
