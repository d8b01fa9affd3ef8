"""A stand-in for the Hugging Face Hub on 127.0.0.1, for download tests without the internet.

It answers what huggingface_hub 2.4 asks (read from its file_download.py):
- HEAD/GET `/{repo_id}/resolve/{revision}/{filename}` on the "hub" server. A plain file answers
  200 with `ETag` (its git blob sha1), `Content-Length` and `X-Repo-Commit`. An LFS file
  (model.safetensors) answers 302 with `Location` on a second server standing in for the CDN
  (another origin, so huggingface_hub stops there as it does for the real CDN), `X-Linked-Etag`
  (its sha256), `X-Linked-Size` and `X-Repo-Commit`.
- GET on the "cdn" server, with `Range: bytes=N-` answered by 206 and `Content-Range`.
- Missing repos, revisions and files answer 404 with the `X-Error-Code` the Hub sends
  (RepoNotFound, RevisionNotFound, EntryNotFound). Anything else (an /api/ call) is logged
  and answered 404, so a test can assert it was never asked.

Faults for the tests: drop the connection after N bytes of a file's body, answer a status
instead, or trickle an LFS body slowly (`trickle_s` after every 64 KiB: a throttle); announce
another ETag, size or commit for a file than its own (a mirror's ETag that is no hash, a
hostile one that is a path, a wrong size, none). It counts the body bytes it sent per file
(`sent`), so a resumed download shows what it fetched twice. Both servers stop when the test
ends, and on their own after `lifetime_s` in any case.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

LFS_FILES = ("model.safetensors",)

GPT2_REPO = "openai-community/gpt2"  # the repo the stand-in Hub serves in tests


@dataclass(frozen=True)
class Logged:
    role: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None  # the Range header, if any

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class Blob:
    filename: str
    data: bytes
    sha256: str = field(init=False)
    git_sha1: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.git_sha1 = hashlib.sha1(b"blob %d\0" % len(self.data) + self.data,
                                     usedforsecurity=False).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, hub: FakeHub, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self.role = role


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # no socket waits forever
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at shutdown

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        hub, role = self.server.hub, self.server.role
        hub.record(Logged(role, self.command, self.path, self.headers.get("Range")))
        if role == "cdn":
            blob = hub.blob_by_sha(self.path.rsplit("/", 1)[-1])
            if blob is None:
                self._status(404)
                return
            self._send_file(blob, body)
            return
        repo_id, sep, rest = self.path.partition("/resolve/")
        repo_id = repo_id.lstrip("/")
        revision, _, filename = rest.partition("/")
        if not sep or not filename:
            self._status(404)
            return
        files = hub.repos.get(repo_id)
        if files is None:
            self._status(404, {"X-Error-Code": "RepoNotFound"})
            return
        if revision not in ("main", hub.commit):
            self._status(404, {"X-Error-Code": "RevisionNotFound"})
            return
        blob = files.get(filename)
        if blob is None:
            self._status(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": hub.commit})
            return
        commit = hub.commits.get(filename, hub.commit)
        if filename in LFS_FILES:
            self.send_response(302)
            self.send_header("Location", f"{hub.cdn_endpoint}/blobs/{blob.sha256}")
            self.send_header("X-Repo-Commit", commit)
            self.send_header("X-Linked-Etag", f'"{hub.etags.get(filename, blob.sha256)}"')
            size = hub.sizes.get(filename, len(blob.data))
            if size is not None:
                self.send_header("X-Linked-Size", str(size))
            self.send_header("ETag", f'"{hashlib.sha1(blob.sha256.encode()).hexdigest()}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send_file(blob, body, {"X-Repo-Commit": commit})

    def _status(self, code: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_file(self, blob: Blob, body: bool, headers: dict[str, str] | None = None) -> None:
        hub = self.server.hub
        fault = hub.take_fault(blob.filename) if body else None
        if fault is not None and fault[0] == "status":
            self._status(fault[1])
            return
        data, start = blob.data, 0
        if fault is not None and fault[0] == "garble":  # wrong bytes from offset N on
            data = data[:fault[1]] + bytes(b ^ 0xFF for b in data[fault[1]:fault[1] + 16]) + \
                data[fault[1] + 16:]
        wanted = self.headers.get("Range") if hub.honour_range else None
        if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[len("bytes="):-1])
            if start >= len(data):
                self._status(416, {"Content-Range": f"bytes */{len(data)}"})
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        etag = blob.sha256 if blob.filename in LFS_FILES else blob.git_sha1
        size: int | None = len(data) - start
        if not body and blob.filename not in LFS_FILES:  # a HEAD on the hub: what it announces
            etag = hub.etags.get(blob.filename, etag)
            size = hub.sizes.get(blob.filename, size)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Accept-Ranges", "bytes")
        if size is not None:
            self.send_header("Content-Length", str(size))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not body:
            return
        drop = fault[1] if fault is not None and fault[0] == "drop" else None
        payload = data[start:] if drop is None else data[start:start + drop]
        block = 64 * 1024
        try:
            for i in range(0, len(payload), block):
                self.wfile.write(payload[i:i + block])
                hub.count_sent(blob.filename, len(payload[i:i + block]))
                if hub.trickle_s and blob.filename in LFS_FILES:
                    self.wfile.flush()
                    time.sleep(hub.trickle_s)
            self.wfile.flush()
            if drop is not None:  # the connection breaks mid-file
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
        except OSError:  # the client went away (a cancelled download)
            self.close_connection = True


class FakeHub:
    """Two loopback servers (hub and CDN) serving repos made of local folders."""

    def __init__(self, lifetime_s: float = 120.0) -> None:
        self.commit = hashlib.sha1(b"ghostpen test commit", usedforsecurity=False).hexdigest()
        self.repos: dict[str, dict[str, Blob]] = {}
        self.log: list[Logged] = []
        # filename -> what the next GETs of it meet, in order: ("drop", N) cuts the body after
        # N bytes, ("status", code) answers with that status instead of the file, ("garble",
        # N) sends 16 wrong bytes at offset N.
        self.faults: dict[str, list[tuple[str, int]]] = {}
        self.honour_range = True  # False: answer 200 and the whole file, as some CDNs do
        # filename -> what a HEAD announces instead of the file's own: its ETag (a hash the
        # client checks), its size (None: no size at all), the commit it belongs to.
        self.etags: dict[str, str] = {}
        self.sizes: dict[str, int | None] = {}
        self.commits: dict[str, str] = {}
        self.trickle_s = 0.0  # pause after every 64 KiB of an LFS body
        self.sent: dict[str, int] = {}  # filename -> body bytes handed to clients, all GETs
        self._lock = threading.Lock()
        self._hub = _Server(self, "hub")
        self._cdn = _Server(self, "cdn")
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05},
                                          daemon=True) for s in (self._hub, self._cdn)]
        self._deadline = threading.Timer(lifetime_s, self.stop)
        self._deadline.daemon = True
        self._stopped = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def add_repo(self, repo_id: str, folder: Path, names: tuple[str, ...] | None = None) -> None:
        files = sorted(p for p in Path(folder).iterdir() if p.is_file())
        self.repos[repo_id] = {p.name: Blob(p.name, p.read_bytes()) for p in files
                               if names is None or p.name in names}

    def blob_by_sha(self, sha256: str) -> Blob | None:
        return next((b for files in self.repos.values() for b in files.values()
                     if b.sha256 == sha256), None)

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def count_sent(self, filename: str, n_bytes: int) -> None:
        with self._lock:
            self.sent[filename] = self.sent.get(filename, 0) + n_bytes

    def drop(self, filename: str, after: int) -> None:
        """The next GET of `filename` breaks the connection after `after` bytes."""
        self.faults.setdefault(filename, []).append(("drop", after))

    def refuse(self, filename: str, status: int) -> None:
        """The next GET of `filename` is answered with `status`."""
        self.faults.setdefault(filename, []).append(("status", status))

    def garble(self, filename: str, offset: int) -> None:
        """The next GET of `filename` carries 16 wrong bytes at `offset`."""
        self.faults.setdefault(filename, []).append(("garble", offset))

    def take_fault(self, filename: str) -> tuple[str, int] | None:
        with self._lock:
            queue = self.faults.get(filename)
            return queue.pop(0) if queue else None

    def gets(self, filename: str) -> list[Logged]:
        """The GETs that carried bytes of `filename` (on the CDN for LFS files)."""
        role = "cdn" if filename in LFS_FILES else "hub"
        sha = {b.sha256 for files in self.repos.values() for b in files.values()
               if b.filename == filename}
        return [e for e in self.log if e.method == "GET" and e.role == role
                and (e.filename == filename or e.filename in sha)]

    def start(self) -> FakeHub:
        for thread in self._threads:
            thread.start()
        self._deadline.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._deadline.cancel()
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def go_online(hub: FakeHub, monkeypatch: object, hf_home: Path) -> None:
    """Point huggingface_hub at `hub` for one test: HF_ENDPOINT, HF_HOME, offline mode off.

    huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE (which tests/conftest.py turns on)
    once, at import, so its module constants are patched too: any request it makes on its own
    (say {ENDPOINT}/api/agent-harnesses, its telemetry) reaches `hub` and is logged."""
    import pytest
    from huggingface_hub import constants

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    # Restored after the test: app.hub_download sets it on each download.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", constants.HF_HUB_DISABLE_TELEMETRY)
