"""Tiny test models built offline from configs in about a second (no hub downloads).

`tiny-chat`: the byte-level BPE tokenizer of backend.protocol.tiny_tokenizer plus a 2-layer Llama with
random weights and a Hermes-style chat template that knows tools. Its answers are gibberish; what
matters is that it is a real transformers model on the real code path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from backend.protocol.tiny_tokenizer import byte_level_bpe, tiny_tokenizer

CHAT_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- elif content -%}{%- for part in content -%}"
    "{%- if part.type == 'text' -%}{{ part.text }}{%- elif part.type in ('image_url', 'image') -%}<image>{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{%- if tools -%}"
    "<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ text(messages[0].content) }}\n\n{% endif -%}"
    "You may call one or more functions. Their signatures are inside <tools></tools>:\n<tools>\n"
    "{% for tool in tools %}{{ tool | tojson }}\n{% endfor -%}"
    "</tools>\nReturn each call as <tool_call>{\"name\": <name>, \"arguments\": <args>}</tool_call><|im_end|>\n"
    "{% elif messages[0].role == 'system' -%}"
    "<|im_start|>system\n{{ text(messages[0].content) }}<|im_end|>\n"
    "{% endif -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'system' and loop.first -%}"
    "{%- elif message.role == 'tool' -%}"
    "<|im_start|>user\n<tool_response>\n{{ text(message.content) }}\n</tool_response><|im_end|>\n"
    "{% elif message.role == 'assistant' and message.tool_calls -%}"
    "<|im_start|>assistant\n{{ text(message.content) }}"
    "{%- for call in message.tool_calls -%}"
    "<tool_call>{\"name\": \"{{ call.function.name }}\", \"arguments\": {{ call.function.arguments }}}</tool_call>"
    "{%- endfor -%}<|im_end|>\n"
    "{% else -%}"
    "<|im_start|>{{ message.role }}\n{{ text(message.content) }}<|im_end|>\n"
    "{% endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{% endif -%}"
)


def _save(out_dir: Path, *parts) -> Path:
    """save_pretrained every part (model, tokenizer, processor, pipeline) into one folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for part in parts:
        part.save_pretrained(out_dir)
    return out_dir


def build_tiny_chat(out_dir: Path, seed: int = 0, initializer_range: float = 0.3) -> Path:
    """Write a tiny Llama chat model with its tokenizer into `out_dir` (idempotent). Its random weights are drawn wide
    (`initializer_range`; transformers' 0.02 gives every token nearly the same probability) so next-token
    distributions are peaked, as a trained model's are: what audits tell models apart by. The EOS row of its output
    layer is zeroed, so answers run to max_tokens rather than stopping at random."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and (out_dir / "tokenizer.json").exists():
        return out_dir
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tiny_tokenizer(),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        bos_token_id=None,
        tie_word_embeddings=False,
        initializer_range=initializer_range,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight[config.eos_token_id].zero_()
    return _save(out_dir, model, fast)


def build_tiny_vision(out_dir: Path, seed: int = 0) -> Path:
    """A tiny Llava: CLIP vision tower (32px, 8px patches) + the tiny chat Llama, with a PIL image processor."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and (out_dir / "processor_config.json").exists():
        return out_dir
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )  # fmt: skip

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = AutoTokenizer.from_pretrained(build_tiny_chat(Path(scratch) / "chat", seed))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )  # fmt: skip
    return _save(out_dir, model, processor)


def build_tiny_sd(out_dir: Path, seed: int = 0) -> Path:
    """A tiny Stable Diffusion pipeline (64x64 images): UNet, VAE, CLIP text encoder, DDIM, all from configs."""
    out_dir = Path(out_dir)
    if (out_dir / "model_index.json").exists():
        return out_dir
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(512, ["<|endoftext|>", "<|startoftext|>"]),
        bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=77,
    )  # fmt: skip
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, projection_dim=32, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )  # fmt: skip
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), norm_num_groups=8, sample_size=64,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    )  # fmt: skip
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    return _save(out_dir, pipe)


BUILDERS = {"tiny-chat": build_tiny_chat, "tiny-vision": build_tiny_vision, "tiny-sd": build_tiny_sd}
# Which engine kind (gpu_worker.engines.registry) serves each tiny model.
ENGINE_KINDS = {"tiny-chat": "transformers", "tiny-vision": "transformers", "tiny-sd": "diffusers"}


def build_all(root: Path) -> dict[str, Path]:
    return {name: build(Path(root) / name) for name, build in BUILDERS.items()}


def build_rounded(source: Path, out_dir: Path, bits: int = 8) -> Path:
    """A copy of a transformers model with every Linear weight rounded to `bits` (symmetric, per output channel):
    what a worker serving a cheaper quantised model in place of the claimed one runs (audit tests, bench/audits.py)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    round_linears(model, bits)
    return _save(Path(out_dir), model, AutoTokenizer.from_pretrained(source))


def round_linears(model, bits: int) -> None:
    """Every nn.Linear weight rounded to `bits` per output channel (symmetric absmax) and back to float, in place."""
    import torch

    levels = 2 ** (bits - 1) - 1  # 127 for int8, 7 for int4
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                scale = module.weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / levels
                module.weight.copy_((module.weight / scale).round().clamp(-levels, levels) * scale)
