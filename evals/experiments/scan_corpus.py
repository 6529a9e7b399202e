"""The seed corpus as scans: image-only PDFs written the way a document scanner writes them.

    python -m evals.experiments.scan_corpus write --out DIR [--dpi 150 300] [--mode g4|jpeg]
    python -m evals.experiments.scan_corpus sizes [--pages 20]
    python -m evals.experiments.scan_corpus upload --out DIR [--pages 20]
    python -m evals.experiments.scan_corpus reread --out DIR [--dpi 300] [--pages-per-doc 2]
    python -m evals.experiments.scan_corpus report --out DIR --upload DIR/upload-….json \
        [--write BENCHMARKS.md]

``write`` typesets every seed document onto A4 pages (``ocr_quality.typeset``), degrades each
page image as a flatbed scanner does (a slight skew, sensor noise, a soft edge) and writes one
image-only PDF per document, ``DIR/scans-<dpi>/<doc stem>.pdf``, with the text typeset on each
page in ``DIR/pages-<dpi>.json`` (for the character error rate). The folder is then an ordinary
corpus: ``kazrag index --corpus DIR/scans-300 --index DIR/index-300`` reads it through the
real OCR reader, and ``kazrag eval --corpus DIR/scans-300 --index DIR/index-300`` runs the
question set on it (the evaluation maps each gold quote to the scan of the same document by
file stem, and places it approximately when OCR misread a letter; see
``evals.evaluation.EvidenceLocator``).

Pages are written as a scanner's two usual modes write them:

- ``g4``: bilevel (1 bit per pixel, thresholded), CCITT Group 4 — the "black and white /
  text" mode of document scanners; a text page is a few tens of kilobytes.
- ``jpeg``: greyscale JPEG at :data:`JPEG_QUALITY` — the "greyscale" mode; several hundred
  kilobytes a page at 300 dpi.

``sizes`` prints what a ``--pages``-page scan weighs in each mode and resolution (no OCR), and
``upload`` times the upload of such a scan through the API's upload route on loopback (OCR,
cleaning, chunking, embedding, index swap) into a copy of the seed index. ``report`` turns
what the study left in ``DIR`` into BENCHMARKS.md § Documents and OCR (the commands are
listed there).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from evals.experiments.ocr_quality import typeset

MODES = ("g4", "jpeg")
# Scanner software defaults sit at 70-85; 75 is also Pillow's default.
JPEG_QUALITY = 75
# Skew of a page laid by hand on a flatbed: within about half a degree.
MAX_SKEW_DEGREES = 0.5
NOISE_SIGMA = 6.0
WHITE_POINT = 235


def scanner_page(page: Image.Image, seed: int) -> Image.Image:
    """``page`` (greyscale, white paper) as a scanner sees it: skewed, noisy, slightly soft."""
    rng = random.Random(seed)
    angle = rng.uniform(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES)
    out = page.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
    out = out.filter(ImageFilter.GaussianBlur(0.6))
    # Grey sensor noise around the true value, from the page's own seed (PIL's effect_noise
    # cannot be seeded, and a study must write the same scans twice).
    pixels = np.asarray(out, dtype=np.float32)
    pixels += np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, pixels.shape)
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    # The scanner's white point: paper a little below white reads as white, as scanner
    # software's default "background removal" does (else JPEG spends its bytes on paper grain).
    return noisy.point(lambda v: min(255, round(v * 255 / WHITE_POINT)))


def encode(pages: Sequence[Image.Image], dpi: int, mode: str) -> bytes:
    """Page images as an image-only PDF in a scanner's ``mode`` (``g4`` or ``jpeg``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    buf = io.BytesIO()
    if mode == "g4":
        # A fixed threshold, as scanner firmware does (no dithering: dithered text OCRs badly).
        images = [p.convert("L").point(lambda v: 255 if v > 160 else 0, mode="1") for p in pages]
        first, *rest = images
        first.save(buf, format="PDF", save_all=True, append_images=rest, resolution=float(dpi))
        data = buf.getvalue()
        if b"/CCITTFaxDecode" not in data:
            raise RuntimeError("this Pillow wrote no CCITT G4 images (built without libtiff?)")
        return data
    images = [p.convert("L") for p in pages]
    first, *rest = images
    first.save(
        buf,
        format="PDF",
        save_all=True,
        append_images=rest,
        resolution=float(dpi),
        quality=JPEG_QUALITY,
    )
    return buf.getvalue()


def scan_document(text: str, dpi: int, mode: str, seed: int) -> tuple[bytes, list[str]]:
    """``text`` typeset on A4, scanned at ``dpi`` in ``mode``: the PDF and the text per page."""
    images, texts = typeset(text, dpi)
    scanned = [scanner_page(im, seed * 1000 + i) for i, im in enumerate(images)]
    return encode(scanned, dpi, mode), texts


def write(out: Path, dpis: Sequence[int], mode: str) -> None:
    """``out/scans-<dpi>/<stem>.pdf`` for every seed document, and ``pages.json`` beside them."""
    from rag.settings import from_env
    from rag.sources import load_corpus

    docs = load_corpus(from_env().corpus)
    for dpi in dpis:
        folder = out / f"scans-{dpi}"
        folder.mkdir(parents=True, exist_ok=True)
        pages: dict[str, list[str]] = {}
        total = 0
        for n, doc in enumerate(docs):
            data, texts = scan_document(doc.clean, dpi, mode, seed=n)
            name = f"{Path(doc.doc_id).stem}.pdf"
            (folder / name).write_bytes(data)
            pages[name] = texts
            total += len(data)
            print(f"{folder / name}: {len(texts)} pages, {len(data) / 1e6:.2f} MB", file=sys.stderr)
        meta = {"dpi": dpi, "mode": mode, "jpeg_quality": JPEG_QUALITY, "pages": pages}
        (folder.parent / f"pages-{dpi}.json").write_text(
            json.dumps(meta, ensure_ascii=False), encoding="utf-8"
        )
        n_pages = sum(len(t) for t in pages.values())
        print(f"{dpi} dpi {mode}: {n_pages} pages, {total / 1e6:.2f} MB", file=sys.stderr)


def long_text(pages: int) -> str:
    """Seed text enough for ``pages`` A4 pages (the corpus over again if it is too short)."""
    from rag.settings import from_env
    from rag.sources import load_corpus

    text = "\n\n".join(d.clean for d in load_corpus(from_env().corpus))
    return "\n\n".join([text] * (1 + pages // 30))


def scan_of(pages: int, dpi: int, mode: str) -> bytes:
    """A ``pages``-page scan of seed text at ``dpi`` in ``mode``."""
    images, _ = typeset(long_text(pages), dpi)
    scanned = [scanner_page(im, i) for i, im in enumerate(images[:pages])]
    return encode(scanned, dpi, mode)


def sizes(pages: int) -> dict[str, float]:
    """Megabytes of a ``pages``-page scan per mode and resolution."""
    out = {}
    for dpi in (150, 200, 300):
        for mode in MODES:
            out[f"{mode} {dpi} dpi"] = len(scan_of(pages, dpi, mode)) / 1e6
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def upload(out: Path, pages: int, dpi: int, mode: str) -> dict[str, Any]:
    """Time the upload of a ``pages``-page scan through ``POST /api/documents`` on loopback.

    The server runs in this process (uvicorn in a thread, 127.0.0.1 on a free port) over a
    copy of the seed index; the upload's own progress lines split OCR from the rest.
    """
    import httpx
    import uvicorn

    from rag import library
    from rag.api import create_app
    from rag.pipeline import make_engine
    from rag.settings import from_env

    data = scan_of(pages, dpi, mode)
    settings = from_env()
    with tempfile.TemporaryDirectory(prefix="kazrag-scan-upload-") as tmp:
        root = Path(tmp)
        shutil.copytree(settings.index, root / "index")
        local = settings.replace(index=root / "index", uploads=root / "uploads")
        engine = make_engine(local)
        marks: dict[str, float] = {}
        t0 = [0.0]
        real_put = library.put_document

        def timed_put(engine: Any, name: str, body: bytes, progress: Any = None) -> Any:
            def step(fraction: float, message: str) -> None:
                marks.setdefault(
                    message.split(":")[0].split(" (")[0].split()[0], time.perf_counter() - t0[0]
                )
                if progress is not None:
                    progress(fraction, message)

            return real_put(engine, name, body, step)

        # The route calls library.put_document without a progress callback; wrapping it (in
        # this process, for this measurement only) records when each stage starts without
        # changing what the route does.
        library.put_document = timed_put  # type: ignore[assignment]
        app = create_app(local, engine, token="")
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.1)
            t0[0] = time.perf_counter()
            load_before = os.getloadavg()[0]
            with httpx.Client(timeout=3600) as client:
                reply = client.post(
                    f"http://127.0.0.1:{port}/api/documents",
                    files={"file": (f"scan{pages}.pdf", data, "application/pdf")},
                )
            total = time.perf_counter() - t0[0]
            load_after = os.getloadavg()[0]
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            library.put_document = real_put  # type: ignore[assignment]
    if reply.status_code >= 300:
        raise SystemExit(f"upload failed: {reply.status_code} {reply.text[:300]}")
    doc = reply.json()["document"]
    result = {
        "pages": pages,
        "dpi": dpi,
        "mode": mode,
        "bytes": len(data),
        "total_s": round(total, 1),
        "marks_s": {k: round(v, 1) for k, v in marks.items()},
        "chunks": doc.get("chunks"),
        "status": reply.status_code,
        # 1-minute load average when the upload started and ended (this process included).
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"upload-{pages}p-{dpi}-{mode}.json").write_text(json.dumps(result, indent=2))
    return result


@dataclass(frozen=True)
class OcrRead:
    """How the OCR reader read one resolution's scans (from the scan index's text cache)."""

    dpi: int
    pages: int
    cer: float  # total edits over total characters, white space folded
    worst_page_cer: float
    mean_confidence: float
    low_confidence: int


def ocr_read(out: Path, dpi: int) -> OcrRead:
    """CER of every page of ``out/scans-<dpi>`` as ``kazrag index`` read it into ``index-<dpi>``.

    The page texts come from the index's extraction cache (``texts/<sha256>.json``), so this
    measures exactly what was indexed, without running OCR again.
    """
    from evals.experiments.ocr_quality import edit_distance, fold_space
    from rag.index import TEXTS
    from rag.readers import Extracted, file_key

    meta = json.loads((out / f"pages-{dpi}.json").read_text(encoding="utf-8"))
    edits = chars = 0
    worst = 0.0
    confs: list[float] = []
    low = n = 0
    for name, typeset_pages in meta["pages"].items():
        data = (out / f"scans-{dpi}" / name).read_bytes()
        cached = out / f"index-{dpi}" / TEXTS / f"{file_key(data)}.json"
        extracted = Extracted.from_json(json.loads(cached.read_text(encoding="utf-8")))
        starts = [p.start for p in extracted.pages] + [len(extracted.text)]
        for i, ref in enumerate(typeset_pages):
            got = extracted.text[starts[i] : starts[i + 1]]
            d = edit_distance(fold_space(ref), fold_space(got))
            edits += d
            chars += len(fold_space(ref))
            worst = max(worst, d / max(1, len(fold_space(ref))))
        confs += [p.confidence for p in extracted.pages if p.confidence is not None]
        low += sum(p.low_confidence for p in extracted.pages)
        n += len(typeset_pages)
    mean_conf = sum(confs) / len(confs) if confs else 0.0
    return OcrRead(dpi, n, edits / max(1, chars), worst, mean_conf, low)


FIGURES = (
    ("retrieval hit@5", "retrieval", "hit@5"),
    ("retrieval MRR@10", "retrieval", "mrr@10"),
    ("answers holding all key facts", "answer", "keyfacts_all"),
    ("key-fact recall", "answer", "keyfact_recall"),
)


def report(out: Path, dpis: Sequence[int], upload_file: Path) -> str:
    """The ``ocr`` section of BENCHMARKS.md from the files the study left in ``out``."""
    from evals.experiments.ocr_quality import tesseract_version

    reads = [ocr_read(out, dpi) for dpi in dpis]
    meta = json.loads((out / f"pages-{dpis[0]}.json").read_text(encoding="utf-8"))
    figs = {
        name: json.loads((out / f"eval-{name}" / "figures.json").read_text(encoding="utf-8"))
        for name in ["text", *map(str, dpis)]
    }
    up = json.loads(upload_file.read_text(encoding="utf-8"))
    marks = up["marks_s"]
    ocr_s = marks["cleaning"] - marks.get("extracting", 0.0)
    mode = {"g4": "bilevel CCITT G4", "jpeg": f"greyscale JPEG q{JPEG_QUALITY}"}[meta["mode"]]
    day = time.strftime("%Y-%m-%d", time.gmtime())
    load = (
        f"the upload below ran at load average {up['load_before']:.1f} → {up['load_after']:.1f}"
        if "load_before" in up
        else "the upload's load average was not recorded"
    )
    lines = [
        "## Documents and OCR (`python -m evals.experiments.scan_corpus`)",
        "",
        f"Measured {day} on 2 cores; {load} (speed figures depend on the load, quality figures "
        "do not). Tesseract "
        f"{tesseract_version()} (kaz+rus+eng, LSTM), pages rendered by pypdfium2 at 300 dpi, then "
        "the look-alike repair (`rag.readers.script`, Latin/Cyrillic twins). "
        "The five seed documents are typeset on A4 (DejaVu Sans 11 pt) and scanned as a "
        f"document scanner does (skew within ±{MAX_SKEW_DEGREES}°, sensor noise σ "
        f"{NOISE_SIGMA:g}, a soft edge, white point {WHITE_POINT}), written as {mode} "
        "image-only PDFs, one per document with the text file's name "
        "(`scan_corpus write`), and indexed through the real reader "
        "(`kazrag index --corpus DIR/scans-<dpi> --index DIR/index-<dpi>`). CER = edit "
        "distance between each page as indexed and the text typeset on it (white space "
        "folded), over the latter's length.",
        "",
        "| scan | pages | CER (all pages) | worst page | mean word confidence | pages flagged low |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in reads:
        lines.append(
            f"| {r.dpi} dpi {meta['mode']} | {r.pages} | {r.cer:.4f} | {r.worst_page_cer:.4f} "
            f"| {r.mean_confidence:.1f} | {r.low_confidence} |"
        )
    text = figs["text"]
    lines += [
        "",
        f"The project question set over each corpus (`kazrag eval --corpus DIR/scans-<dpi> "
        f"--index DIR/index-<dpi> --split all --limit 139`: the {text['retrieval']['n']} "
        f"original questions with evidence for retrieval, the {text['answer']['n']} "
        "answerable ones for key facts; the respelled variants of issue 14 left out). Gold "
        "evidence names the text files: it is mapped to the scan of the same document by file "
        "stem, and a quote OCR misread is placed by the longest run of letters and digits it "
        "shares with the OCR text (casefolded, punctuation and spacing dropped; at least 20 "
        "characters), extended to the quote's length (`evals.evaluation.approximate_span`). "
        "Key facts are compared on the answer text, as for the text files.",
        "",
        "| figure | text files | " + " | ".join(f"scans {d} dpi (Δ)" for d in dpis) + " | target |",
        "|---|---:|" + "---:|" * len(dpis) + "---|",
    ]
    for label, group, key in FIGURES:
        base = float(text[group][key])
        cells = []
        for d in dpis:
            v = float(figs[str(d)][group][key])
            mark = "" if key == "keyfact_recall" else (" ✓" if abs(v - base) <= 0.03 else " ✗")
            cells.append(f"{v:.3f} ({v - base:+.3f}){mark}")
        target = "" if key == "keyfact_recall" else "within 0.03"
        lines.append(f"| {label} | {base:.3f} | " + " | ".join(cells) + f" | {target} |")
    approx = ", ".join(
        f"{figs[str(d)]['meta'].get('evidence_placed_approximately', 0)} at {d} dpi" for d in dpis
    )
    unlocated = ", ".join(f"{figs[k].get('evidence_unlocated', 0)} ({k})" for k in figs)
    lines += [
        "",
        f"Evidence quotes placed approximately: {approx}; not placed at all: {unlocated}.",
        "",
        f"**Uploading a {up['pages']}-page {up['dpi']}-dpi scan** ({up['mode']}, "
        f"{up['bytes'] / 1e6:.2f} MB) through `POST /api/documents` on 127.0.0.1 into a copy of "
        f"the seed index (`scan_corpus upload`): **{up['total_s']:.0f} s** end to end — "
        f"{ocr_s:.0f} s rendering and OCR ({up['pages'] / ocr_s:.2f} pages/s with 2 "
        "Tesseract workers, one thread each), "
        f"{marks['updating'] - marks['cleaning']:.0f} s cleaning and reading the corpus, "
        f"{marks['loading'] - marks['updating']:.0f} s chunking and embedding its "
        f"{up['chunks']} new chunks and their sentences, "
        f"{up['total_s'] - marks['loading']:.0f} s loading the new index.",
        "",
    ]
    return "\n".join(lines) + "\n"


def reread_cost(out: Path, dpi: int, pages_per_doc: int) -> dict[str, Any]:
    """What the look-alike re-read (``rag.readers.ocr.reread_latin``) adds to OCR.

    The first ``pages_per_doc`` pages of each scan in ``out/scans-<dpi>`` are read once by
    Tesseract (kaz+rus+eng, one thread) and the words repaired; the re-read is then timed on
    the same words, so both figures come from the same pages under the same load.
    """
    import pypdfium2 as pdfium

    from rag.readers import ocr
    from rag.readers.pdf import render_page

    base_s = reread_s = 0.0
    pages = with_words = reread = changed = 0
    langs = ocr.require_ocr("scan")
    for path in sorted((out / f"scans-{dpi}").glob("*.pdf")):
        data = path.read_bytes()
        for index in range(min(pages_per_doc, len(pdfium.PdfDocument(data)))):
            image = render_page(data, index)
            buf = io.BytesIO()
            image.convert("L").save(buf, format="PNG")
            t = time.perf_counter()
            tsv = ocr._tesseract(
                ["stdin", "stdout", "-l", langs, "--psm", "3", "tsv"], buf.getvalue(), path.name
            )
            words = ocr.repair_scripts(ocr.words_from_tsv(tsv))
            base_s += time.perf_counter() - t
            t = time.perf_counter()
            after = ocr.reread_latin(image, words, path.name)
            reread_s += time.perf_counter() - t
            n = len(ocr.lookalike_words(words))
            pages += 1
            with_words += n > 0
            reread += n
            changed += sum(a.text != b.text for a, b in zip(words, after, strict=True))
    return {
        "dpi": dpi,
        "pages": pages,
        "pages_with_lookalike_words": with_words,
        "words_reread": reread,
        "words_changed": changed,
        "ocr_s": round(base_s, 2),
        "reread_s": round(reread_s, 2),
        "reread_share": round(reread_s / base_s, 4) if base_s else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write the scans, print scan sizes, or time an upload (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("write", help="write the seed corpus as scans")
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--dpi", type=int, nargs="+", default=[150, 300])
    sp.add_argument("--mode", choices=MODES, default="g4")
    sp = sub.add_parser("sizes", help="megabytes of an N-page scan per mode and resolution")
    sp.add_argument("--pages", type=int, default=20)
    sp = sub.add_parser("upload", help="time the upload of an N-page scan through the API")
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--pages", type=int, default=20)
    sp.add_argument("--dpi", type=int, default=300)
    sp.add_argument("--mode", choices=MODES, default="g4")
    sp = sub.add_parser("reread", help="the cost of the look-alike re-read on the scans")
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--dpi", type=int, default=300)
    sp.add_argument("--pages-per-doc", type=int, default=2)
    sp = sub.add_parser("report", help="the BENCHMARKS.md section from a finished study")
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--dpi", type=int, nargs="+", default=[300, 150])
    sp.add_argument("--upload", type=Path, required=True, help="the upload-*.json to report")
    sp.add_argument("--write", type=Path, help="BENCHMARKS.md to update (ocr section)")
    args = parser.parse_args(argv)
    if args.command == "report":
        from evals.bench import write_section

        body = report(args.out, args.dpi, args.upload)
        print(body)
        if args.write:
            write_section(args.write, body, name="ocr")
    elif args.command == "write":
        write(args.out, args.dpi, args.mode)
    elif args.command == "reread":
        print(json.dumps(reread_cost(args.out, args.dpi, args.pages_per_doc), indent=2))
    elif args.command == "sizes":
        for name, mb in sizes(args.pages).items():
            print(f"{args.pages} pages {name}: {mb:.2f} MB")
    else:
        print(json.dumps(upload(args.out, args.pages, args.dpi, args.mode), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
