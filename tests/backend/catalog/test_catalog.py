"""The catalog a real network lists, and the dev overlay that adds the tiny CPU models in dev mode only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.catalog import CatalogModel, load_catalog
from backend.config import DEV_CATALOG, Settings

TINY = {"tiny-chat", "tiny-vision", "tiny-sd"}


def test_the_production_catalog_serves_real_open_models_and_names_how():
    catalog = load_catalog(*Settings(env="production").catalog_files)
    ids = {m.id for m in catalog.models}
    assert not ids & TINY and {"chat-small", "chat-medium", "chat-large", "vision-7b", "sdxl", "bge-m3"} <= ids
    families = {task for m in catalog.models for task in m.tasks}
    assert {"chat", "vision", "image", "embedding"} <= families
    for model in catalog.models:  # a node worker can start every one of them from the catalog alone
        assert model.serve is not None and model.serve.repo, model.id
    large = catalog.get("chat-large")
    assert large.serve.engine == "vllm" and large.serve.repo == "meta-llama/Llama-3.3-70B-Instruct" and large.billing == "per_1k_output_tokens"
    vision = catalog.get("vision-7b")
    assert vision.billing == "per_image_plus_output_tokens" and vision.charge({"images": 2, "output_tokens": 1000}) == 2 * 500 + 200


def test_dev_mode_lays_the_tiny_models_over_it(tmp_path):
    dev = load_catalog(*Settings(env="dev").catalog_files)
    assert TINY <= {m.id for m in dev.models} and dev.get("chat-large") is not None
    assert Settings(env="production", catalog_overlays=[DEV_CATALOG]).catalog_files[-1] == DEV_CATALOG
    overlay = tmp_path / "cheaper.yaml"
    overlay.write_text("models:\n  - {id: chat-large, tasks: [chat], billing: per_1k_output_tokens, rate: 1, context: 4096}\n")
    replaced = load_catalog(Settings().catalog_path, overlay)
    assert replaced.get("chat-large").rate == 1 and len([m for m in replaced.models if m.id == "chat-large"]) == 1


@pytest.mark.parametrize("serve", [{"engine": "llamafile", "repo": "x"}, {"engine": "vllm", "repo": ""}, {"engine": "vllm", "repo": "x", "port": 1}])
def test_a_serve_entry_is_checked(serve):
    with pytest.raises(ValidationError):
        CatalogModel.model_validate({"id": "m", "tasks": ["chat"], "billing": "per_1k_output_tokens", "rate": 1, "context": 8, "serve": serve})
