"""Serving a specimen's image stored as a path relative to the server's ``--image-root``.

Only a path that a specimen of the run references is served (the handler reads it from
the specimen, under the caller's scopes, never from the query), and only when it
resolves, symbolic links followed, to a regular file inside the image root with an
image's suffix. http and https URIs are loaded by the browser itself; file and s3 URIs
are not served.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

__all__ = ["CONTENT_TYPES", "MAX_IMAGE_BYTES", "resolve_image"]

#: Suffixes served, and the Content-Type each is served with.
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}
#: Largest image file served, in bytes.
MAX_IMAGE_BYTES = 64 * 1024 * 1024

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def resolve_image(root: Path, uri: str) -> tuple[Path, str] | str:
    """The file and Content-Type ``uri`` names under ``root``, or why it is not served.

    Example:
        >>> resolve_image(Path("/srv/images"), "https://x.org/a.jpg")[:38]
        'image_uri is a URI, not a path under t'
        >>> resolve_image(Path("/srv/images"), "../etc/passwd")
        "image_uri '../etc/passwd' is not a plain relative path"
    """
    if not uri:
        return "the specimen has no image_uri"
    if _SCHEME.match(uri):
        return (
            "image_uri is a URI, not a path under the image root: "
            "the browser loads http and https itself"
        )
    parts = PurePosixPath(uri).parts
    if "\\" in uri or uri.startswith("/") or ".." in parts or "\x00" in uri:
        return f"image_uri {uri[:80]!r} is not a plain relative path"
    content_type = CONTENT_TYPES.get(PurePosixPath(uri).suffix.lower())
    if content_type is None:
        return f"image_uri {uri[:80]!r} has no image suffix ({', '.join(CONTENT_TYPES)})"
    base = root.resolve()
    try:
        path = (base / uri).resolve(strict=True)
    except (OSError, RuntimeError):
        return f"image {uri[:80]!r} is not a file under the image root"
    if not path.is_relative_to(base) or not path.is_file():
        return f"image {uri[:80]!r} is not a file under the image root"
    return path, content_type
