"""README.md front matter as repo metadata: `cardData`, and the tags/license/pipeline derived from it.

On the Hub, a repo's `cardData` is the YAML header of its README.md and feeds the tags, license
and pipeline shown in info and used by listing filters (hub-protocol §4.2). Here it is merged with
the operator's sidecar `.meta.json`, which wins where both set a field (see LAYOUT.md).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import cast

from engine.server._yaml import MAX_FRONT_MATTER_CHARS, parse_front_matter

# Front matter sits at the top and is parsed up to MAX_FRONT_MATTER_CHARS (UTF-8: up to 4 bytes
# each), so larger READMEs are read only this far.
MAX_CARD_BYTES = 4 * MAX_FRONT_MATTER_CHARS + 1024
_CACHE: dict[str, tuple[tuple[int, int, int], dict[str, object]]] = {}


def read_front_matter(path: str) -> dict[str, object]:
    """`parse_front_matter` of a file, cached by (mtime, size, inode); `{}` if it is unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return {}
    sig = (st.st_mtime_ns, st.st_size, st.st_ino)
    if (hit := _CACHE.get(path)) is not None and hit[0] == sig:
        return hit[1]
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_CARD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return {}
    parsed = parse_front_matter(text)
    if len(_CACHE) >= 4096:  # a bound, not an LRU: re-parsing a small header is cheap
        _CACHE.clear()
    _CACHE[path] = (sig, parsed)
    return parsed


_TEXT_FIELDS = ("license", "pipeline_tag", "library_name", "sdk")
_LIST_FIELDS = ("tags", "language", "task_categories", "task_ids", "size_categories")


def card_fields(card: Mapping[str, object]) -> dict[str, object]:
    """The front-matter keys that feed repo metadata, in the sidecar's shapes (str, or list of str)."""
    out: dict[str, object] = {k: card[k] for k in _TEXT_FIELDS if isinstance(card.get(k), str)}
    for key in _LIST_FIELDS:
        value = card.get(key)
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        if strings := [v for v in items if isinstance(v, str)]:
            out[key] = strings
    return out


_DROP = object()  # what _finite returns for a value to leave out


def _finite(value: object) -> object:
    """`value` without the floats JSON cannot carry (`1e999` is infinity), at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _DROP
    if isinstance(value, list):
        return [v for v in map(_finite, value) if v is not _DROP]
    if isinstance(value, dict):
        return {k: v for k, v in ((k, _finite(v)) for k, v in value.items()) if v is not _DROP}
    return value


def clean_card_data(card: Mapping[str, object]) -> dict[str, object]:
    """The front matter as `cardData`: well-typed where the official client relies on types.

    huggingface_hub builds `ModelCardData(**cardData)` from every info and listing: `tags: 5`
    makes it raise, as would a key named like its own `ignore_metadata_errors` argument. So tags
    become a list of strings (a single string is wrapped, as the client does), `license` is a
    string (or a list of them, as dataset cards have), `pipeline_tag`/`library_name` are
    strings, and non-finite floats (not JSON) are dropped wherever they are.
    """
    data = cast(dict[str, object], _finite(dict(card)))
    data.pop("ignore_metadata_errors", None)
    tags = data.pop("tags", None)
    if isinstance(tags, str):
        data["tags"] = [tags]
    elif isinstance(tags, list):
        data["tags"] = [t for t in tags if isinstance(t, str)]
    lic = data.get("license")
    if not (isinstance(lic, str) or (isinstance(lic, list) and lic and all(isinstance(x, str) for x in lic))):
        data.pop("license", None)
    for key in ("pipeline_tag", "library_name"):
        if not isinstance(data.get(key), str):
            data.pop(key, None)
    return data


def with_card(meta: Mapping[str, object], card: Mapping[str, object]) -> dict[str, object]:
    """Sidecar metadata merged with README front matter; the sidecar wins where both set a field.

    The sidecar is the operator's explicit override, so a field it sets (tags included) replaces
    the card's rather than adding to it. `cardData` is the front matter overlaid with the
    sidecar's `cardData`, and with the sidecar's `license` unless that `cardData` names one,
    then cleaned by `clean_card_data`.
    """
    merged = {**card_fields(card), **meta}
    data = dict(card)
    side_card = meta.get("cardData")
    if isinstance(side_card, Mapping):
        data.update(side_card)
    if isinstance(meta.get("license"), str) and not (
        isinstance(side_card, Mapping) and "license" in side_card
    ):
        data["license"] = meta["license"]
    data = clean_card_data(data)  # a sidecar's JSON may say `Infinity` too
    if data:
        merged["cardData"] = data
    return merged
