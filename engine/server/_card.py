"""README.md front matter as repo metadata: `cardData`, and the tags/license/pipeline derived from it.

On the Hub, a repo's `cardData` is the YAML header of its README.md and feeds the tags, license
and pipeline shown in info and used by listing filters (hub-protocol §4.2). Here it is merged with
the operator's sidecar `.meta.json`, which wins where both set a field (see LAYOUT.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from engine.server._yaml import parse_front_matter

MAX_CARD_BYTES = 256 * 1024  # front matter sits at the top; larger READMEs are read only this far
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


def with_card(meta: Mapping[str, object], card: Mapping[str, object]) -> dict[str, object]:
    """Sidecar metadata merged with README front matter; the sidecar wins where both set a field.

    The sidecar is the operator's explicit override, so a field it sets (tags included) replaces
    the card's rather than adding to it. `cardData` is the front matter overlaid with the
    sidecar's `cardData`, and with the sidecar's `license` unless that `cardData` names one.
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
    if data:
        merged["cardData"] = data
    return merged
