"""scripts/benchmark.py --quick runs and writes its report (numbers are not asserted: they belong to
the machine; the README's Performance table holds measured ones)."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"


def test_quick_benchmark_writes_table_and_json(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(BENCHMARK), "--quick", "--sections", "composite,depth,memory,gpu",
                             "--output", str(output)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    composite = report["composite"]
    for variant in ("baseline_1core", "ours_1core", "ours_all_cores_1proc"):
        assert composite[variant]["rows"] == 3 * 3 * 2 * 4 and composite[variant]["samples_per_s"] > 0
    assert composite["ratio_1core"] > 0
    assert report["depth"]["224"]["ours_maps_per_s"] > 0 and report["depth"]["224"]["pipeline_maps_per_s"] > 0
    assert report["depth"]["224"]["max_abs_diff_over_range"] < 1e-3  # no input resize at 224: same maths
    assert report["memory"]["1x"]["peak_rss_mb"] > 0
    assert "gpu" in report and report["machine"]["cores"] >= 1
    assert "| measurement |" in result.stdout and report["table_markdown"] in result.stdout
