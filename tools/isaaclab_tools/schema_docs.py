"""Render the conf schema as the field table of docs/configuration.md (``python -m isaaclab_tools.schema_docs``).

A test checks that the doc holds exactly this table, so the docs cannot drift from the schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from isaaclab_pipeline.schemas import load_schema

BEGIN = "<!-- BEGIN GENERATED FIELDS (python -m isaaclab_tools.schema_docs) -->"
END = "<!-- END GENERATED FIELDS -->"


def _default(prop: dict[str, Any]) -> str:
    if "x-defaultByMode" in prop:
        return ", ".join(f"{v} ({k})" for k, v in prop["x-defaultByMode"].items())
    return f"`{json.dumps(prop['default'])}`" if "default" in prop else "—"


def _allowed(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "minimum" in prop:
        return f"{prop['minimum']}–{prop['maximum']}"
    if "pattern" in prop:
        return f"pattern `{prop['pattern'].replace('|', chr(92) + '|')}`"
    return ""


def render_fields() -> str:
    """Return the markdown table of every conf field, between the generated-block markers."""
    schema = load_schema()
    rows = ["| field | type | default | allowed | required | description |", "|---|---|---|---|---|---|"]

    def add(name: str, prop: dict[str, Any], required: bool) -> None:
        kind = prop.get("type", "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        rows.append(f"| `{name}` | {kind} | {_default(prop)} | {_allowed(prop)} | "
                    f"{'yes' if required else ''} | {prop.get('description', '').replace('|', '/')} |")

    for name, prop in schema["properties"].items():
        add(name, prop, name in schema.get("required", []))
        for sub, sub_prop in prop.get("properties", {}).items():
            add(f"{name}.{sub}", sub_prop, sub in prop.get("required", []))
    return "\n".join([BEGIN, *rows, END])


def write_fields(doc: Path) -> None:
    """Replace the generated block of ``doc`` (docs/configuration.md) with the current table."""
    text = doc.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    doc.write_text(text[:start] + render_fields() + text[end:])


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:  # python -m isaaclab_tools.schema_docs --write docs/configuration.md
        write_fields(Path(sys.argv[2]))
    else:
        print(render_fields())
