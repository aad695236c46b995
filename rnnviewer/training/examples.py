"""Guided experiments: the classic findings about recurrent networks, ready to run.

Each Example fixes the task, the cell, the hyperparameters and the panels to look at,
and says in a few sentences what to watch. The app offers them under File > Examples;
`rnnviewer train --example NAME` runs the same settings headless.
"""

from dataclasses import dataclass, field

from rnnviewer.training.session import SessionConfig


@dataclass(frozen=True)
class Example:
    name: str                   # command-line name
    title: str                  # menu entry
    text: str                   # what to look at (shown in a dialog and the docs)
    config: dict                # SessionConfig fields
    panels: tuple               # panel object names to show and raise, most important first
    steps: int = 1000           # how long it takes to see the effect (headless default)
    reference: str = ""
    extra: dict = field(default_factory=dict)

    def session_config(self):
        return SessionConfig.from_dict(self.config).validate()


EXAMPLES = (
    Example(
        name="vanishing-rnn",
        title="Vanishing gradients: an Elman RNN on the adding problem",
        text=("The adding problem hides two marked numbers in a sequence of 100 and asks for "
              "their sum at the end. Open 'Gradient through time': each column is a training "
              "step, each row a timestep, the colour log10 ||dL/dh_t||. For the Elman RNN, "
              "from step 50 on, the norm at t = 0 is in almost every snapshot more than 20 "
              "orders of magnitude below the norm at the last timestep, and often exactly "
              "zero in float32 (the floor of the scale, -30): the loss does not reach the "
              "early inputs. The training loss stays on a plateau around 0.18 for all 2000 "
              "steps with seed 0, apart from brief spikes: about what always answering 1 "
              "scores (the variance of the sum, 1/6; about 0.15 on the validation batch). "
              "Compare with the LSTM example, which has the same settings."),
        config=dict(task="adding", cell="rnn", hidden=64, seq_len=100, batch=32,
                    optimizer="adam", lr=0.01, clip=1.0, seed=0),
        panels=("grad_through_time", "curves", "spectrum"),
        steps=2000,
        reference="Hochreiter & Schmidhuber 1997; Pascanu, Mikolov & Bengio 2013",
    ),
    Example(
        name="vanishing-lstm",
        title="Vanishing gradients: an LSTM on the adding problem",
        text=("The same adding problem and settings with an LSTM. For about its first 1300 "
              "steps (seed 0) it looks like the Elman RNN: the loss sits on the plateau near "
              "1/6 (0.15 on validation) and 'Gradient through time' shows the gradient "
              "vanishing towards t = 0, by about 13 orders of magnitude. Then, within about "
              "a hundred steps, the loss falls below 0.01 and the gradient profile flattens: "
              "after training, log10 ||dL/dh_t|| lies between about -4 and -2 over all 100 "
              "timesteps, so the early inputs get a learning signal. The cell state, updated "
              "additively through the forget gate, carries it back. 'Gates' shows the "
              "selected unit's gates at the markers."),
        config=dict(task="adding", cell="lstm", hidden=64, seq_len=100, batch=32,
                    optimizer="adam", lr=0.01, clip=1.0, seed=0),
        panels=("grad_through_time", "gates", "curves"),
        steps=2000,
        reference="Hochreiter & Schmidhuber 1997",
    ),
    Example(
        name="interpretable-units",
        title="Interpretable units in a character model",
        text=("An LSTM learns to predict the next character of Python source. Open 'Neuron "
              "view' and click through units (in the activation heatmap or with the unit "
              "selector), looking for units whose colour changes at a meaningful boundary: "
              "inside and outside a string, after an opening bracket, at the start of a "
              "line or with the indentation. Karpathy et al. found such units in larger "
              "models trained for longer; in a model this small many units are mixtures. "
              "With seed 0 after 3000 steps, two to start from: unit 56 is high in the first "
              "few characters of a line (about +0.6) and negative after the fifteenth (about "
              "-0.4), and unit 80 is positive on about half of the characters inside "
              "brackets but on few (6%) outside. The top-k contexts beside the text show "
              "where in the validation data a unit fires most, aligned on the peak, to check "
              "a guess against the whole text."),
        config=dict(task="text", task_options={"corpus": "python"}, cell="lstm", hidden=128,
                    seq_len=100, batch=32, optimizer="adam", lr=0.003, clip=1.0, seed=0),
        panels=("neuron_view", "activations", "curves"),
        steps=3000,
        reference="Karpathy, Johnson & Fei-Fei 2015; Strobelt et al. 2018 (LSTMVis)",
    ),
    Example(
        name="flipflop-attractors",
        title="Attractors of the 3-bit flip-flop",
        text=("Three input channels send occasional +1/-1 pulses; each output must hold the "
              "sign of its channel's last pulse, so the network must store one of 8 memories. "
              "'Fixed points' searches under zero input once when it is first shown; after "
              "training press Find (or tick 'rerun every' before you start). It finds stable "
              "fixed points, one per memory (8 with seed 0 after 1500 steps), and saddle "
              "points between them. They are drawn on 'State space (PCA)': stable points as "
              "filled circles, saddles as crosses with their unstable directions as short "
              "lines. A pulse moves the state from one attractor to another."),
        config=dict(task="flipflop", cell="rnn", hidden=48, seq_len=100, batch=32,
                    optimizer="adam", lr=0.002, clip=1.0, seed=0),
        panels=("state_space", "fixed_points", "curves"),
        steps=1500,
        reference="Sussillo & Barak 2013",
    ),
    Example(
        name="spectral-radius",
        title="The spectral radius of W_hh before and after training",
        text=("At initialisation W_hh has entries uniform in +-1/sqrt(H): its eigenvalues fill "
              "a disc of radius about 1/sqrt(3) = 0.58 (0.61 here, at H = 64 and seed 0). "
              "Open 'Spectrum of W_hh' and watch while the RNN learns to continue a sum of "
              "sines: a few eigenvalues move out of the disc towards the unit circle (the grey "
              "circles mark where they started), the directions the network keeps alive for "
              "long. With seed 0 the spectral radius passes 0.9 by step 200 and then stays "
              "between about 0.9 and 0.99, with three or four eigenvalues beyond 0.9 from "
              "step 500 on. A complex pair at angle theta rotates with a period of "
              "2*pi/theta steps: the outermost pair at step 1500 sits at about 0.85 rad, a "
              "period of about 7 steps, close to the fastest sines (periods 8 to 40 steps). "
              "The spectral radius and largest singular value curves beside the plane track "
              "it over training."),
        config=dict(task="sine", cell="rnn", hidden=64, seq_len=100, batch=32,
                    optimizer="adam", lr=0.003, clip=1.0, seed=0),
        panels=("spectrum", "weights", "curves"),
        steps=1500,
        reference="Pascanu, Mikolov & Bengio 2013",
    ),
    Example(
        name="what-a-unit-wants",
        title="What a unit wants: activation maximization",
        text=("A GRU learns the running parity of a bit stream (accuracy 1 on validation "
              "after 1500 steps with seed 0). Select a unit whose activation follows the "
              "parity (in the activation heatmap, a row that changes colour at every 1) and "
              "open 'Activation maximization': gradient ascent on the input finds the 30 "
              "values in [0, 1] that drive the unit highest at the last step. For such units "
              "the input found is mostly 0s with a few 1s scattered along it; where the ones "
              "are matters little, their number modulo 2 a lot. With seed 0, for the six "
              "units most correlated with parity, flipping one early bit of the rounded input "
              "moves the unit's final value by 0.6 to 1.4, flipping two by less than 0.1. "
              "The ascent works on real values, so a few entries end up in between (a 0.5 "
              "beside a 1): read the input curve, since the rounded 'most likely input' line "
              "can then show the other parity. Units with little relation to parity give "
              "less clear answers."),
        config=dict(task="parity", cell="gru", hidden=32, seq_len=30, batch=32,
                    optimizer="adam", lr=0.005, clip=1.0, seed=0),
        panels=("maximize", "activations", "curves"),
        steps=1500,
        reference="Erhan et al. 2009; Simonyan et al. 2014",
    ),
)

BY_NAME = {e.name: e for e in EXAMPLES}


def get_example(name):
    from rnnviewer.errors import ConfigError
    try:
        return BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown example {name!r}; choose one of "
                          f"{', '.join(BY_NAME)}") from None
