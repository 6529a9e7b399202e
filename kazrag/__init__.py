"""The kazrag application: entry points above the library (rag), the chat (ui) and measurement (evals)."""
