"""The blob listener: a CDN/S3 look-alike on another origin.

Routes (all URLs are signed by the API listener, see `_http.Signer`):

* `GET|HEAD /blobs/<sha256>?filename=..&exp=..&sig=..` - LFS content, with single ranges;
* `PUT /upload/<sha256>?size=..` - a basic LFS upload;
* `PUT /upload/<sha256>/<upload id>/<part>?size=..&chunk=..` - one multipart part (answers an ETag);
* `POST /upload/<sha256>/<upload id>/complete?size=..&chunk=..` - assembles the parts.

Like a real object store it refuses an `Authorization` header (400) and answers auth
problems in plain text (403).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

import anyio
from aiohttp import web

from engine.server._context import Services
from engine.server._faults import BodyFaults
from engine.server._hashing import FileDigest
from engine.server._http import plain_error
from engine.server._rules import SAMPLE_BYTES
from engine.server._stream import RangeNotSatisfiable, range_headers, send_file

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
READ_BYTES = 1024 * 1024


def route_kind(segs: list[str]) -> str:
    return "blob" if segs and segs[0] == "blobs" else "upload" if segs and segs[0] == "upload" else "other"


async def handle(svc: Services, request: web.Request, segs: list[str], target: str) -> web.StreamResponse:
    """Serve one blob-listener request (faults already applied by the dispatcher)."""
    if "Authorization" in request.headers:
        return plain_error(
            400,
            "InvalidArgument: Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
        )
    path = request.raw_path.split("?", 1)[0]
    if (problem := svc.signer.check(path, request.query)) is not None:
        return plain_error(403, problem)
    method = request.method
    if len(segs) == 2 and segs[0] == "blobs" and _HEX64.match(segs[1]) and method in ("GET", "HEAD"):
        if svc.faults.take_expired():
            return plain_error(403, "AccessDenied: Request has expired")
        return await _get_blob(svc, request, segs[1], target)
    if segs[:1] == ["upload"] and len(segs) >= 2 and _HEX64.match(segs[1]):
        try:
            size = int(request.query["size"])
        except (KeyError, ValueError):
            return plain_error(400, "InvalidArgument: size")
        if len(segs) == 2 and method == "PUT":
            return await _put_object(svc, request, segs[1], size, target)
        if len(segs) == 4 and _UPLOAD_ID.match(segs[2]):
            chunk = int(request.query.get("chunk", "0") or 0)
            if method == "PUT" and segs[3].isdigit():
                return await _put_part(svc, request, segs[2], int(segs[3]), chunk, size, target)
            if method == "POST" and segs[3] == "complete":
                return await _complete(svc, request, segs[1], segs[2], size, chunk)
    return plain_error(404, "NoSuchKey: The specified key does not exist.")


async def _get_blob(svc: Services, request: web.Request, sha256: str, target: str) -> web.StreamResponse:
    found = svc.store.locate_blob(sha256)
    if found is None:
        return plain_error(404, "NoSuchKey: The specified key does not exist.")
    path, size = found
    headers = {"Content-Type": "application/octet-stream", "ETag": f'"{sha256}"'}
    if name := request.query.get("filename"):
        base = name.rsplit("/", 1)[-1]
        ascii_name = base.encode("ascii", "replace").decode().replace('"', "")
        headers["Content-Disposition"] = (
            f"inline; filename*=UTF-8''{quote(base, safe='')}; filename=\"{ascii_name}\""
        )
    try:
        status, offset, count, rng = range_headers(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        return plain_error(416, "InvalidRange", {"Content-Range": f"bytes */{size}"})
    headers.update(rng)
    faults = svc.faults.body_faults(target, throttled=True) if request.method == "GET" else BodyFaults()
    return await send_file(
        request,
        path=path,
        status=status,
        offset=offset,
        count=count,
        headers=headers,
        faults=faults,
        on_sent=lambda n: svc.stats.sent("blob", n),
    )


async def _receive(
    svc: Services, request: web.Request, dest: Path, target: str, *, digest: bool
) -> tuple[int, str] | None:
    """Stream the request body into `dest`: (size, sha256 or ""), or None if a fault cut it."""
    cut = svc.faults.take_truncate(target)
    h256, size = hashlib.sha256() if digest else None, 0
    with dest.open("wb") as f:
        while chunk := await request.content.read(READ_BYTES):
            if cut is not None and size + len(chunk) >= cut:
                if request.transport is not None:
                    request.transport.close()
                return None
            f.write(chunk)
            if h256 is not None:
                h256.update(chunk)
            size += len(chunk)
            svc.stats.sent("upload", len(chunk))
    return size, h256.hexdigest() if h256 is not None else ""


def _store_object(svc: Services, tmp: Path, sha256: str) -> None:
    dest = svc.store.lfs_path(sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    st = dest.stat()
    with dest.open("rb") as f:
        binary = b"\x00" in f.read(SAMPLE_BYTES)
    digest = FileDigest(st.st_size, st.st_mtime_ns, st.st_ino, binary, None, sha256)
    svc.store.hashes.record(str(dest), digest, st.st_dev)


async def _put_object(
    svc: Services, request: web.Request, sha256: str, size: int, target: str
) -> web.Response:
    tmp = svc.store.new_tmp("put-")
    try:
        got = await _receive(svc, request, tmp, target, digest=True)
        if got is None:
            return web.Response(status=400)
        n, digest = got
        if n != size or digest != sha256:
            return plain_error(
                400, f"BadDigest: got {n} bytes with sha256 {digest}, expected {size} / {sha256}"
            )
        _store_object(svc, tmp, sha256)
        return web.Response(status=200, headers={"ETag": f'"{sha256}"'})
    finally:
        tmp.unlink(missing_ok=True)


def _parts_dir(svc: Services, upload_id: str) -> Path:
    return svc.store.tmp_dir / f"multipart-{upload_id}"


async def _put_part(
    svc: Services, request: web.Request, upload_id: str, part: int, chunk: int, size: int, target: str
) -> web.Response:
    count = math.ceil(size / chunk) if chunk > 0 else 0
    if not 1 <= part <= count:
        return plain_error(400, f"InvalidArgument: part number {part} (expected 1..{count})")
    folder = _parts_dir(svc, upload_id)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = svc.store.new_tmp("part-")
    try:
        # Parts are not hashed here: the completion checks the sha256 of the whole object.
        got = await _receive(svc, request, tmp, target, digest=False)
        if got is None:
            return web.Response(status=400)
        n, _ = got
        expected = min(chunk, size - (part - 1) * chunk)
        if n != expected:
            return plain_error(400, f"IncompleteBody: part {part} has {n} bytes, expected {expected}")
        os.replace(tmp, folder / f"{part:05d}")
        etag = f'"{uuid.uuid4().hex}"'
        (folder / f"{part:05d}.etag").write_text(etag)
        return web.Response(status=200, headers={"ETag": etag})
    finally:
        tmp.unlink(missing_ok=True)


async def _complete(
    svc: Services, request: web.Request, sha256: str, upload_id: str, size: int, chunk: int
) -> web.Response:
    folder = _parts_dir(svc, upload_id)
    try:
        body = json.loads(await request.read())
        parts = {int(p["partNumber"]): str(p["etag"]) for p in body["parts"]}
        oid = str(body["oid"])
    except (ValueError, KeyError, TypeError):
        return plain_error(400, "MalformedXML: expected {oid, parts: [{partNumber, etag}]}")
    count = math.ceil(size / chunk) if chunk > 0 else 0
    if oid != sha256 or sorted(parts) != list(range(1, count + 1)):
        return plain_error(400, f"InvalidPart: expected parts 1..{count} of {sha256}")
    for n, etag in parts.items():
        try:
            stored = (folder / f"{n:05d}.etag").read_text()
        except OSError:
            return plain_error(400, f"InvalidPart: part {n} was not uploaded")
        if stored != etag:
            return plain_error(400, f"InvalidPart: etag of part {n} does not match")
    tmp = svc.store.new_tmp("assemble-")
    try:
        digest = await anyio.to_thread.run_sync(_assemble, folder, count, tmp)
        if digest != sha256 or tmp.stat().st_size != size:
            return plain_error(400, f"BadDigest: assembled object has sha256 {digest}, expected {sha256}")
        _store_object(svc, tmp, sha256)
        shutil.rmtree(folder, ignore_errors=True)
        return web.Response(status=200, text=json.dumps({"oid": sha256, "size": size}))
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _assemble(folder: Path, count: int, dest: Path) -> str:
    h = hashlib.sha256()
    with dest.open("wb") as out:
        for n in range(1, count + 1):
            with (folder / f"{n:05d}").open("rb") as f:
                while data := f.read(READ_BYTES):
                    out.write(data)
                    h.update(data)
    return h.hexdigest()
