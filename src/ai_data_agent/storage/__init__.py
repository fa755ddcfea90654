"""Durable bytes that outlive a sandbox: datasets' files and sessions' checkpoints.

    store = LocalBlobStore(settings.storage_dir)
    with store.writer(max_bytes=cap) as writer:     # streamed, hashed while it streams
        for chunk in upload:
            writer.write(chunk)                      # RequestTooLarge past the cap
        blob = writer.commit()                       # BlobRef(digest, size): now visible
    with store.open(blob.digest) as fh: ...          # or store.path(digest) for a local file
    store.sweep(keep={...}, older_than_s=3600)       # what no record names any more

Blobs are content-addressed (sha256) and immutable: a blob is visible only
once all of it is written and its digest known, so an upload cut halfway
leaves nothing anyone can name. What a blob means (a dataset version's file,
a checkpoint) and who owns it lives in the records that name its digest;
the store only keeps bytes. `BlobStore` is the interface the callers see, so
an object store can stand beside `LocalBlobStore` (a directory, which all API
nodes of a cluster share) without changing them. A node hands its store out as
``node.blobs``: the one-node daemon's and an API node's are a `LocalBlobStore`,
a cluster worker's a `remote.HttpBlobStore` (the API nodes' store, over HTTP,
with local copies; imported from there, so that a node without it never loads
an HTTP client).
"""

from ai_data_agent.storage.blobs import BlobRef, BlobStore, BlobWriter, LocalBlobStore

__all__ = ["BlobRef", "BlobStore", "BlobWriter", "LocalBlobStore"]
