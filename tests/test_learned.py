"""Learned codecs: real bitstreams, bit-exact decoding, latents, checkpoint safety.

A small randomly initialised checkpoint is written in a temporary `codecs/`
folder, so these tests do not depend on which checkpoints are committed.
"""

import copy
import dataclasses
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import metrics
from bench.codecs import checkpoints, learned
from bench.codecs.checkpoints import CheckpointError


def _write_checkpoint(root, arch="cvae", quality=2, config=None):
    config = config or {"channels": 8, "latent_channels": 8}
    torch.manual_seed(0)
    model = learned.ARCHITECTURES[arch].build(config)
    model.update(force=True)
    folder = root / arch
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{arch}-q{quality}.pt"
    torch.save({"arch": arch, "config": config, "lmbda": 0.01, "state_dict": model.state_dict()}, path)
    card = {"arch": arch, "quality": quality, "config": config, "sha256": checkpoints.sha256_of(path)}
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.fixture
def codecs_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "COMMITTED_DIR", tmp_path)
    monkeypatch.delenv(checkpoints.WEIGHTS_DIR_ENV, raising=False)
    learned.model_from_checkpoint.cache_clear()
    learned._point_version.cache_clear()
    _write_checkpoint(tmp_path)
    yield tmp_path
    learned.model_from_checkpoint.cache_clear()
    learned._point_version.cache_clear()


@pytest.fixture
def codec(codecs_dir):
    return learned.make_codec(learned.ARCHITECTURES["cvae"])


def test_codec_sees_committed_qualities(codec):
    assert codec.available and codec.qualities == (2,)
    assert "committed weights q2: cvae-q2.pt" in codec.version


def test_stream_is_self_contained_and_rate_is_its_length(codec, tiles):
    image = tiles[0]
    data = codec.encode(image, 2)
    assert learned.parse_header(data) == ("cvae", 2, 64, 64)
    assert codec.header_size(data) == 6 < len(data)
    decoded = codec.decode(data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert metrics.bpp(len(data), image.shape) == 8 * len(data) / 4096


def test_odd_size_is_padded_and_cropped_and_rate_is_per_native_pixel(codec):
    image = np.random.default_rng(0).integers(0, 256, (65, 97, 3), dtype=np.uint8)
    data = codec.encode(image, 2)
    assert codec.decode(data).shape == (65, 97, 3)
    assert metrics.bpp(len(data), image.shape) == 8 * len(data) / (65 * 97)  # not the padded 80×112


def test_decoding_is_bit_exact_in_a_fresh_process(codec, codecs_dir, tiles, tmp_path):
    data = codec.encode(tiles[2], 2)
    stream = tmp_path / "stream.bin"
    stream.write_bytes(data)
    script = (
        "import sys, hashlib; from bench.codecs import checkpoints, learned; "
        f"checkpoints.COMMITTED_DIR = __import__('pathlib').Path({str(codecs_dir)!r}); "
        "image = learned.decode(open(sys.argv[1], 'rb').read()); print(hashlib.sha256(image.tobytes()).hexdigest())"
    )
    done = subprocess.run([sys.executable, "-c", script, str(stream)], capture_output=True, text=True, check=True)
    import hashlib

    assert done.stdout.strip() == hashlib.sha256(codec.decode(data).tobytes()).hexdigest()


def test_batch_encoding_gives_one_decodable_stream_per_image(codec, tiles):
    streams = learned.encode_batch("cvae", tiles, 2)
    assert len(streams) == len(tiles)
    for image, data in zip(tiles, streams):
        assert codec.decode(data).shape == image.shape
        assert abs(len(data) - len(codec.encode(image, 2))) <= 2  # same network, batch numerics aside


def test_latent_is_the_quantised_y_without_running_the_decoder(codec, tiles):
    data = codec.encode(tiles[0], 2)
    latent = learned.decode_latent(data)
    assert latent.shape == (8, 4, 4)
    assert np.allclose(latent, np.round(latent))  # factorized prior: ŷ is integer-valued


def test_truncated_or_corrupt_stream_is_a_clear_error(codec, tiles):
    data = codec.encode(tiles[0], 2)
    with pytest.raises(ValueError, match="shorter than the 6-byte header"):
        codec.decode(data[:4])
    with pytest.raises(ValueError, match="unknown architecture id 250"):
        codec.decode(bytes([250]) + data[1:])
    truncated = codec.decode(data[: len(data) // 2])  # rANS decodes what is there: an image, never a crash
    assert truncated.shape == tiles[0].shape


def test_a_tiny_training_run_lowers_the_loss(tmp_path, labelled_folder):
    from bench.config import ConfigError
    from bench.train import TrainConfig, selected_step, train

    config = TrainConfig(arch="cvae", lmbda=0.01, quality=1, config={"channels": 8, "latent_channels": 8},
                         dataset=labelled_folder,
                         steps=30, batch_size=8, lr=1e-3, val_every=15, val_limit=40, out=tmp_path / "codecs",
                         work=tmp_path / "work", threads=1)  # fmt: skip
    path = train(config)
    card = json.loads(path.with_suffix(".json").read_text())
    state = torch.load(tmp_path / "work" / "cvae-q1.last.pt", weights_only=True)
    assert card["selected_step"] == selected_step(card["val_curve"])
    assert state["best"] < _initial_val_loss(config)
    assert card["val_bpp"] > 0 and card["sha256"] == checkpoints.sha256_of(path)
    assert [row["step"] for row in card["val_curve"]] == [15, 30] and card["val_curve"][-1]["psnr"] > 0
    assert train(dataclasses.replace(config, threads=2, val_every=10)) == path  # resumed: where it runs may change
    from bench.train import _setup

    assert _setup(dataclasses.replace(config, init=Path("a.pt"))) == _setup(dataclasses.replace(config, init=Path.cwd() / "a.pt"))
    for changed in [{"lmbda": 0.5}, {"lr": 0.1, "seed": 7}, {"steps": 60}]:  # what its card would claim may not
        with pytest.raises(ConfigError, match=r"cvae-q1\.last\.pt holds a training of another setup: .*\(saved\) vs"):
            train(dataclasses.replace(config, **changed))


def test_training_keeps_the_last_state_unless_it_is_measurably_worse_than_the_best():
    from bench.train import selected_step

    flat = [{"step": 500, "loss": 0.3524}, {"step": 1000, "loss": 0.3531}, {"step": 1500, "loss": 0.3539}]
    assert selected_step(flat) == 1500  # within 0.5% of the best: the rate is still walking to its operating point
    worse = [*flat[:2], {"step": 1500, "loss": 0.3600}]
    assert selected_step(worse) == 500 and selected_step(worse, tolerance=0.03) == 1500


def _initial_val_loss(config) -> float:
    from bench.train import _evaluate, load_split

    torch.manual_seed(config.seed)
    model = learned.ARCHITECTURES["cvae"].build(config.config)
    images, labels = load_split(config, "val", config.val_limit)
    return _evaluate(model, None, images, labels, config)["loss"]


def test_wrong_hash_names_file_expected_and_found(codecs_dir):
    card_path = codecs_dir / "cvae" / "cvae-q2.json"
    card = json.loads(card_path.read_text())
    card["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"cvae-q2.pt: sha256 mismatch: expected 0{64}…, found [0-9a-f]{64}"):
        learned.load_model("cvae", 2)


def test_truncated_checkpoint_is_refused(codecs_dir):
    path = codecs_dir / "cvae" / "cvae-q2.pt"
    path.write_bytes(path.read_bytes()[:1000])
    card_path = path.with_suffix(".json")
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "sha256": checkpoints.sha256_of(path)}))
    with pytest.raises(CheckpointError, match="cvae-q2.pt: cannot be loaded safely"):
        learned.load_model("cvae", 2)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickle_with_code_payload_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload()}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    checkpoint = checkpoints.Checkpoint("cvae", 1, path, checkpoints.sha256_of(path), "committed")
    with pytest.raises(CheckpointError, match="evil.pt: cannot be loaded safely"):
        checkpoints.load_state(checkpoint)
    assert "code ran" not in capsys.readouterr().out


def test_mismatched_architecture_is_refused(codecs_dir):
    other = _write_checkpoint(codecs_dir / "elsewhere", "cvae", 2, {"channels": 8, "latent_channels": 8})
    state = torch.load(other, weights_only=True)
    state["config"] = {"channels": 16, "latent_channels": 8}  # weights no longer fit the config
    target = codecs_dir / "cvae" / "cvae-q2.pt"
    torch.save(state, target)
    card_path = target.with_suffix(".json")
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "sha256": checkpoints.sha256_of(target)}))
    with pytest.raises(CheckpointError, match="cvae-q2.pt: does not fit cvae"):
        learned.load_model("cvae", 2)


def test_official_checkpoints_are_recognised_by_name_and_hash(tmp_path, monkeypatch, tiles):
    from bench.codecs.compressai_compat import import_compressai

    import_compressai()
    from compressai.zoo.image import model_architectures

    monkeypatch.setattr(checkpoints, "COMMITTED_DIR", tmp_path / "none")
    torch.manual_seed(0)
    model = model_architectures["bmshj2018-factorized"](N=8, M=8)
    model.update(force=True)
    raw = tmp_path / "raw.pth.tar"
    torch.save(model.state_dict(), raw)
    name = f"bmshj2018-factorized-prior-4-{checkpoints.sha256_of(raw)[:8]}.pth.tar"
    raw.rename(tmp_path / name)
    (tmp_path / "bmshj2018-factorized-prior-5-deadbeef.pth.tar").write_bytes(b"not this one")
    learned.model_from_checkpoint.cache_clear()
    found = checkpoints.resolve("bmshj2018-factorized", tmp_path)
    assert sorted(found) == [4, 5] and found[4].source == "official"
    codec = learned.make_codec(learned.ARCHITECTURES["bmshj2018-factorized"], tmp_path)
    assert codec.decode(codec.encode(tiles[0], 4)).shape == tiles[0].shape
    with pytest.raises(CheckpointError, match="sha256 mismatch: expected deadbeef"):
        codec.encode(tiles[0], 5)


def test_download_verifies_the_hash_in_the_name(tmp_path):
    source = tmp_path / "server"
    source.mkdir()
    payload = source / "payload.bin"
    payload.write_bytes(b"weights")
    good = checkpoints.sha256_of(payload)[:8]
    (source / f"bmshj2018-hyperprior-1-{good}.pth.tar").write_bytes(b"weights")
    (source / "bmshj2018-hyperprior-2-00000000.pth.tar").write_bytes(b"tampered")
    urls = {q: (source / f).as_uri() for q, f in ((1, f"bmshj2018-hyperprior-1-{good}.pth.tar"),
                                                   (2, "bmshj2018-hyperprior-2-00000000.pth.tar"))}  # fmt: skip
    target = tmp_path / "weights"
    assert checkpoints.download_official("bmshj2018-hyperprior", [1], target, urls) == [
        target / f"bmshj2018-hyperprior-1-{good}.pth.tar"
    ]
    with pytest.raises(CheckpointError, match="sha256 mismatch: expected 00000000"):
        checkpoints.download_official("bmshj2018-hyperprior", [2], target, urls)
    assert sorted(p.name for p in target.iterdir()) == [f"bmshj2018-hyperprior-1-{good}.pth.tar"]


def test_official_urls_come_from_compressai():
    urls = checkpoints.official_urls("bmshj2018-hyperprior")
    assert sorted(urls) == list(range(1, 9)) and urls[3].endswith("bmshj2018-hyperprior-3-6d87be32.pth.tar")


def test_runner_batches_learned_codecs(codec, tmp_path, monkeypatch):
    from bench import codecs as registry
    from bench.datasets import load_dataset
    from bench.images import read_rgb
    from bench.measure import LEARNED_BATCH
    from bench.runner import SweepConfig, plan, sweep
    from bench.runner import SweepSummary
    from bench.store import ResultStore
    from bench.tables import results

    monkeypatch.setitem(registry.CODECS, "cvae", codec)
    config = SweepConfig(datasets=["eurosat"], codecs=["cvae", "jpeg"], out=tmp_path, limit=20, jobs=2,
                         qualities={"jpeg": (50.0,)}, progress=False)  # fmt: skip
    with ResultStore(tmp_path / "plan.sqlite") as store:
        tasks = plan(config, store, SweepSummary(tmp_path))
    learned_tasks = [t for t in tasks if t.pairs == (("cvae", 2.0),)]
    assert [len(t.records) for t in learned_tasks] == [LEARNED_BATCH, 20 - LEARNED_BATCH]
    sweep(config)
    frame = results(tmp_path)
    rows = frame[frame["codec"] == "cvae"].set_index("image")
    assert len(rows) == 20 and rows["error"].isna().all()
    records = {r.id: r for r in load_dataset("eurosat").records}
    for image_id in rows.index[:3]:
        single = codec.encode(read_rgb(records[image_id].path)[0], 2)
        assert abs(int(rows.loc[image_id, "bytes"]) - len(single)) <= 2


def test_latent_classification_runs_on_real_bitstreams(codec, monkeypatch, tmp_path, labelled_folder):
    from bench import codecs as registry
    from bench.tasks import classifier, latent

    monkeypatch.setitem(registry.CODECS, "cvae", codec)
    monkeypatch.setattr(classifier, "CLASSIFIER_DIR", tmp_path / "none")
    classifier.load.cache_clear()
    (result,) = latent.evaluate_into_run(tmp_path / "run", "cvae", [2], labelled_folder, epochs=2, limit=60)
    assert result["latent_shape"] == [8, 4, 4] and result["train_images"] == 60
    assert 0 <= result["latent_accuracy"] <= 1 and result["latent_decode_ms"] > 0
    from bench.reports.render import write_reports
    from bench.run import Run

    report = write_reports(Run(tmp_path / "run"))["report.md"].read_text()  # the table names what the head trained on
    assert "| cvae | 2 |" in report and f"| 60 | {result['test_images']} | 8×4×4 |" in report
    assert "the best of 5 alternating\nrounds over the first 200 test streams" in report
    classifier.load.cache_clear()


@pytest.mark.parametrize(
    "arch, config, channels, factor",
    [("cvae", {"channels": 8, "latent_channels": 12}, 12, 16), ("cvae", {"channels": 8, "latent_channels": 12, "stages": 3}, 12, 8),
     ("bmshj2018-hyperprior", {"N": 8, "M": 10}, 10, 16), ("mbt2018-mean", {"N": 8, "M": 10}, 10, 16)],
)  # fmt: skip
def test_latent_shapes_across_architectures(tmp_path, monkeypatch, tiles, arch, config, channels, factor):
    monkeypatch.setattr(checkpoints, "COMMITTED_DIR", tmp_path)
    learned.model_from_checkpoint.cache_clear()
    _write_checkpoint(tmp_path, arch, 1, config)
    data = learned.encode_batch(arch, [tiles[0]], 1)[0]
    # ŷ is the image down-sampled by g_a's stride (a hyperprior's own factor, 64, only pads the image)
    assert learned.decode_latent(data).shape == (channels, 64 // factor, 64 // factor)
    learned.model_from_checkpoint.cache_clear()


@pytest.mark.parametrize("stages", [1, 3])
def test_cvae_with_fewer_stages_codes_and_decodes_odd_sizes(tmp_path, monkeypatch, stages):
    monkeypatch.setattr(checkpoints, "COMMITTED_DIR", tmp_path)
    learned.model_from_checkpoint.cache_clear()
    _write_checkpoint(tmp_path, "cvae", 1, {"channels": 8, "latent_channels": 8, "stages": stages})
    image = np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    data = learned.encode_batch("cvae", [image], 1)[0]
    assert learned.decode(data).shape == image.shape
    assert learned.load_model("cvae", 1).downsampling_factor == 2**stages
    learned.model_from_checkpoint.cache_clear()


def test_stages_are_refused_for_an_architecture_with_fixed_down_sampling(capsys):
    from bench.cli import main

    assert main(["train", "--arch", "bmshj2018-factorized", "--lmbda", "0.01", "--quality", "1", "--stages", "3"]) == 2
    assert "--stages: bmshj2018-factorized: its down-sampling is fixed" in capsys.readouterr().err
    assert main(["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "1", "--stages", "0"]) == 2
    assert "argument --stages: '0': must be ≥ 1" in capsys.readouterr().err


def test_training_without_train_images_names_the_dataset_and_split(capsys, monkeypatch):
    from bench.cli import main

    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    assert main(["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "1", "--steps", "1"]) == 2  # the sample is test-only
    assert "eurosat: its train split is empty" in capsys.readouterr().err


def test_training_on_cuda_without_a_gpu_is_a_clear_usage_error(capsys):
    from bench.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "1", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_a_checkpoint_trained_into_a_folder_is_used_through_weights_dir_before_the_committed_one(tmp_path, labelled_folder, monkeypatch):
    from bench.cli import main

    assert main(["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "3", "--dataset", labelled_folder,
                 "--channels", "8", "--latent-channels", "8", "--steps", "4", "--val-every", "2", "--batch-size", "4",
                 "--out", str(tmp_path / "mine"), "--work", str(tmp_path / "work"), "--threads", "1"]) == 0  # fmt: skip
    resolved = checkpoints.resolve("cvae", tmp_path / "mine")
    assert resolved[3].source == "weights-dir" and resolved[3].path == tmp_path / "mine" / "cvae" / "cvae-q3.pt"
    assert resolved[1].source == "committed"  # qualities the folder lacks still come from the repository
    out = tmp_path / "run"
    assert main(["run", "--codecs", "cvae", "--qualities", "3", "--limit", "2", "--out", str(out), "--jobs", "1",
                 "--no-progress", "--no-classify", "--weights-dir", str(tmp_path / "mine")]) == 0  # fmt: skip
    import pandas as pd

    version = pd.read_csv(out / "results.csv")["codec_version"].iloc[0]
    assert "cvae-q3.pt" in version and checkpoints.sha256_of(resolved[3].path)[:8] in version


def _committed_cards_trained_on_a_gpu() -> list:
    cards = sorted(checkpoints.COMMITTED_DIR.glob("*/*-q*.json"))
    return [path for path in cards if "--device cuda" in json.loads(path.read_text()).get("command", "")]


@pytest.mark.parametrize("card_path", _committed_cards_trained_on_a_gpu(), ids=lambda path: path.stem)
def test_a_checkpoint_trained_on_a_gpu_codes_bit_exactly_on_the_cpu(card_path, tiles, tmp_path):
    """Streams are made and read on the CPU: a GPU-trained network's entropy tables are built there when it is saved."""
    import hashlib

    card = json.loads(card_path.read_text())
    streams = learned.encode_batch(card["arch"], tiles, card["quality"])
    assert learned.encode_batch(card["arch"], tiles, card["quality"]) == streams  # deterministic
    decoded = learned.decode_batch(streams)
    for index, (image, stream) in enumerate(zip(decoded, streams)):
        (tmp_path / f"{index}.bin").write_bytes(stream)
        assert metrics.psnr(tiles[index], image) > 25  # the network, not noise
    script = (
        "import sys, hashlib; from bench.codecs import learned; "
        "print(' '.join(hashlib.sha256(learned.decode(open(p, 'rb').read()).tobytes()).hexdigest() for p in sys.argv[1:]))"
    )
    paths = [str(tmp_path / f"{index}.bin") for index in range(len(streams))]
    done = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [hashlib.sha256(image.tobytes()).hexdigest() for image in decoded]


def test_decode_timing_is_the_best_round_per_stream_with_decoders_taking_turns(monkeypatch):
    from bench.tasks import latent

    clock, calls = [0.0], []
    monkeypatch.setattr(latent.time, "perf_counter", lambda: clock[0])

    def decoder(name, seconds):  # the first round is disturbed by other load: 10× slower
        def decode(stream):
            calls.append(name)
            clock[0] += seconds * (10 if calls.count(name) <= 2 else 1)

        return decode

    full, partial = latent.best_seconds_per_stream([decoder("full", 0.004), decoder("latent", 0.001)], [b"a", b"b"], rounds=3)
    assert full == pytest.approx(0.004) and partial == pytest.approx(0.001)
    assert calls == ["full", "full", "latent", "latent"] * 3  # alternating rounds


def test_a_new_checkpoint_quality_resumes_a_run_and_a_replaced_one_is_refused(codecs_dir, tmp_path, monkeypatch):
    from bench import codecs as registry
    from bench.runner import RunMismatch, SweepConfig, sweep
    from bench.tables import results

    def config(*qualities):
        monkeypatch.setitem(registry.CODECS, "cvae", learned.make_codec(learned.ARCHITECTURES["cvae"]))
        learned._point_version.cache_clear()
        return SweepConfig(datasets=["eurosat"], codecs=["cvae"], qualities={"cvae": qualities}, out=tmp_path / "run",
                           limit=2, jobs=1, progress=False, classify=False)  # fmt: skip

    sweep(config(2.0))
    stored = results(tmp_path / "run")["codec_version"]
    assert stored.str.endswith("weights cvae-q2.pt (" + checkpoints.sha256_of(codecs_dir / "cvae" / "cvae-q2.pt")[:8] + ")").all()
    _write_checkpoint(codecs_dir, quality=3)  # a new λ of the ladder: the q2 rows stay valid
    sweep(config(2.0, 3.0))
    assert len(results(tmp_path / "run")) == 4
    _write_checkpoint(codecs_dir, quality=2, config={"channels": 8, "latent_channels": 6})  # q2 replaced
    for qualities in [(2.0, 3.0), (3.0,)]:  # the curve would mix two q2 models, whichever points are asked for
        with pytest.raises(RunMismatch, match=r"rows of cvae 2 made by .*cvae-q2\.pt.*: use another --out"):
            sweep(config(*qualities))


ARCHITECTURE_SIZES = {"cvae": {"channels": 8, "latent_channels": 8, "stages": 3}, "bmshj2018-factorized": {"N": 8, "M": 8},
                      "bmshj2018-hyperprior": {"N": 8, "M": 10}, "mbt2018-mean": {"N": 8, "M": 10},
                      "mbt2018": {"N": 8, "M": 10}, "cheng2020-anchor": {"N": 8}, "cvae-task": {"channels": 8, "latent_channels": 8}}  # fmt: skip


@pytest.mark.parametrize("arch", ARCHITECTURE_SIZES)
def test_a_device_gets_the_transforms_and_everything_that_decides_symbols_stays_on_the_cpu(arch, tmp_path, monkeypatch):
    """Placement checked on PyTorch's "meta" device (no GPU needed): hyperprior scales, context models and entropy
    tables must be computed on the CPU at both ends, or a stream decodes differently on another machine."""
    monkeypatch.setattr(checkpoints, "COMMITTED_DIR", tmp_path)
    learned.model_from_checkpoint.cache_clear()
    _write_checkpoint(tmp_path, arch, 1, ARCHITECTURE_SIZES[arch])
    model = learned.load_model(arch, 1, device="meta")
    placed = {name.split(".")[0]: tensor.device.type for name, tensor in [*model.named_parameters(), *model.named_buffers()]}
    assert {name for name, device in placed.items() if device == "meta"} == {"g_a", "g_s"}
    assert {name for name, device in placed.items() if device == "cpu"} == set(placed) - {"g_a", "g_s"}
    assert "entropy_bottleneck" in placed and ("h_s" in placed) == (arch not in ("cvae", "cvae-task", "bmshj2018-factorized"))
    assert all(tensor.device.type == "cpu" for tensor in learned.load_model(arch, 1).parameters())  # a copy moved
    learned.model_from_checkpoint.cache_clear()


@pytest.mark.parametrize("arch", ["cvae", "mbt2018"])
def test_transforms_run_through_the_device_hooks_give_the_cpu_streams_and_images(arch, tmp_path, monkeypatch, tiles):
    """The hooks that carry tensors to a device and back change nothing but where the arithmetic runs (checked with
    the CPU as that device)."""
    monkeypatch.setattr(checkpoints, "COMMITTED_DIR", tmp_path)
    learned.model_from_checkpoint.cache_clear()
    _write_checkpoint(tmp_path, arch, 1, ARCHITECTURE_SIZES[arch])
    plain = learned.load_model(arch, 1)
    hooked = copy.deepcopy(plain)
    for name in learned.TRANSFORMS_ON_DEVICE:
        learned._run_on(getattr(hooked, name), "cpu")
    streams = learned.encode_batch(arch, tiles[:3], 1, model=hooked)
    assert streams == learned.encode_batch(arch, tiles[:3], 1, model=plain)
    assert all(np.array_equal(a, b) for a, b in zip(learned.decode_batch(streams, hooked), learned.decode_batch(streams, plain)))
    learned.model_from_checkpoint.cache_clear()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", ARCHITECTURE_SIZES)
def test_a_stream_encoded_on_the_gpu_decodes_to_the_same_latent_on_the_cpu(arch, tmp_path, monkeypatch, tiles):
    monkeypatch.setattr(checkpoints, "COMMITTED_DIR", tmp_path)
    learned.model_from_checkpoint.cache_clear()
    _write_checkpoint(tmp_path, arch, 1, ARCHITECTURE_SIZES[arch])
    on_gpu = learned.encode_batch(arch, tiles, 1, device="cuda")
    on_cpu = learned.encode_batch(arch, tiles, 1)
    assert sum(map(len, on_gpu)) == pytest.approx(sum(map(len, on_cpu)), rel=0.02)  # g_a rounds differently, rarely
    for index, stream in enumerate(on_gpu):
        (tmp_path / f"{index}.bin").write_bytes(stream)
    script = (  # one CPU-only process decodes every stream's latent
        "import sys; import numpy as np; from pathlib import Path; from bench.codecs import checkpoints, learned; "
        f"checkpoints.COMMITTED_DIR = Path({str(tmp_path)!r}); "
        "np.savez(sys.argv[1], *[learned.decode_latent(Path(path).read_bytes()) for path in sys.argv[2:]])"
    )
    paths = [str(tmp_path / f"{index}.bin") for index in range(len(on_gpu))]
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "y.npz"), *paths],
                   check=True, env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
    on_cpu_only = np.load(tmp_path / "y.npz")
    for index, stream in enumerate(on_gpu):
        assert np.array_equal(on_cpu_only[f"arr_{index}"], learned.decode_latent(stream))  # bit-exact, CPU only
        on_gpu_image, on_cpu_image = learned.decode(stream, device="cuda"), learned.decode(stream)
        assert np.abs(on_gpu_image.astype(int) - on_cpu_image).max() <= 1  # g_s rounds differently, by a level at most
    learned.model_from_checkpoint.cache_clear()


def test_run_on_cuda_without_a_gpu_is_a_clear_usage_error(capsys, tmp_path):
    from bench.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["run", "--codecs", "cvae", "--limit", "1", "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    assert "error: --device cuda: no CUDA device here" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resuming_a_run_on_another_device_is_refused(codecs_dir, tmp_path, monkeypatch):
    """A GPU's transforms round differently: its rows are another version of each point, not to be averaged in."""
    from bench.runner import RunMismatch, SweepConfig, sweep
    from bench.store import ResultStore

    def config(device):
        return SweepConfig(datasets=["eurosat"], codecs=["cvae"], qualities={"cvae": (2.0,)}, out=tmp_path / "run",
                           limit=1, jobs=1, progress=False, classify=False, device=device)  # fmt: skip

    monkeypatch.setattr(learned, "unusable_device", lambda device: None)  # as on a machine with a GPU
    sweep(config("cpu"))
    with ResultStore(tmp_path / "run" / "results.sqlite") as store:
        assert store.runs()[-1]["device"] == "cpu"
    with pytest.raises(RunMismatch, match=r"rows of cvae 2 made by .*cvae-q2\.pt \([0-9a-f]{8}\); it is now .*g_a/g_s on cuda"):
        sweep(config("cuda"))


def test_a_run_stored_with_whole_ladder_versions_resumes_while_its_checkpoints_are_unchanged(codecs_dir, tmp_path):
    """Rows written before versions were per point name every checkpoint of the ladder; they are read per point."""
    import sqlite3

    from bench.runner import RunMismatch, SweepConfig, sweep

    config = SweepConfig(datasets=["eurosat"], codecs=["cvae"], qualities={"cvae": (2.0,)}, out=tmp_path / "run",
                         limit=2, jobs=1, progress=False, classify=False)  # fmt: skip
    sweep(config)
    sha = checkpoints.sha256_of(codecs_dir / "cvae" / "cvae-q2.pt")[:8]
    libraries = learned._libraries()
    database = tmp_path / "run" / "results.sqlite"

    def store_version(version):
        with sqlite3.connect(database) as db:
            db.execute("UPDATE results SET codec_version = ?", (version,))

    for sources, other in [("committed", "cvae-q1.pt"), ("committed/weights-dir", "a, b.pt")]:  # ", " in a name too
        store_version(f"{libraries}; {sources} weights q1: {other} (0badc0de), q2: cvae-q2.pt ({sha})")
        assert sweep(config).rows_already_done == 2
    for stale in [f"q2: cvae-q2.pt (0badc0de), q3: cvae-q3.pt ({sha})", f"q1: cvae-q2.pt ({sha}), q3: cvae-q3.pt ({sha})"]:
        store_version(f"{libraries}; committed weights {stale}")  # another q2, or none
        with pytest.raises(RunMismatch, match=r"made by .*committed weights q.*; it is now"):
            sweep(config)
    store_version(f"{libraries}; weights-dir weights q2: cvae-q2.pt ({sha})")  # the same file from another source
    with pytest.raises(RunMismatch):
        sweep(config)


def test_the_device_is_probed_here_only_when_the_workers_run_here(tmp_path):
    from bench.config import ConfigError, SweepConfig, check_config

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    local = SweepConfig(datasets=["eurosat"], codecs=["cvae"], out=tmp_path / "run", device="cuda")
    with pytest.raises(ConfigError, match="--device cuda: no CUDA device here"):
        check_config(local)
    check_config(dataclasses.replace(local, scheduler="tcp://gpu-cluster:8786"))  # its workers may have GPUs


def test_latent_and_init_mistakes_are_usage_errors(tmp_path, capsys, monkeypatch, labelled_folder):
    from bench.cli import main

    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    assert main(["latent", "--out", str(tmp_path / "run")]) == 2  # the shipped sample is test-only
    assert "the latent classifier needs labelled train, val and test images; its train, val split is empty" in capsys.readouterr().err
    init = _write_checkpoint(tmp_path / "mine", config={"channels": 8, "latent_channels": 8})
    assert main(["train", "--arch", "cvae", "--lmbda", "0.01", "--quality", "3", "--dataset", labelled_folder,
                 "--channels", "16", "--latent-channels", "8", "--steps", "1", "--init", str(init),
                 "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"--init {init}: its weights (cvae, {{'channels': 8, 'latent_channels': 8}}) do not fit" in err and err.count("\n") == 1
