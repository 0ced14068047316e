"""Exit codes shared by every command (docs/cli.md, "Exit codes")."""

EXIT_SKIPPED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
