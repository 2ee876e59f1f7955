"""Export all-MiniLM-L6-v2 to ONNX, quantize it to int8 and verify it against the fp32 reference.

Runs once at first use; the result is cached as `<cache_dir>/all-MiniLM-L6-v2-int8.onnx`
with a `.json` record of the agreement. Export needs torch and onnx; later
runs need only onnxruntime and tokenizers.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from continuum.services.dataprep.errors import EmbedderError

logger = logging.getLogger(__name__)

MODEL_FILE = "all-MiniLM-L6-v2-int8.onnx"
MIN_MEAN_COSINE = 0.99

# Varied sentences for the agreement check: questions, code, lists, prose.
VERIFICATION_TEXTS = [
    "How do I reset my password?",
    "The quick brown fox jumps over the lazy dog.",
    "NATS JetStream stores messages in streams and delivers them to consumers.",
    "def add(a, b):\n    return a + b",
    "A list comprehension creates a new list from an iterable.",
    "Paris is the capital and most populous city of France.",
    "The mitochondria is the powerhouse of the cell.",
    "Error: connection refused while contacting the server on port 4222.",
    "Kubernetes schedules pods onto nodes according to resource requests.",
    "She sells sea shells by the sea shore.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The with statement wraps a block with methods defined by a context manager.",
    "Exceptions raised in a try clause are handled by the matching except clause.",
    "Vector databases index embeddings for approximate nearest neighbour search.",
    "I would like to book a table for two at seven tonight.",
    "The stock market fell sharply after the interest rate announcement.",
    "Gradient descent updates parameters in the direction of the negative gradient.",
    "Bake the bread at 220 degrees Celsius for thirty minutes.",
    "The treaty was signed in 1648, ending the Thirty Years' War.",
    "Unicode normalisation form NFKC replaces compatibility characters.",
    "for i in range(10): print(i * i)",
    "The museum opens at nine in the morning and closes at six.",
    "Rainfall this year has been well below the seasonal average.",
    "Generators produce values lazily with the yield statement.",
] * 2


def ensure_int8_model(cache_dir: Path) -> Path:
    """Return the cached int8 model, exporting, quantizing and verifying it first if it is missing."""
    target = cache_dir / MODEL_FILE
    if target.exists() and target.with_suffix(".json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".export-") as work:
        fp32 = Path(work) / "model-fp32.onnx"
        int8 = Path(work) / MODEL_FILE
        logger.info("exporting the embedding model to ONNX under %s (one time)", cache_dir)
        export_fp32(fp32)
        quantize_int8(fp32, int8)
        mean, minimum = verify_against_reference(int8)
        if mean < MIN_MEAN_COSINE:
            raise EmbedderError(
                f"the int8 model agrees with the fp32 reference at mean cosine {mean:.4f}, below {MIN_MEAN_COSINE}; "
                "use `embedder = \"sentence-transformers\"`"
            )
        record = {"mean_cosine": mean, "min_cosine": minimum, "texts": len(VERIFICATION_TEXTS)}
        # Rename into place last, so a concurrent process never loads a half-written file.
        target.with_suffix(".json").write_text(json.dumps(record))
        os.replace(int8, target)
    logger.info("int8 embedding model ready: mean cosine %.4f, min %.4f against fp32", mean, minimum)
    return target


def export_fp32(path: Path) -> None:
    """Export the transformer (without pooling) with dynamic batch and sequence axes."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise EmbedderError("exporting the ONNX model needs torch and transformers; `pip install 'continuum[ai]'`") from exc
    from continuum.services.dataprep.embedders import model_dir

    model = AutoModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()

    class _Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = torch.ones(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(
            _Hidden(),
            (sample, sample, torch.zeros_like(sample)),
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights, per channel (the setting that keeps cosine above 0.99)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
    )


def verify_against_reference(model_path: Path) -> tuple[float, float]:
    """Return the mean and minimum cosine between the int8 model and sentence-transformers fp32."""
    from continuum.services.dataprep.embedders import OnnxEmbedder, SentenceTransformerEmbedder

    reference = SentenceTransformerEmbedder().encode(VERIFICATION_TEXTS)
    candidate = OnnxEmbedder(model_path).encode(VERIFICATION_TEXTS)
    cosines = (reference * candidate).sum(axis=1)
    return float(cosines.mean()), float(cosines.min())
