"""The lake: raw vendor files archived as released, content-addressed and never overwritten.
Never read or write outside the lake root, and never trust an archived file's bytes without hashing them.

Layout `raw/<vendor>/<dataset>/<partition>/<sha256>.<ext>`. Never write a file in place: write a temp
name and rename, so a reader never sees half a file. Every name is checked against a strict pattern (NAME,
PARTITION, SHA256, EXT); a path from outside (a run tag) is parsed back into those names, and on a local
lake resolved (symlinks included) to a file under the root before it is opened.

On object storage (`QP_LAKE_URL=s3://bucket/prefix`) the endpoint and keys come from the environment only
(S3_ENV below, never run config or the URL), the secret keys are secrets of the redaction rule
(platform/redaction.py SECRET_ENV_VARS), a write is one PUT (an object appears whole or not at all, so no temp name) and an object store that
does not answer is a one-line ConfigError naming the endpoint, never a traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from quant_platform.errors import ConfigError, LakeIntegrityError, LakePathError
from quant_platform.platform.redaction import redact

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # vendor, dataset
PARTITION = re.compile(r"\d{4}-\d{2}-\d{2}|\d{4}|[A-Za-z][A-Za-z0-9_-]{0,63}")  # a date, a year, a series id
SHA256 = re.compile(r"[0-9a-f]{64}")
EXT = re.compile(r"[a-z0-9]{1,8}")
MAX_PATH = 512
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3 bucket naming rules
PREFIX_PART = re.compile(r"[A-Za-z0-9._=-]{1,128}")
# Where an s3:// lake takes its endpoint and credentials from: these environment variables only.
S3_ENV = ("QP_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
          "AWS_SESSION_TOKEN", "AWS_REGION")
S3_DEFAULT_REGION = "us-east-1"
S3_TIMEOUT_S = 10.0  # connect and request timeouts: a lake that does not answer fails the tick, not hangs it


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


def _s3_endpoint(env: Mapping[str, str]) -> tuple[str | None, str]:
    """(endpoint_override, scheme) from QP_S3_ENDPOINT_URL, else AWS_ENDPOINT_URL; (None, https) for AWS."""
    name = "QP_S3_ENDPOINT_URL" if env.get("QP_S3_ENDPOINT_URL", "").strip() else "AWS_ENDPOINT_URL"
    value = env.get(name, "").strip()
    if not value:
        return None, "https"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username
            or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ConfigError(f"{name} {redact(value)[:200]!r} is not an object-store endpoint: expected "
                          f"http(s)://host[:port] with no path, user or query")
    return parts.netloc, parts.scheme


def s3_filesystem(url: str, env: Mapping[str, str] | None = None) -> tuple[pafs.S3FileSystem, str, str | None]:
    """The S3 filesystem, root (`bucket/prefix`) and endpoint (host:port, None for AWS) of an `s3://bucket/prefix`
    lake URL. The endpoint, keys and
    region come from the environment only (S3_ENV); the URL names the place, nothing else. Both keys or neither
    (then the AWS SDK's default chain: instance profile, web identity)."""
    env = os.environ if env is None else env
    parts = urlsplit(url)
    if parts.username or parts.password or "@" in parts.netloc:
        raise ConfigError("QP_LAKE_URL must not carry credentials (s3://key:secret@...): set AWS_ACCESS_KEY_ID "
                          "and AWS_SECRET_ACCESS_KEY instead")
    if parts.query or parts.fragment:
        raise ConfigError(f"QP_LAKE_URL {redact(url)[:200]!r}: object-store settings come from the environment "
                          f"({', '.join(S3_ENV)}), not from URL parameters")
    bucket = parts.netloc
    if not BUCKET.fullmatch(bucket):
        raise ConfigError(f"QP_LAKE_URL {url[:200]!r}: {bucket[:80]!r} is not an S3 bucket name")
    prefix = parts.path.strip("/")
    if prefix and not all(PREFIX_PART.fullmatch(p) and p not in (".", "..") for p in prefix.split("/")):
        raise ConfigError(f"QP_LAKE_URL {url[:200]!r}: the prefix must be /-separated names of "
                          f"{PREFIX_PART.pattern} (no empty, . or .. part)")
    endpoint, scheme = _s3_endpoint(env)
    access_key = env.get("AWS_ACCESS_KEY_ID", "").strip() or None
    secret_key = env.get("AWS_SECRET_ACCESS_KEY", "").strip() or None
    session_token = env.get("AWS_SESSION_TOKEN", "").strip() or None
    if (access_key is None) != (secret_key is None):
        raise ConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY come together (or neither, for the "
                          "default credential chain); only one is set")
    region = env.get("AWS_REGION", "").strip() or S3_DEFAULT_REGION
    try:
        fs = pafs.S3FileSystem(access_key=access_key, secret_key=secret_key, session_token=session_token,
                               region=region, endpoint_override=endpoint, scheme=scheme,
                               connect_timeout=S3_TIMEOUT_S, request_timeout=S3_TIMEOUT_S,
                               allow_delayed_open=True)  # a small object is one PutObject, no multipart upload
    except Exception as exc:  # pyarrow raises several types for a bad option
        raise ConfigError(f"QP_LAKE_URL {url[:200]!r}: no S3 client ({redact(str(exc).splitlines()[0])[:300]})") \
            from None
    return fs, f"{bucket}/{prefix}" if prefix else bucket, endpoint


class Lake:
    """A local folder or an object store (an s3:// URL configured from the environment, see s3_filesystem;
    any other URI pyarrow.fs understands: gs://, file://)."""

    def __init__(self, url: str):
        self.url = url
        self._endpoint: str | None = None  # an s3:// lake's endpoint (host:port), for messages
        try:
            if url.startswith("s3://"):
                self.fs, root, self._endpoint = s3_filesystem(url)
            elif "://" in url:
                self.fs, root = pafs.FileSystem.from_uri(url)
            else:
                self.fs, root = pafs.LocalFileSystem(), os.path.abspath(url)
        except ConfigError:
            raise
        except Exception as exc:  # pyarrow raises several types for a bad URI
            raise ConfigError(f"QP_LAKE_URL {url!r} is not a usable filesystem: {exc}") from None
        self.root = root.rstrip("/")
        self._local = isinstance(self.fs, pafs.LocalFileSystem)

    @contextmanager
    def _store(self, doing: str) -> Iterator[None]:
        """On an object store, an unreachable or refusing server (OSError from pyarrow's client) becomes one
        ConfigError line naming the lake and the endpoint, without its cause chained (the SDK's text can be
        long; the secret is redacted anyway). A missing object stays FileNotFoundError. Local: untouched."""
        if self._local:
            yield
            return
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            detail = " ".join(str(exc).split())[:300]
            where = f" at {self._endpoint}" if self._endpoint else ""
            raise ConfigError(f"lake {self.url[:200]!r}{where}: {doing} failed ({redact(detail)}); check "
                              f"QP_LAKE_URL, the endpoint (QP_S3_ENDPOINT_URL / AWS_ENDPOINT_URL) and "
                              f"the credentials") from None

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
        """Store `body` once; the same bytes again are a no-op, different bytes a new revision. Never overwrites:
        an existing name is left alone. Two writers racing past the existence check (two sensor ticks, a sensor
        and a run) both write the same name, and the name is the sha256 of the bytes: the second PUT (or
        rename) replaces an object with identical bytes, so the race is harmless."""
        sha = hashlib.sha256(body).hexdigest()
        rel = self.raw_path(vendor, dataset, partition, sha, ext)
        if self.exists(rel):
            return ArchivedFile(rel, sha, len(body), is_new=False)
        self.write_atomic(rel, body)
        if self._local:
            os.chmod(self.full_path(rel), 0o444)  # raw files are evidence: read-only once archived
        return ArchivedFile(rel, sha, len(body), is_new=True)

    def revisions(self, vendor: str, dataset: str, partition: str) -> list[str]:
        """Paths of every archived revision of a partition, oldest first (by modification time, then name: an
        object store's time has a coarser grain, and two revisions of the same instant still come in one
        order)."""
        for kind, value in (("vendor", vendor), ("dataset", dataset), ("partition", partition)):
            check_name(kind, value)
        base = self.full_path(f"raw/{vendor}/{dataset}/{partition}")
        with self._store("listing revisions"):
            infos = self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        files = [i for i in infos if i.type == pafs.FileType.File and not i.base_name.startswith(".")]
        files.sort(key=lambda i: (i.mtime_ns or 0, i.base_name))
        return [i.path[len(self.root) + 1 :] for i in files]

    def find_raw(self, vendor: str, dataset: str, sha256: str) -> str | None:
        """Locate an archived file by its sha256 in any partition of a dataset."""
        for kind, value in (("vendor", vendor), ("dataset", dataset), ("sha256", sha256)):
            check_name(kind, value)
        base = self.full_path(f"raw/{vendor}/{dataset}")
        with self._store("listing the dataset"):
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        for i in infos:
            if i.type == pafs.FileType.File and i.base_name.startswith(sha256 + "."):
                return i.path[len(self.root) + 1 :]
        return None

    def exists(self, relative: str) -> bool:
        path = self._resolved(relative)
        with self._store("looking up a file"):
            return self.fs.get_file_info(path).type == pafs.FileType.File

    def read(self, relative: str) -> bytes:
        """The bytes of a file under the lake root (a path leading elsewhere raises LakePathError)."""
        path = self._resolved(relative)
        if self._local:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f:
                return f.read()
        with self._store("reading a file"), self.fs.open_input_stream(path) as f:
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
        if not self._local:
            # One PUT (allow_delayed_open; a file over the client's part size goes up in parts, completed as
            # one): an object-store write is atomic, a reader sees the whole object or none. No temp name, and
            # no directory markers: an object store has no directories.
            with self._store("writing a file"), self.fs.open_output_stream(final) as f:
                f.write(body)
            return
        parent = final.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        final = self._resolved(relative)
        tmp = f"{os.path.dirname(final)}/.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
