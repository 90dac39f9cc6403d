"""Archives built in memory for the secret-scan tests."""

from __future__ import annotations

import io
import tarfile
import zipfile


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    """A tar of `members` (name -> content); `mode` picks the compression, as tarfile's: `w:gz`…"""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()
