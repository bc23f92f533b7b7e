"""Content archives in a local directory and in a real S3 (moto_server): one archive per distinct tree, named by
its SHA-256, read back as written, removed when discarded; no scratch file stays."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from playcast.control.content import ContentArchives, archive_key, scratch_path
from playcast.storage import LocalStorage, ObjectNotFound, S3Storage, Storage
from tests.control.support import make_app_dir
from tests.s3_support import MotoServer


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "archives")
    moto: MotoServer = request.getfixturevalue("moto")
    return S3Storage("archives", endpoint_url=moto.url, region="us-east-1", access_key_id="test",
                     secret_access_key="test", prefix=f"content/{tmp_path.name}", create_bucket=True)


def test_equal_trees_are_one_archive_read_back_as_written(storage: Storage, tmp_path: Path) -> None:
    archives = ContentArchives(storage)
    one = make_app_dir(tmp_path / "one")
    (one / "data.txt").write_text("level 1\n")
    two = make_app_dir(tmp_path / "two")
    (two / "data.txt").write_text("level 1\n")
    a, b = archives.store(one), archives.store(two)
    assert a.sha256 == b.sha256 and a.size == b.size  # reproducible: no times, owners or names of the machine
    assert [o.key for o in storage.list()] == [archive_key(a.sha256)]
    assert not scratch_path(one).exists() and not scratch_path(two).exists()
    with archives.open(a.sha256) as fh:
        data = fh.read()
    assert len(data) == a.size and hashlib.sha256(data).hexdigest() == a.sha256
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert sorted(tf.getnames()) == ["data.txt", "game.sh"]

    (two / "data.txt").write_text("level 2\n")
    c = archives.store(two)
    assert c.sha256 != a.sha256 and len(storage.list()) == 2
    archives.discard(a.sha256)
    archives.discard(a.sha256)  # gone already: fine
    with pytest.raises(ObjectNotFound):
        archives.open(a.sha256)
    with pytest.raises(ValueError):
        archives.open("../" + "a" * 61)
