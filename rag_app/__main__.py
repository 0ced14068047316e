"""`python -m rag_app` is the `rag-app` command."""

import sys

from rag_app.cli.entry import main

sys.exit(main())
