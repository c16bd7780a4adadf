"""What a reviewer needs to look at a specimen: its image (URI and size) and its question.

ScoreBoxes' ImageBoxes and ScoreText's TextPair carry them; they are checked here,
whether or not the stream names a checkpoint (nothing is ignored silently), and
stored with the specimen as sent. The server never fetches an image: a URI is
checked for its form only, and a relative path needs the server's image root
(``--image-root``), under which a viewer resolves it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from evalstream_server.config import flag_hint
from evalstream_server.errors import FieldViolation

#: Longest image URI accepted, in characters.
MAX_IMAGE_URI_CHARS = 2048

#: Longest question accepted, in characters.
MAX_QUESTION_CHARS = 8192

#: URI schemes accepted for an image.
SCHEMES = ("http", "https", "file", "s3")

# RFC 3986 scheme: a letter, then letters, digits, "+", "-" or ".", then ":".
# A Windows drive ("C:\\x", "C:x") reads as a scheme and is refused as one.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class SpecimenView:
    """A specimen's image and question as sent (empty and 0 when not sent)."""

    image_uri: str = ""
    width: int = 0
    height: int = 0
    question: str = ""


def check_views(
    path: str, views: Sequence[SpecimenView], *, image_root_set: bool
) -> list[FieldViolation]:
    """What is wrong with a batch's images and questions, as ``path[i].field``."""
    blank = SpecimenView()
    return [
        v
        for i, view in enumerate(views)
        if view != blank
        for v in check_view(f"{path}[{i}]", view, image_root_set=image_root_set)
    ]


def check_view(path: str, view: SpecimenView, *, image_root_set: bool) -> list[FieldViolation]:
    """What is wrong with one specimen's image and question; ``path`` prefixes the fields.

    Example:
        >>> view = SpecimenView("https://x.org/a.jpg", 640, 480)
        >>> check_view("images[0]", view, image_root_set=False)
        []
        >>> bad = SpecimenView("../a.jpg", width=-1)
        >>> [v.field for v in check_view("images[1]", bad, image_root_set=True)]
        ['images[1].image_uri', 'images[1].width']
    """
    violations = []
    if view.image_uri:
        problem = _uri_problem(view.image_uri, image_root_set=image_root_set)
        if problem:
            violations.append(FieldViolation(f"{path}.image_uri", problem))
    for name in ("width", "height"):
        value = getattr(view, name)
        if value < 0:
            violations.append(
                FieldViolation(
                    f"{path}.{name}", f"{name} {value} is negative: give pixels, or 0 when unknown"
                )
            )
    if (view.width > 0) != (view.height > 0) and view.width >= 0 and view.height >= 0:
        given, missing = ("width", "height") if view.width > 0 else ("height", "width")
        violations.append(
            FieldViolation(
                f"{path}.{missing}",
                f"{given} {getattr(view, given)} is given without {missing}: "
                "give both or neither (0 when unknown)",
            )
        )
    if len(view.question) > MAX_QUESTION_CHARS:
        violations.append(
            FieldViolation(
                f"{path}.question",
                f"question has {len(view.question)} characters; at most {MAX_QUESTION_CHARS}",
            )
        )
    return violations


def _uri_problem(uri: str, *, image_root_set: bool) -> str:
    """Why ``uri`` is not an acceptable image URI or relative path; "" when it is."""
    if len(uri) > MAX_IMAGE_URI_CHARS:
        return f"image_uri has {len(uri)} characters; at most {MAX_IMAGE_URI_CHARS}"
    if _CONTROL.search(uri):
        return f"image_uri {uri[:80]!r} holds a control character"
    kinds = f"an {', '.join(SCHEMES[:-1])} or {SCHEMES[-1]} URI"
    scheme = _SCHEME.match(uri)
    if scheme is None:
        return _relative_problem(uri, kinds, image_root_set=image_root_set)
    name = scheme.group(1).lower()
    if name not in SCHEMES:
        return f"image_uri {uri[:80]!r} has the scheme {name!r}; send {kinds}, or a relative path"
    try:
        parts = urllib.parse.urlsplit(uri)
        host = parts.hostname
    except ValueError as exc:
        return f"image_uri {uri[:80]!r} is not a valid URI: {exc}"
    if name == "file":
        if not parts.path or parts.path == "/":
            return f"image_uri {uri[:80]!r} names no file: write file:///path/to/image.jpg"
        return ""
    if not host:
        return f"image_uri {uri[:80]!r} has no host: write {name}://host/path"
    if "\\" in uri:
        return f"image_uri {uri[:80]!r} holds a backslash: write the path with /"
    return ""


def _relative_problem(uri: str, kinds: str, *, image_root_set: bool) -> str:
    if "\\" in uri:
        return f"image_uri {uri[:80]!r} holds a backslash: write a relative path with /"
    if uri.startswith("/"):
        return (
            f"image_uri {uri[:80]!r} is an absolute path: send a file:// URI, or a path "
            "relative to the server's image root"
        )
    if ".." in uri.split("/"):
        return (
            f"image_uri {uri[:80]!r} has a '..' component: a relative path must stay "
            "under the image root"
        )
    if not image_root_set:
        return (
            f"image_uri {uri[:80]!r} is a relative path, but this server has no image root: "
            f"start it with {flag_hint('image_root')}, or send {kinds}"
        )
    return ""
