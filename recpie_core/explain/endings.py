"""How an explanation ends: whole sentences instead of fragments cut at the token cap.

An explanation *ended on its own* when its generator stopped before the cap: it wrote the
end-of-sequence token, or (with ``stop_at_sentence``) a sentence end, or its last token at the
cap happens to end a sentence. The explainer knows which rows did (``Explainer.generate_ids(...,
return_ended=True)``); this module holds the two rules it and its callers use:

- on token ids, during generation: ``SentenceStop``, a per-row ``transformers.StoppingCriteria``
  that stops a row once its newest token ends a sentence and it has at least ``min_new_tokens``
  new tokens; ``cut_completion`` applies the same rule afterwards to cut each row's ids where it
  stopped (what ``generate`` writes after a stopped row is padding, which must not be kept);
- on text, afterwards: ``whole_explanation(text, ended)`` leaves an ended text alone and trims a
  cut one back to its last sentence end, or else to its last complete word.

A token ends a sentence when its text, stripped, is only punctuation that ends in ``.``, ``!``
or ``?`` (closing quotes and brackets allowed after it: ``.``, ``!"``, ``).``), not an ellipsis,
and the token before it does not end in a digit (``4.5 stars`` is not cut at ``4.``).
The tables are computed once per tokenizer from each token's own decoded text.

Why a StoppingCriteria and not ``generate(stop_strings=...)``: stop strings need the tokenizer
passed to ``generate`` and match decoded text across tokens; a per-row boolean criterion on token
ids (transformers >= 4.39: ``__call__`` returns a ``(B,)`` bool tensor) needs neither and works
the same with ``inputs_embeds``, where ``input_ids`` inside ``generate`` hold only new tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase, StoppingCriteria

CLOSERS = "\"')]}»”’"  # may follow a sentence's final punctuation
_SENTENCE_END = re.compile(r"[.!?]+[" + re.escape(CLOSERS) + r"]*(?=\s|$)")
# words a cut text should not end on: conjunctions, articles, prepositions, auxiliaries
DANGLING = frozenset(
    "a an the and or but nor so yet because although though while whereas if when where which who whom whose "
    "that this these those its their his her our your my of to in on at by for from with without into onto "
    "about as than like such very more most less is are was were be been being has have had will would can "
    "could should may might must also plus including especially".split())
_TRAILING = ",;:-–—(/&+ \t\n"  # dangling separators


def ends_sentence(text: str) -> bool:
    """True if ``text`` (right-stripped, closing quotes/brackets ignored) ends in . ! or ?, not an ellipsis."""
    t = text.rstrip().rstrip(CLOSERS)
    return t.endswith((".", "!", "?")) and not t.endswith(("..", "…"))


def whole_explanation(text: str, ended: bool, min_words: int = 3) -> tuple[str, bool]:
    """(text, was_cut): ``text`` unchanged and False if it ended on its own, else trimmed and True.

    ``ended`` comes from the generator (``return_ended=True``); a text that ends a sentence
    counts as ended whatever ``ended`` says. A cut text is trimmed back to its last sentence end
    (``.``, ``!``, ``?`` followed by a space or the end) with at least ``min_words`` words before
    it; without one, to its last complete word: a last word running to the cut (ending in a
    letter, digit or hyphen) is dropped as possibly partial, then trailing separators (``,``
    ``;`` ``-`` ...) and dangling words (``and``, ``the``, ``with`` ...). One word is never
    trimmed to nothing.
    """
    if ended or ends_sentence(text):
        return text, False
    t = text.strip()
    for m in reversed(list(_SENTENCE_END.finditer(t))):
        if ".." not in m.group() and len(t[:m.start()].split()) >= min_words:
            return t[:m.end()], True
    words = t.split()
    if t and (t[-1].isalnum() or t[-1] == "-") and len(words) > 1:  # the last word ran into the cap: maybe partial
        words = words[:-1]
    while words:
        last = words[-1].rstrip(_TRAILING)
        if not last or last.lower() in DANGLING:
            words = words[:-1]
            continue
        words[-1] = last
        break
    return (" ".join(words) if words else t.rstrip(_TRAILING) or t), True


# --- token ids ------------------------------------------------------------------------------

class SentenceEnds:
    """Per-token tables of one tokenizer: which ids end a sentence, which end in a digit.

    ``is_end`` and ``ends_digit`` are (V,) bool tensors (for ``SentenceStop``), ``end_ids`` and
    ``digit_ids`` the same as sets (for ``cut_completion``).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, vocab_size: int | None = None):
        n = max(len(tokenizer), vocab_size or 0)
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        self.end_ids = frozenset(i for i, s in enumerate(texts) if (st := s.strip()) and ends_sentence(st)
                                 and not any(c.isalnum() for c in st) and ".." not in st and "…" not in st)
        self.digit_ids = frozenset(i for i, s in enumerate(texts) if s[-1:].isdigit())
        self.is_end = torch.zeros(n, dtype=torch.bool)
        self.is_end[list(self.end_ids)] = True
        self.ends_digit = torch.zeros(n, dtype=torch.bool)
        self.ends_digit[list(self.digit_ids)] = True

    def at(self, seq: Sequence[int], j: int) -> bool:
        """Does token ``j`` of ``seq`` end a sentence?"""
        return seq[j] in self.end_ids and not (j > 0 and seq[j - 1] in self.digit_ids)


class SentenceStop(StoppingCriteria):
    """Stop each row at its first sentence end once it has at least ``min_new_tokens`` new tokens.

    ``n_prompt``: tokens of ``input_ids`` that are not new (0 with ``inputs_embeds``, as here).
    End-of-sequence stays with transformers' own criterion and is not suppressed before
    ``min_new_tokens`` (unlike ``GenerationConfig.min_new_tokens``).
    """

    def __init__(self, ends: SentenceEnds, min_new_tokens: int = 1, n_prompt: int = 0):
        self.ends, self.min_new_tokens, self.n_prompt = ends, max(min_new_tokens, 1), n_prompt

    def __call__(self, input_ids: Tensor, scores: Tensor | None = None, **kwargs) -> Tensor:
        n_new = input_ids.shape[1] - self.n_prompt
        if n_new < self.min_new_tokens:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        is_end, ends_digit = self.ends.is_end.to(input_ids.device), self.ends.ends_digit.to(input_ids.device)
        done = is_end[input_ids[:, -1]]  # (B,)
        if n_new >= 2:
            done &= ~ends_digit[input_ids[:, -2]]
        return done


def cut_completion(seq: Sequence[int], eos_ids: Sequence[int], ends: SentenceEnds,
                   stop_at_sentence: bool = False, min_new_tokens: int = 1) -> tuple[list[int], bool]:
    """(ids, ended): new-token ids cut where ``generate`` stopped the row, and whether it ended on its own.

    Cut after the first end-of-sequence token (kept) or, with ``stop_at_sentence``, after the
    first sentence end at position >= ``min_new_tokens`` (the ``SentenceStop`` rule), whichever
    comes first. A row that runs to the cap ended on its own if its last token ends a sentence.
    """
    seq, eos = list(seq), set(eos_ids)
    for j, t in enumerate(seq):
        if t in eos or (stop_at_sentence and j + 1 >= min_new_tokens and ends.at(seq, j)):
            return seq[:j + 1], True
    return seq, bool(seq) and ends.at(seq, len(seq) - 1)
