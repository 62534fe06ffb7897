"""A small Hugging Face Hub-compatible HTTP server, so the real `huggingface_hub` client can be
tested offline against it (HF_ENDPOINT=server.url).

It keeps git-like state in memory: repos -> commits (id = sha1 over parent, tree and a sequence
number), branches and tags. It answers the endpoints the client uses for create_repo,
list_repo_refs, model_info, create_branch/delete_branch, create_tag/delete_tag, create_commit
(preupload answers uploadMode "regular" for every file, so contents arrive base64 in the commit
NDJSON and no LFS/Xet server is needed), list_repo_commits, list_repo_tree, list_models (paged,
with `sha` and `lastModified` of main's head commit on request) and hf_hub_download (HEAD/GET
resolve). Errors carry X-Error-Code like the Hub's.

Fault injection: `inject(method, path_regex, kind, times=..., skip=...)` makes matching requests
fail: "500", "429" (with Retry-After), "reset" (connection dropped before the request is
applied), "lost" (applied, then the connection is dropped: the reply is lost), "slow" (delayed
reply). `log` records every request (method, unquoted path, time) so tests can name steps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


@dataclass
class Commit:
    oid: str
    files: dict[str, bytes]
    parent: str | None
    title: str
    date: str


@dataclass
class Repo:
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit:
        oid = self.branches.get(rev) or self.tags.get(rev) or rev
        if oid not in self.commits:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return self.commits[oid]


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    kind: str
    times: int | None  # None: until cleared
    skip: int  # let this many matching requests through first
    delay: float
    retry_after: int
    seen: int = 0
    fired: int = 0


@dataclass
class Request:
    method: str
    path: str
    t: float
    status: int | None = None  # None: the connection was dropped
    authorization: str | None = None  # the Authorization header, to check tokens reach the Hub


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.log: list[Request] = []
        self.faults: list[Fault] = []
        self.page_size = 1000  # repos per page of GET /api/models
        self._lock = threading.RLock()
        self._seq = 0
        self._server: ThreadingHTTPServer | None = None

    # ---- lifecycle and test API ----

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(
        self,
        method: str,
        path_regex: str,
        kind: str,
        *,
        times: int | None = 1,
        skip: int = 0,
        delay: float = 0.3,
        retry_after: int = 0,
    ) -> Fault:
        assert kind in {"500", "429", "reset", "lost", "slow"}, kind
        fault = Fault(method, re.compile(path_regex), kind, times, skip, delay, retry_after)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(r.method, r.path) for r in self.log]

    def _fault_for(self, entry: Request) -> Fault | None:
        """Log the request; the fault it triggers, if any."""
        with self._lock:
            self.log.append(entry)
            for fault in self.faults:
                if fault.method != entry.method or not fault.pattern.search(entry.path):
                    continue
                fault.seen += 1
                if fault.seen > fault.skip and (fault.times is None or fault.fired < fault.times):
                    fault.fired += 1
                    return fault
        return None

    # ---- git-like state ----

    def repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return self.repos[repo_id]

    def new_commit(
        self, repo: Repo, files: dict[str, bytes], parent: str | None, title: str
    ) -> str:
        self._seq += 1
        tree = sorted((path, git_blob_sha(data)) for path, data in files.items())
        oid = hashlib.sha1(json.dumps([parent, tree, title, self._seq]).encode()).hexdigest()
        date = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        repo.commits[oid] = Commit(oid, dict(files), parent, title, date)
        return oid

    def create_repo(self, repo_id: str, private: bool) -> bool:
        with self._lock:
            if repo_id in self.repos:
                return False
            repo = Repo(private=private)
            repo.branches["main"] = self.new_commit(
                repo, {".gitattributes": GITATTRIBUTES}, None, "initial commit"
            )
            self.repos[repo_id] = repo
            return True

    # ---- endpoints: (status, headers, body) ----

    def route(self, method: str, segs: list[str], query: dict, body: bytes, base: str):
        if segs[:1] != ["api"]:  # /{org}/{name}/resolve/{rev}/{path}
            if len(segs) >= 5 and segs[2] == "resolve" and method in ("GET", "HEAD"):
                return self.resolve_file(f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:]))
            raise HubError(404, "not found")
        if segs[1:] == ["repos", "create"] and method == "POST":
            payload = json.loads(body or b"{}")
            repo_id = f"{payload['organization']}/{payload['name']}"
            private = payload.get("visibility", "private") == "private" or bool(
                payload.get("private")
            )
            if not self.create_repo(repo_id, private):
                # the Hub's 409 carries the url; create_repo(exist_ok=True) returns it
                raise HubError(409, "You already created this model repo", url=f"{base}/{repo_id}")
            return 200, {}, {"url": f"{base}/{repo_id}", "name": repo_id}
        if segs[1:] == ["validate-yaml"] and method == "POST":
            return 200, {}, {"errors": [], "warnings": []}
        if segs[1:] == ["models"] and method == "GET":
            return self.list_models(query, base)
        if segs[1] != "models" or len(segs) < 4:
            raise HubError(404, "not found")
        repo_id, op, args = f"{segs[2]}/{segs[3]}", (segs[4:5] or [""])[0], segs[5:]
        with self._lock:
            repo = self.repo(repo_id)
            return self.repo_endpoint(repo_id, repo, method, op, args, query, body, base)

    def list_models(self, query: dict, base: str):
        """GET /api/models?author=ORG: one page of `page_size` repos, the next page named by a
        `Link: <...>; rel="next"` header, as the Hub pages. `expand=sha` / `expand=lastModified`
        (or `full`) add the head commit of main and its date, as the Hub reports them."""
        author = (query.get("author") or [""])[0]
        fields = set(query.get("expand") or [])
        if (query.get("full") or [""])[0].lower() == "true":
            fields |= {"sha", "lastModified", "private"}
        start = int((query.get("cursor") or ["0"])[0])
        with self._lock:
            ids = sorted(r for r in self.repos if r.startswith(f"{author}/"))
            page = []
            for r in ids[start : start + self.page_size]:
                repo, item = self.repos[r], {"_id": hashlib.sha1(r.encode()).hexdigest()[:24]}
                item["id"] = r
                head = repo.commits[repo.branches["main"]]
                if not fields or "private" in fields:
                    item["private"] = repo.private
                if "sha" in fields:
                    item["sha"] = head.oid
                if "lastModified" in fields:
                    item["lastModified"] = head.date
                page.append(item)
        headers = {}
        if start + self.page_size < len(ids):
            params = [(k, v) for k, vs in sorted(query.items()) if k != "cursor" for v in vs]
            params.append(("cursor", str(start + self.page_size)))
            headers["Link"] = f'<{base}/api/models?{urlencode(params)}>; rel="next"'
        return 200, headers, page

    def repo_endpoint(self, repo_id, repo: Repo, method, op, args, query, body, base):
        arg = "/".join(args)
        if method == "GET" and op in ("", "revision"):
            commit = repo.resolve(arg or "main")
            siblings = [
                {"rfilename": p, "blobId": git_blob_sha(d), "size": len(d)}
                for p, d in sorted(commit.files.items())
            ]
            info = {"id": repo_id, "sha": commit.oid, "private": repo.private}
            return 200, {}, {**info, "siblings": siblings, "lastModified": commit.date}
        if method == "GET" and op == "refs":

            def refs(kind: str, table: dict[str, str]) -> list[dict]:
                return [
                    {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid}
                    for n, oid in sorted(table.items())
                ]

            data = {"branches": refs("heads", repo.branches), "tags": refs("tags", repo.tags)}
            return 200, {}, {**data, "converts": [], "pullRequests": []}
        if method == "POST" and op == "preupload":
            files = repo.resolve(arg).files
            wanted = json.loads(body)["files"]
            answer = [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha(files[f["path"]]) if f["path"] in files else None,
                }
                for f in wanted
            ]
            return 200, {}, {"files": answer}
        if method == "POST" and op == "commit":
            oid = self.apply_commit(repo, arg, body)
            return 200, {}, {"commitUrl": f"{base}/{repo_id}/commit/{oid}", "commitOid": oid}
        if op == "tag" and method == "POST":
            commit = repo.resolve(arg)
            tag = json.loads(body)["tag"]
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = commit.oid
            return 200, {}, {}
        if op == "tag" and method == "DELETE":
            if repo.tags.pop(arg, None) is None:
                raise HubError(404, f"Tag {arg} not found", "RevisionNotFound")
            return 200, {}, {}
        if op == "branch" and method == "POST":
            start = json.loads(body or b"{}").get("startingPoint") or "main"
            commit = repo.resolve(start)
            if arg in repo.branches:
                raise HubError(409, f"Branch {arg} already exists")
            repo.branches[arg] = commit.oid
            return 200, {}, {}
        if op == "branch" and method == "DELETE":
            if arg == "main":
                raise HubError(403, "cannot delete the default branch")
            if repo.branches.pop(arg, None) is None:
                raise HubError(404, f"Branch {arg} not found", "RevisionNotFound")
            return 200, {}, {}
        if op == "commits" and method == "GET":
            history, commit = [], repo.resolve(arg)
            while commit:
                entry = {"id": commit.oid, "title": commit.title, "message": commit.title}
                history.append({**entry, "authors": [], "date": commit.date})
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return 200, {}, history
        if op == "tree" and method == "GET":
            files = repo.resolve(args[0] if args else "main").files
            prefix = "/".join(args[1:]).strip("/")
            entries = [
                {"type": "file", "path": p, "oid": git_blob_sha(d), "size": len(d)}
                for p, d in sorted(files.items())
                if not prefix or p.startswith(prefix + "/")
            ]
            return 200, {}, entries
        raise HubError(404, f"no endpoint {method} {op}")

    def apply_commit(self, repo: Repo, branch: str, body: bytes) -> str:
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head = repo.branches[branch]
        files = dict(repo.commits[head].files)
        title = "commit"
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                title = value.get("summary") or title
                parent = value.get("parentCommit")
                if parent and parent != head:
                    raise HubError(
                        412, "A commit has happened since. Please refresh and try again."
                    )
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: d for p, d in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"unsupported commit operation {key!r} (LFS is not served)")
        oid = self.new_commit(repo, files, head, title)
        repo.branches[branch] = oid
        return oid

    def resolve_file(self, repo_id: str, rev: str, path: str):
        with self._lock:
            commit = self.repo(repo_id).resolve(rev)
            data = commit.files.get(path)
        if data is None:
            raise HubError(404, f"Entry {path} not found", "EntryNotFound")
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{git_blob_sha(data)}"',
            "Content-Type": "application/octet-stream",
        }
        return 200, headers, data


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.0"  # one request per connection: a dropped one never poisons a pool

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (quiet)
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _drop(self) -> None:
        # SO_LINGER 0: close with a RST, the way a crashed proxy or a reset network drops it.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        segs = [unquote(s) for s in parts.path.split("/")[1:]]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        entry = Request(
            method, unquote(parts.path), time.monotonic(), None, self.headers.get("Authorization")
        )
        fault = self.fake._fault_for(entry)
        kind = fault.kind if fault else None
        if kind == "reset":
            return self._drop()
        if kind in ("500", "429"):
            extra = {"Retry-After": str(fault.retry_after)} if kind == "429" else {}
            entry.status = int(kind)
            return self._send(int(kind), extra, {"error": f"injected {kind}"}, method)
        if kind == "slow":
            time.sleep(fault.delay)
        base = f"http://{self.headers.get('Host', '127.0.0.1')}"
        try:
            status, headers, payload = self.fake.route(
                method, segs, parse_qs(parts.query), body, base
            )
        except HubError as err:
            headers = {"X-Error-Code": err.code} if err.code else {}
            status, payload = err.status, {"error": err.message, **err.extra}
        if kind == "lost":
            return self._drop()
        entry.status = status
        self._send(status, headers, payload, method)

    def _send(self, status: int, headers: dict, payload: object, method: str) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        if not isinstance(payload, bytes):
            self.send_header("Content-Type", "application/json")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)


class _FastClock:
    """Stands in for the `time` module inside huggingface_hub's own HTTP backoff (preupload and
    download retries wait 1-8 s there, Retry-After + 1 s on a 429): tests wait 1/1000 of it."""

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 1.0) / 1000)


@contextmanager
def running_hub(monkeypatch) -> Iterator[FakeHub]:
    """A started FakeHub with the client pointed at it (HF_ENDPOINT is read by HubStore when it
    is made, so nothing depends on when huggingface_hub was imported) and fast retries."""
    import huggingface_hub.utils._http as hf_http
    from huggingface_hub import constants

    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("REGISTRY_HUB_RETRIES", "2")
    monkeypatch.setenv("REGISTRY_HUB_BACKOFF", "0.001")
    monkeypatch.setenv("REGISTRY_HUB_MAX_WAIT", "2")
    monkeypatch.setenv("REGISTRY_HUB_TIMEOUT", "5")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest sets HF_HUB_OFFLINE=1
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hf_http, "time", _FastClock())
    try:
        yield hub
    finally:
        hub.stop()
