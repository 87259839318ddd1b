"""The training loop of every joint intent/slot model: resumable, distributable, with QAT.

What it does, in order, for `Trainer.fit()`:

* Restores `model_dir/checkpoints` if a checkpoint exists (weights, optimizer, epoch, step within
  the epoch, early-stopping state) and continues from there: a run killed at any point (even
  `kill -9`) loses at most `checkpoint_secs` of work when the same command runs again. The
  example order of epoch e is a pure function of (seed, e), so the resumed epoch skips exactly
  the batches it had already trained on.
* Each epoch: shuffled batches padded to their own longest example, Adam with linear warm-up and
  cosine decay, a progress bar, TensorBoard scalars (`model_dir/logs`), a checkpoint at the end
  (and every `checkpoint_secs` within the epoch).
* Evaluates on the development set after every epoch; keeps the best weights (`model_dir/best`)
  by development exact match (averaged over languages; tree exact match for a seq2seq model);
  stops after `patience` epochs without improvement.
* A seq2seq model (pQRNN-MAtt: batches with `decoder_inputs` and `targets`) trains on the
  label-smoothed cross-entropy of its targets with teacher forcing.
* QAT: fake quantization is on for the whole run (`qat_epochs=-1`), for the last `qat_epochs`
  epochs, or never (`0`, post-training quantization only). If early stopping ends the float
  phase first, the best float weights go on to the QAT phase; the best QAT epoch is kept.
* Runs under any `tf.distribute` strategy (default: one device): the global batch is split
  across replicas and the losses are averaged over it.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from prado_tiny.data.token_features import TokenFeatureSet
from prado_tiny.layers.fake_quant import set_quantize

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; nothing was saved after the last good step."""


@dataclasses.dataclass
class TrainConfig:
    """Training hyper-parameters (`prado-train` flags of the same names).

    Attributes:
      epochs: maximum epochs (the QAT epochs included).
      batch_size: global batch size (split across replicas).
      learning_rate: peak Adam learning rate.
      warmup_steps: linear warm-up steps; then cosine decay to `min_lr_ratio` * peak.
      min_lr_ratio: final learning rate as a fraction of the peak.
      slot_loss_weight: weight of the slot loss in the joint loss.
      patience: epochs without a better development exact match before stopping (0: never).
      qat_epochs: -1 QAT for the whole run, 0 no QAT, N the last N epochs.
      seed: seeds initialisation, dropout and the example order.
      checkpoint_secs: seconds between checkpoints within an epoch (0: epoch ends only).
      progress: show a progress bar.
      max_steps_per_epoch: cut epochs short (tests and smoke runs; 0: whole epochs).
      bucket_window: batch examples of similar length within windows of this many batches
        (`epoch_batches`; 0: plain shuffled batches).
      distill_alpha: with teacher targets in the training set, the weight a of the gold loss:
        a * CE(gold) + (1 - a) * T^2 * KL(teacher_T || student_T), per example that has a
        teacher (the others train on gold only).
      distill_temperature: T.
    """

    epochs: int = 50
    batch_size: int = 256
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.0
    slot_loss_weight: float = 1.0
    patience: int = 5
    qat_epochs: int = 5
    seed: int = 0
    checkpoint_secs: float = 120.0
    progress: bool = True
    max_steps_per_epoch: int = 0
    bucket_window: int = 50
    distill_alpha: float = 0.5
    distill_temperature: float = 2.0


@keras.utils.register_keras_serializable(package="prado_tiny")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup` steps, then cosine decay to `peak * floor` at
    `total` steps (constant after)."""

    def __init__(self, peak: float, warmup: int, total: int, floor: float = 0.0):
        self.peak, self.warmup, self.total, self.floor = float(peak), int(warmup), int(total), float(floor)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1.0) / max(self.warmup, 1)
        frac = tf.clip_by_value((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
        cos = self.peak * (self.floor + (1.0 - self.floor) * 0.5 * (1.0 + tf.cos(math.pi * frac)))
        return tf.where(step < self.warmup, warm, cos)

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total, "floor": self.floor}


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The example order of one epoch: a function of (seed, epoch) only, so a resumed run
    replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_batches(seed: int, epoch: int, lengths: np.ndarray, batch_size: int,
                  bucket_window: int = 0) -> list:
    """The batches (example indices) of one epoch, a function of (seed, epoch) only.

    With `bucket_window` > 0, the shuffled examples are cut into windows of `bucket_window`
    batches, sorted by length within each window, batched, and the batches shuffled: batches of
    similar lengths pad less (a batch is padded to its longest example), while every window is
    still a random sample of the data.
    """
    order = epoch_order(seed, epoch, len(lengths))
    if bucket_window <= 0:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    span = batch_size * bucket_window
    for lo in range(0, len(order), span):
        window = order[lo:lo + span]
        window = window[np.argsort(lengths[window], kind="stable")]
        batches += [window[i:i + batch_size] for i in range(0, len(window), batch_size)]
    # Full batches first in a shuffled order; the short ends of windows last (dropped when the
    # strategy needs full batches).
    full = [b for b in batches if len(b) == batch_size]
    rest = [b for b in batches if len(b) < batch_size]
    rng = np.random.default_rng([seed, epoch, 1])
    return [full[i] for i in rng.permutation(len(full))] + rest


def _kl(p, logits):
    """KL(p || softmax(logits)) over the last axis; p may hold zeros."""
    logq = tf.nn.log_softmax(logits, axis=-1)
    plogp = tf.where(p > 0, p * tf.math.log(tf.maximum(p, 1e-12)), 0.0)
    return tf.reduce_sum(plogp - p * logq, axis=-1)


class Trainer:
    """Trains `model` on `train` with development set `dev`.

    Args:
      model_dir: where checkpoints, best weights, logs and history go.
      model_fn: `() -> keras.Model` (called inside the strategy scope).
      train, dev: `TokenFeatureSet`s.
      config: a `TrainConfig`.
      evaluate_fn: `(model, TokenFeatureSet) -> {"score": float, ...}`: the development metrics
        (score: exact match averaged over languages).
      intent_mode: `joint` (softmax cross-entropy) or `multi_label` (sigmoid).
      strategy: a `tf.distribute.Strategy` (default: the default one-device strategy).
      augment: None, or `(features, examples, rng) -> features`, applied to every training
        batch (text distortion); `rng` is a function of (seed, epoch, step), so a resumed run
        sees the same batches.
    """

    def __init__(self, model_dir: str, model_fn: Callable[[], keras.Model], train: TokenFeatureSet,
                 dev: Optional[TokenFeatureSet], config: TrainConfig,
                 evaluate_fn: Optional[Callable[[keras.Model, TokenFeatureSet], Dict[str, Any]]] = None,
                 intent_mode: str = "joint", strategy: Optional[tf.distribute.Strategy] = None,
                 augment: Optional[Callable] = None):
        self.model_dir = model_dir
        self.augment = augment
        self.train, self.dev, self.config = train, dev, config
        self.evaluate_fn = evaluate_fn
        self.intent_mode = intent_mode
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        c = config
        if c.batch_size % self.replicas:
            raise ValueError(f"batch_size={c.batch_size} is not divisible by the "
                             f"{self.replicas} replicas")
        n = len(train)
        drop = self.replicas > 1  # every replica needs a non-empty share
        self.steps_per_epoch = n // c.batch_size if drop else math.ceil(n / c.batch_size)
        if c.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, c.max_steps_per_epoch)
        if self.steps_per_epoch < 1:
            raise ValueError(f"{n} training examples make no batch of {c.batch_size}")
        keras.utils.set_random_seed(c.seed)
        with self.strategy.scope():
            self.model = model_fn()
            # Create the variables here: under a MirroredStrategy they must be made in its scope.
            self.model(self.train.batch([0])[0], training=False)
            schedule = WarmupCosine(c.learning_rate, c.warmup_steps, c.epochs * self.steps_per_epoch,
                                    c.min_lr_ratio)
            self.schedule = schedule
            self.optimizer = keras.optimizers.Adam(schedule)
        qat_from = {-1: 0, 0: c.epochs}.get(c.qat_epochs, max(c.epochs - c.qat_epochs, 0))
        # Plain host variables, outside the strategy scope: the loop reads them with int() and
        # float(), which a MirroredVariable does not support; no replica touches them.
        self.state = {
            "epoch": tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
            "step": tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch"),
            "best": tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_score"),
            "bad_epochs": tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_epochs"),
            "qat_from": tf.Variable(qat_from, dtype=tf.int64, trainable=False, name="qat_from"),
            "end_epoch": tf.Variable(c.epochs, dtype=tf.int64, trainable=False, name="end_epoch"),
            # The learning-rate schedule's length, fixed when the run starts: a resumed run keeps
            # it whatever --epochs says (a checkpoint from before this variable keeps the flag's).
            "schedule_steps": tf.Variable(c.epochs * self.steps_per_epoch, dtype=tf.int64,
                                          trainable=False, name="schedule_steps"),
        }
        self.ckpt = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, **self.state)
        self.manager = tf.train.CheckpointManager(self.ckpt, os.path.join(model_dir, "checkpoints"),
                                                  max_to_keep=2)
        self.best_ckpt = tf.train.Checkpoint(model=self.model)
        self.best_dir = os.path.join(model_dir, "best")
        self.history_path = os.path.join(model_dir, "history.json")
        self._train_step = None

    # ------------------------------------------------------------------ data

    def _signature(self):
        f, y = self.train.batch([0])
        spec = lambda a: tf.TensorSpec((None,) * 2 + a.shape[2:] if a.ndim >= 2 else (None,) + a.shape[1:],  # noqa: E731
                                       tf.as_dtype(a.dtype))
        return ({k: spec(v) for k, v in f.items()}, {k: spec(v) for k, v in y.items()})

    def _dataset(self, epoch: int, start_step: int) -> tf.data.Dataset:
        batches = epoch_batches(self.config.seed, epoch, self.train.lengths, self.config.batch_size,
                                self.config.bucket_window)

        def generate():
            for s in range(start_step, self.steps_per_epoch):
                features, labels = self.train.batch(batches[s])
                if self.augment is not None:
                    rng = np.random.default_rng([self.config.seed, epoch, s, 2])
                    features = self.augment(features, [self.train.examples[i] for i in batches[s]],
                                            rng)
                yield features, labels

        ds = tf.data.Dataset.from_generator(generate, output_signature=self._signature())
        return ds.prefetch(2)

    # ------------------------------------------------------------------ steps

    def _losses(self, labels, out):
        """Per-example joint loss; for a seq2seq model (labels hold `targets`, the model returns
        logits `[B, T, V]`), the label-smoothed cross-entropy of its config over the real target
        positions (`sequence_loss`)."""
        if "targets" in labels:
            from prado_tiny.models.pqrnn_matt import sequence_loss
            smoothing = float(getattr(self.model.config, "label_smoothing", 0.0))
            return sequence_loss(labels["targets"], out, smoothing, per_example=True)
        if self.intent_mode == "multi_label":
            intent = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.cast(labels["intent"], tf.float32), logits=out["intent"]), axis=-1)
        else:
            intent = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels["intent"], tf.int32), logits=out["intent"])
        mask = tf.cast(labels["token_mask"], tf.float32)
        tok = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels["slots"], logits=out["slots"])
        slot = tf.reduce_sum(tok * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
        slot = slot * tf.cast(labels["slot_weight"], tf.float32)
        gold = intent + self.config.slot_loss_weight * slot
        if "teacher_intent" not in labels:
            return gold
        # Distillation: KL(teacher_T || student_T) scaled by T^2 (Hinton et al., 2015), so its
        # gradients keep their size whatever T.
        a, temp = self.config.distill_alpha, self.config.distill_temperature
        p_i = tf.cast(labels["teacher_intent"], tf.float32)
        if self.intent_mode == "multi_label":
            kd_intent = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=p_i, logits=out["intent"] / temp), axis=-1)
        else:
            kd_intent = _kl(p_i, out["intent"] / temp)
        kd_tok = _kl(tf.cast(labels["teacher_slots"], tf.float32), out["slots"] / temp)
        kd_slot = tf.reduce_sum(kd_tok * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
        kd = temp * temp * (kd_intent + self.config.slot_loss_weight * kd_slot)
        w = (1.0 - a) * tf.cast(labels["teacher_weight"], tf.float32)
        return (1.0 - w) * gold + w * kd

    def _make_train_step(self):
        global_batch = self.config.batch_size

        def replica_step(features, labels):
            labels = dict(labels, token_mask=features["token_mask"])
            with tf.GradientTape() as tape:
                out = self.model(features, training=True)
                per_example = self._losses(labels, out)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            grads = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
            return loss

        def step(features, labels):
            losses = self.strategy.run(replica_step, args=(features, labels))
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

        # Batches are padded to their own longest example: one trace must serve every length.
        if self.replicas == 1:
            return tf.function(step, input_signature=self._signature())
        return tf.function(step, reduce_retracing=True)

    # ------------------------------------------------------------------ loop

    def _last_saved_step(self) -> str:
        latest = self.manager.latest_checkpoint
        return latest.rsplit("-", 1)[-1] if latest else "(none yet)"

    def _save(self) -> None:
        self.manager.save(checkpoint_number=int(self.optimizer.iterations.numpy()))

    def _history(self) -> List[dict]:
        if os.path.exists(self.history_path):
            with open(self.history_path, encoding="utf-8") as f:
                return json.load(f)["epochs"]
        return []

    def _write_history(self, epochs: List[dict]) -> None:
        best = max((e for e in epochs if e.get("dev_score") is not None),
                   key=lambda e: (e.get("qat", False), e["dev_score"]), default=None)
        tmp = self.history_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"epochs": epochs, "best_epoch": best}, f, indent=1)
        os.replace(tmp, self.history_path)

    def fit(self) -> Dict[str, Any]:
        """Trains (or resumes) to the end; returns the history document."""
        st = self.state
        latest = self.manager.latest_checkpoint
        if latest:
            self.ckpt.restore(latest)
            if int(st["epoch"]) >= int(st["end_epoch"]):
                print(f"prado-train: training in {self.model_dir} already finished "
                      f"({int(st['epoch'])} epochs); nothing to do", flush=True)
            else:
                logger.info("resuming from %s: epoch %d, step %d of %d", latest, int(st["epoch"]),
                            int(st["step"]), self.steps_per_epoch)
                print(f"prado-train: resuming from {latest} (epoch {int(st['epoch']) + 1}, "
                      f"step {int(st['step'])} of {self.steps_per_epoch})", flush=True)
            if int(st["end_epoch"]) != self.config.epochs:
                # The schedule's length and the QAT start were fixed when the run began; a
                # changed --epochs must not pass silently.
                print(f"prado-train: this run ends after epoch {int(st['end_epoch'])} (set when "
                      f"it started, or by early stopping); --epochs={self.config.epochs} does not "
                      f"change a started run (nor its learning-rate schedule): use a new "
                      f"--model_dir to train for {self.config.epochs} epochs", flush=True)
        # Read when the train step is traced (below, before the first step).
        self.schedule.total = int(st["schedule_steps"])
        self._history_so_far = history = self._history()
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "logs"))
        quantizing = None
        while int(st["epoch"]) < int(st["end_epoch"]):
            epoch = int(st["epoch"])
            qat = epoch >= int(st["qat_from"])
            if qat != quantizing:
                set_quantize(self.model, qat)
                self._train_step = self._make_train_step()  # traced again with the new graph
                quantizing = qat
                if qat and epoch == int(st["qat_from"]) and int(st["step"]) == 0:
                    # The exported model is a QAT one: the best epoch is chosen among those.
                    st["best"].assign(-1.0)
                    st["bad_epochs"].assign(0)
                if qat:
                    print(f"prado-train: quantization-aware training from epoch {epoch + 1}", flush=True)
            record = self._run_epoch(epoch, writer, qat)
            history = self._history_so_far
            if record.get("stop"):
                break
        writer.flush()
        doc = {"epochs": history}
        if os.path.exists(self.history_path):
            with open(self.history_path, encoding="utf-8") as f:
                doc = json.load(f)
        return doc

    def _run_epoch(self, epoch: int, writer, qat: bool) -> dict:
        c, st = self.config, self.state
        start = int(st["step"])
        bar = keras.utils.Progbar(self.steps_per_epoch, verbose=1 if c.progress else 0,
                                  stateful_metrics=["lr"], unit_name="batch")
        if c.progress:
            print(f"Epoch {epoch + 1}/{int(st['end_epoch'])}" + (" (QAT)" if qat else ""), flush=True)
        ds = self.strategy.experimental_distribute_dataset(self._dataset(epoch, start))
        last_save = time.monotonic()
        t0, examples, loss_sum, steps = time.perf_counter(), 0, 0.0, 0
        for s, (features, labels) in enumerate(ds, start=start):
            loss = float(self._train_step(features, labels))
            if not math.isfinite(loss):
                # Stop before any save: a NaN step has already written NaN into the weights, and
                # a checkpoint or best weights taken now would replace the last good ones.
                raise TrainingDiverged(
                    f"the training loss is {loss} at step {s + 1} (epoch {epoch + 1}"
                    f"{', QAT' if qat else ''}); stopped without saving: the checkpoint of step "
                    f"{self._last_saved_step()} and the best weights in {self.best_dir} are the "
                    "last good ones. Lower --learning_rate, or train with --qat_epochs=0 to see "
                    "whether quantization causes it.")
            steps += 1
            loss_sum += loss
            examples += min(c.batch_size, len(self.train) - s * c.batch_size)
            st["step"].assign(s + 1)
            it = int(self.optimizer.iterations.numpy())
            if c.progress:
                bar.update(s + 1, [("loss", loss), ("lr", float(self.schedule(it)))])
            if it % 20 == 0:
                with writer.as_default(step=it):
                    tf.summary.scalar("train/loss", loss)
                    tf.summary.scalar("train/learning_rate", self.schedule(it))
            if c.checkpoint_secs and time.monotonic() - last_save >= c.checkpoint_secs:
                self._save()
                last_save = time.monotonic()
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "qat": qat, "steps": steps,
                  "train_loss": loss_sum / max(steps, 1),
                  "examples_per_second": examples / seconds if seconds > 0 else None,
                  "seconds": seconds}
        improved = False
        if self.dev is not None and self.evaluate_fn is not None:
            metrics = self.evaluate_fn(self.model, self.dev)
            record.update({f"dev_{k}": v for k, v in metrics.items()})
            score = metrics["score"]
            improved = score > float(st["best"])
            if improved:
                st["best"].assign(score)
                st["bad_epochs"].assign(0)
                self.best_ckpt.write(os.path.join(self.best_dir, "ckpt"))
            else:
                st["bad_epochs"].assign_add(1)
            with writer.as_default(step=int(self.optimizer.iterations.numpy())):
                for k, v in metrics.items():
                    if isinstance(v, (int, float)):
                        tf.summary.scalar(f"dev/{k}", v)
        else:
            self.best_ckpt.write(os.path.join(self.best_dir, "ckpt"))
        record["best_so_far"] = improved
        if True:  # one line per epoch, also without the progress bar
            name = record.get("dev_score_name", "exact match")
            dev = (f", dev {name} {record['dev_score'] * 100:.2f}" if "dev_score" in record else "")
            rate = record["examples_per_second"] or 0.0
            print(f"  epoch {epoch + 1}: loss {record['train_loss']:.4f}, {rate:,.0f} examples/s{dev}"
                  + (" (best)" if improved else ""), flush=True)
        # Early stopping, and the move from the float phase to the QAT phase.
        if c.patience and int(st["bad_epochs"]) >= c.patience:
            if not qat and c.qat_epochs > 0:
                print(f"prado-train: no better dev score for {c.patience} epochs; "
                      f"QAT for {c.qat_epochs} epochs from the best float weights", flush=True)
                self.best_ckpt.read(os.path.join(self.best_dir, "ckpt")).expect_partial()
                st["qat_from"].assign(epoch + 1)
                st["end_epoch"].assign(epoch + 1 + c.qat_epochs)
            else:
                record["stop"] = True
                print(f"prado-train: early stop, no better dev score for {c.patience} epochs", flush=True)
        # History first, then the checkpoint: a kill between the two re-runs the epoch (its
        # history entry is replaced), where the other order would lose the entry.
        self._history_so_far = [h for h in self._history_so_far if h["epoch"] != epoch + 1] + [record]
        self._write_history(self._history_so_far)
        st["epoch"].assign(epoch + 1)
        st["step"].assign(0)
        if record.get("stop"):
            st["end_epoch"].assign(epoch + 1)
        self._save()
        sys.stdout.flush()
        return record
