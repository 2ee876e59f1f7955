"""The vector DB service: chunk storage and similarity search on LanceDB.

A durable consumer on `ctm.chunks.*` upserts chunk batches into one LanceDB
table per collection, and a NATS micro service on `ctm.vector.*` answers
vector, full-text and hybrid queries and manages collections.
"""
