"""Scans written as a document scanner writes them (evals/experiments/scan_corpus.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from evals.experiments.ocr_quality import cer, fold_space, typeset
from evals.experiments.scan_corpus import encode, scan_document, scanner_page
from rag.readers import read_document
from tests.helpers import PAGE_2


def test_a_bilevel_g4_scan_has_no_text_layer_and_reads_back_through_ocr() -> None:
    from pypdf import PdfReader

    data, texts = scan_document(PAGE_2, dpi=300, mode="g4", seed=1)
    assert b"/CCITTFaxDecode" in data and [fold_space(t) for t in texts] == [PAGE_2]
    assert not (PdfReader(io.BytesIO(data)).pages[0].extract_text() or "").strip()
    got = read_document("scan.pdf", data)
    assert [p.ocr for p in got.pages] == [True]
    assert cer(PAGE_2, got.text) < 0.05, got.text


def test_greyscale_jpeg_pages_weigh_more_than_g4_and_modes_are_checked() -> None:
    (page,), _ = typeset(PAGE_2 * 8, 150)
    scanned = scanner_page(page, seed=3)
    g4, jpeg = encode([scanned], 150, "g4"), encode([scanned], 150, "jpeg")
    assert b"/DCTDecode" in jpeg and b"/CCITTFaxDecode" not in jpeg
    assert len(jpeg) > 3 * len(g4)
    with pytest.raises(ValueError, match="mode"):
        encode([scanned], 150, "png")


def test_the_scanner_is_deterministic_per_seed_and_leaves_the_paper_white() -> None:
    (page,), _ = typeset(PAGE_2, 150)
    a, b, c = scanner_page(page, 7), scanner_page(page, 7), scanner_page(page, 8)
    assert a.tobytes() == b.tobytes() != c.tobytes()  # another seed: another skew and noise
    assert a.mode == "L" and a.size == page.size
    corner = a.crop((0, 0, 50, 50))  # margin: the white point swallows the sensor noise
    assert min(corner.getdata()) > 200 and isinstance(corner, Image.Image)


def _study(root: Path) -> Path:
    """What a finished study leaves: scans, their page texts, the index text cache, figures."""
    from rag.readers import Extracted, file_key
    from rag.schema import Page

    pdf = b"%PDF-1.4 stand-in for a scan"
    (root / "scans-300").mkdir(parents=True)
    (root / "scans-300" / "a.pdf").write_bytes(pdf)
    typeset_pages = {"a.pdf": ["Бірінші бет мәтіні.", "Екінші бет."]}
    (root / "pages-300.json").write_text(
        json.dumps({"dpi": 300, "mode": "g4", "pages": typeset_pages}), encoding="utf-8"
    )
    # OCR misread one letter of page 2 ("Екiншi": Latin i twice) and flagged it.
    text = "Бірінші бет мәтіні.\n\nЕкiншi бет."
    pages = (Page(1, 0, True, 96.0, False), Page(2, 21, True, 60.0, True))
    (root / "index-300" / "texts").mkdir(parents=True)
    (root / "index-300" / "texts" / f"{file_key(pdf)}.json").write_text(
        json.dumps(Extracted(text, "pdf", pages).to_json()), encoding="utf-8"
    )
    for name, hit in (("text", 0.95), ("300", 0.90)):
        figs = {
            "meta": {"evidence_placed_approximately": 0 if name == "text" else 3},
            "retrieval": {"n": 122, "hit@5": hit, "mrr@10": 0.87},
            "answer": {"n": 122, "keyfacts_all": 0.69, "keyfact_recall": 0.7},
            "evidence_unlocated": 0,
        }
        (root / f"eval-{name}").mkdir()
        (root / f"eval-{name}" / "figures.json").write_text(json.dumps(figs), encoding="utf-8")
    upload = {
        "pages": 20, "dpi": 300, "mode": "g4", "bytes": 1_040_000, "total_s": 100.0,
        "marks_s": {"extracting": 1.0, "cleaning": 41.0, "updating": 42.0, "loading": 99.0},
        "chunks": 48, "load_before": 0.4, "load_after": 2.1,
    }  # fmt: skip
    (root / "upload.json").write_text(json.dumps(upload), encoding="utf-8")
    return root / "upload.json"


def test_the_report_measures_the_indexed_pages_and_compares_with_the_text_files(
    tmp_path: Path,
) -> None:
    from evals.experiments.scan_corpus import ocr_read, report

    upload = _study(tmp_path)
    read = ocr_read(tmp_path, 300)
    assert read.pages == 2 and read.low_confidence == 1 and read.mean_confidence == 78.0
    assert read.cer == pytest.approx(2 / (len("Бірінші бет мәтіні.") + len("Екінші бет.")))
    assert read.worst_page_cer == pytest.approx(2 / len("Екінші бет."))
    body = report(tmp_path, [300], upload)
    assert "| retrieval hit@5 | 0.950 | 0.900 (-0.050) ✗ |" in body
    assert "| retrieval MRR@10 | 0.870 | 0.870 (+0.000) ✓ |" in body
    assert "placed approximately: 3 at 300 dpi" in body
    assert "**100 s** end to end — 40 s rendering and OCR (0.50 pages/s" in body
    assert "the upload below ran at load average 0.4 → 2.1" in body
