"""`scripts/generate.py` with a fault injected at a chosen point, for tests/test_fault_injection.py.

    FGBG_FAULT=kill-after-batches:N   SIGKILL once N record batches are in shard temp files (mid shard write)
    FGBG_FAULT=kill-before-marker:N   SIGKILL after the N-th shard is renamed into place, before its done marker
    FGBG_FAULT=kill-after-grids:N     SIGKILL in the card step, after N sample grids are written
    FGBG_FAULT=kill-in-stats          SIGKILL in the card step, half-way through writing stats.json
    FGBG_FAULT=hold-until:PATH        after taking the lock, wait (holding it) until PATH exists, then go on
    FGBG_FAULT=hold-after-batches:N   once N record batches are in shard temp files, say so on stderr and wait
                                      there until a signal ends the run (a stop test's run cannot finish first)
    FGBG_FAULT=hold-at-bytes:N        the same, once the shard bytes on disk (shard_bytes_on_disk) reach N
    FGBG_FAULT=hold-after-marker:C    the same, once the done marker of a shard of config C is written
    FGBG_FSIZE_LIMIT=BYTES            RLIMIT_FSIZE for this process, with SIGXFSZ ignored (writes fail EFBIG)

The faults patch attributes of the store's classes only; the code under test is otherwise the real generator.
"""

import os
import resource
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


HOLD_LIMIT_S = 300  # a held run whose test never signals it ends on its own, so none is left behind
HOLDING = "fault_launcher: holding"  # the line a held run prints to stderr, for tests to wait on


def die() -> None:
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def hold(why: str) -> None:
    """Wait here until a signal ends the process (SIGINT arrives as KeyboardInterrupt, in this sleep)."""
    print(f"{HOLDING} {why}", file=sys.stderr, flush=True)
    time.sleep(HOLD_LIMIT_S)
    raise SystemExit(f"fault_launcher: held {HOLD_LIMIT_S} s and no signal came")


def shard_bytes_on_disk(out: Path) -> int:
    """Shard bytes on disk, finished or still in a temp file, as an outside observer sees them."""
    total = 0
    for path in [*(out / "data").glob("*/*.arrow"), *(out / ".fgbg" / "tmp").glob("*")]:
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # renamed or removed between listing and stat
            pass
    return total


def after_each_batch(shards, action) -> None:
    """Call action(store, n) each time the writer has written a record batch into a shard temp file, n counting
    the batches of this process."""
    original = shards.ShardStore.write_shard
    count = {"n": 0}

    def write_shard(self, task, schema, batches, on_rows=lambda n: None):
        def counted():
            for item in batches:
                yield item  # the writer has written the previous batch when it asks for the next
                count["n"] += 1
                action(self, count["n"])
        return original(self, task, schema, counted(), on_rows)

    shards.ShardStore.write_shard = write_shard


def install(fault: str) -> None:
    from builder.store import names, output, shards
    from builder.store.local import LocalFolder

    kind, _, arg = fault.partition(":")
    count = {"n": 0}
    original_write = LocalFolder.write_atomic

    if kind == "kill-after-batches":
        after_each_batch(shards, lambda store, n: die() if n == int(arg) else None)
    elif kind == "hold-after-batches":
        after_each_batch(shards, lambda store, n: hold(f"after {n} batch(es)") if n == int(arg) else None)
    elif kind == "hold-at-bytes":
        def hold_at_bytes(store, n):
            if (written := shard_bytes_on_disk(store.root)) >= int(arg):
                hold(f"at {written} shard bytes on disk")
        after_each_batch(shards, hold_at_bytes)
    elif kind == "hold-after-marker":
        def write_atomic(self, relative, data):
            original_write(self, relative, data)
            name = relative.removeprefix(f"{names.DONE_DIR}/")
            if name != relative and name.startswith(f"{arg}-"):
                hold(f"after the done marker {name}")

        LocalFolder.write_atomic = write_atomic
    elif kind == "kill-before-marker":
        def write_atomic(self, relative, data):
            if relative.startswith(f"{names.DONE_DIR}/"):
                count["n"] += 1
                if count["n"] == int(arg):
                    die()
            original_write(self, relative, data)

        LocalFolder.write_atomic = write_atomic
    elif kind == "kill-after-grids":
        def write_atomic(self, relative, data):
            original_write(self, relative, data)
            if relative.startswith(f"{names.IMAGES_DIR}/"):
                count["n"] += 1
                if count["n"] == int(arg):
                    die()

        LocalFolder.write_atomic = write_atomic
    elif kind == "kill-in-stats":
        def write_atomic(self, relative, data):
            if relative != names.STATS_NAME:
                return original_write(self, relative, data)
            # what a crash mid-write leaves behind
            self.path(names.temp_name(relative, os.getpid())).write_text('{"rows": ')
            die()

        LocalFolder.write_atomic = write_atomic
    elif kind == "hold-until":
        original_prepare = output.OutputStore.prepare

        def prepare(self, manifest, overwrite):
            original_prepare(self, manifest, overwrite)
            print("holding the lock", file=sys.stderr, flush=True)
            while not Path(arg).exists():
                time.sleep(0.05)

        output.OutputStore.prepare = prepare
    else:
        raise SystemExit(f"unknown FGBG_FAULT {fault!r}")


if __name__ == "__main__":
    # Ctrl-C as in a terminal, even where the test suite runs with SIGINT ignored (a shell without job control
    # ignores it in what it starts in the background, `nohup pytest ... &`, and the ignoring is inherited)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get("FGBG_FSIZE_LIMIT"):
        limit = int(os.environ["FGBG_FSIZE_LIMIT"])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    if os.environ.get("FGBG_FAULT"):
        install(os.environ["FGBG_FAULT"])
    sys.argv[0] = str(ROOT / "scripts" / "generate.py")
    import runpy

    runpy.run_path(sys.argv[0], run_name="__main__")
