"""clip-core: model cards, the plugin registry, CLIP model composition, checkpoints and preprocessing.

Towers, tokenizers, cards and losses come from plugins (``clip-encoders-vit``, ``clip-encoders-resnet``,
``clip-encoders-text``, ``clip-losses`` or your own), discovered through the entry-point group ``clip_core``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from clip_core.cards import (
    ModelCard,
    PreprocessConfig,
    PretrainedTagInfo,
    Provenance,
    TokenizerConfig,
    TowerConfig,
    card_json_schema,
)
from clip_core.catalog import get_card, list_cards
from clip_core.checkpoints import load_checkpoint
from clip_core.create import create_model
from clip_core.embedding import Embeddings, EmbedResult, embed_images, embed_texts, read_embeddings, read_image
from clip_core.errors import (
    CardError,
    CheckpointError,
    ClipError,
    ExportError,
    InputError,
    PluginError,
    PretrainedError,
)
from clip_core.eval import EvalData, EvalResult, evaluate, load_data
from clip_core.export import export_model
from clip_core.hookspecs import PLUGIN_API_VERSION, hookimpl
from clip_core.hub.pretrained import PretrainedWeights
from clip_core.index import EmbeddingIndex, SearchHit, build_index, open_index, search_by_image, search_by_text
from clip_core.intermediates import TowerIntermediates
from clip_core.model import ClipModel, ClipOutput
from clip_core.preprocess import ImagePreprocess, get_preprocess
from clip_core.protocols import ImageEncoder, IntermediatesEncoder, TextEncoder, Tokenizer
from clip_core.registry import register_plugin, unregister_plugin
from clip_core.serve import create_app, run_server
from clip_core.tokenizer import get_tokenizer
from clip_core.towers import build_tower
from clip_core.zeroshot import zero_shot_classifier, zero_shot_predict

try:
    __version__ = version("clip-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = [
    "PLUGIN_API_VERSION",
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
]
