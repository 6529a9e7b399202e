"""Choose chunk size, overlap and fusion on the question set's dev split (retrieval only).

    python -m evals.experiments.tune_retrieval [--split dev]

For each chunking the chunks are embedded once; then dense, lexical and fused rankings are
scored by hit@1/@5 and MRR@10, a chunk counting as relevant when it overlaps an evidence span.
"""

from __future__ import annotations

import argparse
import os
import time

from evals.evaluation import load_questions
from rag.chunking import ChunkingConfig, chunk_corpus
from rag.embedding import SentenceTransformerEmbedder
from rag.fusion import fuse
from rag.index import search_text
from rag.lexical import BM25Index
from rag.settings import DEFAULT_CORPUS
from rag.sources import load_corpus, locate
from rag.stores.faiss import FaissStore


def main() -> None:
    """Print a table of retrieval figures per configuration."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="dev")
    ap.add_argument("--chunks", default="400/1,700/1,700/0,1000/1,1400/1", help="target/overlap,…")
    ap.add_argument("--weights", default="0.5,1.0", help="lexical weights to try")
    args = ap.parse_args()
    docs = load_corpus(DEFAULT_CORPUS)
    by_id = {d.doc_id: d for d in docs}
    everything = load_questions(DEFAULT_CORPUS / "questions.jsonl")
    rows = [r for r in everything if r["answerable"] and args.split in ("all", r["split"])]
    # Follow-ups are searched with the previous question (as the pipeline does offline).
    all_rows = {r["id"]: r for r in everything}
    queries, spans = [], []
    for r in rows:
        q = r["question"]
        if r.get("follows"):
            q = f"{all_rows[r['follows']]['question']} {q}"
        queries.append(q)
        spans.append([(e["doc_id"], locate(by_id[e["doc_id"]], e["text"])) for e in r["evidence"]])
    emb = SentenceTransformerEmbedder()
    qv = emb.embed_queries(queries)
    print(f"{len(rows)} answerable {args.split} questions")
    print(f"{'chunking':<22} {'mode':<26} {'hit@1':>6} {'hit@5':>6} {'MRR10':>6}")
    pairs = [tuple(int(x) for x in p.split("/")) for p in args.chunks.split(",")]
    weights = [float(w) for w in args.weights.split(",")]
    for target, overlap in pairs:
        cfg = ChunkingConfig(
            target_chars=target, max_chars=max(1400, target + 400), overlap=overlap
        )
        chunks = chunk_corpus(docs, cfg)
        t0 = time.perf_counter()
        vecs = emb.embed_passages([search_text(c) for c in chunks])
        dense_idx = FaissStore.build(vecs, "flat")
        bm25 = BM25Index.build([search_text(c) for c in chunks])
        rel = [
            {
                i
                for i, c in enumerate(chunks)
                for d, sp in ev
                if sp and c.doc_id == d and c.start < sp[1] and sp[0] < c.end
            }
            for ev in spans
        ]
        dense = dense_idx.search(qv, 30)
        lexical = [bm25.search(q, 30) for q in queries]
        modes = {"dense": dense, "lexical": lexical}
        for w in weights:
            modes[f"rrf w_lex={w}"] = [
                fuse([d, lx], [1.0, w * bm25.coverage(q)], "rrf")
                for d, lx, q in zip(dense, lexical, queries, strict=True)
            ]
            modes[f"minmax w_lex={w}"] = [
                fuse([d, lx], [1.0, w * bm25.coverage(q)], "minmax")
                for d, lx, q in zip(dense, lexical, queries, strict=True)
            ]
        for name, ranked in modes.items():
            h1 = h5 = mrr = 0.0
            for rk, rl in zip(ranked, rel, strict=True):
                rows_ = [r for r, _ in rk[:10]]
                first = next((i for i, r in enumerate(rows_) if r in rl), None)
                h1 += first == 0
                h5 += first is not None and first < 5
                mrr += 1 / (first + 1) if first is not None else 0
            n = len(ranked)
            label = f"{target}/{overlap} ({len(chunks)}ch)"
            print(f"{label:<22} {name:<26} {h1 / n:6.3f} {h5 / n:6.3f} {mrr / n:6.3f}")
        tokens = [len(emb.model.tokenize(["passage: " + c.text])["input_ids"][0]) for c in chunks]
        print(
            f"   embed {len(chunks)} chunks: {time.perf_counter() - t0:.1f}s, max tokens {max(tokens)}"
        )


if __name__ == "__main__":
    main()
