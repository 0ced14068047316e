"""Reading the source ahead of the writer, so that waiting on the source overlaps the write.

Why: a migration reads every chunk of the source and writes it to the target; done in turn,
every wait on the source's server (a Chroma server, Pinecone) adds to the copy's time. One
thread reads the next batches while the current one is written, at most `READ_AHEAD` batches
ahead (memory stays flat), and hands them over in order, so the checkpoint keeps its meaning.

A thread helps where the read waits on a socket or copies numpy rows (memory), both of which
release the GIL. Embedded Chroma's reader is in-process Rust code: its SQLite query (per 20k
chunks about 1.7 s, a row per metadata key joined to every chunk, the vectors 0.2 s of it) runs
with the GIL released, but chromadb then turns the answer into Python lists and a float64 array
under the GIL (about 1.3 s), and the writer parses the chunks from it, so there reader and
writer partly take turns. Two reader threads do not help: chromadb runs one query at a time (8
batches of 5461 ids in 1.97 s from one thread and from two). A worker process was tried for it,
with mixed results on this shared 2-core machine, so it is not used: through multiprocessing's
spawn (which also re-runs an unguarded caller's `__main__`, a hazard for scripts), 20k chunks
read into nodes in 17.8 s against 10.8 s by the thread (load 13), 100k in 11.3-11.7 s against
17.3-18.8 s (load 2, all batches read ahead); as a `python -m` subprocess streaming pickled
rows with a bounded read-ahead, 100k in 12.5-14.0 s against 13.7 s (load 1; the worker's read
alone 9.4 s, making the nodes 3.7 s)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from rag_app.stores.base import Backend, EmbeddedBatch, batched

#: Batches read ahead of the one being written.
READ_AHEAD = 2


def read_batches(
    source: Backend, ids: Sequence[str], batch_size: int
) -> Iterator[tuple[Sequence[str], EmbeddedBatch]]:
    """Each batch of `ids` (in order) with the chunks found for it, read ahead of the caller."""
    queued = iter(batched(ids, batch_size))
    pending: deque[tuple[Sequence[str], Future[EmbeddedBatch]]] = deque()
    with ThreadPoolExecutor(1, thread_name_prefix="migrate-read") as pool:

        def submit_next() -> None:
            group = next(queued, None)
            if group is not None:
                pending.append((group, pool.submit(source.read_embedded, group)))

        try:
            for _ in range(READ_AHEAD + 1):
                submit_next()
            while pending:
                group, future = pending.popleft()
                submit_next()
                yield group, future.result()
        finally:
            for _, future in pending:
                future.cancel()
