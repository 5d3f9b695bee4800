"""The tokenizer of the tiny test models (catalog `tokenizer: builtin:tiny`), built from a corpus kept here.

Both roles need the same one: node workers build the tiny chat and vision models around it
(gpu_worker.tiny_models), and the coordinator counts the tokens it relays to bill them. Training is
deterministic, so the same corpus gives the same merges on every machine. Needs the `tokenizers` package
(the coordinator's dependencies; the node worker's ML extra); the browser worker never imports this module.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tools>", "</tools>"]

_CORPUS = """
The ONE network runs inference for anyone: chat, images and embeddings, paid from signed receipts.
Workers stream tokens back to the coordinator, which relays them to the caller and writes a receipt.
A receipt names the worker, the model, the digests of the request and the output, and the charge.
Anyone can verify the chain of receipts with the public keys inside them, byte for byte.
Hello! How can I help you today? Here is a short answer, a list, and some code: def f(x): return x + 1.
Numbers 0 1 2 3 4 5 6 7 8 9, punctuation . , ; : ! ? ( ) [ ] { } " ' - _ / \\ and symbols @ # $ % & * + =.
"""


def byte_level_bpe(vocab_size: int, special_tokens: list[str]) -> Tokenizer:
    """A byte-level BPE tokenizer trained on the built-in corpus (any text encodes; nothing downloaded)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    return tok


def tiny_tokenizer() -> Tokenizer:
    """The tiny chat and vision models' tokenizer."""
    return byte_level_bpe(512, SPECIAL_TOKENS)
