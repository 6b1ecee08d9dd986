"""The API docs page's Swagger UI, served by the app itself rather than from a CDN.

quart-schema's `/api/docs` page loads Swagger UI's script and stylesheet from cdnjs by
default: on a machine that cannot reach it the page stays blank. The files come instead from
an installed package, flask-swagger-ui, used only for the `dist/` it ships (Swagger UI's own
build, kept current by its maintainer; swagger-ui-bundle's 4.x cannot read the OpenAPI 3.1
document quart-schema writes), and quart-schema is pointed at them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from quart import Blueprint, Quart, Response, send_from_directory
from quart_schema import hide

ASSETS_PATH = "/api/docs/assets"
SWAGGER_UI_DIST = Path(str(files("flask_swagger_ui") / "dist"))

docs = Blueprint("docs", __name__)


@docs.get(f"{ASSETS_PATH}/<path:filename>")
@hide  # the docs page's own files, not part of the API
async def swagger_ui_asset(filename: str) -> Response:
    return await send_from_directory(SWAGGER_UI_DIST, filename)


def init_app(app: Quart) -> None:
    """Serve the assets and point quart-schema's page at them (after QuartSchema(app))."""
    app.register_blueprint(docs)
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = f"{ASSETS_PATH}/swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = f"{ASSETS_PATH}/swagger-ui.css"
