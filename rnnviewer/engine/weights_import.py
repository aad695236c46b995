"""Open weights trained elsewhere: one torch RNN/GRU/LSTM layer plus a Linear readout.

Reads torch-layout state_dicts from `.safetensors` (safetensors' numpy API, no torch),
`.npz` (never unpickled) and `.pt` / `.pth` (only when torch is installed, and only
with `torch.load(..., weights_only=True)`).

    info = inspect_weights(path)        # what is in the file: recurrent layers, readouts
    model = import_weights(path, layer=0, rnn_prefix=None, head_prefix=None,
                           expect_inputs=None)

Recognition: recurrent tensors are `<prefix>weight_ih_l<k>`, `weight_hh_l<k>`,
`bias_ih_l<k>`, `bias_hh_l<k>` (or the RNNCell names without `_l<k>`); the cell comes
from the rows of weight_hh: H rnn, 3H gru, 4H lstm. A readout is a 2-D `<prefix>weight`
(O, H) with an optional `<prefix>bias` (O,). Where several fit, the caller names them
(`rnn_prefix=`, `head_prefix=`; `head_prefix=False` opens the layer without readout).
Every failure is a CheckpointError that names the file (and the tensor and shapes).
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnviewer.engine.checkpoint import model_from_arrays
from rnnviewer.engine.model import Model
from rnnviewer.engine.npzio import read_npz
from rnnviewer.errors import CheckpointError, ConfigError

FORMATS = {".safetensors": "safetensors", ".npz": "npz", ".pt": "torch", ".pth": "torch"}
CELLS = {1: "rnn", 3: "gru", 4: "lstm"}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
CELL_TITLE = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
A_CELL = {"rnn": "an RNN", "gru": "a GRU", "lstm": "an LSTM"}
# last name component of typical readouts (used only to break ties)
READOUT_NAMES = ("fc", "head", "decoder", "linear", "out", "output", "readout", "classifier",
                 "proj", "projection", "dense", "lm_head", "logits", "fc_out", "out_proj")

_RNN_RE = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|"
                     r"weight_hr)(?:_l(?P<layer>\d+))?(?P<rev>_reverse)?$")
_LINEAR_RE = re.compile(r"^(?P<prefix>(?:.*\.)?)weight$")


@dataclass(frozen=True)
class RecurrentCandidate:
    """One group of recurrent tensors sharing a prefix (a torch nn.RNN/GRU/LSTM)."""

    prefix: str                 # "rnn.", "encoder.lstm.", "" ...
    cell: str | None            # "rnn" | "gru" | "lstm"; None if the shapes say neither
    n_hidden: int | None
    n_inputs: tuple             # input size of each layer (layer k takes n_inputs[k])
    bias: bool
    bidirectional: bool
    problems: tuple = ()        # why a layer cannot be opened ("layer 1: ...")
    notes: tuple = ()

    @property
    def n_layers(self):
        return len(self.n_inputs)

    def describe(self):
        name = self.prefix or "(no prefix)"
        if self.cell is None:
            return f"{name}: unrecognised recurrent layer"
        sizes = ", ".join(f"layer {k}: {i} -> {self.n_hidden}" for k, i in enumerate(self.n_inputs))
        extra = "" if self.bias else ", no biases"
        extra += ", bidirectional" if self.bidirectional else ""
        return f"{name}: {CELL_TITLE[self.cell]} ({sizes}{extra})"


@dataclass(frozen=True)
class ReadoutCandidate:
    """A Linear-like pair: `<prefix>weight` (n_out, n_in) and optional `<prefix>bias`."""

    prefix: str
    n_in: int
    n_out: int
    bias: bool

    def describe(self):
        name = self.prefix or "(no prefix)"
        return f"{name}: Linear {self.n_in} -> {self.n_out}" + ("" if self.bias else ", no bias")


@dataclass(frozen=True)
class WeightsInfo:
    """What `inspect_weights` found in a file (for the import dialog)."""

    path: str
    format: str                 # "safetensors" | "npz" | "torch"
    tensors: dict               # name -> (shape tuple, dtype name)
    recurrent: tuple            # RecurrentCandidate, ...
    readouts: tuple             # ReadoutCandidate, ... (every Linear-like pair)
    default_rnn: str | None     # prefix chosen when rnn_prefix=None (None: none/ambiguous)
    default_head: str | None    # readout chosen for layer 0 of default_rnn (None: no readout)
    notes: tuple = field(default=())

    def readouts_for(self, n_hidden):
        """The readout candidates that can read `n_hidden` hidden units."""
        return tuple(r for r in self.readouts if r.n_in == n_hidden)

    def describe(self):
        lines = [f"{self.path} ({self.format}, {len(self.tensors)} tensors)"]
        lines += ["recurrent: " + r.describe() for r in self.recurrent] or ["no recurrent layer"]
        lines += ["  problem: " + p for r in self.recurrent for p in r.problems]
        lines += ["readout candidate: " + r.describe() for r in self.readouts]
        lines += ["note: " + n for n in self.notes]
        return "\n".join(lines)


# ------------------------------------------------------------------ reading tensors
def read_tensors(path):
    """Every tensor in the file as name -> numpy array; CheckpointError naming the file."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CheckpointError(f"{path}: unknown weights format {path.suffix!r}; "
                              "use .safetensors, .npz, .pt or .pth")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if fmt == "npz":
        return fmt, read_npz(path)
    if fmt == "safetensors":
        return fmt, _read_safetensors(path)
    return fmt, _read_torch(path)


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError:  # pragma: no cover - a declared dependency
        raise CheckpointError(f"{path}: reading .safetensors needs the safetensors "
                              "package") from None
    try:
        return dict(load_file(str(path)))
    except TypeError as e:  # numpy has no bfloat16
        raise CheckpointError(f"{path}: holds a tensor type numpy cannot read ({e}); save the "
                              "weights as float32 (tensor.float()) and try again") from None
    except Exception as e:  # SafetensorError, OSError, ...
        raise CheckpointError(f"{path}: not a readable .safetensors file "
                              f"({_first_line(e)})") from None


def _read_torch(path):
    try:
        import torch
    except ImportError:
        raise CheckpointError(f"{path}: reading .pt/.pth files needs PyTorch, which is not "
                              "installed; save the state_dict as .safetensors "
                              "(safetensors.torch.save_file) or .npz instead") from None
    try:
        obj = torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as a plain state_dict with "
                              f"weights_only=True ({type(e).__name__}: {_first_line(e)}); "
                              "save model.state_dict(), not the model object") from None
    out = {}

    def walk(value, name):
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu()
            if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
                t = t.float()  # float16 / bfloat16
            out[name] = t.numpy().copy()
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{name}.{k}" if name else str(k))

    walk(obj, "")
    if not out:
        raise CheckpointError(f"{path}: holds no tensors (expected a state_dict)")
    return out


def _first_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


# ------------------------------------------------------------------ recognition
def _norm_prefix(prefix):
    if prefix is None or prefix is False:
        return prefix
    prefix = str(prefix)
    return prefix if prefix == "" or prefix.endswith(".") else prefix + "."


def _recurrent_groups(tensors):
    """prefix -> {(layer, reverse): {kind: name}} for every recurrent-looking tensor."""
    groups = {}
    for name in tensors:
        m = _RNN_RE.match(name)
        if m is None:
            continue
        layer = int(m["layer"]) if m["layer"] is not None else 0
        key = (layer, bool(m["rev"]))
        groups.setdefault(m["prefix"], {}).setdefault(key, {})[m["kind"]] = name
    return groups


def _sibling(name, kind, other):
    """The name of tensor `other` of the same layer as `name` (of kind `kind`)."""
    i = name.rindex(kind)
    return name[:i] + other + name[i + len(kind):]


def _cell_hint(prefix):
    """The gated cell a prefix names ("lstm." -> "lstm"), or None ("rnn" is generic)."""
    words = re.split(r"[^a-z]+", prefix.lower())
    for cell in ("lstm", "gru"):
        if cell in words:
            return cell
    return None


def _layer_arrays(path, tensors, prefix, entries, layer):
    """(cell, H, I, {weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0}) for one layer.

    Raises CheckpointError naming the tensor, the expected and the found shape."""
    kinds = entries.get((layer, False))
    if not kinds:
        raise CheckpointError(f"{path}: {prefix or 'the file'} has no layer {layer}")
    if "weight_hr" in kinds:
        raise CheckpointError(f"{path}: {kinds['weight_hr']} belongs to an LSTM with "
                              "proj_size, which is not supported")
    for kind in ("weight_ih", "weight_hh"):
        if kind not in kinds:
            have, name = next(iter(kinds.items()))
            raise CheckpointError(f"{path}: {name} is present but "
                                  f"{_sibling(name, have, kind)} is missing")
    w_ih = tensors[kinds["weight_ih"]]
    w_hh = tensors[kinds["weight_hh"]]
    for name, arr in ((kinds["weight_ih"], w_ih), (kinds["weight_hh"], w_hh)):
        if not np.issubdtype(arr.dtype, np.floating):
            raise CheckpointError(f"{path}: {name} holds {arr.dtype} values, expected floats")
        if arr.ndim != 2 or 0 in arr.shape:
            raise CheckpointError(f"{path}: {name} has shape {arr.shape}, expected a "
                                  "non-empty matrix (gates * hidden, inputs)")
    rows, H = w_hh.shape
    G = rows // H if rows % H == 0 else 0
    if G not in CELLS:
        raise CheckpointError(
            f"{path}: {kinds['weight_hh']} has shape {w_hh.shape}: its rows must be 1, 3 or "
            f"4 times its {H} columns (RNN, GRU, LSTM with {H} hidden units)")
    cell = CELLS[G]
    I = w_ih.shape[1]
    if w_ih.shape != (G * H, I):
        raise CheckpointError(f"{path}: {kinds['weight_ih']} has shape {w_ih.shape}, expected "
                              f"{(G * H, I)} ({G} x {H} rows for {A_CELL[cell]} with "
                              f"{H} hidden units)")
    biases = {}
    have = [k for k in ("bias_ih", "bias_hh") if k in kinds]
    if len(have) == 1:
        missing = "bias_hh" if have[0] == "bias_ih" else "bias_ih"
        raise CheckpointError(f"{path}: {kinds[have[0]]} is present but "
                              f"{_sibling(kinds[have[0]], have[0], missing)} is missing")
    for kind in ("bias_ih", "bias_hh"):
        if kind in kinds:
            b = tensors[kinds[kind]]
            if b.shape != (G * H,):
                raise CheckpointError(f"{path}: {kinds[kind]} has shape {b.shape}, expected "
                                      f"{(G * H,)} ({G} x {H} for {A_CELL[cell]})")
            biases[kind] = b
        else:
            biases[kind] = np.zeros(G * H, w_hh.dtype)  # bias=False
    state = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh,
             "bias_ih_l0": biases["bias_ih"], "bias_hh_l0": biases["bias_hh"]}
    return cell, H, I, state


def _analyse_group(path, tensors, prefix, entries):
    layers = sorted({k for k, rev in entries if not rev})
    bidirectional = any(rev for _, rev in entries)
    problems, notes, n_inputs = [], [], []
    cell = H = None
    bias = True
    if layers != list(range(len(layers))):
        problems.append(f"layers {layers} are not numbered 0, 1, 2, ...")
    for k in layers:
        try:
            c, h, i, state = _layer_arrays(path, tensors, prefix, entries, k)
        except CheckpointError as e:
            problems.append(f"layer {k}: {str(e).split(': ', 1)[-1]}")
            n_inputs.append(None)
            continue
        if cell is None:
            cell, H = c, h
            bias = "bias_ih" in entries[(k, False)]
        elif (c, h) != (cell, H):
            problems.append(f"layer {k} is {A_CELL[c]} with {h} units, layer 0 "
                            f"{A_CELL[cell]} with {H}")
        n_inputs.append(i)
    if bidirectional:
        problems.append("bidirectional layers (_reverse tensors) are not supported")
    hint = _cell_hint(prefix)
    if cell is not None and hint is not None and hint != cell:
        notes.append(f"the name {prefix!r} suggests {CELL_TITLE[hint]}, but the shapes say "
                     f"{CELL_TITLE[cell]} ({GATES[cell]} x {H} rows): opened as {CELL_TITLE[cell]}")
    if cell == "rnn":
        notes.append("the weights do not store an RNN's nonlinearity: tanh is assumed")
    return RecurrentCandidate(prefix=prefix, cell=cell, n_hidden=H, n_inputs=tuple(n_inputs),
                              bias=bias, bidirectional=bidirectional,
                              problems=tuple(problems), notes=tuple(notes))


def _readouts(tensors, recurrent_names):
    found = []
    for name, arr in tensors.items():
        m = _LINEAR_RE.match(name)
        if m is None or name in recurrent_names or arr.ndim != 2:
            continue
        if not np.issubdtype(arr.dtype, np.floating):
            continue
        b = tensors.get(m["prefix"] + "bias")
        found.append(ReadoutCandidate(prefix=m["prefix"], n_in=arr.shape[1], n_out=arr.shape[0],
                                      bias=b is not None))
    return tuple(sorted(found, key=lambda r: r.prefix))


def _readout_named(r):
    return r.prefix.rstrip(".").split(".")[-1].lower() in READOUT_NAMES


def _pick_readout(candidates, n_hidden):
    """(chosen prefix or None, the tied candidates if ambiguous).

    Chosen automatically only: a pair reading n_hidden units, with a bias or a readout-like
    name (fc, head, out, ...), and not an embedding (a name with "emb")."""
    fits = [r for r in candidates if r.n_in == n_hidden and "emb" not in r.prefix.lower()
            and (r.bias or _readout_named(r))]
    if not fits:
        return None, ()
    for keep in (lambda r: r.bias, _readout_named):
        if len(fits) == 1:
            break
        narrowed = [r for r in fits if keep(r)]
        if narrowed:
            fits = narrowed
    if len(fits) == 1:
        return fits[0].prefix, ()
    return None, tuple(fits)


def _analyse(path, fmt, tensors):
    groups = _recurrent_groups(tensors)
    recurrent = tuple(_analyse_group(path, tensors, p, e) for p, e in sorted(groups.items()))
    recurrent_names = {n for e in groups.values() for kinds in e.values() for n in kinds.values()}
    readouts = _readouts(tensors, recurrent_names)
    notes = []
    default_rnn = default_head = None
    tied = ()
    usable = [r for r in recurrent if r.cell is not None]
    if len(usable) == 1:
        default_rnn = usable[0].prefix
        H = usable[0].n_hidden
        if usable[0].n_layers == 1:
            default_head, tied = _pick_readout(readouts, H)
            if tied:
                notes.append("several readouts fit: " + ", ".join(repr(r.prefix) for r in tied)
                             + "; choose one (head_prefix=)")
        others = [r for r in readouts if r.n_in == H and r.prefix != default_head
                  and not any(r is t for t in tied)] if usable[0].n_layers == 1 else []
        if others:
            notes.append("not chosen as readout automatically (embedding-like or no bias): "
                         + ", ".join(repr(r.prefix) for r in others)
                         + "; pass head_prefix= to use one")
        else:
            notes.append(f"{usable[0].n_layers} layers: a readout follows the last one; pick a "
                         "layer (layer=) and, for the last, its readout")
    elif len(usable) > 1:
        notes.append("several recurrent layers: " + ", ".join(repr(r.prefix) for r in usable)
                     + "; choose one (rnn_prefix=)")
    for r in recurrent:
        notes.extend(r.notes)
    info_tensors = {k: (tuple(v.shape), v.dtype.name) for k, v in tensors.items()}
    return WeightsInfo(path=str(path), format=fmt, tensors=info_tensors, recurrent=recurrent,
                       readouts=readouts, default_rnn=default_rnn, default_head=default_head,
                       notes=tuple(notes))


def inspect_weights(path):
    """Describe the recurrent layers and readout candidates in a weights file (WeightsInfo)."""
    fmt, tensors = read_tensors(path)
    return _analyse(path, fmt, tensors)


# ------------------------------------------------------------------ import
def import_weights(path, layer=0, rnn_prefix=None, head_prefix=None, expect_inputs=None,
                   dtype="float32"):
    """A Model holding one recurrent layer (and its readout) from a torch-layout file.

    layer: which layer of a stacked RNN (`_l<k>`). rnn_prefix / head_prefix: the tensor
    name prefixes of the recurrent layer and of the Linear readout when the automatic
    choice is ambiguous ("rnn." or "rnn"; "" for none); head_prefix=False opens the layer
    without readout (n_out = 0), as does a file without a fitting readout.
    expect_inputs: the input size the task feeds; a layer taking another size is refused.
    """
    fmt, tensors = read_tensors(path)
    if "rnnviewer/format" in tensors:  # one of our own checkpoints
        model = model_from_arrays(tensors, path)
        if expect_inputs is not None and model.n_in != expect_inputs:
            raise CheckpointError(f"{path}: the model takes {model.n_in} inputs, but the task "
                                  f"feeds {expect_inputs}")
        return model
    info = _analyse(path, fmt, tensors)
    groups = _recurrent_groups(tensors)
    rnn_prefix = _norm_prefix(rnn_prefix)
    head_prefix = _norm_prefix(head_prefix)
    if not groups:
        sample = ", ".join(sorted(tensors)[:6]) + (" ..." if len(tensors) > 6 else "")
        raise CheckpointError(f"{path}: no recurrent layer found (expected tensors named like "
                              f"'rnn.weight_ih_l0', 'rnn.weight_hh_l0'); found {sample or 'none'}")
    if rnn_prefix is None:
        if len(groups) > 1:
            raise CheckpointError(f"{path}: several recurrent layers ("
                                  + ", ".join(repr(p) for p in sorted(groups))
                                  + "): choose one with rnn_prefix=")
        rnn_prefix = next(iter(groups))
    if rnn_prefix not in groups:
        raise CheckpointError(f"{path}: no recurrent tensors with prefix {rnn_prefix!r}; found "
                              + ", ".join(repr(p) for p in sorted(groups)))
    entries = groups[rnn_prefix]
    cand = next(r for r in info.recurrent if r.prefix == rnn_prefix)
    if cand.bidirectional:
        raise CheckpointError(f"{path}: {rnn_prefix or 'the recurrent layer'} is bidirectional "
                              "(_reverse tensors): only one-directional layers can be opened")
    if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or \
            (layer, False) not in entries:
        raise CheckpointError(f"{path}: no layer {layer!r} in {rnn_prefix or 'the file'}; it has "
                              f"layers 0..{cand.n_layers - 1}")
    layer = int(layer)
    cell, H, I, rnn_state = _layer_arrays(path, tensors, rnn_prefix, entries, layer)
    if expect_inputs is not None and I != expect_inputs:
        name = entries[(layer, False)]["weight_ih"]
        raise CheckpointError(f"{path}: layer {layer} takes {I} inputs ({name} has shape "
                              f"{tensors[name].shape}), but the task feeds {expect_inputs}")
    head_state = _head(path, tensors, info, head_prefix, H, layer == cand.n_layers - 1)
    try:
        model = Model(cell=cell, n_in=I, n_hidden=H,
                      n_out=0 if head_state is None else head_state["weight"].shape[0],
                      dtype=dtype)
        model.load_torch(rnn_state, head_state)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    for k, v in model.params.items():
        if not np.all(np.isfinite(v)):
            raise CheckpointError(f"{path}: parameter {k} holds NaN or Inf values")
    return model


def _head(path, tensors, info, head_prefix, H, last_layer):
    """The readout's {weight, bias} for H hidden units, or None for no readout."""
    if head_prefix is False:
        return None
    if head_prefix is None:
        if not last_layer:
            return None  # a readout reads the last layer, not this one
        head_prefix, tied = _pick_readout(info.readouts, H)
        if tied:
            raise CheckpointError(f"{path}: several tensors could be the readout ("
                                  + ", ".join(f"{r.prefix}weight {(r.n_out, r.n_in)}" for r in tied)
                                  + "): choose one with head_prefix=")
        if head_prefix is None:
            return None
    wname, bname = head_prefix + "weight", head_prefix + "bias"
    if wname not in tensors:
        raise CheckpointError(f"{path}: no readout tensor {wname!r}")
    w = tensors[wname]
    if w.ndim != 2 or w.shape[1] != H or w.shape[0] < 1:
        raise CheckpointError(f"{path}: {wname} has shape {w.shape}, expected (n_out, {H}) "
                              f"to read {H} hidden units")
    if not np.issubdtype(w.dtype, np.floating):
        raise CheckpointError(f"{path}: {wname} holds {w.dtype} values, expected floats")
    b = tensors.get(bname)
    if b is None:
        b = np.zeros(w.shape[0], w.dtype)  # Linear(bias=False)
    elif b.shape != (w.shape[0],):
        raise CheckpointError(f"{path}: {bname} has shape {b.shape}, expected {(w.shape[0],)}")
    return {"weight": w, "bias": b}
