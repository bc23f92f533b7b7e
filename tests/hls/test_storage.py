"""Storage backends: a local directory and S3 (against a real S3-compatible server, moto's, on loopback)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hls_support import s3_storage, serve
from starlette.applications import Starlette

from playcast.storage import (
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageError,
    StorageFull,
    open_storage,
)
from playcast.storage.http import storage_routes
from tests.s3_support import MotoServer


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "store")
    else:
        moto: MotoServer = request.getfixturevalue("moto")
        yield s3_storage(moto, f"b-{uuid.uuid4().hex[:12]}", prefix="recs")


def test_put_get_list_delete_roundtrip(storage: Storage, tmp_path: Path) -> None:
    storage.put_bytes("a/b/one.m4s", b"\x00" * 100)
    storage.put_bytes("a/b/two.json", b'{"x": 1}')
    storage.put_bytes("a/c/three.jpg", b"\xff\xd8jpeg")
    src = tmp_path / "file.bin"
    src.write_bytes(b"from a file")
    storage.put_file("z/file.bin", src)
    assert storage.get("a/b/one.m4s") == b"\x00" * 100
    assert storage.get("z/file.bin") == b"from a file"
    assert [(i.key, i.size) for i in storage.list("a/")] == [("a/b/one.m4s", 100), ("a/b/two.json", 8),
                                                              ("a/c/three.jpg", 6)]
    assert [i.key for i in storage.list("a/b")] == ["a/b/one.m4s", "a/b/two.json"]
    assert len(storage.list()) == 4
    storage.put_bytes("a/b/one.m4s", b"replaced")
    assert storage.get("a/b/one.m4s") == b"replaced"
    storage.delete("a/b/one.m4s")
    storage.delete("a/b/one.m4s")  # deleting twice is fine
    with pytest.raises(ObjectNotFound):
        storage.get("a/b/one.m4s")
    assert not storage.exists("a/b/one.m4s") and storage.exists("a/b/two.json")
    assert storage.delete_prefix("a/") == 2
    assert [i.key for i in storage.list()] == ["z/file.bin"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a/\x00", "a/.", "a\nb"])
def test_bad_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        storage.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        storage.get(key)


def test_url_serves_the_object(storage: Storage, tmp_path: Path) -> None:
    storage.put_bytes("v/playlist.m3u8", b"#EXTM3U\n")
    if isinstance(storage, S3Storage):
        url = storage.url("v/playlist.m3u8")  # presigned GET against the S3 server itself
        r = httpx.get(url)
        assert r.status_code == 200 and r.content == b"#EXTM3U\n"
        assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
    else:
        assert storage.url("v/playlist.m3u8") == (tmp_path / "store" / "v" / "playlist.m3u8").as_uri()
        with_base = LocalStorage(tmp_path / "store", base_url="http://h/recordings/")
        assert with_base.url("v/playlist.m3u8") == "http://h/recordings/v/playlist.m3u8"


async def test_storage_files_http(storage: Storage) -> None:
    storage.put_bytes("r1/media/hls/master.m3u8", b"#EXTM3U\n")
    storage.put_bytes("r1/media/hls/source/seg0.m4s", b"segment")
    app = Starlette(routes=storage_routes(storage))
    async with serve(app) as base, httpx.AsyncClient() as client:
        r = await client.get(f"{base}/recordings/r1/media/hls/master.m3u8")
        assert r.status_code == 200 and r.text == "#EXTM3U\n"
        assert r.headers["cache-control"] == "no-cache" and r.headers["access-control-allow-origin"] == "*"
        r = await client.get(f"{base}/recordings/r1/media/hls/source/seg0.m4s")
        assert r.content == b"segment" and "immutable" in r.headers["cache-control"]
        for bad in ("r1/missing.m4s", "r1/../x", "%2e%2e/x"):
            assert (await client.get(f"{base}/recordings/{bad}")).status_code == 404
        assert (await client.delete(f"{base}/recordings/r1/media/hls/master.m3u8")).status_code == 405
    assert storage.exists("r1/media/hls/master.m3u8")


def test_local_quota_gives_storage_full(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "q", quota_bytes=1000)
    store.put_bytes("a", b"x" * 600)
    with pytest.raises(StorageFull, match="quota"):
        store.put_bytes("b", b"x" * 500)
    assert not store.exists("b")
    store.put_bytes("a", b"x" * 900)  # replacing counts only the difference
    store.delete("a")
    store.put_bytes("b", b"x" * 1000)
    # a fresh instance counts what is already on disk
    again = LocalStorage(tmp_path / "q", quota_bytes=1000)
    with pytest.raises(StorageFull):
        again.put_bytes("c", b"x")


def test_local_unwritable_root_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create storage directory"):
        LocalStorage(blocker / "store")
    store = LocalStorage(tmp_path / "ok")
    (tmp_path / "ok" / "x").write_text("a file where a directory is needed")
    with pytest.raises(StorageError, match="cannot write x/y"):
        store.put_bytes("x/y", b"data")
    assert not [p for p in (tmp_path / "ok").rglob(".put-*")]  # no temp files left behind


def test_local_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "s")
    for i in range(20):
        store.put_bytes(f"d/{i}.m4s", bytes(i))
    assert sorted(p.name for p in (tmp_path / "s" / "d").iterdir()) == sorted(f"{i}.m4s" for i in range(20))
    store.delete_prefix("d")
    assert not (tmp_path / "s" / "d").exists()  # empty directories go too


def test_s3_missing_bucket_and_dead_endpoint(moto: MotoServer) -> None:
    store = s3_storage(moto, f"gone-{uuid.uuid4().hex[:10]}")
    store.put_bytes("k", b"v")
    store.delete("k")
    store._client.delete_bucket(Bucket=store.bucket)  # someone removed the bucket under us
    with pytest.raises(StorageError, match="NoSuchBucket"):
        store.put_bytes("k2", b"v")
    dead = S3Storage("b", endpoint_url="http://127.0.0.1:9", region="us-east-1", access_key_id="x",
                     secret_access_key="y", timeout_s=2)
    with pytest.raises(StorageError, match="put k failed"):
        dead.put_bytes("k", b"v")


def test_open_storage_urls(tmp_path: Path, moto: MotoServer) -> None:
    local = open_storage(str(tmp_path / "p"))
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "p"
    assert isinstance(open_storage(f"file://{tmp_path}/f"), LocalStorage)
    s3 = open_storage(f"s3://bucket-one/pre/fix?endpoint={moto.url}&region=us-east-1", access_key_id="a",
                      secret_access_key="b", create_bucket=True)
    assert isinstance(s3, S3Storage) and s3.prefix == "pre/fix/"
    s3.put_bytes("obj", b"1")
    assert s3._client.get_object(Bucket="bucket-one", Key="pre/fix/obj")["Body"].read() == b"1"
    with pytest.raises(ValueError):
        open_storage("ftp://x/y")
