"""``python -m rag_app.pinecone_local``: run the local Pinecone-compatible server."""

import sys

from rag_app.pinecone_local.cli import main

sys.exit(main())
