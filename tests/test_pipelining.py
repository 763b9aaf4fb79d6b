"""Many small items over pipelined HTTP/1.1 connections, and the way back to single requests.

Against nginx (what it logs is what it answered), the project's fault server and a raw server
that shows what arrived before it answered.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from repository import ChecksumMismatchError, DownloadError, OfflineError, RemoteRepository
from repository.extract import ExtractionLimits
from repository.install import install_body
from repository.metadata import Item
from repository.pipelining import (
    PipelinedGet,
    ResponseHead,
    fetch_pipelined,
    parse_head,
    simple_url_parts,
    url_parts,
)
from repository.transfer import HttpTransport
from tests.conftest import item_entry, leftovers, tree
from tests.servers.faultserver import FaultServer, Reset, Status
from tests.servers.fixtures import NginxFactory
from tests.servers.nginx import NginxServer
from tests.servers.rawserver import RawConnection, RawHandler, RawServer, http_response
from tests.test_remote import BASE, FAST_RETRY, MRL_, metadata_for, prepare, remote, serve

FILES = {f"f{n:02}.bin": hashlib.shake_256(b"%d" % n).digest(1000 + 97 * n) for n in range(20)}
TIMEOUT = httpx.Timeout(5.0)


def publish(
    root: Path, files: dict[str, bytes], *, declared: dict[str, bytes] | None = None
) -> None:
    folder = root / BASE.strip("/")
    (folder / "1.0").mkdir(parents=True)
    items = {}
    for name, data in files.items():
        (folder / "1.0" / name).write_bytes(data)
        items[name.split(".")[0]] = item_entry(f"1.0/{name}", (declared or {}).get(name, data))
    (folder / "metadata.json").write_bytes(metadata_for(items))


def item_gets(nginx: NginxServer, count: int) -> list[Any]:
    return [r for r in nginx.requests(min_count=count) if "/1.0/" in r.uri]


def fetch_all(gets: list[PipelinedGet], max_body: int = 1 << 20) -> dict[int, bytes]:
    return dict(
        fetch_pipelined(
            gets, ssl_context=httpx.create_ssl_context, timeout=TIMEOUT, max_body=max_body
        )
    )


# -- the parser ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5", ResponseHead(200, 5, True)),
        (b"HTTP/1.1 200 OK\r\ncontent-length:5\r\nConnection: close", ResponseHead(200, 5, False)),
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0", ResponseHead(404, 0, True)),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1", ResponseHead(200, 1, False)),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: Keep-Alive",
            ResponseHead(200, 1, True),
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", ResponseHead(200, None, True)),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked",
            ResponseHead(200, None, True),
        ),
        (b"HTTP/1.1 200 OK", ResponseHead(200, None, True)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7", ResponseHead(200, 7, True)),
        (b"HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0", ResponseHead(301, 0, True)),
        (b"HTTP/1.1 200\r\nContent-Length: 2", ResponseHead(200, 2, True)),
    ],
)
def test_response_heads_are_parsed(head: bytes, expected: ResponseHead) -> None:
    assert parse_head(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/2 200 OK\r\nContent-Length: 1",
        b"ICY 200 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\nbad name: x",
        b"HTTP/1.1 200 OK\r\nX-Folded: a\nb",
        b"HTTP/1.1 200 OK\r\nX-Nul\x00: a",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1e3",
    ],
)
def test_malformed_heads_are_refused(head: bytes) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        parse_head(head)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/a/b.bin",
        "http://127.0.0.1:80/a/b.bin",
        "https://h.example/a/b.bin?x=1&y=2",
        "https://h.example:443/a%20b/c.bin",
        "http://h.example:8443/",
        "http://h-1.example/a_b~c.d-e",
    ],
)
def test_simple_urls_give_what_httpx_would_send(url: str) -> None:
    assert simple_url_parts(url) == url_parts(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://H.example/a",  # httpx lower-cases the host
        "http://h.example/a/../b",  # and removes dot segments
        "http://h.example/a b",  # and quotes
        "http://h.example/%7e",  # lower-case escapes
        "http://user:pw@h.example/a",
        "http://[::1]:8080/a",
        "http://h.example/a?",
        "ftp://h.example/a",
        "http://h.example:99999/a",
    ],
)
def test_other_urls_are_left_to_httpx(url: str) -> None:
    assert simple_url_parts(url) is None


# -- pipelining ------------------------------------------------------------------------------


def test_requests_are_written_ahead_of_the_answers(
    raw_server: Callable[[RawHandler], RawServer],
) -> None:
    seen_before_first_answer: list[int] = []

    def handler(connection: RawConnection) -> None:
        pending = []
        for _ in range(5):  # answer only once five requests arrived
            request = connection.read_request()
            assert request is not None
            pending.append(request)
        seen_before_first_answer.append(len(pending))
        for request in pending:
            connection.send(http_response(request.target.encode()))
        while (request := connection.read_request()) is not None:
            connection.send(http_response(request.target.encode()))

    server = raw_server(handler)
    gets = [PipelinedGet(server.url(f"/{n}"), {"X-Token": "t"}) for n in range(12)]
    answers = fetch_all(gets)
    assert answers == {n: f"/{n}".encode() for n in range(12)}
    assert seen_before_first_answer == [5]
    assert server.connections == 1
    assert all(
        r.headers["x-token"] == "t" and r.headers["host"] == f"127.0.0.1:{server.port}"
        for r in server.requests
    )


def test_a_connection_closed_by_the_server_is_replaced_and_in_flight_requests_sent_again(
    nginx_factory: NginxFactory, tmp_path: Path, cache_dir: Path
) -> None:
    root = tmp_path / "www"
    publish(root, FILES)
    nginx = nginx_factory(root, extra_locations="keepalive_requests 4;")
    repo = RemoteRepository("t", nginx.base_url, cache_dir=cache_dir)
    artifact = prepare(repo)
    assert tree(repo.get_resource_directory(artifact)) == FILES
    gets = item_gets(nginx, len(FILES) + 1)
    assert sorted(r.uri.rsplit("/", 1)[1] for r in gets) == sorted(FILES)  # each exactly once
    assert len({r.connection for r in gets}) == 5  # 4 answers per connection


def test_small_items_share_one_connection(
    nginx_factory: NginxFactory, tmp_path: Path, cache_dir: Path
) -> None:
    root = tmp_path / "www"
    publish(root, FILES)
    nginx = nginx_factory(root)
    repo = RemoteRepository("t", nginx.base_url, cache_dir=cache_dir, token="secret")
    artifact = prepare(repo)
    assert tree(repo.get_resource_directory(artifact)) == FILES
    gets = item_gets(nginx, len(FILES) + 1)
    assert len(gets) == len(FILES) and len({r.connection for r in gets}) == 1
    assert {r.authorization for r in gets} == {"Bearer secret"}


def test_small_archives_and_compressed_files_among_them_are_unpacked(
    nginx_factory: NginxFactory, tmp_path: Path, cache_dir: Path
) -> None:
    # Plain copies are hashed, verified and written from memory in one go; the other packings
    # go through the extractors. Every file's digest in the manifest must be the file's own.
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as archive:
        for name in ("a.txt", "sub/b.txt"):
            data = name.encode() * 50
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    files = dict(FILES)
    files["bundle.tar.gz"] = packed.getvalue()
    files["weights.bin.gz"] = gzip.compress(b"w" * 5000)
    publish(root := tmp_path / "www", files)
    nginx = nginx_factory(root)
    repo = RemoteRepository("t", nginx.base_url, cache_dir=cache_dir)
    artifact = prepare(repo)
    expected = {name: data for name, data in FILES.items()}
    expected |= {"bundle/a.txt": b"a.txt" * 50, "bundle/sub/b.txt": b"sub/b.txt" * 50}
    expected["weights.bin"] = b"w" * 5000
    assert tree(repo.get_resource_directory(artifact)) == expected
    assert len({r.connection for r in item_gets(nginx, len(files) + 1)}) == 1
    assert repo.verify(artifact).ok


def test_fewer_small_items_than_the_threshold_take_single_requests(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    few = dict(list(FILES.items())[:3])
    serve(fault_server, few)
    repo = remote(fault_server, cache_dir)
    repo.pipelining_from = 4
    seen: list[int] = []
    original = HttpTransport.fetch_pipelined

    def spy(self: HttpTransport, urls: list[str], **options: Any) -> Any:
        seen.append(len(urls))
        return original(self, urls, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HttpTransport, "fetch_pipelined", spy)
        artifact = prepare(repo)
        repo.remove(artifact)
        repo.pipelining_from = 3
        prepare(repo)
    assert seen == [3]


# -- the way back to single requests ---------------------------------------------------------


def test_an_error_answer_is_fetched_again_singly_and_reported(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    paths = serve(fault_server, FILES, **{"f07.bin": {"faults": [Status(404, times=None)]}})
    missing = paths["f07.bin"]
    with pytest.raises(DownloadError) as caught:
        prepare(remote(fault_server, cache_dir))
    assert caught.value.status == 404
    fault_server.wait_idle()
    assert len(fault_server.requests_for(missing)) == 2  # pipelined, then singly
    assert all(
        len(fault_server.requests_for(paths[name])) == 1 for name in FILES if name != "f07.bin"
    )
    assert leftovers(cache_dir) == []


def test_a_reset_connection_leaves_the_rest_to_single_requests(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    paths = serve(fault_server, FILES, **{"f05.bin": {"faults": [Reset(500)]}})
    repo = remote(fault_server, cache_dir)
    artifact = prepare(repo)
    assert tree(repo.get_resource_directory(artifact)) == FILES
    fault_server.wait_idle()
    counts = {name: len(fault_server.requests_for(path)) for name, path in paths.items()}
    assert counts["f05.bin"] >= 2
    assert all(counts[name] == 1 for name in list(FILES)[:5])  # answered before the reset


def test_unframed_answers_stop_pipelining(raw_server: Callable[[RawHandler], RawServer]) -> None:
    def handler(connection: RawConnection) -> None:
        request = connection.read_request()
        assert request is not None
        connection.send(http_response(b"", headers=(("Content-Length", "2"),)) + b"ok")
        request = connection.read_request()
        assert request is not None
        chunked = http_response(
            b"3\r\nabc\r\n0\r\n\r\n", headers=(("Transfer-Encoding", "chunked"),)
        )
        connection.send(chunked)

    server = raw_server(handler)
    gets = [PipelinedGet(server.url(f"/{n}"), {}) for n in range(4)]
    assert fetch_all(gets) == {0: b"ok"}


def test_bodies_larger_than_the_limit_are_not_read(
    raw_server: Callable[[RawHandler], RawServer],
) -> None:
    server = raw_server(lambda c: (c.read_request(), c.send(http_response(b"x" * 100)))[0] and None)
    gets = [PipelinedGet(server.url("/big"), {})]
    assert fetch_all(gets, max_body=99) == {}


def test_a_wrong_checksum_fails_and_leaves_nothing(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    serve(fault_server, FILES, declared={"f03.bin": b"something else"})
    with pytest.raises(ChecksumMismatchError):
        prepare(remote(fault_server, cache_dir))
    assert leftovers(cache_dir) == []
    artifacts = cache_dir / "repos"
    assert not any(p.name == "r" for p in artifacts.rglob("*"))  # no resource directory


def test_offline_sends_nothing(fault_server: FaultServer, cache_dir: Path) -> None:
    serve(fault_server, FILES)
    online = remote(fault_server, cache_dir)
    assert online.resolve(MRL_) is not None  # caches the metadata
    fault_server.clear_requests()
    offline = remote(fault_server, cache_dir, offline=True)
    with pytest.raises(OfflineError):
        prepare(offline)
    assert fault_server.requests == []


def test_urls_going_through_a_proxy_are_not_pipelined(
    monkeypatch: pytest.MonkeyPatch, fault_server: FaultServer
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    transport = HttpTransport(fault_server.base_url, retry=FAST_RETRY)
    fault_server.add_file("/a", b"a")
    assert list(transport.fetch_pipelined([fault_server.url("/a")], max_body=10)) == []
    assert fault_server.requests == []


def test_a_plain_body_that_does_not_verify_is_never_written(tmp_path: Path) -> None:
    item = Item(uri="1.0/x.bin", sha256Hash=hashlib.sha256(b"expected").hexdigest(), size=8)
    with pytest.raises(ChecksumMismatchError):
        install_body(b"tampered", item, tmp_path, source="s", limits=ExtractionLimits())
    assert list(tmp_path.iterdir()) == []
