"""Whole explanations: ``whole_explanation`` on literal strings (ended texts untouched, cut ones
trimmed to a sentence or word end), and the token-id rule (``SentenceStop``, ``cut_completion``)
on a tiny offline word-level tokenizer."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from recpie_core.explain.endings import SentenceEnds, SentenceStop, cut_completion, ends_sentence, whole_explanation


@pytest.mark.parametrize("text", ["Great coffee and a quiet terrace", "Great coffee.", ""])
def test_an_ended_text_is_returned_unchanged(text):
    assert whole_explanation(text, ended=True) == (text, False)


@pytest.mark.parametrize("text", ["Great coffee and friendly staff.", 'They said "come back!"', "Is it far?)"])
def test_a_text_that_ends_a_sentence_counts_as_ended(text):
    assert whole_explanation(text, ended=False) == (text, False)


@pytest.mark.parametrize(("text", "expected"), [
    # back to the last sentence end with at least three words before it
    ("The coffee is great. The staff are friendly and the terr", "The coffee is great."),
    ("It has live music every night! Also the pastr", "It has live music every night!"),
    ("You would like it. Its quiet patio and fresh pastries make it", "You would like it."),
    # a decimal point is no sentence end; too few words before a period: trim to a word instead
    ("Rated 4.5 stars by people who like it and strong espres", "Rated 4.5 stars by people who like it and strong"),
    ("Yes. A quiet place for reading with fresh", "Yes. A quiet place for reading"),
    ("It is good and so... the music is loud and", "It is good and so... the music is loud"),  # no ellipsis
    # the partial last word goes, then dangling separators and conjunctions
    ("A cozy spot with great coffee, friendly staff and", "A cozy spot with great coffee, friendly staff"),
    ("A cozy spot with great coffee, friendly sta", "A cozy spot with great coffee, friendly"),
    ("Close to the park and the", "Close to the park"),
    ("Close to the park; ", "Close to the park"),
    ("Offers the nuances of a 5-", "Offers the nuances"),
    # one word is never trimmed to nothing
    ("Espres", "Espres"),
])
def test_a_cut_text_is_trimmed_back(text, expected):
    assert whole_explanation(text, ended=False) == (expected, True)


def test_ends_sentence_ignores_closers_but_not_ellipses():
    assert ends_sentence('fine."') and ends_sentence("fine!)") and ends_sentence("why? ")
    assert not ends_sentence("and so...") and not ends_sentence("and so…") and not ends_sentence("fine,")


@pytest.fixture(scope="module")
def word_tokenizer():
    words = ["<unk>", "<eos>", "Great", "coffee", ".", "!", "?", ").", "...", "4", "5", "and", "Mr"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_sentence_end_tokens_are_punctuation_ending_a_sentence(word_tokenizer):
    ends = SentenceEnds(word_tokenizer, vocab_size=16)
    names = sorted(word_tokenizer.convert_ids_to_tokens(i) for i in ends.end_ids)
    assert names == ["!", ").", ".", "?"]  # not "...", not words, not <eos>
    assert ends.is_end.shape == (16,) and int(ends.is_end.sum()) == 4
    assert sorted(word_tokenizer.convert_ids_to_tokens(i) for i in ends.digit_ids) == ["4", "5"]


def test_sentence_stop_is_per_row_and_waits_for_min_new_tokens(word_tokenizer):
    ends = SentenceEnds(word_tokenizer)
    rows = torch.tensor([ids(word_tokenizer, "Great coffee ."), ids(word_tokenizer, "Great coffee and"),
                         ids(word_tokenizer, "Great 4 ."), ids(word_tokenizer, "coffee . !")])  # (4, 3)
    assert SentenceStop(ends, min_new_tokens=3)(rows, None).tolist() == [True, False, False, True]
    assert SentenceStop(ends, min_new_tokens=4)(rows, None).tolist() == [False] * 4
    assert SentenceStop(ends, min_new_tokens=2)(rows[:, :2], None).tolist() == [False, False, False, True]


def test_cut_completion_cuts_at_the_stop_and_reports_how_the_row_ended(word_tokenizer):
    tok, ends = word_tokenizer, SentenceEnds(word_tokenizer)
    eos = [tok.eos_token_id]
    row = ids(tok, "Great . coffee ! <eos> <eos>")
    assert cut_completion(row, eos, ends) == (row[:5], True)  # no sentence stop: cut after EOS
    assert cut_completion(row, eos, ends, stop_at_sentence=True) == (row[:2], True)
    assert cut_completion(row, eos, ends, stop_at_sentence=True, min_new_tokens=3) == (row[:4], True)
    capped = ids(tok, "Great coffee and")
    assert cut_completion(capped, eos, ends, stop_at_sentence=True) == (capped, False)  # cut at the cap
    at_cap = ids(tok, "Great coffee !")
    assert cut_completion(at_cap, eos, ends) == (at_cap, True)  # a sentence end as the last token
    decimal = ids(tok, "Great 4 . 5")
    assert cut_completion(decimal, eos, ends, stop_at_sentence=True) == (decimal, False)
    assert cut_completion([], eos, ends) == ([], False)
