"""The explainer's prompts (paper Sec. 3.4.1), the ablation variants, and untrusted-text handling.

The paper's two prompts, for a consumer's history and a candidate place:

    positive: The consumer's consumption history includes {history}. Please generate a reason
              why {place} would be a good recommendation for this consumer.
    negative: ... why {place} would not be a good recommendation for this consumer.

``history`` lists the consumer's places by name and category, oldest first, the last
``max_history`` of them; where the profile asks for it, each with a short excerpt of its
description (``history_excerpt_chars``) and the consumer's own rating (``history_ratings``):
a history says what the consumer went for and how it went, which is what an explanation
can reason from. ``place`` is the candidate's name, category and description.

Variants (``PromptConfig.variant``, the paper's explanation ablations) and the slots they fill:

    contrastive    pos + neg   the paper's method (default)
    positive_only  pos         only the positive explanation
    general        pos         one non-contrastive explanation ("whether ... would be good")
    aspects        pos + neg   aspect terms only, no sentences
    summary        pos         a summary of the consumer's history (no candidate)

Single-text variants put their one text in the ``pos`` slot; the recommender then gets no
``neg`` explanation. ``direct_prompt`` asks for the rating itself (1-5), the paper's Table 7
"LLM as recommender" baseline.

Untrusted text (place names, categories, descriptions; anything from the data) is
NFKC-normalised, stripped of control and format characters (Unicode category C*), with
whitespace runs collapsed, capped in length per field, and put in double quotes (inner double
quotes become single quotes, so a field cannot close its own quotes). ``encode_prompt``
tokenizes the message with ``split_special_tokens=True``: a literal ``<|im_start|>`` in a place
name stays text and never becomes the special token. Only the chat template's own markers
are tokenized as special tokens. What the LLM writes back is screened in ``screen.py``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

VARIANT_POLARITIES: dict[str, tuple[str, ...]] = {
    "contrastive": ("pos", "neg"),
    "positive_only": ("pos",),
    "general": ("pos",),
    "aspects": ("pos", "neg"),
    "summary": ("pos",),
}

_HISTORY = "The consumer's consumption history includes {history}. "
TEMPLATES: dict[tuple[str, str], str] = {
    ("contrastive", "pos"): _HISTORY + "Please generate a reason why {place} would be a good "
                                       "recommendation for this consumer.",
    ("contrastive", "neg"): _HISTORY + "Please generate a reason why {place} would not be a good "
                                       "recommendation for this consumer.",
    ("general", "pos"): _HISTORY + "Please generate an explanation of whether {place} would be a good "
                                   "recommendation for this consumer.",
    ("aspects", "pos"): _HISTORY + "Please list only the aspects of {place} that would make it a good "
                                   "recommendation for this consumer, as short comma-separated terms.",
    ("aspects", "neg"): _HISTORY + "Please list only the aspects of {place} that would make it not a good "
                                   "recommendation for this consumer, as short comma-separated terms.",
    ("summary", "pos"): _HISTORY + "Please summarize this consumer's preferences in one or two sentences.",
}
TEMPLATES[("positive_only", "pos")] = TEMPLATES[("contrastive", "pos")]
DIRECT_TEMPLATE = (_HISTORY + "On a scale from 1 to 5, how would this consumer rate {place}? "
                   "Answer with a single digit.")


@dataclass(frozen=True)
class PromptConfig:
    variant: str = "contrastive"  # one of VARIANT_POLARITIES (the paper's ablations)
    max_history: int = 10  # most recent history places named in the prompt
    name_chars: int = 60  # cap on a place name, in characters after normalisation
    category_chars: int = 40  # cap on a category
    description_chars: int = 160  # cap on the candidate's description
    history_excerpt_chars: int = 0  # excerpt of each history place's description (0: none, the paper's form)
    history_ratings: bool = False  # also show the consumer's rating of each history place

    def __post_init__(self):
        if self.variant not in VARIANT_POLARITIES:
            raise ValueError(f"unknown variant {self.variant!r}; known: {', '.join(VARIANT_POLARITIES)}")
        if self.max_history < 0:
            raise ValueError("max_history must be >= 0")
        if min(self.name_chars, self.category_chars, self.description_chars) < 1:
            raise ValueError("field caps must be >= 1 character")
        if self.history_excerpt_chars < 0:
            raise ValueError("history_excerpt_chars must be >= 0 (0 shows no excerpt)")

    @property
    def polarities(self) -> tuple[str, ...]:
        return VARIANT_POLARITIES[self.variant]


@dataclass(frozen=True)
class PlaceText:
    """What a prompt may say about a place: all of it is untrusted data."""

    name: str
    category: str | None = None
    description: str | None = None  # the candidate's description; a history place's excerpt source
    rating: float | None = None  # the consumer's rating (history items, shown if history_ratings)


_WS = re.compile(r"\s+")


def sanitize_field(text: str | None, max_chars: int) -> str:
    """NFKC, whitespace collapsed, control/format characters (category C*) dropped, capped."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", str(text))
    text = _WS.sub(" ", text)  # before the C* filter: newlines and tabs become spaces
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
    return text.strip()[:max_chars].strip()


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def excerpt(text: str | None, max_chars: int) -> str:
    """The sanitised start of ``text``: its first sentence if that fits in ``max_chars``, else
    the whole words that do, with "..." (never a word cut in half)."""
    clean = sanitize_field(text, 4 * max_chars + 8)
    if len(clean) <= max_chars:
        return clean
    sentence = re.match(r".*?[.!?](?=\s|$)", clean[:max_chars + 1])
    if sentence and max_chars // 3 <= len(sentence.group(0)) <= max_chars:
        return sentence.group(0)
    words = clean[:max_chars + 1].rsplit(" ", 1)[0].rstrip(" ,;:-")  # the words that fit whole
    return words + "..." if words else clean[:max_chars]


def format_place(place: PlaceText, cfg: PromptConfig, description: bool) -> str:
    """The candidate (``description=True``): ``"Name" ("category"; described as "description")``.
    A history place: ``"Name" ("category"; "excerpt"; rated 4 of 5)``, the excerpt and the
    rating where ``cfg`` asks for them."""
    name = _quoted(sanitize_field(place.name, cfg.name_chars) or "unnamed place")
    extra = []
    if category := sanitize_field(place.category, cfg.category_chars):
        extra.append(_quoted(category))
    if description and (desc := sanitize_field(place.description, cfg.description_chars)):
        extra.append("described as " + _quoted(desc))
    if not description and cfg.history_excerpt_chars and (ex := excerpt(place.description,
                                                                         cfg.history_excerpt_chars)):
        extra.append(_quoted(ex))
    if not description and cfg.history_ratings and place.rating is not None:
        extra.append(f"rated {float(place.rating):g} of 5")
    return f"{name} ({'; '.join(extra)})" if extra else name


def format_history(history: Sequence[PlaceText], cfg: PromptConfig) -> str:
    items = list(history)[-cfg.max_history:] if cfg.max_history else []
    if not items:
        return "no places yet"
    return ", ".join(format_place(p, cfg, description=False) for p in items)


def explanation_prompt(history: Sequence[PlaceText], place: PlaceText, polarity: str,
                       cfg: PromptConfig = PromptConfig()) -> str:
    """The user message asking for one explanation of ``place`` for this consumer."""
    if polarity not in cfg.polarities:
        raise ValueError(f"variant {cfg.variant!r} has no {polarity!r} explanation "
                         f"(it fills {cfg.polarities})")
    return TEMPLATES[(cfg.variant, polarity)].format(history=format_history(history, cfg),
                                                     place=format_place(place, cfg, description=True))


def direct_prompt(history: Sequence[PlaceText], place: PlaceText, cfg: PromptConfig = PromptConfig()) -> str:
    """The user message asking the LLM for the rating itself (the direct-recommendation baseline)."""
    return DIRECT_TEMPLATE.format(history=format_history(history, cfg),
                                  place=format_place(place, cfg, description=True))


# --- tokenization ------------------------------------------------------------------------

_SENTINEL = "\x00RECPIE_MESSAGE\x00"


def encode_data(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of untrusted text: special-token strings stay plain text."""
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, message: str, system: str | None = None) -> list[int]:
    """Token ids of ``message`` as the user turn of the chat template, ready for the reply.

    ``system`` (trusted text from the config) becomes the system turn; None keeps the
    template's default. The template is rendered around a sentinel; its parts are tokenized
    with special tokens, the message itself with ``split_special_tokens=True``. Without a
    chat template: BOS (if the tokenizer has one), the system text, and the message.
    """
    if tokenizer.chat_template:
        turns = [{"role": "system", "content": system}] if system else []
        rendered = tokenizer.apply_chat_template(turns + [{"role": "user", "content": _SENTINEL}],
                                                 tokenize=False, add_generation_prompt=True)
        head, sep, tail = rendered.partition(_SENTINEL)
        if not sep:
            raise ValueError("the chat template dropped the user message")
        template = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
        return template(head) + encode_data(tokenizer, message) + template(tail)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    head = encode_data(tokenizer, system + "\n\n") if system else []
    return bos + head + encode_data(tokenizer, message)
