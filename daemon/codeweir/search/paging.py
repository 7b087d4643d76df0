"""Answers that page: cursors, and the `search` answer that continues where the last one stopped.

A cursor is opaque to clients: base64url of a small JSON object holding what the next answer
needs, with a fingerprint of the request it belongs to (a cursor sent with another query is
refused) and the key of the last hit it followed (when the index changed so that hit is no
longer where it was, the answer says hits may repeat or be missing). Every value in it is
checked as a request param is: a forged cursor gets an error, never a bigger search.

Paging a search. Searches are reproducible (the same request on the same index ranks the same
way) but not always prefix-stable: hybrid and commit searches fuse rankings cut at a depth that
grows with the limit, so the first 10 of a search for 20 need not be the first 10 of a search
for 10. So the hits delivered so far are pinned down by the cursor: it records the depths the
list was read at and how many hits were taken at each (`segments`). The next page reruns those
searches, takes the same hits again, adds the hits of a deeper run that were not taken yet,
and answers with the part after the cursor's offset. A list is never read deeper than
MAX_LIMIT hits; most answers need one search at one depth.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from codeweir.errors import RequestError
from codeweir.protocol_params import SearchParams
from codeweir.protocol_results import CommitHit, SearchHit, SearchResult

MAX_DEPTH = 1000  # search/filters.MAX_LIMIT: the deepest any search reads
MAX_SEGMENTS = 12
CURSOR_VERSION = 1
INDEX_CHANGED = "the index changed since the previous page: some hits may repeat or be missing"


# -- cursors ------------------------------------------------------------------------------------


def fingerprint(*parts: Any) -> str:
    """A short digest of what a cursor must be sent with (the query and its filters)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def encode_cursor(kind: str, fp: str, state: dict[str, Any]) -> str:
    body = json.dumps({"v": CURSOR_VERSION, "k": kind, "f": fp, **state}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, fp: str) -> dict[str, Any]:
    """The state `encode_cursor` put in `cursor`; RequestError when it is not one of `kind`'s
    cursors or belongs to another request."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise RequestError("cursor: not a cursor this daemon gave (send next_cursor as it came)") from None
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION or state.get("k") != kind:
        raise RequestError("cursor: not a cursor this daemon gave (send next_cursor as it came)")
    if state.get("f") != fp:
        raise RequestError("cursor: it continues another request; send the same query and filters with it")
    return state


DAMAGED = "cursor: damaged (send next_cursor as it came)"


def checked_int(value: Any, low: int, high: int) -> int:
    """A number read from a cursor, or RequestError when it is not one between `low` and `high`."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(DAMAGED)
    return value


def hit_key(hit: SearchHit | CommitHit) -> tuple:
    if isinstance(hit, CommitHit):
        return (hit.repo, hit.sha)
    return (hit.repo, hit.path, hit.blob, hit.start_line, hit.end_line, hit.line, hit.column)


def key_digest(hit: SearchHit | CommitHit) -> str:
    return fingerprint(*hit_key(hit))[:8]


# -- paging a search ----------------------------------------------------------------------------


@attrs.frozen
class _Listing:
    hits: list  # the hits delivered and to deliver, in order, each once
    full: bool  # the deepest run filled its depth: more may follow
    result: SearchResult  # the deepest run's answer (its mode and notes)
    took_ms: float


def search_fingerprint(params: SearchParams) -> str:
    refs = (sorted(set(params.refs)),) if params.refs else ()
    return fingerprint(
        "search", params.query, params.mode, params.repo, params.path, params.lang, params.kind, params.case_sensitive, *refs
    )


async def page(params: SearchParams, run: Callable[[int], Awaitable[SearchResult]]) -> SearchResult:
    """The answer to `params`: `params.limit` hits after its cursor (from the start without one),
    and a `next_cursor` when more follow. `run(depth)` is the search at a depth (its limit)."""
    fp = search_fingerprint(params)
    offset, segments, depth, last = 0, [], 0, None
    if params.cursor is not None:
        state = decode_cursor(params.cursor, "search", fp)
        offset = checked_int(state.get("o"), 1, MAX_DEPTH)
        depth = checked_int(state.get("d"), 1, MAX_DEPTH)
        raw_segments = state.get("s")
        if not isinstance(raw_segments, list) or len(raw_segments) > MAX_SEGMENTS:
            raise RequestError(DAMAGED)
        for segment in raw_segments:
            if not isinstance(segment, list) or len(segment) != 2:
                raise RequestError(DAMAGED)
            segments.append((checked_int(segment[0], 1, MAX_DEPTH), checked_int(segment[1], 0, offset)))
        last = state.get("h")
    need = min(offset + params.limit + 1, MAX_DEPTH + 1)
    if depth == 0:
        depth = min(need, MAX_DEPTH)
    listing = await _listing(segments, depth, run)
    while len(listing.hits) < need and listing.full and depth < MAX_DEPTH:
        # Deeper: the hits delivered so far stay as they were; the deeper run adds the rest.
        if not segments or segments[-1][1] != offset:
            if len(segments) >= MAX_SEGMENTS:
                break
            segments.append((depth, offset))
        depth = min(MAX_DEPTH, max(2 * depth, need))
        listing = await _listing(segments, depth, run)
    notes = [n for n in listing.result.notes if not n.startswith("stopped at ")]
    if offset and (len(listing.hits) < offset or (last is not None and key_digest(listing.hits[offset - 1]) != last)):
        notes.append(INDEX_CHANGED)
    shown = listing.hits[offset : offset + params.limit]
    end = offset + len(shown)
    next_cursor = None
    if len(listing.hits) > end and end < MAX_DEPTH:
        state = {"o": end, "d": depth, "s": [list(s) for s in segments], "h": key_digest(shown[-1])}
        next_cursor = encode_cursor("search", fp, state)
    elif len(listing.hits) > end or (listing.full and depth >= MAX_DEPTH):
        notes.append(f"a search pages through its first {MAX_DEPTH} hits; narrow the query to see others")
    return SearchResult(
        results=tuple(shown),
        took_ms=round(listing.took_ms, 2),
        mode=listing.result.mode,
        notes=tuple(notes),
        next_cursor=next_cursor,
    )


async def _listing(segments: Sequence[tuple[int, int]], depth: int, run: Callable[[int], Awaitable[SearchResult]]) -> _Listing:
    hits: list = []
    seen: set[tuple] = set()
    took = 0.0

    def take(results: Sequence, upto: int | None) -> None:
        for hit in results:
            if upto is not None and len(hits) >= upto:
                return
            key = hit_key(hit)
            if key not in seen:
                seen.add(key)
                hits.append(hit)

    for segment_depth, upto in segments:
        result = await run(segment_depth)
        took += result.took_ms
        take(result.results, upto)
    result = await run(depth)
    took += result.took_ms
    take(result.results, None)
    return _Listing(hits, len(result.results) >= depth, result, took)
