import torch

from models import ModelSpec, MultiTaskModel


def test_one_class_serves_single_and_multi_task():
    for heads in ({"a": 3}, {"a": 3, "b": 1, "c": 2}):
        model = MultiTaskModel(ModelSpec("tabular", {"n_features": 5}, heads, hidden=8))
        out = model(torch.randn(4, 5))
        assert {k: v.shape for k, v in out.items()} == {k: (4, w) for k, w in heads.items()}


def test_text_encoder_ignores_padding():
    model = MultiTaskModel(ModelSpec("text", {"vocab_size": 50}, {"a": 2}, hidden=8, embed_dim=4, dropout=0.0))
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0]])
    assert torch.allclose(model(short)["a"], model(padded)["a"], atol=1e-6)


def test_shared_parameters_are_the_encoder():
    model = MultiTaskModel(ModelSpec("image", {"height": 8, "width": 8}, {"a": 2, "b": 2}, hidden=8))
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {id(p) for p in model.encoder.parameters()}
    assert not shared & {id(p) for p in model.heads.parameters()}
