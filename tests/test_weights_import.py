"""Importing torch-layout weights from .safetensors, .npz and .pt files."""

import sys
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from rnnviewer.engine import CheckpointError, Model, import_weights, inspect_weights, save

try:
    import torch
except ImportError:  # the .pt tests and the torch cross-checks skip
    torch = None

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


# ------------------------------------------------------------------ helpers
def layer_state(cell, I, H, prefix="rnn.", layers=1, bias=True, seed=0, reverse=False):
    """torch-named arrays of an nn.RNN/GRU/LSTM (float32)."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    out = {}
    for k in range(layers):
        for suffix in (f"_l{k}", f"_l{k}_reverse") if reverse else (f"_l{k}",):
            i = I if k == 0 else H
            out[f"{prefix}weight_ih{suffix}"] = rng.uniform(-.6, .6, (G * H, i))
            out[f"{prefix}weight_hh{suffix}"] = rng.uniform(-.6, .6, (G * H, H))
            if bias:
                out[f"{prefix}bias_ih{suffix}"] = rng.uniform(-.6, .6, G * H)
                out[f"{prefix}bias_hh{suffix}"] = rng.uniform(-.6, .6, G * H)
    return {k: v.astype(np.float32) for k, v in out.items()}


def linear_state(n_in, n_out, prefix="fc.", bias=True, seed=1):
    rng = np.random.default_rng(seed)
    out = {f"{prefix}weight": rng.uniform(-.5, .5, (n_out, n_in)).astype(np.float32)}
    if bias:
        out[f"{prefix}bias"] = rng.uniform(-.5, .5, n_out).astype(np.float32)
    return out


def write(path, state):
    """Save `state` in the format of path's suffix."""
    suffix = path.suffix
    if suffix == ".safetensors":
        save_file(state, str(path))
    elif suffix == ".npz":
        np.savez(path, **state)
    else:
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, path)
    return path


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def formula_forward(cell, state, x, layer=0, prefix="rnn."):
    """The equations of torch's documentation, step by step, in float64: h (B, T, H)."""
    g = {k: state[f"{prefix}{k}_l{layer}"].astype(np.float64)
         for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    H = g["weight_hh"].shape[1]
    B, T, _ = x.shape
    h = np.zeros((B, H))
    c = np.zeros((B, H))
    hs = []
    for t in range(T):
        gi = x[:, t] @ g["weight_ih"].T + g["bias_ih"]
        gh = h @ g["weight_hh"].T + g["bias_hh"]
        if cell == "rnn":
            h = np.tanh(gi + gh)
        elif cell == "gru":
            r = sig(gi[:, :H] + gh[:, :H])
            z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
            n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            h = (1 - z) * n + z * h
        else:
            a = gi + gh
            i, f = sig(a[:, :H]), sig(a[:, H:2 * H])
            gg, o = np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
            c = f * c + i * gg
            h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


def torch_forward(cell, state, x, layers=1, prefix="rnn.", head="fc."):
    """(h of the last layer, readout output or None) computed by torch itself."""
    cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    I = state[f"{prefix}weight_ih_l0"].shape[1]
    H = state[f"{prefix}weight_hh_l0"].shape[1]
    net = cls(I, H, num_layers=layers, batch_first=True).double()
    net.load_state_dict({k[len(prefix):]: torch.from_numpy(v.astype(np.float64))
                         for k, v in state.items() if k.startswith(prefix)})
    with torch.no_grad():
        h = net(torch.from_numpy(x))[0]
        y = None
        if head is not None and f"{head}weight" in state:
            w = torch.from_numpy(state[f"{head}weight"].astype(np.float64))
            b = torch.from_numpy(state[f"{head}bias"].astype(np.float64))
            y = (h @ w.T + b).numpy()
    return h.numpy(), y


def inputs(B, T, I, seed=3):
    return np.random.default_rng(seed).normal(size=(B, T, I))


def formats():
    return [".safetensors", ".npz", pytest.param(".pt", marks=needs_torch)]


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("suffix", formats())
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_import_reproduces_the_original(tmp_path, suffix, cell):
    I, H, O = 3, 5, 2
    state = {**layer_state(cell, I, H, prefix=f"{cell}."), **linear_state(H, O, "fc.")}
    path = write(tmp_path / f"w{suffix}", state)
    m = import_weights(path, dtype="float64")
    assert (m.cell, m.n_in, m.n_hidden, m.n_out) == (cell, I, H, O)
    x = inputs(2, 6, I)
    tr = m.forward(x)
    h_ref = formula_forward(cell, state, x, prefix=f"{cell}.")
    np.testing.assert_allclose(tr.h, h_ref, rtol=1e-12, atol=1e-12)
    y_ref = h_ref @ state["fc.weight"].T.astype(np.float64) + state["fc.bias"]
    np.testing.assert_allclose(tr.y, y_ref, rtol=1e-12, atol=1e-12)
    if torch is not None:
        h_t, y_t = torch_forward(cell, state, x, prefix=f"{cell}.")
        np.testing.assert_allclose(tr.h, h_t, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(tr.y, y_t, rtol=1e-10, atol=1e-12)


def test_default_dtype_is_float32(tmp_path):
    state = {**layer_state("gru", 2, 4), **linear_state(4, 3)}
    m = import_weights(write(tmp_path / "w.safetensors", state))
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m.params["W_hh"], state["rnn.weight_hh_l0"])
    np.testing.assert_array_equal(m.params["b_y"], state["fc.bias"])


@pytest.mark.parametrize("rnn_prefix,head_prefix", [
    ("", ""), ("encoder.", "decoder."), ("model.encoder.lstm.", "model.head."),
    ("module.rnn.", "module.out."), ("lstm.", "linear."),
])
def test_prefixes_are_recognised(tmp_path, rnn_prefix, head_prefix):
    state = {**layer_state("lstm", 3, 4, prefix=rnn_prefix), **linear_state(4, 2, head_prefix)}
    info = inspect_weights(write(tmp_path / "w.npz", state))
    assert info.default_rnn == rnn_prefix and info.default_head == head_prefix
    m = import_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(m.params["W_hy"], state[f"{head_prefix}weight"])
    np.testing.assert_array_equal(m.params["W_xh"], state[f"{rnn_prefix}weight_ih_l0"])


def test_rnncell_names_without_layer_suffix(tmp_path):
    state = {k.replace("_l0", ""): v for k, v in layer_state("gru", 2, 3, prefix="cell.").items()}
    m = import_weights(write(tmp_path / "w.safetensors", state))
    assert (m.cell, m.n_out) == ("gru", 0)
    np.testing.assert_array_equal(m.params["b_hh"], state["cell.bias_hh"])


def test_layers_without_biases_get_zero_biases(tmp_path):
    state = {**layer_state("rnn", 2, 3, bias=False), **linear_state(3, 1, "out.", bias=False)}
    m = import_weights(write(tmp_path / "w.safetensors", state))
    assert m.n_out == 1
    for k in ("b_xh", "b_hh", "b_y"):
        assert not m.params[k].any()


# ------------------------------------------------------------------ layers and readouts
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_multilayer_pick_a_layer(tmp_path, cell):
    I, H, O = 3, 4, 2
    state = {**layer_state(cell, I, H, layers=2), **linear_state(H, O)}
    path = write(tmp_path / "w.safetensors", state)
    info = inspect_weights(path)
    assert info.recurrent[0].n_inputs == (I, H) and info.default_head is None
    first = import_weights(path, layer=0, expect_inputs=I, dtype="float64")
    assert (first.n_in, first.n_out) == (I, 0)  # the readout reads the last layer only
    last = import_weights(path, layer=1, dtype="float64")
    assert (last.n_in, last.n_out) == (H, O)
    x = inputs(2, 5, I)
    h0 = first.forward(x).h
    np.testing.assert_allclose(h0, formula_forward(cell, state, x, layer=0), rtol=1e-12, atol=1e-12)
    y = last.forward(h0).y
    if torch is not None:  # the two imported layers chained == torch's 2-layer network
        _, y_t = torch_forward(cell, state, x, layers=2)
        np.testing.assert_allclose(y, y_t, rtol=1e-10, atol=1e-12)
    with pytest.raises(CheckpointError, match=r"no layer 2 .*layers 0\.\.1"):
        import_weights(path, layer=2)
    with pytest.raises(CheckpointError, match=rf"layer 1 takes {H} inputs .*task feeds {I}"):
        import_weights(path, layer=1, expect_inputs=I)


def test_no_readout_opens_hidden_states_only(tmp_path):
    state = layer_state("lstm", 2, 3)
    m = import_weights(write(tmp_path / "w.npz", state), dtype="float64")
    assert m.n_out == 0 and "W_hy" not in m.params
    x = inputs(1, 4, 2)
    tr = m.forward(x)
    assert tr.y is None and set(tr.gates) == {"i", "f", "g", "o"}
    np.testing.assert_allclose(tr.h, formula_forward("lstm", state, x), rtol=1e-12, atol=1e-12)
    path2 = write(tmp_path / "w2.npz", {**state, **linear_state(3, 2)})
    m2 = import_weights(path2, head_prefix=False)
    assert m2.n_out == 0


def test_ambiguous_recurrent_layers_need_rnn_prefix(tmp_path):
    state = {**layer_state("gru", 2, 3, prefix="enc."), **layer_state("lstm", 3, 3, prefix="dec.")}
    path = write(tmp_path / "w.safetensors", state)
    assert inspect_weights(path).default_rnn is None
    with pytest.raises(CheckpointError, match=r"'dec\.', 'enc\.'.*rnn_prefix") as e:
        import_weights(path)
    assert str(path) in str(e.value)
    assert import_weights(path, rnn_prefix="dec").cell == "lstm"
    with pytest.raises(CheckpointError, match=r"no recurrent tensors with prefix 'mid\.'"):
        import_weights(path, rnn_prefix="mid.")


def test_ambiguous_readouts_need_head_prefix(tmp_path):
    state = {**layer_state("rnn", 2, 3), **linear_state(3, 2, "proj_a."),
             **linear_state(3, 4, "proj_b.")}
    path = write(tmp_path / "w.npz", state)
    info = inspect_weights(path)
    assert info.default_head is None
    assert {r.prefix for r in info.readouts_for(3)} == {"proj_a.", "proj_b."}
    both = r"proj_a\.weight \(2, 3\).*proj_b\.weight \(4, 3\).*head_prefix"
    with pytest.raises(CheckpointError, match=both):
        import_weights(path)
    assert import_weights(path, head_prefix="proj_b").n_out == 4


def test_embedding_is_not_taken_for_a_readout(tmp_path):
    # torch's word_language_model: encoder = Embedding(V, H), rnn = LSTM, decoder = Linear
    V, H = 7, 4
    emb = {"encoder.weight": np.ones((V, H), np.float32)}
    state = {**emb, **layer_state("lstm", H, H), **linear_state(H, V, "decoder.")}
    assert import_weights(write(tmp_path / "a.npz", state)).params["W_hy"].shape == (V, H)
    np.testing.assert_array_equal(import_weights(tmp_path / "a.npz").params["W_hy"],
                                  state["decoder.weight"])
    only_emb = {"embedding.weight": np.ones((V, H), np.float32), **layer_state("lstm", H, H)}
    info = inspect_weights(write(tmp_path / "b.npz", only_emb))
    assert info.default_head is None and any("embedding." in n for n in info.notes)
    assert import_weights(tmp_path / "b.npz").n_out == 0


def test_inspect_describes_the_file(tmp_path):
    state = {**layer_state("gru", 3, 5, prefix="gru.", layers=2), **linear_state(5, 2, "head.")}
    info = inspect_weights(write(tmp_path / "w.safetensors", state))
    assert info.format == "safetensors" and info.tensors["gru.weight_hh_l1"] == ((15, 5), "float32")
    (rec,) = info.recurrent
    assert (rec.cell, rec.n_hidden, rec.n_layers) == ("gru", 5, 2)
    assert rec.bias and not rec.bidirectional
    text = info.describe()
    assert "GRU (layer 0: 3 -> 5, layer 1: 5 -> 5)" in text and "head.: Linear 5 -> 2" in text


def test_name_contradicting_the_shapes_is_noted(tmp_path):
    info = inspect_weights(write(tmp_path / "w.npz", layer_state("gru", 2, 3, prefix="lstm.")))
    assert info.recurrent[0].cell == "gru"
    assert any("suggests LSTM" in n and "opened as GRU" in n for n in info.notes)
    generic = inspect_weights(write(tmp_path / "v.npz", layer_state("lstm", 2, 3, prefix="rnn.")))
    assert not any("suggests" in n for n in generic.notes)  # "rnn" names any recurrent layer


def test_rnnviewer_checkpoint_imports_as_is(tmp_path):
    m = Model("lstm", 2, 3, 1, seed=4)
    save(m, tmp_path / "m.npz")
    m2 = import_weights(tmp_path / "m.npz")
    assert m2.config == m.config
    with pytest.raises(CheckpointError, match="takes 2 inputs"):
        import_weights(tmp_path / "m.npz", expect_inputs=5)


# ------------------------------------------------------------------ mismatches
def bad(*states, **kw):
    """The merged states with the tensors in kw replacing theirs."""
    out = {}
    for s in states:
        out.update(s)
    return {**out, **kw}


GRU = layer_state("gru", 2, 4)  # 3 x 4 = 12 rows
WRONG = [
    (bad(GRU, **{"rnn.weight_ih_l0": np.zeros((11, 2), np.float32)}), {},
     r"rnn\.weight_ih_l0 has shape \(11, 2\), expected \(12, 2\)"),
    (bad(GRU, **{"rnn.weight_hh_l0": np.zeros((10, 4), np.float32)}), {},
     r"rnn\.weight_hh_l0 has shape \(10, 4\).*1, 3 or 4 times its 4 columns"),
    (bad(GRU, **{"rnn.bias_hh_l0": np.zeros(8, np.float32)}), {},
     r"rnn\.bias_hh_l0 has shape \(8,\), expected \(12,\)"),
    ({k: v for k, v in GRU.items() if k != "rnn.weight_hh_l0"}, {},
     r"rnn\.weight_hh_l0 is missing"),
    ({k: v for k, v in GRU.items() if k != "rnn.bias_ih_l0"}, {},
     r"rnn\.bias_hh_l0 is present but rnn\.bias_ih_l0 is missing"),
    (bad(GRU, linear_state(5, 2, "fc.")), {"head_prefix": "fc."},
     r"fc\.weight has shape \(2, 5\), expected \(n_out, 4\)"),
    (bad(GRU, linear_state(4, 2, "fc."), **{"fc.bias": np.zeros(3, np.float32)}), {},
     r"fc\.bias has shape \(3,\), expected \(2,\)"),
    (GRU, {"head_prefix": "head"}, r"no readout tensor 'head\.weight'"),
    (bad(layer_state("lstm", 2, 4), **{"rnn.weight_hr_l0": np.zeros((2, 4), np.float32)}), {},
     r"weight_hr_l0 .*proj_size.*not supported"),
    (layer_state("lstm", 2, 4, reverse=True), {}, r"bidirectional .*_reverse"),
    (bad(GRU, **{"rnn.weight_hh_l0": np.full((12, 4), np.nan, np.float32)}), {},
     r"W_hh holds NaN or Inf"),
    (linear_state(4, 2), {}, r"no recurrent layer found .*found fc\.bias, fc\.weight"),
    (GRU, {"layer": 1}, r"no layer 1"),
]


@pytest.mark.parametrize("state,kw,message", WRONG)
def test_mismatches_name_tensor_and_shapes(tmp_path, state, kw, message):
    path = write(tmp_path / "w.safetensors", state)
    with pytest.raises(CheckpointError, match=message) as e:
        import_weights(path, **kw)
    assert str(e.value).startswith(str(path))


def test_inspect_lists_problems_instead_of_raising(tmp_path):
    state = bad(GRU, **{"rnn.bias_hh_l0": np.zeros(8, np.float32)})
    info = inspect_weights(write(tmp_path / "w.npz", state))
    assert info.recurrent[0].problems and "expected (12,)" in info.recurrent[0].problems[0]


# ------------------------------------------------------------------ damaged and foreign files
def test_unreadable_files_name_the_file(tmp_path):
    cases = {
        "missing.safetensors": None,
        "w.h5": b"\x89HDF",
        "garbage.safetensors": b"not a safetensors file at all",
        "garbage.npz": b"PK\x03\x04 broken zip",
        "empty.npz": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            import_weights(path)
        assert str(e.value).startswith(str(path)), name
        with pytest.raises(CheckpointError):
            inspect_weights(path)


def test_pickled_npz_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, **{"rnn.weight_ih_l0": np.array([object()], dtype=object)})
    with pytest.raises(CheckpointError, match="never loaded"):
        import_weights(path)
    with zipfile.ZipFile(path) as zf:  # the file really holds a pickle
        assert zf.namelist() == ["rnn.weight_ih_l0.npy"]


def test_pt_without_torch_says_so(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    path.write_bytes(b"whatever")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    with pytest.raises(CheckpointError, match=r"needs PyTorch.*\.safetensors"):
        import_weights(path)


@needs_torch
def test_pt_with_a_pickled_module_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.GRU(2, 3), path)  # a whole module: needs unpickling arbitrary classes
    with pytest.raises(CheckpointError, match=r"weights_only=True.*state_dict"):
        import_weights(path)


@needs_torch
def test_pt_training_checkpoint_with_nested_state_dict(tmp_path):
    net, head = torch.nn.LSTM(2, 3, batch_first=True), torch.nn.Linear(3, 2)
    sd = {**{f"rnn.{k}": v for k, v in net.state_dict().items()},
          **{f"fc.{k}": v for k, v in head.state_dict().items()}}
    torch.save({"epoch": 3, "model_state_dict": sd, "optimizer": {"lr": 0.1}}, tmp_path / "ck.pth")
    m = import_weights(tmp_path / "ck.pth", dtype="float64")
    x = inputs(2, 3, 2)
    with torch.no_grad():
        y = head(net(torch.from_numpy(x).float())[0]).double().numpy()
    np.testing.assert_allclose(m.forward(x).y, y, rtol=1e-5, atol=1e-6)
