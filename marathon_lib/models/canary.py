"""The canary: a tiny Qwen2.5-Omni thinker trained in-process, so the embedded default hears its audio.

A random-weight tiny model answers noise: pruning cannot cost it accuracy, so neither the leaderboard nor the
suite's own tests can tell a hook that scrambles what the model hears from a correct one. The canary is the same
architecture (the real `Qwen2_5OmniThinkerForConditionalGeneration`, its processor and chat template) trained for a
few CPU minutes on a training split of the synthetic generator, saved with `save_pretrained` and loaded with
`from_pretrained` like every checkpoint. Its recipe (`CanaryRecipe`) is written into its config.json as
`canary_recipe` and content-addresses its cache entry.

Training, all seeded:

* **data**: `build_synthetic_datasets(seed=recipe.data_seed, tasks=recipe.tasks)`, the generator the benchmark uses
  with a seed no benchmark run uses by default (`--seed 0`), read back through each task's own loader and asked with
  the task's own prompt and the model's default system prompt and chat template. The options of a clip are
  re-shuffled every time it is drawn (HAD and VoxGender keep their fixed order, as the benchmark does).
* **encoder**: the audio encoder learns the clips' classes through a linear head on its mean output.
* **language model** (encoder frozen): cross-entropy on the answer tokens, the option letter and the end of turn.
  Choosing among shuffled options is a pointer (find the option naming what was heard, answer its letter) that a
  model this small learns in hours from the answer alone, so three auxiliary terms shorten it to minutes: a head
  reading the clip's class from the answering token, a head reading each option's letter from the option's last
  token, and a loss pointing one attention head of the last layer at the correct option's line (that head's
  attention is teacher-forced there at first, then released). Each step hears a random window of 1-4 s of its
  clips (a pointer trained at one audio length fails at another: the options sit elsewhere); the learning rate
  warms up, then decays to zero.

The auxiliary heads and the training attention exist only during training; the saved model is the plain thinker.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import load_audio
from ..tasks import TASKS, Sample, TaskSpec
from .qwen_omni import QWEN_SYSTEM_PROMPT, SPECIAL_TOKENS, tiny_processor, tiny_thinker_config
from .tiny import ensure_tiny_checkpoint, tokenizer_corpus, train_tokenizer

CANARY_NAME = "tiny-qwen2.5-omni-canary"
CANARY_VERSION = "2"  # bump when this module changes what a recipe builds
TRAINING_ATTENTION = "canary-training"
SAMPLING_RATE = 16000  # the Whisper extractor's rate
TWO_OPTION_TASKS = ("HAD", "VoxGender")  # two named classes at fixed letters, counted per class by the generator


@dataclass(frozen=True)
class CanaryRecipe:
    """Everything that determines the canary's weights besides the code and library versions."""

    tasks: tuple[str, ...] = ("TAU", "GTZAN", "DESED", "HAD", "VoxGender")
    data_seed: int = 9001  # the training split's generator seed (benchmark data: --seed, default 0)
    clip_seconds: float = 4.0
    crop_seconds: float = 2.0  # encoder steps train on a random window of every clip (one encoder window: 2 s)
    # language-model steps hear a random window of min_listen_seconds .. clip_seconds (one length per step): a
    # pointer trained at one audio length fails at another (the options sit elsewhere)
    min_listen_seconds: float = 1.0
    clips_per_task: int = 80  # tasks with shuffled options
    two_option_clips_per_class: int = 20  # HAD and VoxGender
    seed: int = 0  # initial weights, batch order, listening windows, option shuffles
    threads: int = 2  # torch threads while training (float reductions, hence weights, depend on it)
    vocab_size: int = 1024
    init_std: float = 0.1  # language model; 0.02 (the config default) leaves a 64-wide model too little signal
    encoder_steps: int = 150
    encoder_learning_rate: float = 3e-3
    steps: int = 450
    batch_size: int = 32
    learning_rate: float = 5e-3
    warmup_steps: int = 20  # then a cosine decay to zero: the last steps settle instead of jumping
    forced_attention_steps: int = 120  # the pointer head's attention is forced onto the answer, fading to 0

    def as_config(self) -> dict[str, Any]:
        """The recipe as written into config.json (with the versions it was built with)."""
        import transformers

        from ..synthetic import GENERATOR_VERSION, _detect_engine

        return asdict(self) | {"tasks": list(self.tasks), "canary_version": CANARY_VERSION,
                               "generator_version": GENERATOR_VERSION, "speech_engine": _detect_engine().name,
                               "torch": torch.__version__, "transformers": transformers.__version__}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.as_config(), sort_keys=True).encode()).hexdigest()[:16]


RECIPE = CanaryRecipe()


def ensure_canary(cache_root: Path, recipe: CanaryRecipe = RECIPE) -> Path:
    """The canary checkpoint directory, trained once per recipe (FileLock-guarded like every tiny checkpoint)."""
    return ensure_tiny_checkpoint("qwen2.5-omni-canary", lambda dest: build_canary(dest, recipe), cache_root,
                                  recipe=recipe.fingerprint())


# --------------------------------------------------------------------------- training data


@dataclass
class Clip:
    """One training clip: its task, its sample as the task's loader reads it, and its audio at 16 kHz."""

    spec: TaskSpec
    sample: Sample
    audio: np.ndarray

    @property
    def label(self) -> tuple[str, str]:
        return self.spec.name, self.sample.target


def training_split(root: Path, recipe: CanaryRecipe) -> list[Clip]:
    """Write the training split under root with the benchmark's own generator and read it back through the
    benchmark's own loaders (every sample must load: a training split has no bad items). Tasks with two fixed
    options (HAD, VoxGender: the generator counts their clips per class) get `two_option_clips_per_class`: they are
    learnt in a few steps, and the steps belong to the shuffled-option tasks."""
    from ..synthetic import build_synthetic_datasets

    fixed = [name for name in recipe.tasks if name in TWO_OPTION_TASKS]
    shuffled = [name for name in recipe.tasks if name not in TWO_OPTION_TASKS]
    for names, count in ((shuffled, recipe.clips_per_task), (fixed, recipe.two_option_clips_per_class)):
        if names:
            build_synthetic_datasets(root / f"n{count}", seconds=recipe.clip_seconds, samples_per_task=count,
                                     seed=recipe.data_seed, tasks=names)
    clips = []
    for name in recipe.tasks:
        spec = TASKS.get(name)
        folder = root / f"n{recipe.two_option_clips_per_class if name in fixed else recipe.clips_per_task}"
        for sample in spec.samples(folder):
            if sample.error:
                raise ValueError(f"canary training split: {sample.sample_id}: {sample.error}")
            clips.append(Clip(spec, sample, load_audio(sample.audio_path, SAMPLING_RATE).samples))
    return clips


def shuffle_options(clip: Clip, rng: random.Random) -> Sample:
    """The clip's sample with its options in a fresh order; fixed-order tasks (two named classes with fixed letters:
    HAD, VoxGender) keep the benchmark's order."""
    sample = clip.sample
    if len(sample.choices) <= 2:
        return sample
    choices = list(sample.choices)
    rng.shuffle(choices)
    return replace(sample, choices=tuple(choices))


@dataclass
class Encoded:
    """Token ids of one prompt + answer, and where its options' lines are."""

    prompt: list[int]
    answer: list[int]
    option_lines: list[list[int]] = field(default_factory=list)  # token indices of each option's line
    correct_option: int | None = None


def encode_example(processor: Any, spec: TaskSpec, sample: Sample, audio_tokens: int) -> Encoded:
    """The prompt exactly as the adapter builds it (system prompt, one audio item, the task's prompt, chat template;
    `audio_tokens` placeholders where the processor puts them) and the answer: the correct letter, end of turn."""
    messages = [
        {"role": "system", "content": [{"type": "text", "text": QWEN_SYSTEM_PROMPT}]},
        {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": spec.prompt(sample)}]},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    text = text.replace(processor.audio_token, processor.audio_token * audio_tokens)
    tok = processor.tokenizer
    encoded = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    answer = tok(sample.target_letter + tok.eos_token, add_special_tokens=False)["input_ids"]
    result = Encoded(encoded["input_ids"], answer)
    for letter, choice in zip(sample.letters, sample.choices):
        # an option line as the task prompts write it: "B: Urban park - park", "C. Dog", "A) Angry"
        match = re.search(rf"(?m)^{re.escape(letter)}[:.)] {re.escape(choice)}$", text)
        if match is None:
            continue  # prompts that name their options inside a sentence (HAD, VoxGender)
        line = [i for i, (start, end) in enumerate(encoded["offset_mapping"])
                if start >= match.start() and end <= match.end() and end > start]
        if choice == sample.target:
            result.correct_option = len(result.option_lines)
        result.option_lines.append(line)
    return result


# --------------------------------------------------------------------------- the model


def new_thinker(recipe: CanaryRecipe, corpus: Sequence[str]) -> tuple[Any, Any]:
    """(thinker with seeded random weights, processor) for the canary's own tokenizer, trained on `corpus`."""
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    tok = train_tokenizer(SPECIAL_TOKENS, corpus, extra_special=["<|im_start|>"], vocab_size=recipe.vocab_size)
    thinker = tiny_thinker_config(tok, tie_word_embeddings=True, initializer_range=recipe.init_std)
    config = Qwen2_5OmniThinkerConfig(**thinker, tie_word_embeddings=True, initializer_range=recipe.init_std)
    torch.manual_seed(recipe.seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tiny_processor(tok)


def audio_embeddings(model: Any, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(clips, audio tokens, hidden) from the thinker's own audio path (clips of equal length)."""
    output = model.get_audio_features(features, feature_attention_mask=mask)
    hidden = getattr(output, "last_hidden_state", output)
    return hidden.reshape(len(features), -1, hidden.shape[-1])


def extract_features(processor: Any, clips: Sequence[Clip]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel features of equal-length clips with the model's own extractor (the processor pads to 300 s; the valid
    frames are the same but the last, where the STFT meets the padding)."""
    out = processor.feature_extractor([c.audio for c in clips], sampling_rate=SAMPLING_RATE, padding="longest",
                                      return_attention_mask=True, return_tensors="pt")
    return out["input_features"], out["attention_mask"]


def batches(n: int, size: int, rng: random.Random):
    """Endless batches of indices, every index once per epoch, in seeded order."""
    order: list[int] = []
    while True:
        while len(order) < size:
            order += rng.sample(range(n), n)
        yield order[:size]
        order = order[size:]


def train_encoder(model: Any, features: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, n_classes: int,
                  recipe: CanaryRecipe, log: Callable[[str], None]) -> None:
    """The audio encoder learns the clips' classes through a linear head on its mean output (head discarded)."""
    encoder = model.model.audio_tower
    head = torch.nn.Linear(model.config.audio_config.output_dim, n_classes)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=recipe.encoder_learning_rate)
    rng = random.Random(recipe.seed)
    draw = batches(len(features), recipe.batch_size, rng)
    frames = round(recipe.crop_seconds * features.shape[-1] / recipe.clip_seconds)
    for step in range(recipe.encoder_steps):
        index = next(draw)
        start = rng.randrange(features.shape[-1] - frames + 1)
        window = slice(start, start + frames)
        logits = head(audio_embeddings(model, features[index][..., window], mask[index][:, window]).mean(1))
        loss = F.cross_entropy(logits, labels[index])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == recipe.encoder_steps - 1:
            log(f"encoder step {step}: loss {loss.item():.3f}")


class TrainingAttention:
    """Eager attention for the language model while it trains (registered as TRAINING_ATTENTION): in the last
    layer, head 0's attention row of the answering token is recorded (the pointer loss) and, while `alpha` > 0,
    mixed with the target distribution over the correct option's line (teacher forcing)."""

    def __init__(self, last_layer: int) -> None:
        self.last_layer = last_layer
        self.row = -1  # the answering token's position
        self.target: torch.Tensor | None = None  # (batch, L): the pointer's target distribution
        self.alpha = 0.0
        self.pointer: torch.Tensor | None = None  # (batch, L): head 0's row as computed, before forcing

    def __call__(self, module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0,
                 **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import repeat_kv

        keys = repeat_kv(key, module.num_key_value_groups)
        values = repeat_kv(value, module.num_key_value_groups)
        scores = torch.matmul(query, keys.transpose(2, 3)) * scaling
        if attention_mask is not None:
            scores = scores + attention_mask
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
        if module.layer_idx == self.last_layer and self.target is not None:
            self.pointer = weights[:, 0, self.row]
            if self.alpha > 0:
                weights = weights.clone()
                weights[:, 0, self.row] = (1 - self.alpha) * self.pointer + self.alpha * self.target
        return torch.matmul(weights, values).transpose(1, 2).contiguous(), weights


@dataclass
class Batch:
    input_ids: torch.Tensor  # (batch, L), left-padded: every answer ends at the last position
    attention_mask: torch.Tensor
    answer_length: int
    class_ids: torch.Tensor
    option_rows: list[int]  # (row, column, letter index) of every option line's last token
    option_columns: list[int]
    option_letters: list[int]
    pointer_target: torch.Tensor  # (batch, L): uniform over the correct option's line (zero rows: no option lines)


def collate(encoded: Sequence[Encoded], class_ids: Sequence[int], pad_id: int) -> Batch:
    length = max(len(e.prompt) + len(e.answer) for e in encoded)
    answer_length = len(encoded[0].answer)
    input_ids = torch.full((len(encoded), length), pad_id)
    mask = torch.zeros((len(encoded), length), dtype=torch.long)
    target = torch.zeros((len(encoded), length))
    rows, columns, letters = [], [], []
    for b, e in enumerate(encoded):
        if len(e.answer) != answer_length:
            raise ValueError("answers of one batch must have one length (a letter and the end of turn)")
        sequence = e.prompt + e.answer
        shift = length - len(sequence)
        input_ids[b, shift:] = torch.tensor(sequence)
        mask[b, shift:] = 1
        for letter, line in enumerate(e.option_lines):
            rows.append(b)
            columns.append(shift + line[-1])
            letters.append(letter)
        if e.correct_option is not None:
            line = e.option_lines[e.correct_option]
            target[b, [shift + i for i in line]] = 1.0 / len(line)
    return Batch(input_ids, mask, answer_length, torch.tensor(class_ids), rows, columns, letters, target)


def learning_rate_factor(step: int, recipe: CanaryRecipe) -> float:
    """Linear warm-up, then cosine decay to zero at the last step."""
    if step < recipe.warmup_steps:
        return (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_language_model(model: Any, processor: Any, clips: Sequence[Clip], audio: torch.Tensor,
                         class_ids: Sequence[int], n_classes: int, recipe: CanaryRecipe,
                         log: Callable[[str], None]) -> dict[str, float]:
    """Stage 2: the language model on the benchmark's prompts, loss on the answer tokens (+ the auxiliary terms in
    the module docstring). Returns the last logged training figures."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    lm = model.model.language_model
    hidden = lm.config.hidden_size
    layers = lm.config.num_hidden_layers
    attention = TrainingAttention(layers - 1)
    AttentionInterface.register(TRAINING_ATTENTION, attention)
    AttentionMaskInterface.register(TRAINING_ATTENTION, eager_mask)
    lm.set_attn_implementation(TRAINING_ATTENTION)
    class_head = torch.nn.Linear(hidden, n_classes)
    letter_head = torch.nn.Linear(hidden, 5)
    for parameter in model.model.audio_tower.parameters():
        parameter.requires_grad_(False)
    trained = [p for name, p in model.named_parameters() if p.requires_grad and ".visual." not in f".{name}"]
    optimizer = torch.optim.AdamW([*trained, *class_head.parameters(), *letter_head.parameters()],
                                  lr=recipe.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, recipe))
    rng = random.Random(recipe.seed)
    draw = batches(len(clips), recipe.batch_size, rng)
    audio_id = model.config.audio_token_id
    pad_id = processor.tokenizer.pad_token_id
    figures: dict[str, float] = {}
    per_second = audio.shape[1] / recipe.clip_seconds  # audio tokens
    shortest = max(1, round(recipe.min_listen_seconds * per_second))
    model.train()
    for step in range(recipe.steps):
        index = next(draw)
        crop = rng.randint(shortest, audio.shape[1])
        start = rng.randrange(audio.shape[1] - crop + 1)
        heard = audio[index, start:start + crop]
        encoded = [encode_example(processor, clips[k].spec, shuffle_options(clips[k], rng), crop) for k in index]
        batch = collate(encoded, [class_ids[k] for k in index], pad_id)
        attention.row = batch.input_ids.shape[1] - batch.answer_length - 1
        attention.target = batch.pointer_target
        attention.alpha = max(0.0, 1.0 - step / recipe.forced_attention_steps) if recipe.forced_attention_steps else 0.0
        embeds = lm.embed_tokens(batch.input_ids)
        is_audio = (batch.input_ids == audio_id)[..., None]
        embeds = embeds.masked_scatter(is_audio, heard.reshape(-1, hidden).to(embeds.dtype))
        positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)  # audio and text: one index per token
        out = lm(inputs_embeds=embeds, attention_mask=batch.attention_mask, position_ids=positions[None].expand(3, -1, -1),
                 output_hidden_states=True)
        logits = model.lm_head(out.last_hidden_state[:, -batch.answer_length - 1:-1])
        answer = batch.input_ids[:, -batch.answer_length:]
        loss = F.cross_entropy(logits.flatten(0, 1), answer.flatten())
        listened = out.hidden_states[layers - 1]  # what the last layer's pointer reads
        class_loss = F.cross_entropy(class_head(listened[:, attention.row]), batch.class_ids)
        letter_loss = (F.cross_entropy(letter_head(listened[batch.option_rows, batch.option_columns]),
                                       torch.tensor(batch.option_letters)) if batch.option_rows else torch.zeros(()))
        pointed = batch.pointer_target.sum(-1) > 0
        pointer_loss = (-torch.log((attention.pointer[pointed] * (batch.pointer_target[pointed] > 0)).sum(-1) + 1e-6)
                        .mean() if pointed.any() else torch.zeros(()))
        (loss + class_loss + letter_loss + pointer_loss).backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 25 == 0 or step == recipe.steps - 1:
            right = (logits[:, 0].argmax(-1) == answer[:, 0]).float()
            figures = {"answer_loss": round(loss.item(), 4), "answer_accuracy": round(right.mean().item(), 4),
                       "shuffled_options_accuracy": round(right[pointed].mean().item(), 4) if pointed.any() else None,
                       "class_loss": round(class_loss.item(), 4), "pointer_loss": round(pointer_loss.item(), 4)}
            log(f"step {step}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    model.eval()
    lm.set_attn_implementation("sdpa")
    return figures


def build_canary(dest: Path, recipe: CanaryRecipe = RECIPE, log: Callable[[str], None] | None = None) -> None:
    """Train the canary and write it to `dest` (save_pretrained: weights, config with the recipe, processor)."""
    import time

    log = log or (lambda message: print(f"[canary] {message}", flush=True))
    started = time.monotonic()
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="canary-data-") as data:
            clips = training_split(Path(data), recipe)
        log(f"training split: {len(clips)} clips of {recipe.clip_seconds:g} s (seed {recipe.data_seed})")
        corpus = tokenizer_corpus() + [c.spec.prompt(c.sample) for c in clips] + [QWEN_SYSTEM_PROMPT] * 4
        model, processor = new_thinker(recipe, corpus)
        labels = sorted({c.label for c in clips})
        class_ids = [labels.index(c.label) for c in clips]
        features, mask = extract_features(processor, clips)
        train_encoder(model, features, mask, torch.tensor(class_ids), len(labels), recipe, log)
        with torch.no_grad():
            audio = torch.cat([audio_embeddings(model, features[i:i + 64], mask[i:i + 64])
                               for i in range(0, len(clips), 64)])
        figures = train_language_model(model, processor, clips, audio, class_ids, len(labels), recipe, log)
    finally:
        torch.set_num_threads(threads)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    model.config.canary_recipe = recipe.as_config() | {"final_training_figures": figures}
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    log(f"built in {time.monotonic() - started:.0f} s wall: {dest}")
