"""The `rag-app` command line: one module per command group.

`entry` parses arguments and dispatches, `documents` holds ingest / query / docs / cache,
`eval` the eval family, `images` the image commands and `serve` the HTTP server. The top of
the import graph: nothing in rag_app imports it.
"""

from rag_app.cli.entry import main

__all__ = ["main"]
