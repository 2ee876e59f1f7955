"""Workflow service: event-driven pipelines whose steps call other services over NATS.

The first pipeline is retrieval-augmented answering on `ctm.rag.ask`.
"""
