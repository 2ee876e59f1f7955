"""Data prep: turn documents into embedded chunks for the vector DB.

The service takes ingest requests from `ctm.ingest`, reads documents from S3,
local roots, the `ctm-documents` object store, inline text or Python's own
`pydoc_data` topics, parses, cleans and chunks them, embeds every chunk, and
publishes chunk batches on `ctm.chunks.<collection>`. It also answers
`ctm.embed` so other services embed queries with the same model.

Heavy model libraries (torch, sentence-transformers, onnxruntime) are
imported only when an embedder loads, so importing this package stays cheap.
"""

from continuum.services.dataprep.errors import DataprepError

__all__ = ["DataprepError"]
