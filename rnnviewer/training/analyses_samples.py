"""Worker-side analysis of the "Generated text" panel: text sampled from a character model.

"samples" (Karpathy 2015, "The Unreasonable Effectiveness of Recurrent Neural Networks";
Graves 2013 for sampling with a temperature): prime the model with a few characters, then
draw `length` characters one at a time from softmax(logits / temperature), each fed back
as the next input (engine TextTask.sample). Temperature 0 is greedy (argmax at each
step). The generator is seeded per request, `default_rng([seed, step])`, so the same
model, options and step always give the same text.
"""

import numpy as np

from rnnviewer.engine.tasks.text import TextTask
from rnnviewer.errors import ConfigError
from rnnviewer.training.analyses import register_analysis

PRIMES = ("val", "newline", "custom")
DEFAULTS = {"temperature": 0.8, "length": 200, "prime": "val", "text": "", "seed": 0}
MAX_LENGTH = 1000              # it runs in the training thread: ~0.3 ms per character (LSTM)
MAX_TEMPERATURE = 5.0
GREEDY_BELOW = 1e-3            # temperatures under this are greedy (argmax)
VAL_PRIME_CHARS = 40           # "val" prime: about this much of the validation text


def not_applicable(task):
    """The reason generated text does not apply to `task`, or None for a character model."""
    if isinstance(task, TextTask):
        return None
    name = getattr(task, "name", "") or type(task).__name__
    return (f"Generated text applies to character models (the text task); this run's task "
            f"is {name!r}.")


def validation_prime(task, n=VAL_PRIME_CHARS):
    """About `n` characters of the validation text, from the start of its first full line
    and ending after a newline when one falls late enough (the model continues there)."""
    val = task.decode(task.split_ids("val")[:n + 200])
    nl = val.find("\n", 0, 200)
    text = (val[nl + 1:] if 0 <= nl < len(val) - 1 else val).lstrip("\n") or val
    text = text[:n + 20]
    cut = text.rfind("\n")
    return text[:cut + 1] if cut >= n // 3 else text[:n]


def resolve_prime(task, mode, text=""):
    """The prime actually fed to the model: characters outside the vocabulary dropped; an
    empty prime becomes a newline (or the most frequent character, as TextTask.sample)."""
    if mode == "val":
        prime = validation_prime(task)
    elif mode == "newline":
        prime = "\n"
    else:
        prime = str(text)
    prime = "".join(c for c in prime if c in task.char_to_id)
    if not prime:
        fallback = task.char_to_id.get("\n", int(np.bincount(task.ids).argmax()))
        prime = task.vocab[fallback]
    return prime


def _options(options):
    o = {**DEFAULTS, **dict(options or {})}
    t = o["temperature"]
    if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(t) <= MAX_TEMPERATURE:
        raise ConfigError(f"samples: temperature must be a number in [0, {MAX_TEMPERATURE}], "
                          f"got {t!r}")
    for name, low, high in (("length", 1, MAX_LENGTH), ("seed", 0, 2**32 - 1)):
        v = o[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= high:
            raise ConfigError(f"samples: {name} must be an integer in [{low}, {high}], "
                              f"got {v!r}")
    if o["prime"] not in PRIMES:
        raise ConfigError(f"samples: prime must be one of {', '.join(PRIMES)}, got "
                          f"{o['prime']!r}")
    t = float(t)
    return {"temperature": 0.0 if t < GREEDY_BELOW else t, "length": int(o["length"]),
            "prime": o["prime"], "text": str(o["text"]), "seed": int(o["seed"])}


@register_analysis("samples", min_interval=2.0)
def samples(ctx, options):
    """Options: temperature (0 = greedy), length (characters), prime ("val": the start of
    the validation text, "newline", or "custom": `text`), seed. Returns the generated
    `text` after the `prime` actually used, with `temperature` and `length`; for a task
    that is not a character model, `applies` False and the `reason`."""
    o = _options(options)
    reason = not_applicable(ctx.task)
    if reason is not None:
        return {"applies": False, "reason": reason}
    prime = resolve_prime(ctx.task, o["prime"], o["text"])
    rng = np.random.default_rng([o["seed"], int(ctx.step)])
    text = ctx.task.sample(ctx.model, prime, o["length"], o["temperature"], rng)
    return {"applies": True, "prime": prime, "text": text, "temperature": o["temperature"],
            "length": o["length"], "seed": o["seed"]}
