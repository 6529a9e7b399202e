"""Tests for rag.onnx_encoder: the ONNX Runtime encoder (fp32 and int8) and backend choice.

Tests marked ``model`` compare the ONNX export that ``make setup`` writes beside the model
folder with the torch model: the same token ids on edge texts, vectors at a cosine above the
export's bounds, the same ranking of the seed sentences. The rest check the plumbing (where
exports go, what a broken export folder reads as, the setting, the index's backend record).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from rag import onnx_encoder
from rag.embedding import BACKENDS, DEFAULT_BACKEND, make_embedder
from rag.index import build_index, load_index
from rag.onnx_encoder import (
    CHECK_TEXTS,
    FILES,
    MARKER_NAME,
    MIN_COSINE,
    OnnxEmbedder,
    export_folder,
    read_export,
    token_batches,
)
from rag.settings import from_env
from tests.fakes import HashEmbedder

ROOT = Path(__file__).resolve().parents[1]
# Beyond CHECK_TEXTS: empty-ish, symbols, Latin/Cyrillic mixed in one word, a very long line.
EDGE_TEXTS = (
    "?",
    "🙂🙂🙂",
    "Қазақstan",
    "ӘӨҮҰҚҒҢҺІ әөүұқғңһі",
    "x" * 3000,
    "1995 ж. 30.08",
)


# --- plumbing (no model) ----------------------------------------------------------------


def test_the_default_models_export_sits_beside_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAZRAG_CACHE", str(tmp_path))
    from rag.e5_folder import default_e5_folder

    folder = export_folder("multilingual-e5-small")
    assert folder.parent == default_e5_folder().parent
    assert folder.name == default_e5_folder().name + "-onnx"
    assert export_folder("intfloat/multilingual-e5-small") == folder
    # Other models get their own folders, distinct even when their names end alike.
    a, b = export_folder("/models/a/bert"), export_folder("/models/b/bert")
    assert a != b and a.parent == b.parent == folder.parent
    assert a.name.endswith("-onnx")


def _fake_export(folder: Path, **marker: object) -> None:
    folder.mkdir(parents=True)
    for name in (*FILES.values(), "tokenizer.json"):
        (folder / name).write_bytes(b"x")
    base = {
        "export_format": onnx_encoder.EXPORT_FORMAT,
        "dim": 384,
        "max_seq_length": 512,
        "prompts": {"query": "query: "},
        "inputs": ["input_ids", "attention_mask"],
        "source": "abc",
    }
    (folder / MARKER_NAME).write_text(json.dumps(base | marker), encoding="utf-8")


def test_read_export_accepts_a_complete_folder_only(tmp_path: Path) -> None:
    good = tmp_path / "good"
    _fake_export(good)
    info = read_export(good)
    assert info is not None and info.dim == 384 and info.prompts == {"query": "query: "}
    assert info.path("onnx-int8") == good / "model_int8.onnx"

    old = tmp_path / "old"
    _fake_export(old, export_format=onnx_encoder.EXPORT_FORMAT + 1)
    assert read_export(old) is None

    partial = tmp_path / "partial"
    _fake_export(partial)
    (partial / FILES["onnx-int8"]).unlink()
    assert read_export(partial) is None

    broken = tmp_path / "broken"
    _fake_export(broken)
    (broken / MARKER_NAME).write_text('{"export_format": 1, "dim": "many"', encoding="utf-8")
    assert read_export(broken) is None
    assert read_export(tmp_path / "missing") is None


def test_backend_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_env().backend == DEFAULT_BACKEND
    monkeypatch.setenv("KAZRAG_BACKEND", "onnx")
    assert from_env().backend == "onnx"
    monkeypatch.setenv("KAZRAG_BACKEND", "tensorrt")
    with pytest.raises(ValueError, match="unknown encoder backend 'tensorrt'"):
        from_env()
    with pytest.raises(ValueError, match="choose one of torch, onnx, onnx-int8"):
        make_embedder("multilingual-e5-small", "openvino")
    with pytest.raises(ValueError, match="unknown ONNX backend"):
        OnnxEmbedder("multilingual-e5-small", backend="torch")


def test_cli_rejects_an_unknown_backend(capsys: pytest.CaptureFixture[str]) -> None:
    from kazrag.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["ask", "Абай кім?", "--backend", "tensorrt"])
    assert exc.value.code == 2
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_batches_hold_a_token_budget_and_every_row_once() -> None:
    lengths = [512, 300, 229, 229, 229, 100, 40, *[33] * 70, 5, 1]
    batches = token_batches(lengths, 32, 2048)
    assert batches[0][0] == 0 and batches[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(batches))
    for start, stop in batches:
        assert stop > start
        assert stop - start <= 32
        # the first row is the longest (sorted): it sets the padded width of the batch
        assert (stop - start) * lengths[start] <= 2048
    assert batches[0] == (0, 4)  # 4 x 512 = 2,048: long texts go a few at a time
    assert max(stop - start for start, stop in batches) == 32  # short ones 32 at a time
    # a row longer than the budget still goes, alone
    assert token_batches([5000, 10], 32, 2048) == [(0, 1), (1, 2)]
    assert token_batches([], 32, 2048) == []


def test_externalise_moves_the_weights_and_keeps_the_outputs(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 64])],
        [numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "model.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save_model(model, path)
    x = rng.standard_normal((3, 64)).astype(np.float32)

    def run() -> np.ndarray:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(sess.run(None, {"x": x})[0])

    before = run()
    size = path.stat().st_size
    assert onnx_encoder.externalise(path) is True
    assert onnx_encoder.data_file(path).stat().st_size >= w.nbytes
    assert path.stat().st_size < size - w.nbytes + 1024  # the graph no longer holds them
    assert np.array_equal(run(), before)
    assert onnx_encoder.externalise(path) is False  # done once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.data"]


def _product_graph(path: Path, weight: np.ndarray) -> None:
    """y = Relu(x @ weight), x of any row count: one weight product to smooth and quantise."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k, n = weight.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
            helper.make_node("Relu", ["h"], ["y"]),
        ],
        "proj",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime reads, whatever the onnx package writes
    onnx.save_model(model, path)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_outlier_channels_are_smoothed_without_changing_the_float_result(tmp_path: Path) -> None:
    """One input channel 60x wider than the others: it is scaled down and its weight row up, the
    float output stays the same, and quantised to int8 the smoothed graph is far closer to the
    float one than the graph quantised as it was."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 16)).astype(np.float32)
    x = rng.standard_normal((200, 64)).astype(np.float32)
    x[:, 5] *= 60.0
    src, smooth = tmp_path / "src.onnx", tmp_path / "smooth.onnx"
    _product_graph(src, weight)
    ranges = onnx_encoder.input_ranges(src, [{"x": x[:100]}, {"x": x[100:]}])
    assert list(ranges) == ["x"]
    assert np.allclose(ranges["x"], np.abs(x).max(axis=0))
    scaled = onnx_encoder.smooth_outliers(src, smooth, ranges, percentile=90.0)
    assert 1 <= scaled <= 7  # channels above the 90th percentile of 64: channel 5 among them
    assert np.allclose(_run(smooth, x), _run(src, x), rtol=1e-4, atol=1e-3)

    errors = []
    for path in (src, smooth):
        q = tmp_path / f"q_{path.name}"
        quantize_dynamic(str(path), str(q), weight_type=QuantType.QInt8, per_channel=True)
        errors.append(float(np.abs(_run(q, x) - _run(src, x)).mean()))
    assert errors[1] < errors[0] / 3, errors


def test_a_graph_without_outliers_is_left_as_it_is(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _product_graph(tmp_path / "src.onnx", rng.standard_normal((8, 4)))
    flat = {"x": np.ones((3, 8), np.float32)}
    ranges = onnx_encoder.input_ranges(tmp_path / "src.onnx", [flat])
    assert onnx_encoder.smooth_outliers(tmp_path / "src.onnx", tmp_path / "out.onnx", ranges) == 0


@pytest.mark.parametrize(
    ("machine", "flags", "reduced"),
    [
        ("x86_64", "flags : fpu avx2 fma avx512f avx512_vnni amx_int8", False),
        ("x86_64", "flags : fpu avx2 fma avx_vnni", False),
        ("x86_64", "flags : fpu avx2 fma avx512f", True),
        ("AMD64", "", True),
        ("aarch64", "Features : fp asimd", False),
    ],
)
def test_int8_weights_use_seven_bits_only_without_vnni(machine, flags, reduced) -> None:
    assert onnx_encoder.needs_reduced_range(machine, flags) is reduced


def test_export_asks_for_eager_attention_and_falls_back() -> None:
    class Model:
        def eval(self) -> None:
            self.evaluated = True

    calls: list[dict] = []

    def takes_it(source: str, **kw):
        calls.append(kw)
        return Model()

    def refuses_it(source: str, **kw):
        calls.append(kw)
        if "model_kwargs" in kw:
            raise TypeError("unexpected keyword argument 'attn_implementation'")
        return Model()

    assert onnx_encoder._load_for_export(takes_it, "m").evaluated
    assert calls[-1]["model_kwargs"] == {"attn_implementation": "eager"}
    calls.clear()
    assert onnx_encoder._load_for_export(refuses_it, "m").evaluated
    assert [("model_kwargs" in c) for c in calls] == [True, False]


def test_embedders_are_lazy() -> None:
    """Building an embedder loads nothing: the CLI's argument errors stay instant."""
    for backend in BACKENDS:
        emb = make_embedder("/nonexistent/model", backend)
        assert emb.name == "/nonexistent/model"


class _OtherBackend(HashEmbedder):
    backend = "onnx-int8"


def test_a_rebuild_never_mixes_two_backends_vectors(tmp_path: Path, seed_docs) -> None:
    docs = seed_docs[:2]
    first = build_index(docs, tmp_path / "ix", HashEmbedder())
    assert first.manifest["backend"] == "torch"
    again = build_index(docs, tmp_path / "ix", HashEmbedder())
    assert again.manifest["embedded"] == {"chunks": 0, "sentences": 0}  # same backend: reused
    other = build_index(docs, tmp_path / "ix", _OtherBackend())
    assert other.manifest["backend"] == "onnx-int8"
    # Everything embedded again, as in the first build from nothing.
    assert other.manifest["embedded"] == first.manifest["embedded"]
    assert other.manifest["embedded"]["chunks"] == other.manifest["n_chunks"]
    # An index is searched with any backend: loading checks the model, not the backend.
    assert load_index(tmp_path / "ix", "hash-embedder").manifest["backend"] == "onnx-int8"


# --- the real export ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_model():
    from rag.embedding import load_sentence_transformer

    return load_sentence_transformer("multilingual-e5-small")


@pytest.fixture(scope="module")
def export():
    info = read_export(export_folder("multilingual-e5-small"))
    if info is None:
        pytest.fail("no ONNX export beside the model folder: run `make setup`")
    return info


@pytest.mark.model
@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_token_ids_match_the_torch_model(backend: str, torch_model, export) -> None:
    enc = OnnxEmbedder("multilingual-e5-small", backend=backend, info=export)
    texts = [p + t for p in ("query: ", "passage: ") for t in (*CHECK_TEXTS, *EDGE_TEXTS)]
    ours = enc.token_ids(texts)
    theirs = torch_model.tokenize(texts)
    for i, text in enumerate(texts):
        ref = theirs["input_ids"][i][theirs["attention_mask"][i].bool()].tolist()
        assert ours[i] == ref, text[:60]
    assert max(len(r) for r in ours) == 512  # the long texts are cut like the torch model's


@pytest.mark.model
@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_vectors_match_the_torch_model(backend: str, torch_model, export) -> None:
    enc = OnnxEmbedder("multilingual-e5-small", backend=backend, info=export)
    texts = [*CHECK_TEXTS, *EDGE_TEXTS]
    for kind, ours in (
        ("query", enc.embed_queries(texts)),
        ("passage", enc.embed_passages(texts)),
    ):
        ref = torch_model.encode(texts, prompt_name=kind, normalize_embeddings=True)
        assert ours.shape == ref.shape and ours.dtype == np.float32
        assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        cos = np.sum(ours * ref, axis=1)
        assert cos.min() >= MIN_COSINE[backend], (kind, cos.min())
    assert enc.embed_queries([]).shape == (0, 384)


@pytest.mark.model
@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_a_text_gets_the_same_vector_whatever_is_encoded_with_it(backend: str, export) -> None:
    """A question's vector does not depend on the texts encoded beside it (their lengths, their
    padding, their largest activations): int8 quantises each run's activations by its largest
    value, so it encodes one text per run."""
    enc = OnnxEmbedder("multilingual-e5-small", backend=backend, info=export)
    question, *others = CHECK_TEXTS
    alone = enc.embed_queries([question])[0]
    together = enc.embed_queries([*others, question])[-1]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert enc.batch_size == (1 if backend == "onnx-int8" else 32)


@pytest.mark.model
@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_seed_questions_find_the_same_sentences(backend: str, torch_model, export, seed_chunks):
    """What matters downstream: each seed question's best sentences are the torch model's."""
    sentences = sorted({s.text for c in seed_chunks for s in c.sentences})[:300]
    questions = [
        json.loads(line)["question"]
        for line in (ROOT / "seeds" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ][:40]
    enc = OnnxEmbedder("multilingual-e5-small", backend=backend, info=export)
    ref_s = torch_model.encode(sentences, prompt_name="passage", normalize_embeddings=True)
    ref_q = torch_model.encode(questions, prompt_name="query", normalize_embeddings=True)
    got_s, got_q = enc.embed_passages(sentences), enc.embed_queries(questions)
    ref_top = np.argsort(-(ref_q @ ref_s.T), axis=1)[:, :5]
    got_top = np.argsort(-(got_q @ got_s.T), axis=1)[:, :5]
    top1 = np.mean(ref_top[:, 0] == got_top[:, 0])
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ref_top, got_top, strict=True)])
    # fp32 ranks as torch does; int8 moves a few near-ties (measured: 39 of 40 top-1 sentences
    # agree, 92.5 % of the top 5; the int8 file before outlier smoothing: about 4 in 5).
    assert top1 >= (0.97 if backend == "onnx" else 0.9), top1
    assert overlap >= (0.97 if backend == "onnx" else 0.85), overlap


@pytest.mark.model
def test_batch_shapes_do_not_change_the_vectors(export) -> None:
    """Token-budget batches (long texts a few at a time) give the vectors one batch gives."""
    texts = [*CHECK_TEXTS, *EDGE_TEXTS, "Абай — ақын.", "Алматы — ірі қала. " * 30]
    one = OnnxEmbedder("multilingual-e5-small", info=export, batch_tokens=10**6)
    small = OnnxEmbedder("multilingual-e5-small", info=export, batch_tokens=600)
    a, b = one.embed_passages(texts), small.embed_passages(texts)
    assert np.sum(a * b, axis=1).min() >= 0.9999


@pytest.mark.model
def test_the_export_keeps_its_weights_beside_the_graph(export) -> None:
    """``make setup`` leaves each ONNX graph small and its weights in ``.data`` (mapped at load,
    the cold start's fast path)."""
    for backend in FILES:
        graph, data = export.path(backend), onnx_encoder.data_file(export.path(backend))
        assert data.is_file(), f"{data} missing: run `make setup`"
        assert graph.stat().st_size < 5_000_000 < data.stat().st_size


@pytest.mark.model
def test_the_export_records_its_parity(export) -> None:
    for backend, bound in MIN_COSINE.items():
        assert export.parity[backend] >= bound


@pytest.mark.model
def test_the_export_is_fused_and_int8_quantises_every_product_smoothed(export) -> None:
    """The default model's graph is fused (one Attention operator per layer); its int8 file
    quantises every weight product, outlier input channels smoothed first, with 7-bit weights
    only where the processor needs them."""
    import onnx

    marker = json.loads((export.folder / MARKER_NAME).read_text(encoding="utf-8"))
    assert marker["fused"].get("Attention") == 12, marker["fused"]
    assert marker["int8"]["smoothed_channels"] > 0
    assert marker["int8"]["reduce_range"] is onnx_encoder.needs_reduced_range()
    int8 = onnx.load(str(export.path("onnx-int8")), load_external_data=False).graph
    assert onnx_encoder.weight_products(int8) == []  # no float product with a weight left
    kinds = {n.op_type for n in int8.node}
    assert "QAttention" in kinds and kinds & {"MatMulInteger", "DynamicQuantizeMatMul"}, kinds
    fp32 = onnx.load(str(export.path("onnx")), load_external_data=False).graph
    assert len(onnx_encoder.weight_products(fp32)) == 48  # 12 layers: QKV, output, up, down
    smoothing = [
        n for n in int8.node if n.op_type == "Mul" and n.name.endswith("_smooth_scale_mul")
    ]
    assert len(smoothing) == 48
