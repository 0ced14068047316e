"""``python -m pinecone_local``: run the local Pinecone-compatible server."""

import sys

from pinecone_local.cli import main

sys.exit(main(prog="python -m pinecone_local"))
