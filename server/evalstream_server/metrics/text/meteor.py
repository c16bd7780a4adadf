"""METEOR as NLTK computes it, with the word look-ups memoised.

Reference: NLTK's ``nltk.translate.meteor_score.meteor_score`` (nltk/nltk,
nltk/translate/meteor_score.py), after Lavie & Agarwal (2007), "METEOR: An Automatic
Metric for MT Evaluation with High Levels of Correlation with Human Judgments"; per pair
the value agrees to 1e-9 on the same tokens (tests/metrics/text/test_meteor.py): tokens as
Hugging Face ``evaluate`` makes them, NLTK's exact, stem and synonym stages, the best
reference. Aggregates are per-pair means (``agg:mean``). Without WordNet,
:class:`WordNetMissing` says how to install it: never a different number.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from evalstream_server.metrics.bands import band
from evalstream_server.metrics.text._memo import (
    ENTRY_BYTES,
    STR_BYTES,
    WORD_CACHE_SIZE,
    memo,
    weigh_tokens,
    word_cache,
)
from evalstream_server.metrics.text._types import (
    MeteorOptions,
    Score,
    TextBatchScores,
    TextPair,
)

__all__ = [
    "TOKENIZER",
    "MeteorAccumulator",
    "WordNetMissing",
    "meteor_signature",
    "pair_values",
    "score_pair",
    "tokenize",
    "wordnet_available",
]

#: How texts are tokenized, as the signature states it.
TOKENIZER = "nltk_word_tokenize(preserve_line)"

_INSTALL_HINT = (
    "NLTK cannot load WordNet, which METEOR needs for synonym matching. Install it with "
    "`make install` (runs scripts/install_wordnet.py), or `apt-get install wordnet-base "
    "wordnet-sense-index` then `python scripts/install_wordnet.py`, or "
    "`python -c \"import nltk; nltk.download('wordnet')\"`"
)


class WordNetMissing(RuntimeError):
    """NLTK cannot load WordNet, so METEOR cannot be computed as NLTK does.

    Example:
        >>> str(WordNetMissing("no corpora/wordnet")).startswith("NLTK cannot load WordNet")
        True
    """

    def __init__(self, detail: str = "") -> None:
        super().__init__(_INSTALL_HINT + (f" ({detail})" if detail else ""))


def _wordnet() -> Any:
    """NLTK's WordNet reader, loaded; raises WordNetMissing when it cannot be."""
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if "Resource" in line), "")
        raise WordNetMissing(first or "wordnet not found") from exc
    return wordnet


def wordnet_available() -> bool:
    """Whether NLTK can load WordNet (and so METEOR can be served).

    Example:
        >>> isinstance(wordnet_available(), bool)
        True
    """
    try:
        _wordnet()
    except WordNetMissing:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[str, str]:
    import nltk

    return str(nltk.__version__), str(_wordnet().get_version())


@functools.lru_cache(maxsize=1)
def _word_tokenize() -> Callable[..., list[str]]:
    from nltk.tokenize import word_tokenize

    return word_tokenize


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem.porter import PorterStemmer

    # meteor_score's default stemmer: PorterStemmer() in NLTK_EXTENSIONS mode.
    return PorterStemmer()


# Text on which NLTKWordTokenizer's rules reduce to str.split(): ASCII letters,
# digits and whitespace only (no quote, punctuation, bracket or dash rule can
# fire), and none of the MacIntyre contractions it splits inside a word
# (CONTRACTIONS2: cannot, gimme, gonna, gotta, lemme, wanna; the others need an
# apostrophe). Anything else goes to word_tokenize itself. Short VQA answers
# are nearly all of this kind, and word_tokenize is slow per string.
_PLAIN = re.compile(r"[A-Za-z0-9 \t\n]*")
_PLAIN_PERIOD = re.compile(r"([A-Za-z0-9 \t\n]+)\.[ \t\n]*")
_CONTRACTED = re.compile(r"(?i)\b(?:cannot|gimme|gonna|gotta|lemme|wanna)\b")


@memo(weigh_tokens)
def tokenize(text: str) -> tuple[str, ...]:
    """Lowercased ``word_tokenize(text, preserve_line=True)`` tokens.

    Example:
        >>> tokenize("Two dogs, sleeping.")
        ('two', 'dogs', ',', 'sleeping', '.')
        >>> tokenize("I cannot see 2 cats")
        ('i', 'can', 'not', 'see', '2', 'cats')
    """
    if _PLAIN.fullmatch(text) and not _CONTRACTED.search(text):
        return tuple(text.lower().split())
    # The same with one final period: only the final-period rule fires, and it
    # splits the period off ("a dog." -> "a", "dog", ".").
    ended = _PLAIN_PERIOD.fullmatch(text)
    if ended and not _CONTRACTED.search(text):
        return (*ended.group(1).lower().split(), ".")
    return tuple(t.lower() for t in _word_tokenize()(text, preserve_line=True))


@word_cache
def _stem(word: str) -> str:
    return str(_stemmer().stem(word))


# A lemma name's optional syntactic marker, as NLTK's _synset_from_pos_and_line strips it.
_MARKER = re.compile(r"(.*?)(\([^()]*\))?$")


@functools.lru_cache(maxsize=8)
def _data_fd(pos: str) -> int | None:
    """A read-only descriptor of WordNet's data file for ``pos``; None when not a plain file."""
    wordnet = _wordnet()
    try:
        path = wordnet.root.join(f"data.{wordnet._FILEMAP[pos]}").path
        return os.open(path, os.O_RDONLY)
    except (AttributeError, KeyError, OSError):  # a zipped corpus, or another NLTK
        return None


@functools.lru_cache(maxsize=WORD_CACHE_SIZE)
def _synset_names(pos: str, offset: int) -> tuple[str, ...] | None:
    """The lemma names of the synset at ``offset`` in the ``pos`` data file (None: ask NLTK).

    What ``wordnet.synset_from_pos_and_offset(pos, offset).lemma_names()`` gives,
    without building the Synset (its gloss, pointers and frames): NLTK's cold
    look-up parses whole lines through a pure-Python reader.
    """
    fd = _data_fd(pos)
    if fd is None:
        return None
    # pread: no shared file position, so threads need no lock.
    line = os.pread(fd, 4096, offset)
    while b"\n" not in line and len(line) % 4096 == 0 and line:
        more = os.pread(fd, 65536, offset + len(line))
        if not more:
            break
        line += more
    fields = line.split(b"\n", 1)[0].decode("utf-8").split()
    # offset lex_filenum ss_type w_cnt (hex) then w_cnt (word, lex_id) pairs.
    if len(fields) < 4 or fields[0] != f"{offset:08d}":
        return None
    count = int(fields[3], 16)
    words = fields[4 : 4 + 2 * count : 2]
    if len(words) != count:
        return None
    return tuple(_MARKER.match(w).group(1) for w in words)  # type: ignore[union-attr]


def _synset_lemma_names(word: str) -> list[str]:
    """Lemma names of every synset of ``wordnet.synsets(word)``, in NLTK's order."""
    wordnet = _wordnet()
    lemma = word.lower()
    try:
        index = wordnet._lemma_pos_offset_map
        morphy = wordnet._morphy
        pos_list = ("n", "v", "a", "r")  # nltk.corpus.reader.wordnet.POS_LIST
        names: list[str] = []
        for p in pos_list:
            for form in morphy(lemma, p, True):
                for offset in index.get(form, {}).get(p, ()):
                    found = _synset_names(p, offset)
                    if found is None:
                        raise LookupError(offset)
                    names.extend(found)
        return names
    except (AttributeError, LookupError):  # fall back to NLTK's own synsets
        return [lem.name() for synset in wordnet.synsets(word) for lem in synset.lemmas()]


@word_cache
def _synonyms(word: str) -> frozenset[str]:
    # _enum_wordnetsyn_match: lemma names without "_" of every synset, plus the word.
    names = {name for name in _synset_lemma_names(word) if name.find("_") < 0}
    names.add(word)
    return frozenset(names)


def _positions(words: Sequence[tuple[int, str]]) -> dict[str, list[int]]:
    # Reference word -> its indices in the leftover list, ascending.
    out: dict[str, list[int]] = {}
    for j, (_, w) in enumerate(words):
        out.setdefault(w, []).append(j)
    return out


def _match(
    hyp: list[tuple[int, str]], ref: list[tuple[int, str]], matches: list[tuple[int, int]]
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """NLTK's _match_enums: each hypothesis word, last first, takes the latest equal free one."""
    where = _positions(ref)
    hit_h: set[int] = set()
    hit_r: set[int] = set()
    for i in range(len(hyp) - 1, -1, -1):
        positions = where.get(hyp[i][1])
        if positions:
            j = positions.pop()
            hit_h.add(i)
            hit_r.add(j)
            matches.append((hyp[i][0], ref[j][0]))
    if not hit_h:
        return hyp, ref
    return (
        [p for i, p in enumerate(hyp) if i not in hit_h],
        [p for j, p in enumerate(ref) if j not in hit_r],
    )


def _synonym_match(
    hyp: list[tuple[int, str]], ref: list[tuple[int, str]], matches: list[tuple[int, int]]
) -> None:
    """NLTK's _enum_wordnetsyn_match: the latest free reference word among the synonyms."""
    where = _positions(ref)
    for i in range(len(hyp) - 1, -1, -1):
        best_j = -1
        best_word = ""
        for syn in _synonyms(hyp[i][1]):
            positions = where.get(syn)
            if positions and positions[-1] > best_j:
                best_j = positions[-1]
                best_word = syn
        if best_j >= 0:
            where[best_word].pop()
            matches.append((hyp[i][0], ref[best_j][0]))


def _count_chunks(matches: Sequence[tuple[int, int]]) -> int:
    # nltk.translate.meteor_score._count_chunks
    i = 0
    chunks = 1
    while i < len(matches) - 1:
        if (matches[i + 1][0] == matches[i][0] + 1) and (matches[i + 1][1] == matches[i][1] + 1):
            i += 1
            continue
        i += 1
        chunks += 1
    return chunks


def _single_bytes(args: tuple[Any, ...], value: float) -> int:
    # Both texts of the key and a float.
    return ENTRY_BYTES + 2 * STR_BYTES + len(args[0]) + len(args[1]) + 24


# Keyed by the texts, not their tokens: one look-up per reference when warm, and
# strings hash once (their hash is cached), token tuples on every look-up.
@memo(_single_bytes)
def _single(prediction: str, reference: str, alpha: float, beta: float, gamma: float) -> float:
    """NLTK's single_meteor_score of two texts."""
    return _score(tokenize(prediction), tokenize(reference), alpha, beta, gamma)


def _score(
    hypothesis: tuple[str, ...], reference: tuple[str, ...], alpha: float, beta: float, gamma: float
) -> float:
    """NLTK's single_meteor_score on lowercased tokens."""
    matches: list[tuple[int, int]] = []
    if hypothesis == reference:
        # Exact matching, last word first, each taking the latest equal free
        # position, aligns equal sequences word for word (common in VQA).
        matches = [(i, i) for i in range(len(hypothesis))]
    else:
        hyp, ref = _match(list(enumerate(hypothesis)), list(enumerate(reference)), matches)
        if hyp and ref:
            hyp, ref = _match(
                [(i, _stem(w)) for i, w in hyp], [(j, _stem(w)) for j, w in ref], matches
            )
            if hyp and ref:
                _synonym_match(hyp, ref, matches)
        matches.sort(key=lambda pair: pair[0])
    translation_length = len(hypothesis)
    reference_length = len(reference)
    matches_count = len(matches)
    # The same float operations, in the same order, as single_meteor_score.
    try:
        precision = float(matches_count) / translation_length
        recall = float(matches_count) / reference_length
        fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall)
        chunk_count = float(_count_chunks(matches))
        frag_frac = chunk_count / matches_count
    except ZeroDivisionError:
        return 0.0
    penalty = gamma * frag_frac**beta
    return float((1 - penalty) * fmean)


def score_pair(prediction: str, references: Sequence[str], *, options: MeteorOptions) -> float:
    """NLTK's ``meteor_score`` of one prediction against its references.

    Args:
        prediction: The prediction text.
        references: One or more reference texts.
        options: alpha, beta and gamma.

    Returns:
        The best METEOR score over the references.

    Raises:
        ValueError: ``references`` is empty.
        WordNetMissing: NLTK cannot load WordNet.

    Example:
        >>> round(score_pair("the cat sat on the mat", ["a cat sat on the mat"],
        ...                  options=MeteorOptions()), 4)
        0.83
    """
    if not references:
        raise ValueError("a pair needs at least one reference")
    a, b, g = options.alpha, options.beta, options.gamma
    return max(_single(prediction, ref, a, b, g) for ref in references)


@functools.lru_cache(maxsize=64)
def meteor_signature(options: MeteorOptions, *, aggregate: bool) -> str:
    """The signature of METEOR scores under ``options``.

    Example:
        >>> meteor_signature(MeteorOptions(), aggregate=False)
        'meteor|alpha:0.9|beta:3|gamma:0.5|tok:nltk_word_tokenize(preserve_line)|wordnet:3.0|version:nltk-3.10.4'
    """
    nltk_version, wordnet_version = _versions()
    parts = [
        "meteor",
        f"alpha:{options.alpha:g}",
        f"beta:{options.beta:g}",
        f"gamma:{options.gamma:g}",
        f"tok:{TOKENIZER}",
        f"wordnet:{wordnet_version}",
    ]
    if aggregate:
        parts.append("agg:mean")
    parts.append(f"version:nltk-{nltk_version}")
    return "|".join(parts)


def _check_references(pairs: Sequence[TextPair]) -> None:
    for i, pair in enumerate(pairs):
        if not pair.references:
            raise ValueError(f"pairs[{i}] has no references")


def pair_values(pairs: Sequence[TextPair], *, options: MeteorOptions) -> list[float]:
    """Each pair's METEOR, as `MeteorAccumulator.fold` takes them (picklable: a worker
    process can compute them).

    Example:
        >>> [round(v, 4) for v in pair_values(
        ...     [TextPair("the cat sat on the mat", ("a cat sat on the mat",))],
        ...     options=MeteorOptions())]
        [0.83]
    """
    return [score_pair(p.prediction, p.references, options=options) for p in pairs]


class MeteorAccumulator:
    """Running mean METEOR over one stream (not shared between threads).

    Raises:
        WordNetMissing: On construction, when NLTK cannot load WordNet.

    Example:
        >>> acc = MeteorAccumulator(options=MeteorOptions())
        >>> pair = TextPair("the cat sat on the mat", ("a cat sat on the mat",))
        >>> s = acc.update([pair]).pairs[0][0]
        >>> s.name, round(s.value, 4), s.band
        ('meteor', 0.83, 'excellent')
    """

    family = "meteor"

    def __init__(self, *, options: MeteorOptions) -> None:
        _wordnet()  # fail now, not on the first batch
        self._options = options
        self._sum = 0.0
        self._count = 0

    def _mean(self, total: float, n: int, reason: str) -> Score:
        signature = meteor_signature(self._options, aggregate=True)
        if n == 0:
            return Score("meteor", None, "", signature, reason)
        value = total / n
        return Score("meteor", value, band("meteor", value), signature)

    def update(self, pairs: Sequence[TextPair]) -> TextBatchScores:
        """Scores a batch per pair, with the batch mean, and folds it into the running mean.

        Raises:
            ValueError: A pair has no references.
            WordNetMissing: NLTK cannot load WordNet.
        """
        _check_references(pairs)  # before any state changes
        return self.fold(pairs, pair_values(pairs, options=self._options))

    def fold(self, pairs: Sequence[TextPair], values: Sequence[float]) -> TextBatchScores:
        """As `update`, from ``pair_values(pairs)`` computed elsewhere (e.g. another process)."""
        _check_references(pairs)
        if len(values) != len(pairs):
            raise ValueError(f"{len(values)} values for {len(pairs)} pairs")
        signature = meteor_signature(self._options, aggregate=False)
        batch_sum = 0.0
        per_pair: list[tuple[Score, ...]] = []
        for value in values:
            batch_sum += value
            self._sum += value  # pair by pair: batch splits cannot change the sum
            per_pair.append((Score("meteor", value, band("meteor", value), signature),))
        self._count += len(pairs)
        return TextBatchScores(
            pairs=tuple(per_pair), batch=(self._mean(batch_sum, len(pairs), "empty batch"),)
        )

    @property
    def running(self) -> tuple[Score, ...]:
        """Mean per-pair METEOR over every pair so far."""
        return (self._mean(self._sum, self._count, "no pairs scored yet"),)
