"""transformers on CPU: AuditTrainerCallback with a tiny BERT built from a config, offline."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from journal import Journal, squeeze  # noqa: E402

from audit_logging.detect import fmt  # noqa: E402
from audit_logging.integrations import AuditTrainerCallback  # noqa: E402


def tiny_model() -> Any:
    transformers.set_seed(0)
    config = transformers.BertConfig(
        vocab_size=32,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def data(n: int, seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 32, (n, 8), generator=g)
    labels = (ids[:, 0] > 16).long()
    return datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": [[1] * 8] * n, "labels": labels.tolist()}
    )


def args(tmp_path: Path, **more: Any) -> Any:
    base: dict[str, Any] = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=16,
        num_train_epochs=20,
        learning_rate=5e-3,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_total_limit=3,
        seed=0,
    )
    base.update(more)
    return transformers.TrainingArguments(**base)


def test_train_with_early_stopping_and_checkpoint_folders(journal: Journal, tmp_path: Path) -> None:
    audit = AuditTrainerCallback(logger=journal.logger, run_kwargs={"git": None})
    stopper = transformers.EarlyStoppingCallback(
        early_stopping_patience=2, early_stopping_threshold=10.0
    )
    trainer = transformers.Trainer(
        model=tiny_model(),
        args=args(tmp_path, load_best_model_at_end=True, metric_for_best_model="eval_loss"),
        train_dataset=data(64, 0),
        eval_dataset=data(32, 1),
        callbacks=[audit, stopper],
    )
    trainer.train()
    reported = [h for h in trainer.state.log_history if "eval_loss" in h]
    events = journal.events()
    assert squeeze(events)[:4] == [
        "TRAINING_STARTED",
        "DATASET_VALIDATED",
        "HYPERPARAMETERS_SET",
        "TRAINING_PROGRESS",
    ]
    assert events[-2:] == ["MODEL_EVALUATED", "TRAINING_STOPPED"]
    assert journal.only("TRAINING_STARTED")["model"] == "BertForSequenceClassification"
    data_line = journal.only("DATASET_VALIDATED")["metrics_snapshot"]
    assert data_line["train"]["rows"] == 64 and data_line["eval"]["rows"] == 32
    assert data_line["train"]["columns"] == ["input_ids", "attention_mask", "labels"]
    hp = journal.only("HYPERPARAMETERS_SET")["metrics_snapshot"]
    assert hp["hyperparameters"]["early_stopping.early_stopping_patience"] == 2
    assert hp["hyperparameters"]["learning_rate"] == 5e-3
    assert "learning_rate" not in hp["defaults_used"] and "weight_decay" in hp["defaults_used"]
    assert "adam_beta1" in hp["defaults_used"]
    progress = journal.progress()
    logged_evals = [p for p in progress if "eval_loss" in p]
    assert [p["eval_loss"] for p in logged_evals] == pytest.approx(
        [h["eval_loss"] for h in reported]
    )
    assert [p["step"] for p in logged_evals] == [h["step"] for h in reported]
    saved = journal.of("MODEL_SAVED")
    assert len(saved) == len(reported)
    for line in saved:
        snap = line["metrics_snapshot"]
        folder = Path(snap["path"])
        if not folder.exists():
            continue  # removed by save_total_limit
        files = {
            p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*")
            if p.is_file()
        }
        assert snap["files"] == files
        manifest = "".join(f"{files[k]}  {k}\n" for k in sorted(files))
        assert snap["sha256"] == hashlib.sha256(manifest.encode()).hexdigest()
    state = trainer.state
    reasoning = journal.only("TRAINING_STOPPED")["reasoning"]
    assert (
        "transformers EarlyStoppingCallback: monitor eval_loss, mode min, patience 2 evaluations, min_delta 10."
        in reasoning
    )
    assert (
        f"Best eval_loss {fmt(state.best_metric)} at evaluation {state.best_global_step}."
        in reasoning
    )
    assert f"stopped at global step {state.global_step} of {state.max_steps}" in reasoning


def test_evaluate_after_training_and_failure(journal: Journal, tmp_path: Path) -> None:
    audit = AuditTrainerCallback(
        dataset="random-ids", logger=journal.logger, run_kwargs={"git": None}
    )
    trainer = transformers.Trainer(
        model=tiny_model(),
        args=args(tmp_path, num_train_epochs=1, save_strategy="no"),
        train_dataset=data(32, 0),
        eval_dataset=data(16, 1),
        callbacks=[audit],
    )
    trainer.train()
    metrics = trainer.evaluate()
    events = journal.events()
    assert events[-2:] == ["TRAINING_COMPLETED", "MODEL_EVALUATED"]
    assert journal.of("MODEL_EVALUATED")[-1]["metrics_snapshot"]["eval_loss"] == pytest.approx(
        metrics["eval_loss"]
    )
    assert journal.only("TRAINING_STARTED")["dataset"] == "random-ids"

    class Boom(transformers.TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise RuntimeError("preempted by the scheduler")

    failing = AuditTrainerCallback(logger=journal.logger, run_kwargs={"git": None})
    trainer = transformers.Trainer(
        model=tiny_model(),
        args=args(tmp_path / "2", num_train_epochs=1, save_strategy="no", eval_strategy="no"),
        train_dataset=data(32, 0),
        callbacks=[failing, Boom()],
    )
    with pytest.raises(RuntimeError):
        trainer.train()
    assert journal.events()[-1] == "TRAINING_FAILED"
    assert (
        "RuntimeError: preempted by the scheduler" in journal.of("TRAINING_FAILED")[-1]["reasoning"]
    )
