"""Settings of the vector DB service, from `[vectordb]` in the config file or `CONTINUUM_VECTORDB_*`."""

from __future__ import annotations

from typing import Literal

import msgspec

IndexType = Literal["IVF_HNSW_SQ", "IVF_PQ"]


class VectorDbSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Storage location, write batching, index and search tuning.

    `uri` is a local directory or `s3://bucket/path`; empty means
    `<state_dir>/vectordb` from the shared settings. `storage_options` go to
    LanceDB unchanged (for S3: `aws_endpoint`, `aws_region`,
    `aws_access_key_id`, `aws_secret_access_key`, `allow_http`).
    """

    uri: str = ""
    storage_options: dict[str, str] = msgspec.field(default_factory=dict)

    # Write batching: a flush happens at `batch_max_rows` chunks or `batch_max_delay_s` after the first one.
    batch_max_rows: int = 2000
    batch_max_delay_s: float = 0.5
    max_pending_messages: int = 64

    # Cross-process write lock per collection, in the `ctm-vectordb-locks` bucket. A writer
    # waits up to `lock_wait_s` (long enough for an index build on a large table) and keeps its
    # messages alive with in-progress acks meanwhile.
    lock_ttl_s: float = 30.0
    lock_wait_s: float = 600.0

    # Maintenance: ANN index above `index_min_rows`, compaction and version cleanup.
    index_min_rows: int = 5000
    index_type: IndexType = "IVF_HNSW_SQ"
    index_target_partition_size: int = 4096
    maintenance_interval_s: float = 30.0
    reindex_unindexed_rows: int = 1000
    cleanup_older_than_s: float = 600.0

    # Search tuning; see docs/vectordb.md for measured recall and latency.
    nprobes: int = 10
    refine_factor: int = 5
    ef: int = 100
    max_k: int = 1000
    hybrid_candidates: int = 50
    rrf_k: int = 60

    # How often a read handle checks for versions written by other processes, in seconds.
    read_consistency_s: float = 1.0
    embed_timeout_s: float = 10.0
