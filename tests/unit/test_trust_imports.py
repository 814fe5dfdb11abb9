"""The JOSE library loads only into the token function: the authorizer's and the Api's cold
starts do not pay for it (functions/trust/__init__.py)."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_authorizer_and_the_api_never_import_jwt() -> None:
    for handler in ("functions.authorizer.handler", "functions.api.handler"):
        modules = loaded_after(f"import {handler}")
        assert "jwt" not in modules, handler
        assert not any(m.startswith("functions.trust") for m in modules), handler
    assert "jwt" in loaded_after("import functions.trust.handler")
