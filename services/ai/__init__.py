"""The AI worker: answers core's analysis RPCs with models that run offline on the CPU."""
