"""transfer/runtime/distributed.py: work done once for the job reaches every rank, errors too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from transfer.atomic import WriteError
from transfer.runtime.distributed import SINGLE_PROCESS, init_distributed, on_main, shutdown


def _rank_body(rank: int, folder: str, fail: bool) -> None:
    context, _ = init_distributed("cpu", init_method=f"file://{folder}/rendezvous", rank=rank,
                                  world_size=2)
    runs = Path(folder) / f"ran-{rank}"

    def task():
        runs.write_text("")
        if fail:
            raise WriteError("cannot write to the results folder /x: read-only")
        return {"from": rank}

    try:
        outcome = {"value": on_main(task, context)}
    except WriteError as error:
        outcome = {"error": str(error)}
    finally:
        shutdown(context)
    (Path(folder) / f"outcome-{rank}.json").write_text(json.dumps(outcome))


@pytest.mark.parametrize("fail", [False, True])
def test_on_main_runs_once_and_every_rank_gets_the_outcome(tmp_path, fail):
    mp.start_processes(_rank_body, nprocs=2, join=True, start_method="fork",
                       args=(str(tmp_path), fail))
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == ["ran-0"]  # rank 0 alone ran it
    outcomes = [json.loads((tmp_path / f"outcome-{r}.json").read_text()) for r in (0, 1)]
    expected = ({"error": "cannot write to the results folder /x: read-only"} if fail
                else {"value": {"from": 0}})
    assert outcomes == [expected, expected]


def test_on_main_in_one_process_is_a_plain_call():
    def unwritable():
        raise WriteError("read-only")

    assert on_main(lambda: 3, SINGLE_PROCESS) == 3
    with pytest.raises(WriteError, match="read-only"):
        on_main(unwritable, SINGLE_PROCESS)
