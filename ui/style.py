"""How the chat looks (theme and CSS, light and dark) and the small script the page runs.

Colours: the highlighted quote, the citation markers and the answer text keep a contrast of at
least 4.5:1 (WCAG AA) in both themes; ``tests/test_ui_browser.py`` measures it in Chromium.
Gradio follows the system's dark preference by putting ``.dark`` on the page, so the dark
colours hang off that class.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from operator import itemgetter

import gradio as gr

from ui.texts import LANGUAGES, TEXT

# System fonts: no request to a font CDN, and they cover the Kazakh letters (ә ғ қ ң ө ұ ү һ і).
THEME = gr.themes.Soft(
    font=("ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans", "DejaVu Sans", "sans-serif"),
    font_mono=("ui-monospace", "DejaVu Sans Mono", "monospace"),
)

CSS = """
:root { --kz-cite: #3730a3; --kz-cite-hover: #e0e7ff; --kz-mark-bg: #fde68a;
  --kz-mark-text: #1c1917; --kz-sheet-shadow: rgba(0, 0, 0, .25); }
.dark { --kz-cite: #c7d2fe; --kz-cite-hover: #312e81; --kz-mark-bg: #854d0e;
  --kz-mark-text: #fefce8; --kz-sheet-shadow: rgba(0, 0, 0, .6); }
.kz-header h1 { margin: 0; font-size: 1.5rem; }
.kz-header p { margin: .25rem 0 0; }
.kz-header a { font-size: .9rem; }
a.kz-cite { font-weight: 600; text-decoration: none; padding: 0 .1em; border-radius: 4px;
  color: var(--kz-cite) !important; cursor: pointer; white-space: nowrap; }
a.kz-cite:hover { background: var(--kz-cite-hover); }
.kz-note { font-style: italic; }
.kz-tools { display: flex; gap: .9rem; margin-top: .45rem; font-size: .85rem; }
.kz-tools a { color: var(--kz-cite) !important; text-decoration: none; cursor: pointer; }
.kz-tools a:hover { text-decoration: underline; }
.kz-copytext, .kz-copied { display: none; }
.kz-tools.kz-done .kz-copied { display: inline; }
.kz-hidden { display: none !important; }
#kz-sources { max-height: 640px; overflow-y: auto; }
#kz-doc-list { max-height: 320px; overflow-y: auto !important; }
#kz-status { min-height: 3.6rem; }
.kz-turn { border-bottom: 1px solid var(--border-color-primary); padding: .35rem 0; }
.kz-turn > summary { cursor: pointer; font-weight: 600; }
.kz-src { border: 1px solid var(--border-color-primary); border-radius: 8px;
  margin: .5rem 0; padding: .4rem .6rem; background: var(--background-fill-secondary); }
.kz-src > summary { cursor: pointer; }
.kz-src .kz-num { font-weight: 700; color: var(--kz-cite); margin-right: .3em; }
.kz-src .kz-passage { line-height: 1.55; margin: .5rem 0 .3rem; white-space: pre-wrap; }
.kz-src mark { background: var(--kz-mark-bg); color: var(--kz-mark-text);
  padding: 0 .1em; border-radius: 3px; }
.kz-src .kz-pos { font-size: .85rem; }
.kz-bar { height: 5px; background: var(--border-color-primary); border-radius: 3px;
  position: relative; margin-top: .25rem; }
.kz-bar span { position: absolute; top: 0; height: 5px; min-width: 3px;
  background: var(--color-accent); border-radius: 3px; }
.kz-flash { animation: kz-flash 1.6s ease-out; }
@keyframes kz-flash { 0% { box-shadow: 0 0 0 4px var(--color-accent); }
  100% { box-shadow: 0 0 0 0 transparent; } }
.kz-docs { width: 100%; font-size: .88rem; border-collapse: collapse; border: none !important; }
.kz-docs td, .kz-docs th { padding: .25rem .4rem; border: none !important;
  border-bottom: 1px solid var(--border-color-primary) !important; text-align: left;
  vertical-align: top; }
.kz-docs small { opacity: .75; }
#kz-sheet { position: fixed; left: 0; right: 0; bottom: 0; z-index: 1000; max-height: 50vh;
  overflow-y: auto; padding: .6rem .8rem 1rem; background: var(--background-fill-primary);
  color: var(--body-text-color); border-top: 1px solid var(--border-color-primary);
  border-radius: 12px 12px 0 0; box-shadow: 0 -6px 24px var(--kz-sheet-shadow); }
#kz-sheet[hidden] { display: none; }
#kz-sheet .kz-sheet-head { position: sticky; top: -.6rem; display: flex; gap: .6rem;
  align-items: center; padding: .3rem 0; background: var(--background-fill-primary); }
#kz-sheet .kz-sheet-title { flex: 1; font-weight: 600; overflow: hidden; white-space: nowrap;
  text-overflow: ellipsis; }
#kz-sheet .kz-sheet-close { border: 1px solid var(--border-color-primary);
  background: var(--background-fill-secondary); color: var(--body-text-color);
  border-radius: 6px; padding: .15rem .6rem; cursor: pointer; font: inherit; }
#kz-sheet .kz-src { margin-top: .2rem; }
"""


def _css_string(text: str) -> str:
    """``text`` as a CSS string literal (line breaks as ``\\A``)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\A ") + '"'


def _replace_text(selector: str, text_of: Callable[[dict[str, str]], str], style: str) -> str:
    """CSS drawing the chat's text in place of the text of Gradio's ``selector``, in the
    language checked in the picker (the first language when none is checked yet)."""
    rules = [
        f"{selector} {{ font-size: 0 !important; }}",
        f"{selector}::{PSEUDO[selector]} {{ {style} }}",
    ]
    for i, (label, lang) in enumerate(LANGUAGES.items()):
        picked = f'body:has(#kz-lang input[value="{label}"]:checked) ' if i else ""
        text = _css_string(text_of(TEXT[lang]))
        rules.append(f"{picked}{selector}::{PSEUDO[selector]} {{ content: {text}; }}")
    return "\n".join(rules) + "\n"


# Gradio's own strings that do not follow a language picked inside the app: it translates them
# by the browser's locale only (and has no Kazakh). The upload drop zone says "Drop File Here -
# or - Click to Upload"; a toast's title is its type ("Warning"), whatever title it was given.
DROP_ZONE = '#kz-upload [data-testid="upload-text"]'
TOAST_TITLES = {kind: f".toast-title.{kind}" for kind in ("info", "warning", "error", "success")}
PSEUDO = {DROP_ZONE: "after", **{sel: "before" for sel in TOAST_TITLES.values()}}


def _gradio_strings_css() -> str:
    css = _replace_text(
        DROP_ZONE,
        lambda t: f"{t['drop']}\n{t['or']}\n{t['click_upload']}",
        "display: block; font-size: var(--text-lg); line-height: 1.6; white-space: pre-line; "
        "color: var(--body-text-color);",
    )
    for kind, selector in TOAST_TITLES.items():
        key = f"{kind}_title"
        css += _replace_text(selector, itemgetter(key), "font-size: var(--text-lg);")
    # The count of stacked toasts sits inside the title: keep it visible.
    return css + ".toast-title .toast-count { font-size: var(--text-lg); }\n"


def _page_texts() -> dict[str, dict[str, str]]:
    """The strings the page script needs, by the language picker's label."""
    keys = ("close", "copied")
    return {label: {k: TEXT[lang][k] for k in keys} for label, lang in LANGUAGES.items()}


# Markers are links to their card's id. Where the sources panel sits beside the chat, a click
# opens the card (and its question group) there, scrolls it into view and flashes it. Where it
# sits below the chat (a phone) or is closed, that would jump far away from the answer, so the
# card is shown in a sheet over the bottom of the screen instead, and the answer stays in view.
# The copy and regenerate links of an answer are handled here too. Capture phase, so the
# chat's own link handling (open in a new tab) never sees the click.
_SCRIPT = """
(function () {
  var TEXTS = __TEXTS__;
  function texts() {
    var checked = document.querySelector("#kz-lang input:checked");
    return TEXTS[checked ? checked.value : ""] || TEXTS[Object.keys(TEXTS)[0]];
  }
  function scrollParent(el) {
    for (var p = el.parentElement; p; p = p.parentElement) {
      var o = getComputedStyle(p).overflowY;
      if ((o === "auto" || o === "scroll") && p.scrollHeight > p.clientHeight) return p;
    }
    return null;
  }
  function besideTheChat(card) {
    var panel = document.getElementById("kz-sources");
    var chat = document.getElementById("kz-chat");
    if (!panel || !chat) return false;
    var p = panel.getBoundingClientRect(), c = chat.getBoundingClientRect();
    return p.width > 0 && p.height > 0 && p.left >= c.right - 1;
  }
  function sheet() {
    var s = document.getElementById("kz-sheet");
    if (!s) {
      s = document.createElement("div");
      s.id = "kz-sheet";
      s.setAttribute("role", "dialog");
      s.hidden = true;
      s.innerHTML = '<div class="kz-sheet-head"><span class="kz-sheet-title"></span>' +
        '<button type="button" class="kz-sheet-close"></button></div>' +
        '<div class="kz-sheet-body"></div>';
      s.querySelector("button").addEventListener("click", function () { s.hidden = true; });
      (document.querySelector(".gradio-container") || document.body).appendChild(s);
    }
    s.querySelector("button").textContent = texts().close;
    return s;
  }
  function showInSheet(card, link) {
    var s = sheet();
    var copy = card.cloneNode(true);
    copy.removeAttribute("id");
    copy.open = true;
    s.querySelector(".kz-sheet-body").replaceChildren(copy);
    var summary = card.querySelector("summary");
    s.querySelector(".kz-sheet-title").textContent = summary ? summary.textContent : "";
    s.hidden = false;
    // The quote, not the context before it, at the top of the sheet.
    var mark = s.querySelector("mark");
    s.scrollTop = 0;
    if (mark) {
      var head = s.querySelector(".kz-sheet-head").getBoundingClientRect().height;
      s.scrollTop = Math.max(0, mark.getBoundingClientRect().top - s.getBoundingClientRect().top - head - 8);
    }
    // Keep the tapped marker (and so its answer) above the sheet.
    var overlap = link.getBoundingClientRect().bottom - s.getBoundingClientRect().top + 12;
    var box = scrollParent(link);
    if (overlap > 0 && box) box.scrollTop += overlap;
    overlap = link.getBoundingClientRect().bottom - s.getBoundingClientRect().top + 12;
    if (overlap > 0) window.scrollBy(0, overlap);
  }
  function openCard(link) {
    var card = document.getElementById((link.getAttribute("href") || "").slice(1));
    if (!card) return;
    var group = card.closest("details.kz-turn");
    if (group) group.open = true;
    card.open = true;
    if (!besideTheChat(card)) { showInSheet(card, link); return; }
    card.scrollIntoView({behavior: "smooth", block: "nearest"});
    card.classList.remove("kz-flash");
    void card.offsetWidth;
    card.classList.add("kz-flash");
  }
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Served over plain http on another host: the old way still works there.
    var area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    return Promise.resolve();
  }
  function copyAnswer(link) {
    var tools = link.closest(".kz-tools");
    var payload = tools && tools.querySelector(".kz-copytext");
    if (!payload) return;
    copyText(payload.textContent).then(function () {
      var done = tools.querySelector(".kz-copied");
      if (!done) {
        done = document.createElement("span");
        done.className = "kz-copied";
        tools.appendChild(done);
      }
      done.textContent = "✓ " + texts().copied;
      tools.classList.add("kz-done");
      setTimeout(function () { tools.classList.remove("kz-done"); }, 2000);
    });
  }
  document.addEventListener("click", function (ev) {
    var a = ev.target && ev.target.closest ? ev.target.closest("a.kz-cite, a.kz-copy, a.kz-regen") : null;
    if (!a) return;
    ev.preventDefault();
    ev.stopPropagation();
    if (a.classList.contains("kz-cite")) openCard(a);
    else if (a.classList.contains("kz-copy")) copyAnswer(a);
    else {
      var button = document.getElementById("kz-regen-btn");
      if (button) button.click();
    }
  }, true);
  document.addEventListener("keydown", function (ev) {
    var s = document.getElementById("kz-sheet");
    if (ev.key === "Escape" && s) s.hidden = true;
  });
})();
"""

CSS += _gradio_strings_css()

HEAD = "<script>" + _SCRIPT.replace("__TEXTS__", json.dumps(_page_texts())) + "</script>"
