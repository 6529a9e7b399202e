"""The chat without a browser: rendering, texts, handlers, feedback and the login page.

Handlers run on the hash-seeded fake embedder (plumbing); ``tests/test_ui_browser.py`` drives
the real page in Chromium and ``tests/test_ui_examples.py`` checks the examples with the real
model.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rag.pipeline import Engine, QuestionError, clean_question
from rag.schema import Answer, Citation
from rag.settings import Settings
from tests.helpers import SEED_FILES, small_engine
from ui import login, render, server, texts
from ui.app import build_ui
from ui.feedback import feedback_path, record_feedback
from ui.handlers import LANGUAGE_OUTPUTS, ChatHandlers, default_threshold

QUESTION = "Қордай оқиғасы қашан болды?"


def _answer(text: str, citations: tuple[Citation, ...] = (), note: str | None = None) -> Answer:
    return Answer(
        question="q",
        answer=text,
        language="kk",
        abstained=not citations,
        citations=citations,
        retrieved=(),
        note=note,
    )


def _citation(marker: int = 1, title: str = "Құжат", start: int = 10, end: int = 20) -> Citation:
    return Citation(marker, "doc.txt", title, "c1", start, end, "quote")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return small_engine(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def handlers(engine: Engine) -> ChatHandlers:
    return ChatHandlers(engine.settings, engine)


def _last(items: Any) -> Any:
    *_, last = items
    return last


# --- rendering: escaped text in, HTML out ----------------------------------------------------


def test_render_text_escapes_markup() -> None:
    assert render.render_text('<img src=x onerror="alert(1)">\nжол') == (
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;<br>жол"
    )


def test_render_answer_links_known_markers_only() -> None:
    ans = _answer("Бірінші <b>сөйлем</b> [1]. Белгісіз [7].", (_citation(title='"<Атау>"'),))
    out = render.render_answer(ans, turn=3)
    assert '<a class="kz-cite" href="#kz-src-3-1" title="&quot;&lt;Атау&gt;&quot;">[1]</a>' in out
    assert "[7]" in out and 'href="#kz-src-3-7"' not in out
    assert "&lt;b&gt;сөйлем&lt;/b&gt;" in out and "<b>" not in out


def test_render_answer_shows_the_note() -> None:
    out = render.render_answer(_answer("Жауап [1]", (_citation(),), note="fallback <used>"), 0)
    assert '<span class="kz-note">fallback &lt;used&gt;</span>' in out


def test_answer_tools_copy_text_and_regenerate_only_on_the_last() -> None:
    ans = _answer("Жауап <b>бір</b> [1].", (_citation(title="Атау <x>"),), note="ескерту")
    last = render.render_answer(ans, 0, "en", last=True)
    older = render.render_answer(ans, 0, "en")
    assert 'class="kz-copy"' in last and 'class="kz-copy"' in older
    assert 'class="kz-regen"' in last and 'class="kz-regen"' not in older
    assert ">Copy<" in last and ">Regenerate<" in last
    assert ">Көшіру<" in render.render_answer(ans, 0, "kk")
    # The copied text: the answer, its note and its sources as plain text (escaped in the page).
    copied = render.copy_text(ans.to_json(), "en")
    assert copied == "Жауап <b>бір</b> [1].\nескерту\n\nSources:\n[1] Атау <x> (doc.txt)"
    assert "Жауап &lt;b&gt;бір&lt;/b&gt; [1].\nескерту" in last and "<b>" not in last


def test_render_messages_rebuilds_the_conversation() -> None:
    turns = [{"answer": _answer(f"Жауап {i} [1]", (_citation(),)).to_json()} for i in range(3)]
    messages = render.render_messages(turns, "kk")
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert ["kz-regen" in m["content"] for m in messages[1::2]] == [False, False, True]
    assert 'href="#kz-src-2-1"' in messages[-1]["content"]
    assert not any("kz-regen" in m["content"] for m in render.render_messages(turns, "kk", False))


def test_render_passage_highlights_the_span_in_context() -> None:
    raw = "а" * 1000 + " <script>cited\nspan</script> " + "б" * 1000
    start = raw.index("<script>")
    end = raw.index("</script>") + len("</script>")
    out = render.render_passage(raw, start, end, "ignored")
    assert "<mark>&lt;script&gt;cited span&lt;/script&gt;</mark>" in out
    assert out.startswith("…") and out.endswith("…")
    assert len(out) < 2 * render.CONTEXT_CHARS + 200
    assert "<script>" not in out


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (5, 2), (0, 10_000)])
def test_render_passage_falls_back_to_the_quote_on_bad_offsets(start: int, end: int) -> None:
    assert (
        render.render_passage("short text", start, end, "a <quote>")
        == "<mark>a &lt;quote&gt;</mark>"
    )


def test_render_passage_without_the_document() -> None:
    assert render.render_passage(None, 0, 3, "q") == "<mark>q</mark>"


def test_render_sources_cards_and_positions(engine: Engine) -> None:
    raw = (engine.settings.corpus / SEED_FILES[0]).read_text(encoding="utf-8")
    start = raw.index("HAQ қозғалысы негізсіз")
    citation = Citation(
        1, SEED_FILES[0], "Title <x>", "c", start, start + 40, raw[start : start + 40]
    )
    turns = [
        {"answer": _answer("Бірінші [1]", (citation,)).to_json()},
        {"answer": _answer("Екінші [1]", (citation,)).to_json()},
    ]
    out = render.render_sources(engine.settings, turns, "kk")
    # Newest question first and open; every card has its id, its highlight and its position.
    assert out.index('id="kz-turn-1" open') < out.index('id="kz-turn-0"')
    assert 'id="kz-src-0-1"' in out and 'id="kz-src-1-1" open' in out
    assert f"<mark>{raw[start : start + 40]}</mark>" in out.replace("\n", " ")
    pct = round(100 * start / len(raw))
    assert f"{start}–{start + 40} таңба ({len(raw)} таңбаның {pct}%-ы)" in out
    assert "Title &lt;x&gt;" in out
    assert "of" in render.render_sources(engine.settings, turns, "en")
    assert texts.TEXT["ru"]["sources_empty"] in render.render_sources(engine.settings, [], "ru")


# --- texts ------------------------------------------------------------------------------------


def test_every_language_has_every_label() -> None:
    keys = set(texts.TEXT["kk"])
    assert all(set(texts.TEXT[lang]) == keys for lang in ("ru", "en"))
    assert set(texts.LANGUAGES.values()) == {"kk", "ru", "en"}
    for lang in ("kk", "ru"):  # nothing left in English (names and codes aside)
        same = {k for k in keys if texts.TEXT[lang][k] == texts.TEXT["en"][k]}
        assert same <= {"api"}, (lang, same)


@pytest.mark.parametrize(
    ("question", "code"),
    [(42, "not_text"), ("   ", "empty"), ("😀😀 ???", "no_words"), ("сөз " * 1000, "too_long")],
)
def test_question_errors_are_said_in_the_interface_language(question: object, code: str) -> None:
    with pytest.raises(QuestionError) as caught:
        clean_question(question, 2000)
    assert caught.value.code == code
    said = {lang: texts.question_error(caught.value, lang) for lang in texts.TEXT}
    assert len(set(said.values())) == 3  # three different sentences
    english = str(caught.value)
    assert english not in said["kk"] and english not in said["ru"]
    if code == "too_long":
        assert all("2000" in s for s in said.values())
    # A code the chat does not know yet still gets a sentence in the right language.
    assert (
        texts.question_error(QuestionError("new", code="other"), "kk")
        == (texts.TEXT["kk"]["q_invalid"])
    )


@pytest.mark.parametrize(
    ("header", "lang"),
    [("ru-RU,ru;q=0.9,en;q=0.8", "ru"), ("kk-KZ", "kk"), ("de-DE,en;q=0.5", "en"), ("de", None)],
)
def test_browser_language(header: str, lang: str | None) -> None:
    assert texts.browser_language(header) == lang


# --- handlers ---------------------------------------------------------------------------------


def test_refused_question_is_warned_about_in_kazakh(handlers: ChatHandlers) -> None:
    with warnings.catch_warnings(record=True) as caught:  # gr.Warning outside a request
        warnings.simplefilter("always")
        out = list(handlers.respond("😀😀 ???", [], [], 5, "extractive", "Қазақша"))
    assert out == [("😀😀 ???", [], [], out[0][3])]  # nothing asked, the text kept
    shown = [str(w.message) for w in caught]
    assert shown == [f"{texts.TEXT['kk']['bad_question']}: {texts.TEXT['kk']['q_no_words']}"]


def test_the_threshold_slider_overrides_the_calibrated_threshold(
    handlers: ChatHandlers, engine: Engine
) -> None:
    # small_engine never abstains (threshold -1); the slider's start means "as calibrated".
    assert handlers.threshold == default_threshold(engine.settings) == -1.0
    _, _, turns, _ = _last(handlers.respond(QUESTION, [], [], 5, None, "Қазақша", -1.0))
    assert not turns[-1]["answer"]["abstained"]
    _, _, turns, _ = _last(handlers.respond(QUESTION, [], [], 5, None, "Қазақша", 1.5))
    assert turns[-1]["answer"]["abstained"] and turns[-1]["answer"]["retrieved"]
    assert engine.generator.abstain_kk == -1.0  # the shared engine is untouched
    assert default_threshold(Settings()) == 0.82  # the calibrated Kazakh threshold


def test_regenerate_replaces_the_last_answer(handlers: ChatHandlers) -> None:
    _, _, turns, _ = _last(handlers.respond(QUESTION, [], [], 5, None, "English"))
    _, messages, turns, _ = _last(
        handlers.respond("HAQ не талап етеді?", [], turns, 5, None, "English")
    )
    assert len(turns) == 2 and len(messages) == 4
    # Regenerated with one passage only: the same question, a new answer in its place.
    messages2, turns2, sources = _last(handlers.regenerate(messages, turns, 1, None, "English"))
    assert len(turns2) == 2 and turns2[0] == turns[0]
    assert turns2[1]["answer"]["question"] == "HAQ не талап етеді?"
    assert len(turns2[1]["answer"]["retrieved"]) == 1 != len(turns[1]["answer"]["retrieved"])
    assert "kz-regen" in messages2[-1]["content"] and "kz-regen" not in messages2[1]["content"]
    assert 'id="kz-turn-1"' in sources
    # Nothing to regenerate: nothing changes.
    ((history, kept, _),) = list(handlers.regenerate([], [], 5, None, "English"))
    assert history == [] and kept == []


def test_conversation_is_kept_to_a_bounded_number_of_turns(
    handlers: ChatHandlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ui import handlers as module

    monkeypatch.setattr(module, "MAX_TURNS", 2)
    turns: list[dict[str, Any]] = []
    for q in ("Бірінші сұрақ?", "Екінші сұрақ?", "Үшінші сұрақ?"):
        _, messages, turns, _ = _last(handlers.respond(q, [], turns, 5, None, "Қазақша"))
    assert [t["answer"]["question"] for t in turns] == ["Екінші сұрақ?", "Үшінші сұрақ?"]
    assert len(messages) == 4 and 'href="#kz-src-1-' in messages[-1]["content"]
    assert all(len(t["answer"]["retrieved"]) <= 3 for t in turns)


def test_page_load_restores_the_conversation_and_the_language(handlers: ChatHandlers) -> None:
    _, _, turns, _ = _last(handlers.respond(QUESTION, [], [], 5, None, "Қазақша"))
    request = SimpleNamespace(headers={"accept-language": "ru-RU,ru;q=0.9"})
    label, messages, sources, table, _, box, send = handlers.on_load(turns, None, request)
    assert label == "Русский" and len(messages) == 2
    assert box["interactive"] is True and send["interactive"] is True
    assert texts.TEXT["ru"]["turn"] in sources and texts.TEXT["ru"]["col_title"] in table
    # A language picked before wins over the browser's; nothing stored is an empty chat.
    label, messages, *_ = handlers.on_load(None, "en", request)
    assert (label, messages) == ("English", [])


def test_language_change_updates_every_listed_component(handlers: ChatHandlers) -> None:
    out = handlers.on_language("English", [])
    assert len(out) == len(LANGUAGE_OUTPUTS)
    assert out[-1] == "en"  # saved in the browser
    assert out[LANGUAGE_OUTPUTS.index("new_chat")]["value"] == "New conversation"
    threshold = out[LANGUAGE_OUTPUTS.index("threshold")]
    assert threshold["label"] == "Answer threshold" and "0.82" in threshold["info"]


def test_removal_asks_first(handlers: ChatHandlers) -> None:
    row, question = handlers.ask_remove("ауыл.txt", "Русский")
    assert row["visible"] is True and "ауыл.txt" in question and "Удалить" in question
    row, _ = handlers.ask_remove(None, "Русский")
    assert row["visible"] is False


def test_the_layout_wires_every_handler(engine: Engine) -> None:
    demo = build_ui(engine.settings, engine)
    names = {f.fn.__name__ for f in demo.fns.values() if f.fn is not None}
    assert names >= {
        "respond",
        "regenerate",
        "on_clear",
        "on_like",
        "on_upload",
        "ask_remove",
        "on_remove",
        "on_language",
        "on_load",
    }


# --- feedback ---------------------------------------------------------------------------------


def test_feedback_goes_to_a_settings_derived_jsonl(tmp_path: Path) -> None:
    settings = Settings(uploads=tmp_path / "data" / "uploads")
    assert feedback_path(settings) == tmp_path / "data" / "feedback.jsonl"
    turn = {"answer": _answer("Жауап [1]", (_citation(),)).to_json(), "generator": "extractive"}
    record_feedback(settings, turn, "up")
    record_feedback(settings, turn, "down")
    rows = [json.loads(x) for x in feedback_path(settings).read_text("utf-8").splitlines()]
    assert [r["rating"] for r in rows] == ["up", "down"]
    assert rows[0]["question"] == "q" and rows[0]["answer"] == "Жауап [1]"
    assert rows[0]["citations"][0]["doc_id"] == "doc.txt"


# --- the login page (a token is set) ---------------------------------------------------------

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def client(engine: Engine) -> Any:
    with TestClient(server.build_app(engine.settings, engine, token=TOKEN)) as c:
        yield c


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_login_page_speaks_the_language_and_names_the_token(lang: str) -> None:
    page = login.login_page(lang)
    t = texts.TEXT[lang]
    for key in ("login_title", "login_token", "login_button"):
        assert t[key] in page
    assert "KAZRAG_API_TOKEN" in page and f'<html lang="{lang}">' in page
    assert 'name="username"' not in page  # only the token is asked for
    assert t["login_failed"] in login.login_page(lang, failed=True)


def test_login_flow(client: Any) -> None:
    client.cookies.clear()
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert r.status_code == 200 and texts.TEXT["ru"]["login_hint"] in r.text
    assert texts.TEXT["en"]["login_title"] in client.get("/login?lang=en").text
    r = client.post("/login", data={"password": "wrong", "lang": "kk"})
    assert r.status_code == 400 and texts.TEXT["kk"]["login_failed"] in r.text
    assert client.get("/config").status_code == 401
    r = client.post("/login", data={"password": TOKEN}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.cookies[login.COOKIE]
    assert TOKEN not in cookie and cookie == login.session_value(TOKEN)
    assert client.get("/config").status_code == 200
    assert client.get("/").status_code == 200
    client.get("/logout")
    assert client.get("/config").status_code == 401


def test_the_login_cookie_opens_a_document_file_and_nothing_else_of_the_api(client: Any) -> None:
    # The chat's "p. N" link is followed by the browser: the cookie, no Authorization header.
    path = f"/api/documents/{SEED_FILES[0]}/file"
    client.cookies.clear()
    assert client.get(path).status_code == 401
    for value in (TOKEN, login.session_value("other-token")):
        client.cookies.set(login.COOKIE, value)
        assert client.get(path).status_code == 401, value
    client.cookies.clear()
    assert client.post("/login", data={"password": TOKEN}).status_code == 200
    r = client.get(path)
    assert r.status_code == 200 and r.text.strip() and "text/plain" in r.headers["content-type"]
    # The cookie stands in for the token on the file route only.
    assert client.get("/api/documents").status_code == 401
    # A wrong bearer token is refused even beside a valid cookie.
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    client.cookies.clear()
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_forged_cookie_is_refused(client: Any) -> None:
    client.cookies.clear()
    for value in ("", TOKEN, login.session_value("other-token")):
        client.cookies.set(login.COOKIE, value)
        assert client.get("/config").status_code == 401, value
    client.cookies.clear()
