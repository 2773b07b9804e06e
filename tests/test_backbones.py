"""Vision and text backbones: local pretrained weights, the Hugging Face adapter, natural layer paths."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from conftest import reloaded_test_metrics
from earlyreadout.config import build_config
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.errors import UserError
from earlyreadout.models import build_model
from earlyreadout.models.hf import segment_ids
from earlyreadout.models.layers import FeatureTap, find_module, parameters_feeding
from earlyreadout.params import resolve
from earlyreadout.readout.heads import EarlyReadout
from earlyreadout.train.engine import train

IMAGE_INFO = {"modality": "image", "shape": (3, 32, 32)}
WORDS = ["good", "bad", "film", "book", "not", "very", "the", "a", "is", "."]


# --- torchvision ResNet -----------------------------------------------------------------------------------
@pytest.mark.parametrize("side, small_input, layer1_side", [
    (224, None, 56),   # chosen from the data: the standard stem (stride 2 + max-pool) at 224 px
    (32, None, 32),    # and the small stem below 64 px
    (64, None, 16),
    (224, True, 224),  # an explicit setting wins
])
def test_resnet_stem_is_chosen_from_the_image_size(side, small_input, layer1_side):
    info = {"modality": "image", "shape": (3, side, side)}
    model = build_model("resnet", {"arch": "resnet18", "small_input": small_input}, info, 2).eval()
    with FeatureTap(model, ["layer1"]) as tap, torch.no_grad():
        model(torch.randn(1, 3, side, side))
        assert tuple(tap.features["layer1"].shape[-2:]) == (layer1_side, layer1_side)


def test_resnet_loads_local_imagenet_weights_and_replaces_the_head(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("resnet", {"arch": "resnet18", "small_input": False, "weights": str(path)}, IMAGE_INFO, 3)
    assert torch.equal(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert torch.equal(model.bn1.running_var, reference.bn1.running_var)
    assert model.fc.out_features == 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_resnet_weights_errors(tmp_path):
    with pytest.raises(UserError, match=r"requested but the file does not exist"):
        build_model("resnet", {"arch": "resnet18", "small_input": False, "weights": str(tmp_path / "no.pth")},
                    IMAGE_INFO, 2)
    with pytest.raises(UserError, match="small_input=false"):
        build_model("resnet", {"arch": "resnet18", "small_input": True, "weights": str(tmp_path / "no.pth")},
                    IMAGE_INFO, 2)
    import torchvision

    path = tmp_path / "r18.pth"
    torch.save({"state_dict": torchvision.models.resnet18().state_dict()}, path)
    with pytest.raises(UserError, match=r"do not fit ResNet.*(missing|wrong shape)"):
        build_model("resnet", {"arch": "resnet50", "small_input": False, "weights": str(path)}, IMAGE_INFO, 2)


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_timm_without_timm_is_a_clear_error():
    with pytest.raises(UserError, match="pip install timm"):
        build_model("timm", {"arch": "resnet18", "weights": None}, IMAGE_INFO, 2)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_timm_builds_any_architecture():
    model = build_model("timm", {"arch": "resnet18", "weights": None}, IMAGE_INFO, 4)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


# --- Hugging Face -------------------------------------------------------------------------------------------
def save_tokenizer(folder: Path) -> None:
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    BertTokenizer(str(vocab)).save_pretrained(str(folder))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    save_tokenizer(folder)
    return folder


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory) -> Path:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-distilbert")
    config = DistilBertConfig(vocab_size=5 + len(WORDS), dim=16, n_layers=2, n_heads=2, hidden_dim=32,
                              max_position_embeddings=32)
    DistilBertForSequenceClassification(config).save_pretrained(str(folder))
    save_tokenizer(folder)
    return folder


def text_csv(folder: Path) -> Path:
    rows = ["text,y,a,split"]
    for i in range(12):
        label = i % 2
        rows.append(f"{'the film is ' + ('good' if label else 'bad')}{' not' if i % 3 == 0 else ''},{label},"
                    f"{int(i % 3 == 0)},{i % 3}")
    path = folder / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def text_splits(tmp_path: Path, tokenizer: Path | None, max_len: int = 12):
    options = {"root": str(text_csv(tmp_path)), "modality": "text", "input_column": "text", "max_len": max_len,
               "tokenizer": None if tokenizer is None else str(tokenizer)}
    opts, problems = resolve(DATASETS.get("csv").options, options, "csv")
    assert not problems
    return load_splits("csv", opts)


def test_dataset_uses_the_models_tokenizer(tmp_path, bert_dir):
    train_split = text_splits(tmp_path, bert_dir)["train"]
    ids = train_split.get_x(0)
    assert ids[:6].tolist() == [2, 5 + WORDS.index("the"), 5 + WORDS.index("film"), 5 + WORDS.index("is"),
                                5 + WORDS.index("bad"), 5 + WORDS.index("not")]
    assert ids[6] == 3 and ids[7:].eq(0).all()  # [SEP], then padding
    assert train_split.info["vocab_size"] == 15 and train_split.info["tokenizer"] == str(bert_dir)


def test_hf_adapter_masks_padding_and_natural_layer_paths(tmp_path, bert_dir):
    info = text_splits(tmp_path, bert_dir)["train"].info
    model = build_model("hf", {"path": str(bert_dir), "pretrained": True}, info, 2).eval()
    ids = torch.tensor([[2, 11, 6, 13, 3, 0, 0, 0], [2, 11, 7, 3, 0, 0, 0, 0]])
    longer = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], 1)
    with torch.no_grad():
        assert torch.allclose(model(ids), model(longer), atol=1e-5)  # padding is masked out
    layer = find_module(model, "encoder.layer.1")
    assert layer is find_module(model, "bert.encoder.layer.1") is model.hf.bert.encoder.layer[1]
    assert model.stages == ["embeddings", "encoder.layer.0", "encoder.layer.1"]
    with pytest.raises(UserError, match=r"did you mean 'encoder.layer.1'"):
        find_module(model, "encoder.layer.11")
    with FeatureTap(model, ["encoder.layer.0"]) as tap:
        model(ids)
        assert tap.features["encoder.layer.0"].shape == (2, 8, 16)
    early = set(parameters_feeding(model, "encoder.layer.0", ids))
    assert any(".embeddings." in n for n in early) and any(".encoder.layer.0." in n for n in early)
    assert not any(".encoder.layer.1." in n or "classifier" in n for n in early)


def test_distilbert_paths_and_readout(tmp_path, distilbert_dir):
    info = text_splits(tmp_path, distilbert_dir)["train"].info
    model = build_model("hf", {"path": str(distilbert_dir), "pretrained": True}, info, 3)
    assert model.sep_id is None  # DistilBERT takes no segment ids
    assert find_module(model, "distilbert.transformer.layer.1") is find_module(model, "transformer.layer.1")
    ids = torch.tensor([[2, 11, 6, 3, 0], [2, 12, 3, 0, 0]])
    with EarlyReadout(model, "distilbert.transformer.layer.0", n_classes=3, example_input=ids) as ro:
        out = ro(ids)
        assert out["distilbert.transformer.layer.0"].shape == (2, 3)


def test_segment_ids_by_hand():
    ids = torch.tensor([[2, 7, 3, 8, 9, 3, 0, 0]])
    mask = (ids != 0).long()
    assert segment_ids(ids, 3, mask).tolist() == [[0, 0, 0, 1, 1, 1, 0, 0]]


def test_hf_errors(tmp_path, bert_dir):
    word_info = text_splits(tmp_path, None)["train"].info
    with pytest.raises(UserError, match="set data.tokenizer"):
        build_model("hf", {"path": str(bert_dir), "pretrained": True}, word_info, 2)
    scratch = build_model("hf", {"path": str(bert_dir), "pretrained": False}, word_info, 2)
    assert scratch.hf.config.vocab_size == word_info["vocab_size"]
    with pytest.raises(UserError, match="no config.json"):
        build_model("hf", {"path": str(tmp_path), "pretrained": True}, word_info, 2)
    no_weights = tmp_path / "config-only"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((bert_dir / "config.json").read_text())
    info = {**word_info, "tokenizer": str(bert_dir), "vocab_size": 15}
    with pytest.raises(UserError, match="cannot load pretrained weights"):
        build_model("hf", {"path": str(no_weights), "pretrained": True}, info, 2)
    with pytest.raises(UserError, match="exceeds the model's 32 positions"):
        build_model("hf", {"path": str(bert_dir), "pretrained": True}, {**info, "max_len": 64}, 2)


def test_train_end_to_end_with_a_tiny_bert(tmp_path, bert_dir):
    csv = text_csv(tmp_path)
    cfg = build_config({
        "method": "erm",
        "data": {"name": "csv", "root": str(csv), "modality": "text", "input_column": "text",
                 "tokenizer": str(bert_dir), "max_len": 12},
        "model": {"name": "hf", "path": str(bert_dir)},
        "train": {"epochs": 1, "batch_size": 4, "device": "cpu"},
        "out": str(tmp_path / "run"),
    })
    result = train(cfg, log=lambda _: None)
    reloaded = reloaded_test_metrics(tmp_path / "run")  # the saved BERT classifier is the one evaluated
    assert result["test"]["n"] == reloaded["n"] == 4
    assert reloaded["average_accuracy"] == pytest.approx(result["test"]["average_accuracy"])
    assert reloaded["worst_group_accuracy"] == pytest.approx(result["test"]["worst_group_accuracy"])
