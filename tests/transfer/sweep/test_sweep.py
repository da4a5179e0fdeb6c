"""Grid expansion, cell commands and result paths, and both executors on tiny stand-in cells."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from datasets import load_split
from models import load_backbone
from models.registry import PAPER_MODELS, REPO_ROOT
from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.dataset_layouts import write_layout
from transfer import sweep
from transfer.sweep import Cell, SlurmOptions, SweepError, SweepOptions
from transfer.sweep.local import THREAD_VARIABLES
from transfer.sweep.slurm_jobs import job_outcome

# docs/protocols.md, "Datasets and splits", written out here rather than derived from the registry
# under test.
MANY_SHOT = ["aircraft", "caltech101", "cars", "cifar10", "cifar100", "dtd", "flowers", "food",
             "pets", "sun397", "voc2007"]
CROSS_DOMAIN = ["cropdiseases", "eurosat", "isic", "chestx"]


def test_dataset_shortcuts_follow_the_spec():
    assert sweep.expand_datasets(["many-shot"]) == MANY_SHOT
    assert sweep.expand_datasets(["cross-domain"]) == CROSS_DOMAIN
    assert sweep.expand_datasets(["few-shot"]) == [d for d in MANY_SHOT + CROSS_DOMAIN
                                                   if d != "voc2007"]
    assert sweep.expand_datasets(["all"]) == MANY_SHOT + CROSS_DOMAIN
    # order kept, repeats dropped, the demo set only when named
    assert sweep.expand_datasets(["digits", "dtd", "many-shot"]) == ["digits", "dtd"] + [
        d for d in MANY_SHOT if d != "dtd"]


def test_model_and_protocol_shortcuts(tmp_path):
    assert sweep.expand_models(["paper"]) == list(PAPER_MODELS)
    assert len(sweep.expand_models(["paper"])) == 14
    assert sweep.expand_models(["random", "all"])[0] == "random"
    assert sweep.expand_models(["all"])[-1] == "random"
    assert len(sweep.expand_models(["random", "all"])) == 15
    assert sweep.expand_protocols(["all"]) == ["linear", "few_shot", "finetune", "knn"]


def test_unknown_names_are_rejected_with_the_choices(tmp_path):
    with pytest.raises(SweepError, match=r"unknown dataset 'imagenet'.*many-shot.*cifar10"):
        sweep.expand_datasets(["imagenet"])
    with pytest.raises(SweepError, match=r"unknown protocol 'dino'.*few_shot, finetune, knn"):
        sweep.expand_protocols(["dino"])
    with pytest.raises(SweepError, match=rf"unknown model 'mine'.*{tmp_path}"):
        sweep.expand_models(["mine"], tmp_path)
    (tmp_path / "mine.pth").write_bytes(b"")
    assert sweep.expand_models(["mine"], tmp_path) == ["mine"]
    assert sweep.expand_models([str(tmp_path / "mine.pth")]) == [str(tmp_path / "mine.pth")]


def test_extra_arguments_are_split_per_protocol_and_cannot_override_the_grid():
    extra = sweep.parse_extra(["finetune=--steps 500 --grid-size 2", "few_shot=--iter-num 100",
                               "finetune=--no-da"])
    assert extra == {"finetune": ("--steps", "500", "--grid-size", "2", "--no-da"),
                     "few_shot": ("--iter-num", "100")}
    with pytest.raises(SweepError, match="expected PROTOCOL=ARGS"):
        sweep.parse_extra(["--steps 500"])
    with pytest.raises(SweepError, match="expected PROTOCOL=ARGS"):
        sweep.parse_extra(["dino=--k 20"])
    with pytest.raises(SweepError, match="--dataset is set by the sweep"):
        sweep.parse_extra(["linear=--dataset=cifar10"])
    with pytest.raises(SweepError, match="--n-support is set by the sweep"):
        sweep.parse_extra(["few_shot=--n-support 5"])


def _options(tmp_path: Path, **kwargs) -> SweepOptions:
    return SweepOptions(results_dir=tmp_path / "results", **kwargs)


def test_plan_leaves_out_pairs_a_protocol_does_not_apply_to(tmp_path):
    plan = sweep.plan_grid(["random", "byol"], ["dtd", "voc2007", "eurosat"],
                           ["linear", "few_shot", "finetune"], _options(tmp_path))
    names = [cell.name for cell in plan.to_run]
    assert names == [
        "linear/random__dtd", "few_shot/random__dtd", "finetune/random__dtd",
        "linear/random__voc2007", "finetune/random__voc2007", "few_shot/random__eurosat",
        "linear/byol__dtd", "few_shot/byol__dtd", "finetune/byol__dtd",
        "linear/byol__voc2007", "finetune/byol__voc2007", "few_shot/byol__eurosat"]
    assert sorted((p, d) for p, d, _ in plan.not_applicable) == [
        ("few_shot", "voc2007"), ("finetune", "eurosat"), ("linear", "eurosat")]
    assert plan.done == []


def test_cell_commands_pass_the_shared_options_through(tmp_path):
    options = _options(tmp_path, models_dir="/m", data_root="/d", cache_dir="/c", device="cpu",
                       image_size=32, workers=0, n_support=(5, 20),
                       extra={"finetune": ("--steps", "10")})
    cells = {c.protocol: c for c in sweep.plan_grid(["random"], ["dtd"],
                                                    ["linear", "few_shot", "finetune"],
                                                    options).to_run}
    linear = list(cells["linear"].argv)
    assert linear[:2] == [sys.executable, str(Path(REPO_ROOT) / "linear.py")]
    assert linear[2:] == ["--model", "random", "--dataset", "dtd", "--results-dir",
                          str(tmp_path / "results"), "--models-dir", "/m", "--data-root", "/d",
                          "--device", "cpu", "--image-size", "32", "--workers", "0",
                          "--cache-dir", "/c"]
    assert list(cells["few_shot"].argv[-3:]) == ["--n-support", "5", "20"]
    finetune = list(cells["finetune"].argv)
    assert finetune[1].endswith("finetune.py")
    assert "--cache-dir" not in finetune  # finetuning trains the backbone: no feature cache
    assert finetune[-2:] == ["--steps", "10"]


def test_knn_cells_run_knn_py_on_the_cache_and_skip_cross_domain_sets(tmp_path):
    from transfer.protocols import knn

    options = _options(tmp_path, models_dir="/m", data_root="/d", cache_dir="/c", device="cpu",
                       image_size=32, workers=0, extra={"knn": ("--k", "20", "--tries", "3")})
    plan = sweep.plan_grid(["random"], ["dtd", "voc2007", "eurosat"], ["knn"], options)
    assert [cell.name for cell in plan.to_run] == ["knn/random__dtd", "knn/random__voc2007"]
    assert plan.not_applicable == [("knn", "eurosat", "a cross-domain set is few-shot only")]
    cell = plan.to_run[0]
    assert cell.argv[1] == str(Path(REPO_ROOT) / "knn.py")
    # its settings other than the defaults are named, as knn.py names its result
    assert cell.outputs == (tmp_path / "results" / "knn" / "random__dtd__k20__tries3__i32.json",)
    # knn.py takes every option the sweep passes it
    args = knn.parse_args(list(cell.argv[2:]))
    assert (args.model, args.dataset, args.cache_dir, args.image_size, args.workers) == (
        "random", "dtd", "/c", 32, 0)
    assert (args.k, args.tries, args.results_dir) == ([20], 3, str(tmp_path / "results"))


def test_expected_outputs_are_the_scripts_result_files(tmp_path):
    root = tmp_path / "results"
    options = _options(tmp_path, n_support=(5, 20),
                       extra={"few_shot": ("--n-way", "3"), "finetune": ("--lr", "0.01",
                                                                        "--wd", "0")})
    outputs = {c.protocol: c.outputs for c in sweep.plan_grid(
        ["random"], ["dtd"], ["linear", "few_shot", "finetune"], options).to_run}
    assert outputs["linear"] == (root / "linear" / "random__dtd.json",)
    assert outputs["few_shot"] == (root / "few_shot" / "random__dtd__3way5shot.json",
                                   root / "few_shot" / "random__dtd__3way20shot.json")
    assert outputs["finetune"] == (root / "finetune" / "random__dtd__lr0.01_wd0.json",)
    # a checkpoint given as a file is filed under its stem, as load_backbone names it
    (cell,) = sweep.plan_grid([str(tmp_path / "weights" / "mine.pth")], ["dtd"], ["linear"],
                              options).to_run
    assert cell.outputs == (root / "linear" / "mine__dtd.json",)
    assert cell.name == "linear/mine__dtd"


def test_expected_outputs_follow_settings_named_in_the_file_names(tmp_path, capsys):
    """Options that change the numbers are in the scripts' file names (transfer/records/results.py):
    the sweep expects exactly those files, so it neither reruns nor skips the wrong cells."""
    root = tmp_path / "results"
    options = _options(tmp_path, image_size=32, n_support=(5,),
                       extra={"linear": ("--wd-values", "3", "--solver", "torch"),
                              "few_shot": ("--iter-num", "100", "--n-query", "10"),
                              "finetune": ("--steps", "10")})
    outputs = {c.protocol: c.outputs for c in sweep.plan_grid(
        ["random"], ["dtd"], ["linear", "few_shot", "finetune"], options).to_run}
    assert outputs["linear"] == (root / "linear" / "random__dtd__w3__i32__solver-torch.json",)
    assert outputs["few_shot"] == (
        root / "few_shot" / "random__dtd__5way5shot__q10__episodes100__i32.json",)
    # finetuning refuses a record of other settings instead (its recipe check)
    assert outputs["finetune"] == (root / "finetune" / "random__dtd.json",)
    bad = _options(tmp_path, extra={"few_shot": ("--n-query", "0")})
    with pytest.raises(SweepError, match=r"few_shot.py rejects the arguments .*--extra few_shot"):
        sweep.plan_grid(["random"], ["dtd"], ["few_shot"], bad)
    assert "argument --n-query: expected an integer >= 1, got 0" in capsys.readouterr().err


def _current_record(path: Path, model: str, dataset: str, data_root: Path,
                    models_dir: Path | None = None, **options) -> None:
    """A record whose provenance is what a run would use now: the backbone's identity and the
    split identities as loaded here, and the given protocol options."""
    splits = {name: load_split(dataset, name, data_root, download=False).identity
              for name in ("trainval", "test")}
    record = {"protocol": path.parent.name, "model": model, "dataset": dataset, "score": 50.0,
              "provenance": {"checkpoint": load_backbone(model, models_dir).identity,
                             "splits": splits, "options": {"model": model, "dataset": dataset,
                                                           **options}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def dtd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_layout("dtd", root)
    return root


def test_finished_cells_are_skipped_and_few_shot_runs_only_missing_shots(tmp_path, dtd_root):
    options = _options(tmp_path, n_support=(5, 20, 50), data_root=str(dtd_root))
    root = tmp_path / "results"
    _current_record(root / "linear" / "random__dtd.json", "random", "dtd", dtd_root)
    _current_record(root / "few_shot" / "random__dtd__5way20shot.json", "random", "dtd",
                    dtd_root, n_way=5, n_support=[20, 50])  # n_support: the shots of its run
    plan = sweep.plan_grid(["random"], ["dtd"], ["linear", "few_shot"], options)
    assert [c.name for c in plan.done] == ["linear/random__dtd"]
    (few,) = plan.to_run
    assert list(few.argv[-3:]) == ["--n-support", "5", "50"]
    assert few.reason == ""  # nothing outdated, two shot counts missing
    forced = sweep.plan_grid(["random"], ["dtd"], ["linear", "few_shot"], options, force=True)
    assert [c.name for c in forced.to_run] == ["linear/random__dtd", "few_shot/random__dtd"]
    assert list(forced.to_run[1].argv[-4:]) == ["--n-support", "5", "20", "50"]
    for k in (5, 50):
        _current_record(root / "few_shot" / f"random__dtd__5way{k}shot.json", "random", "dtd",
                        dtd_root, n_way=5)
    assert sweep.plan_grid(["random"], ["dtd"], ["few_shot"], options).to_run == []
    # one outdated shot count: only it runs again, and the cell says why
    (root / "few_shot" / "random__dtd__5way20shot.json").write_text("{}")
    (few,) = sweep.plan_grid(["random"], ["dtd"], ["few_shot"], options).to_run
    assert list(few.argv[few.argv.index("--n-support"):][:2]) == ["--n-support", "20"]
    assert few.reason == "the record has no provenance (written by an older version)"


def test_a_changed_checkpoint_split_or_option_reruns_the_cell(tmp_path, dtd_root):
    data = tmp_path / "data"
    shutil.copytree(dtd_root, data)
    models = tmp_path / "models"
    write_common_checkpoint(models / "tiny.pth", seed=1)

    def plan(*extra: str, force: bool = False):
        options = _options(tmp_path, data_root=str(data), models_dir=str(models),
                           extra={"linear": ("--wd-values", "3", *extra)})
        return sweep.plan_grid(["tiny"], ["dtd"], ["linear"], options, force=force)

    (cell,) = plan().to_run
    (record,) = cell.outputs  # named by the script: results/linear/tiny__dtd__w3.json
    assert record.name == "tiny__dtd__w3.json"
    _current_record(record, "tiny", "dtd", data, models, wd_values=3, batch_size=64)
    assert [c.name for c in plan().done] == ["linear/tiny__dtd"]  # an identical rerun: skipped
    # the same file name, other weights
    write_common_checkpoint(models / "tiny.pth", seed=2)
    assert [c.reason for c in plan().to_run] == ["checkpoint changed"]
    write_common_checkpoint(models / "tiny.pth", seed=1)
    assert plan().to_run == []
    # one test image fewer in the official split file
    labels = data / "DTD" / "labels" / "test1.txt"
    labels.write_text("\n".join(labels.read_text().splitlines()[1:]) + "\n")
    assert [c.reason for c in plan().to_run] == ["split test changed"]
    _current_record(record, "tiny", "dtd", data, models, wd_values=3, batch_size=64)
    assert plan().to_run == []
    # an option of the cell that its file name does not carry
    (cell,) = plan("--batch-size", "32").to_run
    assert cell.reason == "options changed (batch_size 64 -> 32)"
    (cell,) = plan(force=True).to_run
    assert cell.reason == ""  # --force runs everything, no reason needed


def _script_cell(tmp_path: Path, name: str, code: str, writes: bool = True,
                 model: str = "m") -> Cell:
    """A stand-in cell: a tiny Python command and the file it should leave behind."""
    output = tmp_path / "results" / f"{name}.json"
    body = f"{code}\nopen({str(output)!r}, 'w').write('{{}}')" if writes else code
    return Cell("linear", model, name, (sys.executable, "-c", body), (output,))


def test_local_executor_reports_failures_and_runs_every_other_cell(tmp_path):
    (tmp_path / "results").mkdir()
    cells = [
        _script_cell(tmp_path, "ok1", "print('hello from ok1')", model="a"),
        _script_cell(tmp_path, "crash", "import sys; print('error: boom'); sys.exit(3)",
                     model="a"),
        _script_cell(tmp_path, "silent", "pass", writes=False, model="a"),
        _script_cell(tmp_path, "ok2", "pass", model="b"),
    ]
    outcomes = sweep.run_local(cells, jobs=2, log_dir=tmp_path / "logs", progress=False,
                               report=lambda message: None)
    assert [o.cell.dataset for o in outcomes] == ["ok1", "crash", "silent", "ok2"]
    assert [o.status for o in outcomes] == ["done", "failed", "failed", "done"]
    assert outcomes[1].detail == "exit code 3: error: boom"
    assert outcomes[2].detail.startswith("exited 0 but wrote no ")
    log = (tmp_path / "logs" / "linear" / "a__ok1.log").read_text()
    assert "hello from ok1" in log and log.startswith("$ ")
    assert all(cell.missing() == [] for cell in (cells[0], cells[3]))
    table = sweep.summary_table(outcomes + [sweep.Outcome(cells[0], "skipped")])
    lines = table.splitlines()
    assert lines[0].split() == ["protocol", "done", "failed", "skipped"]
    assert lines[2].split() == ["linear", "2", "2", "1"]
    assert lines[3].split() == ["total", "2", "2", "1"]
    assert "linear/a__crash: exit code 3: error: boom" in table


def test_local_executor_needs_a_positive_job_count(tmp_path):
    with pytest.raises(SweepError, match="--jobs 0"):
        sweep.run_local([], jobs=0, log_dir=tmp_path, progress=False)


def test_cells_of_one_model_and_dataset_share_a_worker():
    cells = [Cell(p, m, d, (), ()) for m in ("a", "b") for d in ("x", "y")
             for p in ("linear", "few_shot")]
    groups = sweep.group_cells(cells)
    assert [[c.name for c in g] for g in groups] == [
        ["linear/a__x", "few_shot/a__x"], ["linear/a__y", "few_shot/a__y"],
        ["linear/b__x", "few_shot/b__x"], ["linear/b__y", "few_shot/b__y"]]


def test_submitit_local_executor_runs_cells(tmp_path):
    """submitit's LocalExecutor (a real job process per cell): the submission, the job's files
    and what its result file says once it ended (on Slurm, squeue says when; here we poll)."""
    (tmp_path / "results").mkdir()
    cells = [_script_cell(tmp_path, "ok", "print('ran')"),
             _script_cell(tmp_path, "crash",
                          "import sys; print('error: no data', file=sys.stderr); sys.exit(4)")]
    executor = sweep.make_executor(tmp_path / "submitit", SlurmOptions(partition="gpu", gpus=0,
                                                                        time_min=5),
                                   cluster="local")
    jobs = sweep.submit_cells(cells, executor)
    assert [job.cell for job in jobs] == cells and all(job.job_id for job in jobs)
    deadline = time.monotonic() + 120
    while not all(job.result.is_file() for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    outcomes = [job_outcome(job, None) for job in jobs]  # gone from the queue: the file decides
    assert [o.status for o in outcomes] == ["done", "failed"]
    assert "ran" in outcomes[0].log.read_text()
    assert outcomes[1].detail == f"job {jobs[1].job_id}: exit code 4: error: no data"
    assert outcomes[1].log == jobs[1].stderr


def test_slurm_parameters_and_a_clear_error_off_a_cluster(tmp_path):
    params = SlurmOptions(partition="gpu", time_min=90, gpus=2, cpus=8, mem_gb=64,
                          array_parallelism=16, account="lab").executor_parameters()
    assert params == {"timeout_min": 90, "gpus_per_node": 2, "cpus_per_task": 8, "nodes": 1,
                      "tasks_per_node": 1, "slurm_array_parallelism": 16, "mem_gb": 64,
                      "slurm_partition": "gpu", "slurm_account": "lab"}
    assert "gpus_per_node" not in SlurmOptions(gpus=0).executor_parameters()
    if shutil.which("srun") is not None:
        pytest.skip("this machine is a Slurm node")
    with pytest.raises(SweepError, match="--executor slurm: .*srun.*--executor local"):
        sweep.make_executor(tmp_path, SlurmOptions(), cluster="slurm")


def _alive(pid: int) -> bool:
    """Running (a zombie, reparented to a PID 1 that may never reap it, counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir() or sys.platform == "win32",
                    reason="needs POSIX process groups and /proc")
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_sweep_that_dies_or_is_interrupted_takes_its_running_cells_with_it(tmp_path,
                                                                             signal_name):
    """The cell (and what it started, like DataLoader workers) runs in its own process group
    under a guard that kills the group once the sweep is gone, even after SIGKILL.

    The sweep is ``run_local`` in a process of its own: for SIGINT and SIGTERM this one (a
    thread sends the signal once the cell runs and the sweep's handlers are in place; the sweep
    must stop its cells and raise KeyboardInterrupt), for SIGKILL a fork of this one (nothing of
    the sweep runs any more: only the guard, seeing its stdin close, can stop the cell)."""
    import signal
    import threading

    pids = tmp_path / "pids"
    cell_code = (f"import os, subprocess, time; child = subprocess.Popen(['sleep', '120']); "
                 f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); "
                 f"time.sleep(120)")
    cell = sweep.Cell("linear", "m", "d", (sys.executable, "-c", cell_code), ())

    def run() -> None:
        sweep.run_local([cell], jobs=1, log_dir=tmp_path / "logs", progress=False)

    def wait_for_the_cell(sweep_alive) -> None:
        deadline = time.time() + 60
        while not (pids.is_file() and len(pids.read_text().split()) == 2):
            assert time.time() < deadline and sweep_alive()
            time.sleep(0.05)

    signum = getattr(signal, signal_name)
    if signal_name == "SIGKILL":
        runner = os.fork()
        if runner == 0:  # the sweep; never back into pytest
            try:
                run()
            finally:
                os._exit(0)
        try:
            wait_for_the_cell(lambda: os.waitpid(runner, os.WNOHANG) == (0, 0))
        finally:
            os.kill(runner, signum)
            os.waitpid(runner, 0)
    else:
        before = signal.getsignal(signal.SIGTERM)
        failed = []

        def interrupt() -> None:
            try:
                wait_for_the_cell(lambda: True)
                deadline = time.time() + 60  # run_local's handlers: it waits on its cells now
                while signal.getsignal(signal.SIGTERM) == before:
                    assert time.time() < deadline
                    time.sleep(0.01)
            except AssertionError as error:  # pragma: no cover - a failure
                failed.append(error)
                signum_now = signal.SIGINT  # stop the sweep anyway
            else:
                signum_now = signum
            os.kill(os.getpid(), signum_now)

        thread = threading.Thread(target=interrupt, daemon=True)
        thread.start()
        with pytest.raises(KeyboardInterrupt):
            run()
        thread.join()
        assert failed == []
        assert signal.getsignal(signal.SIGTERM) == before  # its handlers restored
    cell_pid, grandchild_pid = map(int, pids.read_text().split())
    deadline = time.time() + 30
    while (_alive(cell_pid) or _alive(grandchild_pid)) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(cell_pid) and not _alive(grandchild_pid)


def test_parallel_cells_share_the_cores_out_between_them(tmp_path, monkeypatch):
    """--jobs N: each cell gets cores / N BLAS / OpenMP threads unless the user set them."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert {sweep.cell_environment(3)[name] for name in THREAD_VARIABLES} == {"2"}
    assert not set(THREAD_VARIABLES) & set(sweep.cell_environment(1))
    assert sweep.cell_environment(16)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("MKL_NUM_THREADS", "5")
    assert sweep.cell_environment(2)["MKL_NUM_THREADS"] == "5"
    (tmp_path / "results").mkdir()
    cells = [_script_cell(tmp_path, f"t{i}", "import os; open(" + repr(str(tmp_path / f"t{i}"))
                          + ", 'w').write(os.environ['OPENBLAS_NUM_THREADS'])", model=str(i))
             for i in range(2)]
    outcomes = sweep.run_local(cells, jobs=2, log_dir=tmp_path / "logs", progress=False)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert [(tmp_path / f"t{i}").read_text() for i in range(2)] == ["4", "4"]
