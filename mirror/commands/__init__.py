"""Warming (warm, warm_engine, blob_queue): services, waiting to move into mirror.services.

They stay here only while the fetch-each-blob-once work on them is under way;
`git mv mirror/commands/*.py mirror/services/` (and `mirror.commands` ->
`mirror.services` in their importers) finishes the move. Nothing here is a verb:
the verbs are mirror.cli's.
"""
