"""Streaming downloads verified by sha256 (pinned, or recorded on first use) and zip extraction that stays
inside its target folder. Works with any urllib URL, `file://` included, so it can be tested offline."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath

from lightning_seqrec.errors import DataError

CHUNK_BYTES = 1 << 20
USER_AGENT = "lightning-seqrec (+https://pypi.org/project/lightning-seqrec/)"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large files do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(dest: str | os.PathLike[str]) -> Path:
    """Where the checksum recorded on first use of `dest` is kept: `<dest>.sha256` beside it."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".sha256")


def download(url: str, dest: str | os.PathLike[str], sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` atomically and verify its sha256; an existing verified `dest` is reused.

    With `sha256=None` the checksum is trusted on first use: it is written to `<dest>.sha256` (with a warning)
    and every later call verifies the file against it.
    """
    dest = Path(dest)
    expected = (sha256 or _read_sidecar(dest) or "").lower() or None
    if dest.exists():
        got = sha256_of(dest)
        if expected is None:
            _record_first_use(dest, got)
        elif got != expected:
            raise DataError(
                f"{dest} exists but its sha256 does not match: expected {expected}, got {got}. The file is "
                f"corrupt or was changed; delete it (and {sidecar_path(dest).name} if the upstream file "
                "legitimately changed) to download it again."
            )
        return dest
    tmp, got = _fetch(url, dest, timeout)
    if expected is not None and got != expected:
        tmp.unlink()
        raise DataError(
            f"sha256 mismatch for {url}: expected {expected}, got {got}. The download was deleted; the "
            "server sent different content (truncated transfer, proxy page or a changed upstream file). Try "
            f"again, or check the file by hand and save it as {dest}."
        )
    os.replace(tmp, dest)
    if expected is None:
        _record_first_use(dest, got)
    return dest


def _read_sidecar(dest: Path) -> str | None:
    sidecar = sidecar_path(dest)
    if not sidecar.exists():
        return None
    fields = sidecar.read_text().split()
    if not fields or not re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
        raise DataError(f"{sidecar} does not start with a sha256 hex digest; delete it to record a new one.")
    return fields[0]


def _record_first_use(dest: Path, digest: str) -> None:
    sidecar_path(dest).write_text(f"{digest}  {dest.name}\n")
    warnings.warn(
        f"No published checksum for {dest.name}: recorded sha256 {digest} on first use in "
        f"{sidecar_path(dest)}; later loads are verified against it.",
        stacklevel=3,
    )


def _fetch(url: str, dest: Path, timeout: float) -> tuple[Path, str]:
    """Stream `url` into a temporary file beside `dest`; returns it with the sha256 of what was received."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(name)
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # URLError, HTTPError, timeouts and disk errors
            reason = getattr(exc, "reason", None) or exc
            raise DataError(
                f"Could not download {url}: {reason}. Check the network or proxy, or fetch the file by hand "
                f"and save it as {dest}."
            ) from exc
        raise
    return tmp, digest.hexdigest()


def extract_zip(
    path: str | os.PathLike[str], dest_dir: str | os.PathLike[str], strip_components: int = 0
) -> list[Path]:
    """Extract a zip into `dest_dir`, dropping `strip_components` leading folders of each member name.

    Every member is checked before anything is written: absolute names, drive letters and `..` parts that
    would land outside `dest_dir` raise `DataError`. Each file is written to a temporary name and renamed.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    root = dest_dir.resolve()
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable zip archive ({exc}); delete it and download it again.") from exc
    with archive:
        plan = [
            (member, target)
            for member in archive.infolist()
            if not member.is_dir() and (target := _member_target(member.filename, root, strip_components))
        ]
        for member, target in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            with archive.open(member) as src, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK_BYTES)
            os.replace(name, target)
    return [target for _, target in plan]


def _member_target(name: str, root: Path, strip_components: int) -> Path | None:
    """Where member `name` goes under `root` (None when stripping leaves nothing); unsafe names raise."""
    posix = PurePosixPath(name.replace("\\", "/"))
    unsafe = posix.is_absolute() or ".." in posix.parts or re.match(r"^[A-Za-z]:", name)
    parts = posix.parts[strip_components:]
    target = root.joinpath(*parts).resolve() if parts else None
    if unsafe or (target is not None and not target.is_relative_to(root)):
        raise DataError(
            f"Refusing to extract zip member {name!r}: it would be written outside {root}. The archive is "
            "malformed or malicious; nothing was extracted. Download it again from the official source."
        )
    return target
