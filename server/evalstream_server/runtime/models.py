"""Where the BERTScore model comes from, and loading it once.

BERTScore (Zhang et al. 2020, "BERTScore: Evaluating Text Generation with
BERT", ICLR; reference implementation github.com/tiiiger/bert_score) matches
the contextual token embeddings of one layer of a transformer encoder. This
module finds that encoder (a local directory or a hub id), loads it once,
keeps only the layers up to the chosen one (as bert-score's ``get_model``
does) and exposes two calls to the dynamic batcher: :meth:`LoadedModel.tokenize`
and :meth:`LoadedModel.forward`.

The embedded default is sentence-transformers/all-MiniLM-L6-v2 at layer 5, kept
in the model cache (``--model-dir``) by ``evalstream-server fetch-model``; the
documentation's text-scoring guide says why that layer, and how to bake another
model into an image.

torch and transformers are imported only when a model is loaded: box scoring
and the thin client never pay for them.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_LAYER",
    "DEFAULT_MODEL_DIRNAME",
    "DEFAULT_MODEL_ID",
    "DTYPES",
    "LoadedModel",
    "ModelHandle",
    "ModelInfo",
    "ModelLoadError",
    "ModelNotFound",
    "ModelNotReady",
    "default_model_dir",
    "is_default",
    "missing_default",
    "load_model",
    "write_tiny_bert",
]

#: The embedded default model (its hub id, used as its name in signatures).
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: Its directory in the model cache (``--model-dir``).
DEFAULT_MODEL_DIRNAME = "all-MiniLM-L6-v2"
#: Its default layer: the penultimate of 6 (see the module docstring).
DEFAULT_LAYER = 5
#: Accepted ``dtype`` values; "auto" is fp32 on CPU, bf16 (else fp16) autocast on CUDA.
DTYPES = ("auto", "fp32", "bf16", "fp16")

# Tokenizers that bert-score's sent_encode calls with add_prefix_space=True.
_PREFIX_SPACE_TOKENIZERS = ("Roberta", "GPT2")


class ModelLoadError(RuntimeError):
    """The BERTScore model could not be loaded (the message says why and what to do)."""


class ModelNotFound(ModelLoadError):
    """The model is neither a local directory nor reachable on the hub."""


class ModelNotReady(RuntimeError):
    """The model is still loading (health: NOT_SERVING) or failed to load."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a score's signature and the matching need to know about the model.

    Attributes:
        name: Hub id, or the directory name of a local model (the default
            directory is named by its hub id).
        source: The directory or hub id it was loaded from.
        layer: The layer whose embeddings are matched (0 = word embeddings).
        num_layers: Layers of the full model.
        max_length: Tokens per sentence, special tokens included; longer
            sentences are truncated (bert-score truncates at the tokenizer's
            ``model_max_length``).
        tokenizer: Tokenizer class name, e.g. "BertTokenizer".
        special_ids: Token ids whose weight is 0 without idf ([CLS] and [SEP],
            as bert-score sets them).
        num_special: Special tokens around every sentence (2 for BERT, RoBERTa).
        dtype: "fp32", "bf16" or "fp16" (the autocast dtype of the forward pass).
        device: "cpu" or "cuda".
    """

    name: str
    source: str
    layer: int
    num_layers: int
    max_length: int
    tokenizer: str
    special_ids: frozenset[int]
    num_special: int
    dtype: str
    device: str


@dataclass(frozen=True, slots=True)
class Tokenized:
    """One sentence as the model sees it.

    Attributes:
        ids: Token ids with the special tokens, at most ``max_length`` of them.
        truncated: The sentence was longer and was cut to ``max_length``.
    """

    ids: tuple[int, ...]
    truncated: bool


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """An encoder truncated to its scoring layer, with its tokenizer.

    Built by :func:`load_model`. :meth:`tokenize` and :meth:`forward` are meant
    for the batcher's single worker thread; a lock also serialises
    :meth:`tokenize`, because HF fast tokenizers are not safe to call from
    several threads at once.
    """

    info: ModelInfo
    model: Any
    tokenizer: Any
    pad_id: int
    use_hidden_states: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def max_length(self) -> int:
        """Tokens per sentence, special tokens included."""
        return self.info.max_length

    def tokenize(self, texts: Sequence[str]) -> list[Tokenized]:
        """Token ids as bert-score's ``sent_encode`` makes them.

        Sentences are stripped; an empty one becomes the special tokens alone;
        one longer than ``max_length`` is truncated (and flagged).
        """
        stripped = [t.strip() for t in texts]
        out: list[Tokenized] = []
        with self._lock:
            if not stripped:
                return out
            encoded = self.tokenizer(
                stripped, add_special_tokens=True, truncation=False, verbose=False
            )
            for text, ids in zip(stripped, encoded["input_ids"], strict=True):
                if len(ids) <= self.info.max_length:
                    out.append(Tokenized(tuple(ids), False))
                    continue
                # The same call bert-score makes; only for long sentences.
                cut = self.tokenizer(
                    text,
                    add_special_tokens=True,
                    truncation=True,
                    max_length=self.info.max_length,
                )["input_ids"]
                out.append(Tokenized(tuple(cut), True))
        return out

    def forward(self, batch: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Unit-norm fp32 embeddings of the scoring layer, one (tokens, hidden) tensor each, on CPU.

        Raises:
            torch.cuda.OutOfMemoryError: on CUDA when the batch does not fit
                (the batcher halves the batch and retries).
        """
        import torch

        lens = [len(ids) for ids in batch]
        width = max(lens)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        device = self.info.device
        ids, mask = ids.to(device), mask.to(device)
        with torch.no_grad(), _autocast(self.info.dtype, device):
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                output_hidden_states=self.use_hidden_states,
            )
        hidden = out.hidden_states[self.info.layer] if self.use_hidden_states else out[0]
        hidden = hidden.float()
        # bert-score divides each token vector by its norm before matching.
        hidden = hidden / hidden.norm(dim=-1, keepdim=True)
        hidden = hidden.cpu()
        return [hidden[row, :n].clone() for row, n in enumerate(lens)]


def _autocast(dtype: str, device: str) -> Any:
    import contextlib

    import torch

    if dtype == "fp32":
        return contextlib.nullcontext()
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float16
    return torch.autocast(device_type=device, dtype=torch_dtype)


def default_model_dir(model_dir: Path) -> Path:
    """Where ``evalstream-server fetch-model`` puts the embedded default model.

    Example:
        >>> default_model_dir(Path("/models")).as_posix()
        '/models/all-MiniLM-L6-v2'
    """
    return Path(model_dir) / DEFAULT_MODEL_DIRNAME


def is_default(spec: str) -> bool:
    """Whether a ``--bertscore-model`` value names the embedded default.

    Example:
        >>> is_default(""), is_default("default"), is_default("roberta-large")
        (True, True, False)
    """
    return spec.strip() in ("", "default", DEFAULT_MODEL_DIRNAME)


def missing_default(spec: str, model_dir: Path) -> str | None:
    """Why the server cannot load ``spec`` from the model cache, or None when it can try.

    Only the embedded default is checked (a hub id or another directory is
    found when it loads): the answer names the command that fetches it.
    """
    if not is_default(spec) or default_model_dir(model_dir).is_dir():
        return None
    return (
        f"the default BERTScore model is not in {default_model_dir(model_dir)}: run "
        f"`evalstream-server fetch-model --model-dir {model_dir}` (make model does), "
        "or pass --bertscore-model DIR_OR_HUB_ID, or --bertscore-model none"
    )


def _resolve_dtype(dtype: str, device: str) -> str:
    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == "auto":
        if device != "cuda":
            return "fp32"
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if dtype == "fp16" and device != "cuda":
        raise ModelLoadError("dtype fp16 needs CUDA; on a CPU use fp32 (default) or bf16")
    return dtype


def _resolve_source(spec: str, model_dir: Path) -> tuple[str, str, bool]:
    """(name, source, is_local) for a model spec."""
    spec = spec.strip()
    default_dir = default_model_dir(model_dir)
    if is_default(spec) or spec == DEFAULT_MODEL_ID:
        if default_dir.is_dir():
            return DEFAULT_MODEL_ID, str(default_dir), True
        problem = missing_default(spec, model_dir)
        if problem is not None:
            raise ModelNotFound(problem)
    path = Path(spec).expanduser()
    if path.is_dir():
        resolved = path.resolve()
        # The fetched default keeps its hub id as its name, wherever it lives.
        name = DEFAULT_MODEL_ID if resolved.name == DEFAULT_MODEL_DIRNAME else resolved.name
        return name, str(resolved), True
    if spec.startswith((".", "/", "~")) or path.exists():
        raise ModelNotFound(f"BERTScore model directory {spec!r} does not exist")
    return spec, spec, False


def _default_layer(name: str, num_layers: int) -> int:
    if name == DEFAULT_MODEL_ID:
        return DEFAULT_LAYER
    try:
        from bert_score.utils import model2layers
    except ImportError:  # pragma: no cover - bert-score is a server dependency
        model2layers = {}
    if name in model2layers:
        return int(model2layers[name])
    raise ModelLoadError(
        f"no default layer for BERTScore model {name!r} (bert-score's model2layers "
        f"table has none): pass --bertscore-layer, 1..{num_layers}"
    )


def load_model(
    spec: str,
    *,
    layer: int | None,
    device: str,
    model_dir: Path,
    dtype: str = "auto",
) -> LoadedModel:
    """Loads a BERTScore encoder once, truncated to ``layer``.

    Args:
        spec: A local directory (``save_pretrained`` layout: config.json,
            weights, tokenizer files), a hub id, or "" / "default" for the
            embedded default in ``<model_dir>/all-MiniLM-L6-v2``. The hub
            id of the default also resolves to that directory when it is there.
        layer: Layer whose embeddings are matched, 0..num_layers; None takes the
            default (5 for the embedded model, else bert-score's table).
        device: "cpu" or "cuda" (from ``runtime.device.resolve_device``).
        model_dir: The model cache (``--model-dir``).
        dtype: "auto" (fp32 on CPU; bf16, else fp16, autocast on CUDA),
            "fp32", "bf16" (opt-in on CPU) or "fp16" (CUDA only).

    Returns:
        The model in eval mode on ``device``.

    Raises:
        ModelNotFound: no such directory, or the hub id cannot be fetched.
        ModelLoadError: a bad layer or dtype, or files transformers cannot read.
    """
    if device not in ("cpu", "cuda"):
        raise ModelLoadError(f"device {device!r} is not one of cpu, cuda")
    resolved_dtype = _resolve_dtype(dtype, device)
    name, source, is_local = _resolve_source(spec, Path(model_dir))
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - server extra installs them
        raise ModelLoadError(f"BERTScore needs torch and transformers: {exc}") from exc

    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" progress bar on stderr: in a server
    # whose stderr is a JSON log it is noise, and no one watches it.
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        if type(tokenizer).__name__.startswith(_PREFIX_SPACE_TOKENIZERS):
            tokenizer = AutoTokenizer.from_pretrained(source, add_prefix_space=True)
        model = AutoModel.from_pretrained(source, dtype=torch.float32)
    except OSError as exc:
        where = f"directory {source}" if is_local else f"hub id {source!r}"
        hint = (
            ""
            if is_local
            else " (is the hub reachable? bake the model into a local directory and "
            "pass that directory; see evalstream_server.runtime.models)"
        )
        raise ModelNotFound(f"cannot load BERTScore model from {where}: {exc}{hint}") from exc
    except (ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load BERTScore model {name!r}: {exc}") from exc
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()

    if hasattr(model, "decoder") and hasattr(model, "encoder"):
        model = model.encoder  # as bert-score does for encoder-decoder models
    num_layers = int(getattr(model.config, "num_hidden_layers", 0))
    chosen = _default_layer(name, num_layers) if layer is None else layer
    if not 0 <= chosen <= num_layers:
        raise ModelLoadError(
            f"layer {chosen} is out of range for {name!r}: "
            f"it has {num_layers} layers (0..{num_layers})"
        )
    use_hidden_states = True
    encoder = getattr(model, "encoder", None)
    if encoder is not None and isinstance(getattr(encoder, "layer", None), torch.nn.ModuleList):
        # bert-score's get_model drops the layers above the chosen one: its
        # output is then that layer's hidden state, at a fraction of the cost.
        encoder.layer = torch.nn.ModuleList(list(encoder.layer[:chosen]))
        use_hidden_states = False
    model.eval()
    model.requires_grad_(False)
    model.to(device)

    max_length = _max_length(tokenizer, model.config)
    specials = {i for i in (tokenizer.cls_token_id, tokenizer.sep_token_id) if i is not None}
    empty = tokenizer("", add_special_tokens=True)["input_ids"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    info = ModelInfo(
        name=name,
        source=source,
        layer=chosen,
        num_layers=num_layers,
        max_length=max_length,
        tokenizer=type(tokenizer).__name__,
        special_ids=frozenset(specials),
        num_special=len(empty),
        dtype=resolved_dtype,
        device=device,
    )
    return LoadedModel(
        info=info,
        model=model,
        tokenizer=tokenizer,
        pad_id=int(pad_id),
        use_hidden_states=use_hidden_states,
    )


def _max_length(tokenizer: Any, config: Any) -> int:
    """bert-score truncates at ``model_max_length``; unset, fall back to the positions."""
    declared = int(getattr(tokenizer, "model_max_length", 0) or 0)
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= 2  # position ids start after the padding index
    if 0 < declared <= 1_000_000:
        return min(declared, positions) if positions > 0 else declared
    return positions if positions > 0 else 512


class ModelHandle:
    """A model loading in a background thread: the readiness the health service reports.

    Example:
        >>> handle = ModelHandle(lambda: "model")
        >>> handle.wait(5.0), handle.ready, handle.get()
        (True, True, 'model')
    """

    def __init__(
        self,
        loader: Callable[[], Any],
        *,
        on_ready: Callable[[Any], None] | None = None,
        start: bool = True,
    ) -> None:
        """Starts loading (unless ``start`` is False: then call :meth:`start`).

        Args:
            loader: Returns the loaded model, e.g.
                ``lambda: load_model(spec, layer=..., device=..., model_dir=..., dtype=...)``.
            on_ready: Called in the loading thread with the model once loaded
                (build the batcher and set health SERVING there).
            start: Start the loading thread now.
        """
        self._loader = loader
        self._on_ready = on_ready
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="bertscore-load", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Starts the loading thread (once)."""
        if not self._thread.is_alive() and not self._done.is_set():
            self._thread.start()

    def _load(self) -> None:
        try:
            value = self._loader()
            if self._on_ready is not None:
                self._on_ready(value)
            self._value = value
        except BaseException as exc:  # noqa: BLE001 - reported through .error
            self._error = exc
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        """True once the model has loaded (health SERVING)."""
        return self._done.is_set() and self._error is None

    @property
    def error(self) -> BaseException | None:
        """Why loading failed, or None."""
        return self._error

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for loading to end; True when the model is ready."""
        self._done.wait(timeout)
        return self.ready

    def get(self) -> Any:
        """The loaded model.

        Raises:
            ModelNotReady: still loading, or loading failed (chained to the cause).
        """
        if not self._done.is_set():
            raise ModelNotReady("the BERTScore model is still loading")
        if self._error is not None:
            raise ModelNotReady(f"the BERTScore model failed to load: {self._error}") from (
                self._error
            )
        return self._value


_TINY_WORDS = (
    "the a an cat dog sat on mat is was and of to in it he she they we you i quick brown "
    "fox jumps over lazy red blue green big small man woman child car road house tree "
    "what where who how many color left right top bottom yes no two three one"
).split()


def write_tiny_bert(
    dest: Path,
    *,
    layers: int = 3,
    hidden: int = 32,
    heads: int = 4,
    max_length: int = 32,
    seed: int = 0,
) -> Path:
    """Writes a tiny random BERT (weights + WordPiece tokenizer) for tests and benches.

    The tokenizer is built with the ``tokenizers`` library (BERT normaliser and
    pre-tokeniser, a WordPiece vocabulary of letters, digits, a few words and a
    few non-ASCII characters) and saved both as tokenizer.json and vocab.txt,
    so that transformers 4 and 5, fast or slow, read it alike. ``max_length``
    is both the tokenizer's ``model_max_length`` and the position count, so
    bert-score truncates exactly where we do.

    Returns:
        ``dest``, loadable with ``load_model(str(dest), layer=..., ...)`` and
        with ``bert_score.score(..., model_type=str(dest), num_layers=...)``.
    """
    import json

    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase) + list(string.digits) + list(".,!?'-:;\"()")
    vocab_list = specials + chars + ["##" + c for c in string.ascii_lowercase]
    vocab_list += ["##" + c for c in string.digits]
    vocab_list += [w for w in _TINY_WORDS if w not in vocab_list]
    vocab_list += ["é", "ü", "ß", "中", "文", "日", "本", "ж", "я", "λ"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tok.save(str(dest / "tokenizer.json"))
    (dest / "vocab.txt").write_text("\n".join(vocab_list) + "\n", encoding="utf-8")
    config_tok = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "model_max_length": max_length,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(config_tok), encoding="utf-8")
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=len(vocab_list),
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=hidden * 2,
            max_position_embeddings=max_length,
            pad_token_id=vocab["[PAD]"],
        )
        BertModel(config).save_pretrained(str(dest))
    finally:
        torch.random.set_rng_state(generator_state)
    return dest
