"""An OpenVINO compiled model that any number of threads may call at once.

A compiled model's own `__call__` holds a single infer request: two threads calling it together get
`RuntimeError: Infer Request is busy` (MLflow's scoring server runs predictions in a thread pool). The pool holds
as many infer requests as the compiled model runs at once (OPTIMAL_NUMBER_OF_INFER_REQUESTS: one per stream). A call
waits for one idle request, takes the others that are idle too, and splits its batch over them, so that one caller
with a batch uses every stream and callers at once share them. docs/benchmarks.md (serving under load) measures it.
"""

from __future__ import annotations

import queue

import numpy as np

OV_OPTIMAL_REQUESTS = "OPTIMAL_NUMBER_OF_INFER_REQUESTS"


class InferPool:
    """Callable like the compiled model (one input, first output), from any thread."""

    def __init__(self, compiled, size: int | None = None) -> None:
        self.size = size or int(compiled.get_property(OV_OPTIMAL_REQUESTS))
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.size):
            self._idle.put(compiled.create_infer_request())

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """The first output for `inputs` (a batch), computed on the idle requests side by side."""
        held = [self._idle.get()]  # only the first is waited for: two callers never wait on each other's
        while len(held) < min(len(inputs), self.size):
            try:
                held.append(self._idle.get_nowait())
            except queue.Empty:
                break
        try:
            for request, part in zip(held, np.array_split(inputs, len(held)), strict=True):
                request.start_async([part])  # OpenVINO copies the input
            outputs = []
            for request in held:
                request.wait()
                outputs.append(request.get_output_tensor(0).data.copy())  # the request's buffer is reused
            return np.concatenate(outputs)
        finally:
            for request in held:
                try:  # a request still running after another failed must finish before it is handed out again
                    request.wait()
                except Exception:  # noqa: BLE001  its own failure was raised, or will be, by its own caller
                    pass
                self._idle.put(request)
