"""Scans written as a document scanner writes them (evals/experiments/scan_corpus.py)."""

from __future__ import annotations

import io

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
