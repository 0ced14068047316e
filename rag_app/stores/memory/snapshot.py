"""The memory store's last persisted generation, read without LlamaIndex.

A process that only searches (`rag-app retrieve`) needs the rows, not `MemoryVectorStore`,
whose import of LlamaIndex takes longer than the whole search. The snapshot loads the
generation named by the manifest under the directory's lock, as `MemoryVectorStore` does, and
reloads when another writer persists a newer one (one `stat` per search otherwise).
"""

from __future__ import annotations

from pathlib import Path

from rag_app.stores.memory.generations import LOCK_NAME, MANIFEST_NAME, read_manifest
from rag_app.stores.memory.table import RowTable, load_table
from rag_app.util.files import file_signature, locked


class Snapshot:
    def __init__(self, folder: Path, index: str) -> None:
        self.folder = folder
        self.index = index
        self._table = RowTable()
        self._seen: tuple[int, int, int] | None = None

    def table(self) -> RowTable:
        """The rows of the newest persisted generation (empty before the first persist)."""
        manifest_path = self.folder / MANIFEST_NAME
        if file_signature(manifest_path) != self._seen and manifest_path.exists():
            with locked(self.folder / LOCK_NAME):
                manifest = read_manifest(self.folder)
                if manifest is not None:
                    self._table = load_table(self.folder, manifest, self.index)[1]
                self._seen = file_signature(manifest_path)
        return self._table
