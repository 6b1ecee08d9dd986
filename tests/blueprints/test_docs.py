"""/api/docs renders from the server alone: Swagger UI's files come from the app itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from quart.testing import QuartClient

from ..server_process import ServerProcess
from ..services import require_program


async def test_the_docs_page_loads_swagger_ui_from_the_app(client: QuartClient) -> None:
    page = await (await client.get("/api/docs")).get_data(as_text=True)
    assert 'src="/api/docs/assets/swagger-ui-bundle.js"' in page
    assert 'href="/api/docs/assets/swagger-ui.css"' in page
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        response = await client.get(f"/api/docs/assets/{asset}")
        assert response.status_code == 200 and kind in response.content_type
    assert (await client.get("/api/docs/assets/../../settings.toml")).status_code == 404


def chromium() -> str:
    return require_program("chromium", " (headless, for the docs page: apt-get install chromium)")


def test_the_docs_page_renders_offline_in_headless_chromium(tmp_path: Path) -> None:
    browser = chromium()
    env = {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'docs.sqlite3'}"}
    with ServerProcess(env=env, log_dir=tmp_path) as server:
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
             # No host but the server resolves: a page that needs a CDN stays blank.
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             # Let Swagger UI fetch the OpenAPI document and render before the dump.
             "--virtual-time-budget=15000",
             "--dump-dom", server.base_url + "/api/docs"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
        ).stdout
    assert 'class="opblock-summary-method">POST<' in dom, dom[-2000:]
    assert 'data-path="/api/info"' in dom, dom[-2000:]
