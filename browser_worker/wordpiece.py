"""BERT's WordPiece tokenizer in pure Python (Pyodide has no `tokenizers`): basic tokenization
(clean, CJK spacing, lower case, strip accents, split punctuation) then greedy longest-match word
pieces, exactly as BertTokenizer does for all-MiniLM-L6-v2 (do_lower_case, 256-token limit)."""

from __future__ import annotations

import re
import unicodedata

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]")
_SPECIAL = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf", "Co")  # not Cn, as tokenizers does


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)  # fmt: skip


class WordPiece:
    def __init__(self, vocab_text: str, max_length: int = 256, lower_case: bool = True):
        self.vocab = {token: i for i, token in enumerate(vocab_text.splitlines())}
        self.max_length = max_length
        self.lower_case = lower_case
        self.cls, self.sep, self.unk = self.vocab["[CLS]"], self.vocab["[SEP]"], self.vocab["[UNK]"]

    def basic_tokens(self, text: str) -> list[str]:
        cleaned = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_cjk(cp):
                cleaned.append(f" {ch} ")
            else:
                cleaned.append(" " if _is_whitespace(ch) else ch)
        tokens = []
        for word in "".join(cleaned).split():
            if self.lower_case:
                lowered = "".join(c.lower() for c in word)  # per character: no final-sigma rule, as the Rust tokenizer
                word = "".join(c for c in unicodedata.normalize("NFD", lowered) if unicodedata.category(c) != "Mn")
            piece = ""
            for ch in word:
                if _is_punctuation(ch):
                    if piece:
                        tokens.append(piece)
                    tokens.append(ch)
                    piece = ""
                else:
                    piece += ch
            if piece:
                tokens.append(piece)
        return tokens

    def word_pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                candidate = ("##" if start else "") + word[start:end]
                if candidate in self.vocab:
                    found = self.vocab[candidate]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            out.append(found)
            start = end
        return out

    def encode(self, text: str) -> list[int]:
        """[CLS] pieces [SEP], truncated to max_length like sentence-transformers does."""
        ids = []
        for part in _SPECIAL.split(text):  # special tokens typed in the text stay whole, as in BertTokenizer
            if part in SPECIAL_TOKENS:
                ids.append(self.vocab[part])
            else:
                ids.extend(i for word in self.basic_tokens(part) for i in self.word_pieces(word))
        return [self.cls, *ids[: self.max_length - 2], self.sep]
