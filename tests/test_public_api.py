"""Each package's public names are pinned: removing or renaming one is a deliberate, visible change."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "clip_core": [
        "CardError",
        "CheckpointError",
        "ClipError",
        "ClipModel",
        "ClipOutput",
        "EmbedResult",
        "EmbeddingIndex",
        "Embeddings",
        "EvalData",
        "EvalResult",
        "ExportError",
        "ImageEncoder",
        "ImagePreprocess",
        "InputError",
        "IntermediatesEncoder",
        "ModelCard",
        "PLUGIN_API_VERSION",
        "PluginError",
        "PreprocessConfig",
        "PretrainedError",
        "PretrainedTagInfo",
        "PretrainedWeights",
        "Provenance",
        "SearchHit",
        "TextEncoder",
        "Tokenizer",
        "TokenizerConfig",
        "TowerConfig",
        "TowerIntermediates",
        "__version__",
        "build_index",
        "build_tower",
        "card_json_schema",
        "create_app",
        "create_model",
        "embed_images",
        "embed_texts",
        "evaluate",
        "export_model",
        "get_card",
        "get_preprocess",
        "get_tokenizer",
        "hookimpl",
        "list_cards",
        "load_data",
        "load_checkpoint",
        "open_index",
        "read_embeddings",
        "read_image",
        "register_plugin",
        "run_server",
        "search_by_image",
        "search_by_text",
        "unregister_plugin",
        "zero_shot_classifier",
        "zero_shot_predict",
    ],
    "clip_core.inplace": ["PreNormBlock", "Workspace", "block_in_place", "blocks_in_place", "runs_in_place", "tracing"],
    "clip_core.intermediates": [
        "Indices",
        "TowerIntermediates",
        "forward_intermediates",
        "take_indices",
        "to_output_format",
    ],
    "clip_core.export.onnx": ["IMAGE_FILE", "ONNX_EXTRA", "OPSET", "TEXT_FILE", "write_onnx"],
    "clip_core.converters": [
        "SAME",
        "TIMM_BLOCK",
        "TRANSPOSED",
        "LayoutKey",
        "Reshape",
        "from_layout",
        "hf_encoder_layer",
        "key_reader",
        "openai_resblock",
        "resample_position_embedding",
        "to_hf_encoder_layer",
        "to_layout",
        "to_openai_resblock",
    ],
    "clip_core.hub": [
        "CACHE_ENV",
        "HUB_PREFIX",
        "HubName",
        "PretrainedWeights",
        "cache_dir",
        "cached_file",
        "download_hub",
        "download_url",
        "fetch_weights",
        "hub_cache",
        "hub_endpoint",
        "hub_offline",
        "hub_snapshot",
        "is_hub_name",
        "model_card_readme",
        "package_pretrained",
        "parse_hub_name",
        "prepare_push",
        "push_to_hub",
        "sha256_file",
    ],
    "clip_encoders_text": ["ClipBpeTokenizer", "TextTransformer", "TextTransformerConfig", "__version__"],
    "clip_encoders_vit": ["TimmTower", "TimmTowerConfig", "VitConfig", "VitTower", "__version__"],
    "clip_encoders_resnet": ["ModifiedResNet", "ModifiedResNetConfig", "__version__"],
    "clip_losses": ["ClipLoss", "NTXentLoss", "SigLipLoss", "__version__", "gather_with_grad"],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_is_pinned_and_every_name_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    for name in module.__all__:
        assert hasattr(module, name), name


def test_every_error_a_user_sees_is_a_clip_error() -> None:
    import clip_core

    for name in ("CardError", "CheckpointError", "PluginError", "PretrainedError", "InputError"):
        assert issubclass(getattr(clip_core, name), clip_core.ClipError)
    assert issubclass(clip_core.CardError, ValueError) and issubclass(clip_core.InputError, ValueError)


def test_public_functions_and_classes_are_documented() -> None:
    import clip_core

    undocumented = [
        name
        for name in clip_core.__all__
        if callable(getattr(clip_core, name)) and not (getattr(clip_core, name).__doc__ or "").strip()
    ]
    assert undocumented == []
