"""A tiny stand-in for the Hugging Face Hub on 127.0.0.1, for tests: the endpoints huggingface_hub calls for
create_repo / create_branch, upload_folder with Xet disabled (validate-yaml, preupload, tree listing, LFS
batch + PUT, commit), repo_info, and downloads (resolve with HTTP ranges, paths-info) for hf_hub_download
and HfFileSystem. It keeps what it receives in memory, can fail chosen LFS uploads to
simulate an interruption, limits request sizes, and shuts itself down after `lifetime_s`."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

MAX_BODY = 256 * 1024**2
LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".jpeg")
_REPO_ROUTE = re.compile(
    r"^/api/datasets/([^/]+/[^/]+)(?:/(preupload|commit|tree|branch|revision|paths-info)/([^/]+)(/.*)?)?$")
_RESOLVE = re.compile(r"^/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_LFS_BATCH = re.compile(r"^/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch$")
_LFS_PUT = re.compile(r"^/lfs-storage/([0-9a-f]{64})$")


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Raw:
    """A response that is a file's bytes rather than JSON."""

    def __init__(self, data: bytes, headers: dict[str, str]):
        self.data, self.headers = data, headers


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.extra = status, extra


class FakeHub:
    """State of the fake Hub; `with FakeHub(token) as hub:` serves on `hub.endpoint`."""

    def __init__(self, token: str, fail_puts: tuple[int, ...] = (), lifetime_s: float = 300,
                 misreport: tuple[str, ...] = ()):
        self.token = token
        self.misreport = set(misreport)  # paths whose tree listing reports another hash, as for a damaged copy
        self.fail_puts = set(fail_puts)  # 1-based numbers of LFS PUTs that get HTTP 400 (simulated storage error)
        self.lifetime_s = lifetime_s
        self.lock = threading.Lock()
        # repo_id -> {"private": bool, "branches": {name: {path: entry}}, "heads": {name: commit oid},
        #             "snapshots": {commit oid: {path: entry}}}: a revision is a branch name or a commit oid
        self.repos: dict[str, dict] = {}
        self.lfs: dict[str, bytes] = {}  # sha256 -> content
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.put_attempts = 0
        self.accepted_puts: list[str] = []  # oids stored, in order
        self.commits: list[dict] = []
        self.raw_bodies: list[bytes] = []  # everything received, to look for leaked secrets
        self.server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            state = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._timer = threading.Timer(self.lifetime_s, self.server.shutdown)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # -- what tests look at ------------------------------------------------------------------------------
    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        """Path -> content of a branch (or commit), as a download would give it."""
        tree = self._branch(self.repos[repo_id], branch)
        return {path: self.lfs[e["sha256"]] if e["sha256"] else e["data"] for path, e in tree.items()}

    def materialize(self, repo_id: str, dest: Path, branch: str = "main") -> Path:
        for path, data in self.files(repo_id, branch).items():
            target = Path(dest) / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return Path(dest)

    def called(self, method: str, pattern: str) -> int:
        return sum(1 for m, p, s in self.requests if m == method and re.search(pattern, p) and s < 400)

    # -- endpoints -----------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, headers, body: bytes, query: str = "") -> tuple[int, object]:
        if method == "PUT" and (match := _LFS_PUT.match(path)):
            return self._lfs_put(match[1], body)  # a pre-signed storage URL: no Authorization header
        if headers.get("Authorization") != f"Bearer {self.token}":
            raise HttpError(401, "Invalid credentials in Authorization header")
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if method == "POST" and (match := _LFS_BATCH.match(path)):
            return self._lfs_batch(self._repo(match[1]), json.loads(body))
        if method in ("GET", "HEAD") and (match := _RESOLVE.match(path)):
            return self._download(match[1], unquote(match[2]), unquote(match[3]), headers.get("Range"))
        match = _REPO_ROUTE.match(path)
        if not match:
            raise HttpError(404, f"no route {method} {path}")
        repo_id, action, revision, rest = match[1], match[2], unquote(match[3] or "main"), match[4]
        repo = self._repo(repo_id)
        if method == "GET" and action in (None, "revision"):
            self._branch(repo, revision)
            return 200, {"id": repo_id, "private": repo["private"], "sha": self._head(repo, revision),
                         "siblings": [{"rfilename": p} for p in sorted(self._branch(repo, revision))]}
        if method == "POST" and action == "branch":
            if revision in repo["branches"]:
                raise HttpError(409, "Branch already exists")
            repo["branches"][revision] = dict(repo["branches"]["main"])
            repo["heads"][revision] = repo["heads"]["main"]
            return 200, {}
        tree = self._branch(repo, revision)
        if method == "POST" and action == "preupload":
            return 200, {"files": [self._upload_mode(tree, f) for f in json.loads(body)["files"]]}
        if method == "GET" and action == "tree":
            prefix = unquote(rest or "/")[1:]
            if parse_qs(query).get("recursive") == ["true"]:
                return 200, [self._entry(p, e) for p, e in sorted(tree.items()) if p.startswith(prefix)]
            return 200, self._children(tree, prefix.rstrip("/") + "/" if prefix.strip("/") else "")
        if method == "POST" and action == "paths-info":
            wanted = set(parse_qs(body.decode()).get("paths", []))
            return 200, [self._entry(p, e) for p, e in sorted(tree.items()) if p in wanted]
        if method == "POST" and action == "commit":
            return self._commit(repo_id, revision, body)
        raise HttpError(404, f"no route {method} {path}")

    def _entry(self, path: str, entry: dict) -> dict:
        """What the Hub's tree listing says of a file: its git blob id, and for LFS files the sha256 and size
        (deliberately wrong for the paths in `misreport`)."""
        sha256, git_oid = entry["sha256"], entry["git_oid"]
        if path in self.misreport:
            sha256 = sha256 and hashlib.sha256(sha256.encode()).hexdigest()
            git_oid = hashlib.sha1(git_oid.encode()).hexdigest()
        return {"type": "file", "path": path, "size": entry["size"], "oid": git_oid,
                **({"lfs": {"oid": sha256, "size": entry["size"], "pointerSize": 134}} if sha256 else {})}

    def _children(self, tree: dict, prefix: str) -> list[dict]:
        """The files and folders directly in one folder (a non-recursive listing)."""
        files = [self._entry(p, e) for p, e in sorted(tree.items())
                 if p.startswith(prefix) and "/" not in p[len(prefix):]]
        folders = sorted({prefix + p[len(prefix):].split("/")[0] for p in tree if p.startswith(prefix)
                          and "/" in p[len(prefix):]})
        return files + [{"type": "directory", "path": folder, "oid": "0" * 40} for folder in folders]

    def _download(self, repo_id: str, revision: str, path: str, byte_range: str | None) -> tuple[int, Raw]:
        """A file's content, whole or the one byte range asked for, with the headers hf_hub_download reads."""
        tree = self._branch(self._repo(repo_id), revision)
        if path not in tree:
            raise HttpError(404, f"Entry not found: {path}", **{"X-Error-Code": "EntryNotFound"})
        data = self.files(repo_id, revision)[path]
        etag = tree[path]["sha256"] or tree[path]["git_oid"]
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": self._head(self._repo(repo_id), revision),
                   "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        match = _RANGE.match(byte_range or "")
        if not match:
            return 200, Raw(data, headers)
        start, stop = int(match[1]), min(int(match[2] or len(data) - 1), len(data) - 1)
        headers["Content-Range"] = f"bytes {start}-{stop}/{len(data)}"
        return 206, Raw(data[start:stop + 1], headers)

    def _repo(self, repo_id: str) -> dict:
        if repo_id not in self.repos:
            raise HttpError(404, f"Repository not found: {repo_id}")
        return self.repos[repo_id]

    @staticmethod
    def _branch(repo: dict, revision: str) -> dict:
        """The files of a branch, or of the commit a commit oid names."""
        found = repo["branches"].get(revision, repo["snapshots"].get(revision))
        if found is None:
            raise HttpError(404, f"Revision not found: {revision}")
        return found

    @staticmethod
    def _head(repo: dict, revision: str) -> str:
        """The commit oid a revision resolves to (a commit oid is its own)."""
        return repo["heads"].get(revision, revision)

    def _create_repo(self, payload: dict) -> tuple[int, object]:
        if payload.get("type") != "dataset":
            raise HttpError(400, "this fake hub only holds datasets")
        repo_id = f"{payload['organization']}/{payload['name']}"
        if repo_id in self.repos:
            raise HttpError(409, "You already created this dataset repo",
                            url=f"{self.endpoint}/datasets/{repo_id}")
        self.repos[repo_id] = {"private": payload.get("visibility") == "private", "branches": {"main": {}},
                               "heads": {"main": "0" * 40}, "snapshots": {"0" * 40: {}}}
        return 200, {"url": f"{self.endpoint}/datasets/{repo_id}", "name": repo_id}

    @staticmethod
    def _validate_yaml(payload: dict) -> tuple[int, object]:
        content = payload["content"]
        try:
            if not content.startswith("---\n"):
                raise ValueError("README.md has no YAML header")
            metadata = yaml.safe_load(content.split("---\n")[1])
            if not isinstance(metadata, dict):
                raise ValueError("YAML header is not a mapping")
        except (ValueError, yaml.YAMLError) as err:
            return 400, {"errors": [{"message": str(err)}]}
        return 200, {"errors": [], "warnings": []}

    @staticmethod
    def _upload_mode(tree: dict, file: dict) -> dict:
        sample = base64.b64decode(file["sample"])
        lfs = file["path"].endswith(LFS_SUFFIXES) or file["size"] > 10 * 1024**2 or b"\0" in sample
        entry = tree.get(file["path"])
        oid = (entry["sha256"] or entry["git_oid"]) if entry else None
        return {"path": file["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}

    def _lfs_batch(self, repo: dict, payload: dict) -> tuple[int, object]:
        if payload.get("operation") != "upload":
            raise HttpError(400, "only uploads")
        objects = []
        for obj in payload["objects"]:
            if obj["oid"] in self.lfs:
                objects.append({"oid": obj["oid"], "size": obj["size"]})  # already stored: nothing to send
            else:
                objects.append({"oid": obj["oid"], "size": obj["size"], "authenticated": True,
                                "actions": {"upload": {"href": f"{self.endpoint}/lfs-storage/{obj['oid']}"}}})
        return 200, {"transfer": "basic", "objects": objects}

    def _lfs_put(self, oid: str, body: bytes) -> tuple[int, object]:
        with self.lock:
            self.put_attempts += 1
            attempt = self.put_attempts
        if attempt in self.fail_puts:
            raise HttpError(400, "simulated storage failure")
        if hashlib.sha256(body).hexdigest() != oid:
            raise HttpError(400, "content does not match its oid")
        with self.lock:
            self.lfs[oid] = body
            self.accepted_puts.append(oid)
        return 200, {}

    def _commit(self, repo_id: str, revision: str, body: bytes) -> tuple[int, object]:
        repo = self._repo(repo_id)
        if revision not in repo["branches"]:
            raise HttpError(400, f"commits go to a branch, not {revision}")
        tree = repo["branches"][revision]
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            raise HttpError(400, "commit without header")
        record = {"repo_id": repo_id, "regular": [], "lfs": [], "deleted": []}
        changes = {}
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                data = base64.b64decode(value["content"])
                changes[value["path"]] = {"size": len(data), "sha256": None, "git_oid": git_blob_oid(data),
                                          "data": data}
                record["regular"].append(value["path"])
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.lfs:
                    raise HttpError(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                changes[value["path"]] = {"size": len(self.lfs[value["oid"]]), "sha256": value["oid"],
                                          "git_oid": git_blob_oid(value["oid"].encode()), "data": None}
                record["lfs"].append(value["path"])
            elif line["key"] == "deletedFile":
                changes[value["path"]] = None
                record["deleted"].append(value["path"])
            elif line["key"] == "deletedFolder":
                changes.update({p: None for p in tree if p.startswith(value["path"].rstrip("/") + "/")})
                record["deleted"].append(value["path"])
            else:
                raise HttpError(400, f"unknown commit key {line['key']}")
        with self.lock:
            for path, entry in changes.items():
                if entry is None:
                    tree.pop(path, None)
                else:
                    tree[path] = entry
            self.commits.append(record)
            oid = hashlib.sha1(f"{repo_id}-{len(self.commits)}".encode()).hexdigest()
            repo["heads"][revision], repo["snapshots"][oid] = oid, dict(tree)
        return 200, {"commitUrl": f"{self.endpoint}/datasets/{repo_id}/commit/{oid}", "commitOid": oid,
                     "pullRequestUrl": None}


class _Handler(BaseHTTPRequestHandler):
    state: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise HttpError(413, "request too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise HttpError(413, "request too large")
        return self.rfile.read(length)

    def _serve(self) -> None:
        path, query = urlsplit(self.path).path, urlsplit(self.path).query
        try:
            body = self._body()
            with self.state.lock:
                self.state.raw_bodies.append(body)
            status, payload = self.state.handle(self.command, path, self.headers, body, query)
            headers = {}
        except HttpError as err:
            status, payload, headers = err.status, {"error": str(err), **err.extra}, {"X-Error-Message": str(err)}
        if isinstance(payload, Raw):
            data, headers = payload.data, {**payload.headers, **headers}
        else:
            data, headers = json.dumps(payload).encode(), {"Content-Type": "application/json", **headers}
        with self.state.lock:
            self.state.requests.append((self.command, path, status))
        self.send_response(status)
        for key, value in {"Content-Length": str(len(data)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_HEAD = _serve
