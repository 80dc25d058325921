"""Engines behind one interface (`base.Engine`), imported lazily so vLLM is optional."""
