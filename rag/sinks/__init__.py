"""Row sinks: stores that take whole documents (:class:`rag.rows.RowSink`), one file each.

``index_folder`` stages rows durably beside an index folder and writes the FAISS index folder
from them at the end of a run (distributed ingestion into today's store).
"""
