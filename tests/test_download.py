"""Downloads over file:// URLs (offline): sha256 pinning, trust on first use, atomic writes, safe unzip."""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from pathlib import Path

import pytest

from lightning_seqrec.data.download import download, extract_zip, sha256_of, sidecar_path
from lightning_seqrec.errors import DataError

PAYLOAD = b"1 10 11 12\n2 11 13\n" * 1000
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def upstream(tmp_path) -> Path:
    source = tmp_path / "upstream" / "data.txt"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    return source


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_sha256_of_matches_hashlib(upstream):
    assert sha256_of(upstream) == DIGEST


def test_pinned_download(tmp_path, upstream):
    dest = tmp_path / "cache" / "data.txt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pinned checksum records nothing and warns about nothing
        assert download(upstream.as_uri(), dest, DIGEST.upper()) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not sidecar_path(dest).exists() and leftovers(dest.parent) == []
    upstream.unlink()
    assert download(upstream.as_uri(), dest, DIGEST) == dest  # verified file reused, no fetch


def test_pinned_download_mismatch_deletes_the_temp_file(tmp_path, upstream):
    dest = tmp_path / "cache" / "data.txt"
    wrong = "ab" * 32
    with pytest.raises(DataError) as info:
        download(upstream.as_uri(), dest, wrong)
    message = str(info.value)
    assert f"expected {wrong}, got {DIGEST}" in message and upstream.as_uri() in message
    assert "The download was deleted" in message
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_existing_file_with_wrong_checksum_is_reported(tmp_path, upstream):
    dest = tmp_path / "data.txt"
    dest.write_bytes(b"tampered")
    with pytest.raises(DataError) as info:
        download(upstream.as_uri(), dest, DIGEST)
    got = hashlib.sha256(b"tampered").hexdigest()
    assert f"expected {DIGEST}, got {got}" in str(info.value) and "delete it" in str(info.value)


def test_trust_on_first_use(tmp_path, upstream):
    dest = tmp_path / "cache" / "data.txt"
    with pytest.warns(UserWarning, match=f"recorded sha256 {DIGEST} on first use"):
        download(upstream.as_uri(), dest)
    assert sidecar_path(dest) == tmp_path / "cache" / "data.txt.sha256"
    assert sidecar_path(dest).read_text() == f"{DIGEST}  data.txt\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # later calls verify silently
        assert download(upstream.as_uri(), dest).read_bytes() == PAYLOAD
    dest.write_bytes(b"changed on disk")
    with pytest.raises(DataError, match=f"expected {DIGEST}, got "):
        download(upstream.as_uri(), dest)
    dest.unlink()
    upstream.write_bytes(b"changed upstream")
    with pytest.raises(DataError, match=f"sha256 mismatch for .*: expected {DIGEST}, got "):
        download(upstream.as_uri(), dest)  # the recorded checksum still guards a fresh download
    assert not dest.exists() and leftovers(dest.parent) == []


def test_existing_file_without_checksum_is_recorded_on_first_use(tmp_path, upstream):
    dest = tmp_path / "data.txt"
    dest.write_bytes(PAYLOAD)  # placed by hand
    upstream.unlink()
    with pytest.warns(UserWarning, match="on first use"):
        assert download(upstream.as_uri(), dest) == dest
    assert sidecar_path(dest).read_text().split()[0] == DIGEST


def test_unreachable_url(tmp_path):
    missing = (tmp_path / "nope.txt").as_uri()
    dest = tmp_path / "cache" / "nope.txt"
    with pytest.raises(DataError) as info:
        download(missing, dest, DIGEST)
    assert f"Could not download {missing}" in str(info.value) and f"save it as {dest}" in str(info.value)
    assert list(dest.parent.iterdir()) == []


def test_bad_sidecar(tmp_path, upstream):
    dest = tmp_path / "data.txt"
    sidecar_path(dest).write_text("not-a-digest\n")
    with pytest.raises(DataError, match="does not start with a sha256 hex digest; delete it"):
        download(upstream.as_uri(), dest)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_extract_zip(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"ml-1m/ratings.dat": b"1::2::3::4\n", "ml-1m/sub/README": b"hi"})
    written = extract_zip(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "ml-1m/ratings.dat",
        "ml-1m/sub/README",
    ]
    assert (tmp_path / "out" / "ml-1m" / "ratings.dat").read_bytes() == b"1::2::3::4\n"
    extract_zip(archive, tmp_path / "flat", strip_components=1)
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["ratings.dat", "sub"]
    assert (tmp_path / "flat" / "sub" / "README").read_bytes() == b"hi"


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/etc/evil.txt", "C:\\evil.txt", "C:evil.txt"])
def test_extract_zip_refuses_path_traversal(tmp_path, name):
    archive = make_zip(tmp_path / "bad.zip", {"fine.txt": b"ok", name: b"evil"})
    out = tmp_path / "deep" / "out"
    with pytest.raises(DataError, match="Refusing to extract zip member .* nothing was extracted"):
        extract_zip(archive, out)
    assert list(out.iterdir()) == []  # checked before anything is written
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_extract_zip_rejects_a_non_zip(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"<html>proxy login page</html>")
    with pytest.raises(DataError, match="is not a readable zip archive .* download it again"):
        extract_zip(fake, tmp_path / "out")
