"""The kazrag command line, with the real model (one process, the model loaded once)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kazrag.cli import main
from tests.conftest import ROOT, SEEDS


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "seeds"
    assert main(["index", "--corpus", str(SEEDS), "--index", str(folder), "--quiet"]) == 0
    return folder


def _args(index_dir):
    return ["--corpus", str(SEEDS), "--index", str(index_dir)]


@pytest.mark.model
def test_index_then_search_json(index_dir, capsys):
    capsys.readouterr()
    assert (
        main(["search", "Қордай ауданындағы қақтығыс", "-k", "3", "--json", *_args(index_dir)]) == 0
    )
    hits = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert all({"doc_id", "chunk_id", "start", "end", "score", "text"} <= set(h) for h in hits)
    raw = (SEEDS / hits[0]["doc_id"]).read_text(encoding="utf-8")
    assert raw[hits[0]["start"] : hits[0]["end"]]


@pytest.mark.model
def test_an_english_question_finds_its_kazakh_passage_by_the_names(index_dir, capsys):
    """ "Orazaly Yerzhanov" is bridged to «Оразалы Ержанов»: the passage ranks first (it ranked
    second on the dense match alone)."""
    capsys.readouterr()
    q = "Why was Orazaly Yerzhanov deprived of liberty, according to the rights groups' letter?"
    assert main(["search", q, "-k", "1", "--json", *_args(index_dir)]) == 0
    (hit,) = json.loads(capsys.readouterr().out)
    assert "Ержанов" in hit["text"]


@pytest.mark.model
@pytest.mark.parametrize(
    ("question", "abstains"),
    [
        # The documents name Думан Мухаммедкарим but give no sentence length (a near miss).
        ("К какому сроку заключения приговорили Думана Мухаммедкарима?", True),
        ("How many people were injured in the Kordai clashes, according to HAQ?", True),
        ("Когда Токаев был в Брюсселе?", False),
        (
            "Why was Orazaly Yerzhanov deprived of liberty, according to the rights groups' letter?",
            False,
        ),
    ],
)
def test_russian_and_english_near_misses_abstain(index_dir, capsys, question, abstains):
    capsys.readouterr()
    assert main(["ask", question, "--json", *_args(index_dir)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["abstained"] is abstains, data["answer"]
    assert data["retrieved"]  # the closest passages are shown either way


@pytest.mark.model
def test_reindex_embeds_nothing_new(index_dir, capsys):
    capsys.readouterr()
    assert main(["index", *_args(index_dir), "--quiet"]) == 0
    assert "(0 newly embedded)" in capsys.readouterr().out


@pytest.mark.model
def test_ask_prints_answer_and_sources(index_dir, capsys):
    capsys.readouterr()
    assert main(["ask", "Қазақстан халқы Ассамблеясы қашан құрылды?", *_args(index_dir)]) == 0
    out = capsys.readouterr().out
    assert "[1]" in out and "Дереккөздер:" in out  # the labels follow the answer's language
    assert main(["ask", "When was the Assembly founded?", "--json", *_args(index_dir)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["language"] == "en" and data["retrieved"]


@pytest.mark.model
def test_batch_writes_one_answer_per_line(index_dir, tmp_path, capsys):
    src = tmp_path / "q.jsonl"
    rows = [
        {"id": "a", "question": "HAQ қозғалысы сайлауда не талап етеді?"},
        {"id": "b", "question": "Ал оның себебі неде?", "follows": "a"},
        {"id": "c", "question": "   "},
    ]
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    out = tmp_path / "out" / "a.jsonl"
    assert main(["batch", "--in", str(src), "--out", str(out), *_args(index_dir)]) == 0
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == ["a", "b", "c"]
    assert lines[0]["retrieved"] and "answer" in lines[0]
    assert "empty" in lines[2]["error"]


def test_batch_uses_a_prebuilt_index_as_is(tmp_path, capsys):
    from rag.index import build_index
    from rag.sources import make_document
    from tests.fakes import HashEmbedder

    folder = tmp_path / "other"
    gone = tmp_path / "corpus-that-was-deleted"
    build_index([make_document("x.txt", "Бір. Екі үш.")], folder, HashEmbedder(), corpus=gone)
    # an index built with another model is reported, not silently rebuilt from seeds
    code = main(["search", "бір", "--index", str(folder)])
    assert code == 2
    err = capsys.readouterr().err
    assert "does not match" in err and "not available to rebuild" in err
    assert (folder / "manifest.json").read_text().count("hash-embedder") == 1  # untouched


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kazrag.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ask", ""), "the question is empty"),
        (("ask", "x" * 3000), "too long"),
        (("batch", "--in", "/nonexistent.jsonl", "--out", "/tmp/x.jsonl"), "not found"),
        (("index", "--corpus", "/nonexistent"), "not found"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message):
    proc = _run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_malformed_jsonl_is_reported_with_its_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "question": "ok"}\n{not json\n', encoding="utf-8")
    proc = _run("batch", "--in", str(bad), "--out", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2 and "bad.jsonl:2: not valid JSON" in proc.stderr


# --- issue 10 §5 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("ask", "Абай кім?"),
        ("search", "Абай"),
        ("chat",),
        ("batch", "--in", str(SEEDS / "questions.jsonl"), "--out", "/tmp/kazrag-unused.jsonl"),
    ],
)
def test_a_missing_index_named_explicitly_is_an_error(tmp_path, args):
    typo = tmp_path / "indx"
    proc = _run(*args, "--index", str(typo))
    assert proc.returncode == 2, proc.stderr
    assert f"kazrag index --index {typo}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not typo.exists()  # nothing was built


@pytest.mark.parametrize("question", ["😀😀 ???", "...", "→ ★ ♥"])
def test_a_question_with_no_words_is_refused(question):
    proc = _run("ask", question)
    assert proc.returncode == 2
    assert "no words" in proc.stderr and "please ask a question in words" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout


def test_chat_and_batch_help_say_what_they_do():
    chat = _run("chat", "--help")
    assert chat.returncode == 0 and "follow-up" in chat.stdout and "exit" in chat.stdout
    batch = " ".join(_run("batch", "--help").stdout.split())
    for field in ("'question' (required)", "'id' (optional", "'follows'"):
        assert field in batch
    assert "follows up" in batch


@pytest.mark.parametrize(
    ("language", "sources", "passages"),
    [
        ("kk", "Дереккөздер:", "Ең жақын үзінділер:"),
        ("ru", "Источники:", "Ближайшие фрагменты:"),
        ("en", "Sources:", "Closest passages:"),
    ],
)
def test_labels_follow_the_answers_language(capsys, language, sources, passages):
    from kazrag.cli import _print_answer
    from rag.schema import Answer, Chunk, Citation, Hit

    chunk = Chunk("c1", "d.txt", "Құжат", "Мәтін.", 0, 6)
    cited = Answer(
        "q",
        "Жауап [1]",
        language,
        False,
        (Citation(1, "d.txt", "Құжат", "c1", 0, 6, "Мәтін."),),
        (),
    )
    _print_answer(cited)
    out = capsys.readouterr().out
    assert sources in out and passages not in out
    abstained = Answer("q", "Жоқ.", language, True, (), (Hit(chunk, 1.0, 1),))
    _print_answer(abstained)
    out = capsys.readouterr().out
    assert passages in out and sources not in out


def test_batch_lines_need_only_a_question(tmp_path):
    src = tmp_path / "q.jsonl"
    src.write_text('{"question": "   "}\n{"id": "x", "question": ""}\n', encoding="utf-8")
    from kazrag.cli import _batch_rows

    assert [r["id"] for r in _batch_rows(src)] == ["1", "x"]
    src.write_text('{"id": "a"}\n', encoding="utf-8")
    proc = _run("batch", "--in", str(src), "--out", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2 and "needs a 'question'" in proc.stderr


@pytest.mark.model
def test_stderr_has_no_progress_bars(index_dir):
    """Loading the model prints nothing: stderr is for kazrag's own messages."""
    proc = _run("ask", "Қазақстан халқы Ассамблеясы қашан құрылды?", *_args(index_dir))
    assert proc.returncode == 0, proc.stderr
    assert "[1]" in proc.stdout
    assert proc.stderr == ""
    verbose = _run("-v", "search", "Ассамблея", "-k", "1", *_args(index_dir))
    assert verbose.returncode == 0 and "INFO" in verbose.stderr
