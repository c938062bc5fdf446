"""Core's face of the AI worker: the analysis routes, each an RPC to the worker."""
