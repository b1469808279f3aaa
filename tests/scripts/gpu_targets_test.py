#!/usr/bin/env python3
"""scripts/gpu_targets.py against hand-made GPU results: it calls a target met only when the
measurement is there and reaches it, and says "not measured" otherwise."""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "gpu_targets.py")


def run(out):
    return subprocess.run([sys.executable, SCRIPT, out], check=True, capture_output=True,
                          text=True).stdout


def write_db(out, populations):
    con = sqlite3.connect(os.path.join(out, "bench.db"))
    con.execute("create table bench_records (id integer primary key, name text, questions text, "
                "time_s real, items_per_s real, bytes_per_s real, counters text, env_id integer, "
                "created_at text)")
    for speedup, tf32 in populations:
        counters = {"models": 64, "tf32": tf32, "speedup_vs_sequential": speedup,
                    "largest_member_test_acc_difference": 0.002}
        con.execute("insert into bench_records (name, counters) values (?, ?)",
                    ("training/empiric/population", json.dumps(counters)))
    con.commit()
    con.close()


class GpuTargets(unittest.TestCase):
    def test_nothing_measured_is_never_met(self):
        with tempfile.TemporaryDirectory() as out:
            text = run(out)
            self.assertEqual(text.count("not measured"), 4, text)
            self.assertNotIn("| yes |", text)

    def test_each_target_against_its_threshold(self):
        with tempfile.TemporaryDirectory() as out:
            write_db(out, [(10.2, False), (23.5, True)])
            with open(os.path.join(out, "summary.md"), "w") as f:
                f.write("| pytorch-python-dataloader | 1.300 | 2 | 42,000 | 0.8700 | 7.60x |\n"
                        "answer99: exit 0, 131 s wall\n")
            lines = run(out).splitlines()
            row = {l.split("|")[1].strip().split(":")[0]: l for l in lines if l.startswith("| ")}
            self.assertTrue(row["float32"].endswith("| no |"), row["float32"])
            self.assertIn("10.2x", row["float32"])
            self.assertTrue(row["TF32"].endswith("| yes |"), row["TF32"])
            dataloader = next(l for l in lines if "DataLoader" in l)
            self.assertTrue(dataloader.endswith("| yes |"), dataloader)
            answer = next(l for l in lines if "answer 99" in l)
            self.assertIn("131 s", answer)
            self.assertTrue(answer.endswith("| no |"), answer)  # 2 minutes is 120 s

    def test_several_suite_runs_are_judged_on_their_median(self):
        with tempfile.TemporaryDirectory() as out:
            write_db(out, [(20.9, False), (19.0, False), (19.7, False)])  # one run over 20x
            row = next(l for l in run(out).splitlines() if l.startswith("| float32"))
            self.assertIn("19.7x (median of 3 runs: 20.9x / 19.0x / 19.7x;", row)
            self.assertTrue(row.endswith("| no |"), row)

    def test_a_killed_answer_is_not_met_however_fast(self):
        with tempfile.TemporaryDirectory() as out:
            with open(os.path.join(out, "summary.md"), "w") as f:
                f.write("answer99: exit 124, 100 s wall\n")
            answer = next(l for l in run(out).splitlines() if "answer 99" in l)
            self.assertTrue(answer.endswith("| no |"), answer)


if __name__ == "__main__":
    unittest.main()
