"""Screening what the LLM wrote, before the recommender reads it and before it is stored.

An explanation is matched on its NFKC form with format characters (Unicode category Cf:
zero-width spaces and joiners, bidi controls, soft hyphens) and other control characters
removed, so ``"<\\u200b|im_start|>"`` or ``"assis\\u200btant:"`` cannot hide a marker. Flagged:

- ``role_marker``: chat markers (``<|im_start|>``, ``[INST]``, ``<<SYS>>``, ``<start_of_turn>``)
  and role prefixes (``assistant:``, ``### User:``) at a line or sentence start;
- ``url``: anything with a scheme (``https://``, ``ftp://``), ``www.``, an IPv4 address, a
  domain followed by a path (``evil.xyz/phish``), a domain with a common top-level domain
  (``bluebottle.com``), and script or data URLs (``javascript:``, ``data:text/html``);
- ``control_chars`` (the text held format or control characters), ``too_long``, ``empty``.

``check_explanation`` says what it found and cleans the text (markers removed, links replaced
by ``[link]``); ``screen_explanation`` is what the pipeline uses: a flagged text is replaced
whole by ``FALLBACK``, a neutral sentence, so the recommender never reads, the encoder never
embeds and the tables never store what the screen caught (the explanation pass and the PIE
update both go through ``screen_generated``). The ``problems`` column of an explanations table
says why; a round's ``flagged`` count is its rows with a replaced explanation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from recpie_core.explain.endings import whole_explanation
from recpie_core.explain.prompts import sanitize_field

FALLBACK = "No explanation."  # what replaces a flagged explanation: the same for both polarities

_LINE_OR_SENTENCE_START = r"(?:^|(?<=[.!?])[ \t]+)[ \t]*"
ROLE_MARKERS = re.compile(
    r"<\|[^|>]{0,40}\|>|\[/?INST\]|</?s>|<<\s*/?\s*SYS\s*>>|</?(?:start|end)_of_turn>"
    rf"|{_LINE_OR_SENTENCE_START}(?:#+[ \t]*)?(?:system|user|assistant|human|instruction|response)[ \t]*:",
    re.IGNORECASE | re.MULTILINE)
_TLDS = ("com|org|net|edu|gov|mil|int|info|biz|io|ai|co|ly|me|app|dev|xyz|top|site|online|club|shop|store|"
         "link|click|live|tk|ml|ga|cf|gq|ru|cn|uk|de|fr|jp|us|ca|au|nl|eu")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
URLS = re.compile(
    r"\b[a-z][a-z0-9+.-]{1,15}://\S*"  # any scheme
    r"|\bwww\d{0,3}\.\S+"
    r"|\b(?:\d{1,3}\.){3}\d{1,3}\b(?::\d+)?(?:/\S*)?"  # IPv4, with or without a path
    rf"|\b{_LABEL}(?:\.{_LABEL})*\.[a-z]{{2,24}}(?::\d+)?/\S*"  # a domain and a path, any top-level domain
    rf"|\b{_LABEL}(?:\.{_LABEL})*\.(?:{_TLDS})\b(?::\d+)?(?:[/?#]\S*)?"  # a domain with a common TLD
    r"|\b(?:java|vb|live)script\s*:\S*|\bdata:[a-z-]+/[\w.+-]+\S*|\bmailto:\S+",
    re.IGNORECASE)


def _visible(text: str) -> tuple[str, bool]:
    """(NFKC text without format or control characters, whether any were there). Line breaks
    (as ``\\n``) and tabs stay: a role prefix is matched at a line start. NFKC again after the
    removal, since dropping a character can bring a composable pair together."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C"))
    return unicodedata.normalize("NFKC", kept), len(kept) != len(text)


def check_explanation(text: str, max_chars: int = 400) -> tuple[str, list[str]]:
    """(clean text, problems) for a generated explanation (module docstring).

    Problems, in this order: ``"control_chars"`` (removed), ``"role_marker"`` (removed),
    ``"url"`` (replaced by ``[link]``), ``"too_long"`` (cut to ``max_chars``), ``"empty"``. The
    clean text is NFKC-normalised with whitespace collapsed.
    """
    problems: list[str] = []
    raw, hidden = _visible(text or "")
    if hidden:
        problems.append("control_chars")
    if ROLE_MARKERS.search(raw):
        problems.append("role_marker")
        raw = ROLE_MARKERS.sub(" ", raw)
    clean = sanitize_field(raw, max_chars=len(raw) + 1)
    if URLS.search(clean):
        problems.append("url")
        clean = URLS.sub("[link]", clean)
    if len(clean) > max_chars:
        problems.append("too_long")
        clean = clean[:max_chars].rstrip()
    if not clean:
        problems.append("empty")
    return clean, problems


def screen_explanation(text: str, max_chars: int = 400) -> tuple[str, list[str]]:
    """(text the pipeline keeps, problems): the clean text, or ``FALLBACK`` if anything was flagged."""
    clean, problems = check_explanation(text, max_chars)
    return (FALLBACK if problems else clean), problems


def screen_generated(texts: Sequence[str], ended: Sequence[bool], trim: bool = True,
                     max_chars: int = 400) -> tuple[list[str], list[bool], list[list[str]]]:
    """Decoded explanations as the recommender reads them: (texts, cut, problems) per text.

    With ``trim``, a text that did not end on its own is trimmed back to its last whole
    sentence or word (``endings.whole_explanation``; ``cut`` says which were); then each is
    screened (``screen_explanation``), a flagged one replaced by ``FALLBACK``.
    """
    whole = [whole_explanation(t, e) if trim else (t, False) for t, e in zip(texts, ended, strict=True)]
    screened = [screen_explanation(t, max_chars) for t, _ in whole]
    return [t for t, _ in screened], [cut for _, cut in whole], [p for _, p in screened]
