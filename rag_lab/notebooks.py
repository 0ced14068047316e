"""Helpers the chapter 12 notebooks share, and the runner that executes them.

Notebooks stay a few lines per cell: where their data lives (`notebook_data_dir`), how big a run
is (`RAG_NOTEBOOK_SCALE`: `small` for the test suite, `full` for `make notebooks`), starting and
stopping the local Pinecone-compatible server, timing, and the shared XQuAD file.

`run_notebooks` executes notebooks with nbclient in a kernel running *this* Python (so a
machine without a registered `python3` kernel, or with one pointing at another interpreter,
still runs them in the project's venv). `notebooks/run.py` and `tests/test_notebooks.py` use it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_lab.data import shared_dir, xquad_path
from rag_lab.hnsw import notebook_scale

__all__ = [
    "NotebookRun",
    "PineconeTarget",
    "Stopwatch",
    "cleanup",
    "execute_notebook",
    "migrate_chain",
    "namespace_count",
    "notebook_data_dir",
    "notebook_scale",
    "notebooks_dir",
    "plot_answer_metrics",
    "plot_hits",
    "run_notebooks",
    "select_notebooks",
    "shared_dir",
    "shared_embedder",
    "squad_subset",
    "top_doc_ids",
    "wait_for_count",
    "xquad_path",
]

#: nbclient's timeout for each cell, in seconds, by scale.
NOTEBOOK_TIMEOUTS = {"small": 240, "full": 3600}
KERNEL_NAME = "python3"


# ---------------------------------------------------------------------------------------------
# Inside notebooks
# ---------------------------------------------------------------------------------------------


def notebook_data_dir() -> tuple[Path, bool]:
    """Where a notebook's stores live, and whether the notebook owns (and removes) the folder.

    `RAG_DATA_DIR` when set (the test suite points it at a temporary folder); otherwise a fresh
    temporary folder, so running a notebook never touches `./.rag_data`.
    """
    configured = os.environ.get("RAG_DATA_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    return Path(tempfile.mkdtemp(prefix="rag_notebook_")), True


def cleanup(apps: Sequence[Any], data_dir: Path, owned: bool, also: Sequence[Path] = ()) -> None:
    """Drop each app's collection, remove its keyword index, close it; remove the folders in
    `also` and the data folder when the notebook owns it."""
    for app in apps:
        app.backend.drop()
        if getattr(app, "keyword", None) is not None:
            app.keyword.drop()
        app.close()
    for folder in also:
        shutil.rmtree(folder, ignore_errors=True)
    if owned:
        shutil.rmtree(data_dir, ignore_errors=True)


class Stopwatch:
    """`with watch("ingest", backend="chroma"):` records seconds per (name, backend)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    @contextmanager
    def __call__(self, step: str, **labels: Any) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - started
            self.rows.append({**labels, "step": step, "seconds": round(seconds, 3)})

    def pivot(self, key: str, steps: Sequence[str]) -> list[dict[str, Any]]:
        """One row per value of label `key`, one column of seconds per step."""
        table: dict[Any, dict[str, Any]] = {}
        for row in self.rows:
            table.setdefault(row[key], {key: row[key]})[f"{row['step']}_s"] = row["seconds"]
        return [{key: k, **{f"{s}_s": v.get(f"{s}_s") for s in steps}} for k, v in table.items()]


class PineconeTarget:
    """Where the Pinecone notebooks send requests: the real service when `PINECONE_API_KEY` is
    set, otherwise a local Pinecone-compatible server started in this process on a free port.

    `overrides` are `load_settings` keyword arguments; `stop()` stops the local server.
    """

    def __init__(self) -> None:
        self.server: Any = None
        if os.environ.get("PINECONE_API_KEY"):
            self.url: str | None = None
            print("PINECONE_API_KEY is set: using Pinecone serverless (the real service).")
            return
        from pinecone_local import PineconeLocal

        self.server = PineconeLocal(port=0)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}"
        print(f"No PINECONE_API_KEY: local Pinecone-compatible server started at {self.url}")

    @property
    def is_local(self) -> bool:
        return self.server is not None

    @property
    def overrides(self) -> dict[str, Any]:
        return {"pinecone_host": self.url}

    def client(self) -> Any:
        """A `pinecone.Pinecone` client for this target (the book's `Pinecone(api_key=...)`)."""
        from pinecone import Pinecone

        if self.server is None:
            return Pinecone(api_key=os.environ["PINECONE_API_KEY"])
        return Pinecone(api_key="pclocal", host=self.url)

    def index(self, client: Any, name: str) -> Any:
        """`client.Index(name)`; for the local server with its `http://` data-plane host (the
        SDK would turn a described host into `https://`)."""
        if self.server is None:
            return client.Index(name)
        from pinecone_local import http_host

        return client.Index(host=http_host(client.describe_index(name).host))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
            print("local Pinecone-compatible server stopped")


def wait_for_count(count: Any, expected: int, timeout: float = 60.0) -> int:
    """Poll `count()` until it returns `expected` (Pinecone serverless is eventually
    consistent: fresh writes take a moment to show up); returns the last count."""
    deadline = time.monotonic() + timeout
    while True:
        value = int(count())
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(1.0)


def namespace_count(index: Any, namespace: str) -> int:
    """Vectors in `namespace` according to `describe_index_stats` (0 when it does not exist)."""
    summary = index.describe_index_stats().namespaces.get(namespace)
    return int(summary.vector_count) if summary else 0


def top_doc_ids(sources: Sequence[Any]) -> list[str]:
    """The document id of each source, best first (file names, not full paths)."""
    return [Path(s.doc_id).name for s in sources]


def migrate_chain(
    source: Any,
    hops: Sequence[tuple[str, dict[str, Any]]],
    collection: str,
    questions: Sequence[str],
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Migrate `source` (a RagApp) along `hops` (store, target settings), each hop from the
    previous target, and answer `questions` on every copy; one table row per hop, and the
    apps opened on the copies (for `cleanup`)."""
    from rag_app.app import RagApp
    from rag_app.migration.targets import target_settings

    expected = {q: source.query(q, cache=False).text for q in questions}
    rows, apps, current = [], [], source
    for store, target in hops:
        report = current.migrate_to(store, to_collection=collection, policy="replace", **target)
        settings = target_settings(current.settings, store, collection=collection, **target)
        current = RagApp(settings, embedder=source.embedder)
        apps.append(current)
        same = sum(current.query(q, cache=False).text == expected[q] for q in questions)
        verification = report.verification
        rows.append(
            {
                "to": store,
                "chunks": report.chunks,
                "seconds": round(report.seconds, 2),
                "texts_embedded": report.texts_embedded,
                "verified": bool(verification and verification.ok),
                "identical_answers": f"{same}/{len(questions)}",
            }
        )
    return rows, apps


def plot_hits(results: Sequence[dict[str, Any]], ranks: Sequence[int] = (1, 3, 5, 10)):
    """hit@k against k: one line per eval result (colour: retriever, line style: store)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    styles = {"memory": ("-", "o"), "chroma": ("--", "x"), "pinecone": (":", "s")}
    colors = {"hybrid": "tab:blue", "dense": "tab:orange", "keyword": "tab:green"}
    for result in results:
        linestyle, marker = styles.get(result["store"], ("-", "o"))
        ax.plot(
            list(ranks),
            [result[f"hit@{k}"] for k in ranks],
            linestyle=linestyle,
            marker=marker,
            color=colors.get(result["retriever"]),
            label=f"{result['retriever']} ({result['store']})",
        )
    ax.set_xticks(list(ranks))
    ax.set_xlabel("k (sources retrieved)")
    ax.set_ylabel("hit@k")
    ax.set_title("Share of questions whose answer is in the top k chunks")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


#: Answer metrics on a 0..1 scale for `plot_answer_metrics` (BLEU and chrF are divided by 100).
ANSWER_PLOT_METRICS = ("exact_match", "f1", "bleu", "chrf", "rougeL", "semantic_similarity")


def plot_answer_metrics(results: Sequence[dict[str, Any]]):
    """Grouped bars: one group per answer metric, one bar per (retriever, store) run."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(results), 1)
    positions = np.arange(len(ANSWER_PLOT_METRICS))
    for index, result in enumerate(results):
        values = [
            (result.get(m) or 0.0) / (100 if m in ("bleu", "chrf") else 1)
            for m in ANSWER_PLOT_METRICS
        ]
        ax.bar(
            positions + index * width,
            values,
            width,
            label=f"{result['retriever']} ({result['store']})",
        )
    ax.set_xticks(positions + width * (len(results) - 1) / 2)
    ax.set_xticklabels(["EM", "F1", "BLEU/100", "chrF/100", "ROUGE-L", "similarity"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (0..1)")
    ax.set_title("Extractive answers vs XQuAD gold answers")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def squad_subset(path: Path, n_articles: int | None, out_dir: Path) -> Path:
    """The first `n_articles` articles of a SQuAD-format file (all of them when None)."""
    if n_articles is None:
        return path
    data = json.loads(path.read_text(encoding="utf-8"))
    data["data"] = data["data"][:n_articles]
    out_dir.mkdir(parents=True, exist_ok=True)
    # The file's stem names the documents (`<stem>/<n>-<title>`), so keep it.
    target = out_dir / path.name
    target.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return target


def shared_embedder(data_dir: Path) -> Any:
    """The offline embedder with an embedding cache that outlives each RagApp using it.

    `RagApp.close()` (and so `evaluate_squad`) closes its embedder's cache; this cache ignores
    that close so several eval runs share it (each text is embedded once). Close it for good with
    `embedder.cache.close_now()`.
    """
    from rag_app.embeddings.models import EmbeddingCache, build_embedder
    from rag_app.settings import load_settings

    class _SharedCache(EmbeddingCache):
        def close(self) -> None:  # keep the connection: later runs reuse the cache
            pass

        def close_now(self) -> None:
            super().close()

    embedder = build_embedder(load_settings(data_dir=data_dir), cache=False)
    embedder.cache = _SharedCache(data_dir / "embedding_cache.sqlite")
    return embedder


# ---------------------------------------------------------------------------------------------
# Executing notebooks (runner and tests)
# ---------------------------------------------------------------------------------------------


def notebooks_dir() -> Path:
    """`notebooks/` of the repository this package is installed from (editable install)."""
    return Path(__file__).resolve().parents[1] / "notebooks"


@dataclass
class NotebookRun:
    name: str
    seconds: float
    error: str | None
    notebook: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None


def this_python_kernel_manager_class() -> type:
    """A kernel manager class whose `python3` kernel is `sys.executable` (this venv), whatever
    kernels happen to be registered on the machine."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    argv = [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher"]

    class ThisPythonSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(
                argv=[*argv, "-f", "{connection_file}"],
                display_name="Python 3 (ipykernel)",
                language="python",
            )

    class ThisPythonKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _this_python_specs(self) -> KernelSpecManager:
            return ThisPythonSpecs()

    return ThisPythonKernelManager


def execute_notebook(
    path: Path,
    workdir: Path,
    timeout: int,
    env: dict[str, str] | None = None,
) -> NotebookRun:
    """Execute one notebook in `workdir`; the error (if any) is the failing cell's message."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        kernel_manager_class=this_python_kernel_manager_class(),
        resources={"metadata": {"path": str(workdir)}},
    )
    started = time.perf_counter()
    error = None
    try:
        client.execute(env={**os.environ, **(env or {})})
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return NotebookRun(path.stem, time.perf_counter() - started, error, notebook)


def run_notebooks(
    names: Sequence[str] = (),
    scale: str = "small",
    keep_outputs: Path | None = None,
    workdir: Path | None = None,
    timeout: int | None = None,
    env: dict[str, str] | None = None,
) -> list[NotebookRun]:
    """Execute the named notebooks (default: all, in order) at `scale`; print each run time.

    With `keep_outputs`, the executed notebooks are written there; otherwise nothing is written.
    """
    import nbformat

    paths = select_notebooks(names)
    env = {"RAG_NOTEBOOK_SCALE": scale, **(env or {})}
    runs = []
    for path in paths:
        with _workdir(workdir) as cwd:
            run = execute_notebook(path, cwd, timeout or NOTEBOOK_TIMEOUTS[scale], env)
        status = "ok" if run.ok else "FAILED"
        print(f"{run.name}: {status} in {run.seconds:.1f} s", flush=True)
        if run.error:
            print(run.error, file=sys.stderr)
        if keep_outputs is not None:
            keep_outputs.mkdir(parents=True, exist_ok=True)
            nbformat.write(run.notebook, keep_outputs / path.name)
        runs.append(run)
    return runs


def select_notebooks(names: Sequence[str] = ()) -> list[Path]:
    """Notebook paths by name or prefix (`01`, `03_knn_vs_ann_hnsw`, `...ipynb`); all if empty."""
    available = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return available
    chosen = []
    for name in names:
        stem = Path(name).stem
        matches = [p for p in available if p.stem == stem or p.stem.startswith(stem)]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in available)
            raise SystemExit(f"no single notebook matches {name!r} (notebooks: {known})")
        chosen += matches
    return chosen


@contextmanager
def _workdir(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="rag_nbrun_") as tmp:
        yield Path(tmp)
