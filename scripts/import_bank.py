#!/usr/bin/env python3
"""Imports the interview question bank (../shared/seeds/*.txt) into questions/bank.json.

The seed file is UTF-8 that was once decoded as Mac Roman and saved again ("‚Äî" for an em dash);
re-encoding it as Mac Roman and decoding as UTF-8 restores the text. Curly apostrophes become
straight ones, emoji leave the section titles. The kind, tags and informed_by of each question
are this project's judgement, kept here beside the import so a change to them is one reviewed
edit. Claims already in questions/bank.json are kept.

    python3 scripts/import_bank.py [SEED] [OUT]
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(ROOT, "..", "shared", "seeds", "000_8796fc0da3f68449.txt")
OUT = os.path.join(ROOT, "questions", "bank.json")

# The source leaves two sections unnumbered; they get the next free numbers, 1-13 stay as given.
UNNUMBERED = {"Backpropagation": 14, "Master-Level Questions": 15}

# number: (kind, tags, informed_by). "E": an experiment on this lab's data can answer it;
# "D": it needs judgement (informed_by lists the empirical questions whose labs inform it).
E, D = "empirical", "discussion"
JUDGEMENT = {
    1: (D, ["problem-framing", "task-type"], []),
    2: (D, ["problem-framing", "alternatives"], []),
    3: (D, ["problem-framing", "objectives"], []),
    4: (D, ["problem-framing", "proxy-targets"], []),
    5: (D, ["labels", "production"], []),
    6: (D, ["leakage", "validation"], []),
    7: (D, ["metrics", "business-kpi"], []),
    8: (D, ["features", "causality"], []),
    9: (E, ["feature-scaling", "optimization"], []),
    10: (D, ["features", "time-series", "leakage"], []),
    11: (D, ["drift", "monitoring"], []),
    12: (D, ["missing-data", "statistics"], []),
    13: (D, ["features", "training-serving-skew"], []),
    14: (D, ["leakage", "production"], []),
    15: (D, ["features", "categorical"], []),
    16: (E, ["model-selection", "linear-models", "small-data"], []),
    17: (D, ["model-selection", "ensembles"], []),
    18: (D, ["ensembles", "overfitting"], []),
    19: (E, ["bias-variance", "model-capacity"], []),
    20: (D, ["probabilistic-models", "uncertainty"], [29]),
    21: (E, ["model-comparison", "statistics", "confidence-intervals"], []),
    22: (E, ["data-size", "double-descent"], []),
    23: (E, ["metrics", "class-imbalance"], []),
    24: (D, ["metrics", "precision-recall"], [23]),
    25: (D, ["metrics", "roc-auc", "pr-auc"], [23]),
    26: (D, ["metrics", "production"], [29]),
    27: (D, ["thresholds", "business-kpi"], [29, 23]),
    28: (E, ["label-noise", "evaluation"], []),
    29: (E, ["calibration", "probabilities"], []),
    30: (D, ["evaluation", "long-term-impact"], []),
    31: (E, ["gradient-descent", "optimization"], []),
    32: (E, ["gradient-descent", "batch-size"], []),
    33: (E, ["gradients", "initialization", "depth"], []),
    34: (E, ["shuffling", "sgd"], []),
    35: (E, ["learning-rate", "divergence"], []),
    36: (D, ["debugging", "training"], [35, 33, 87]),
    37: (E, ["normalization", "convergence"], []),
    38: (D, ["neurons", "representations"], [39, 40]),
    39: (E, ["xor", "linear-separability"], []),
    40: (E, ["function-approximation", "width"], []),
    41: (E, ["depth", "model-capacity"], []),
    42: (E, ["width", "depth", "architecture"], []),
    43: (E, ["bias-terms", "architecture"], []),
    44: (E, ["activations", "relu"], []),
    45: (E, ["activations", "relu"], []),
    46: (E, ["activations", "sigmoid", "vanishing-gradients"], []),
    47: (D, ["activations", "tanh"], [44, 46]),
    48: (E, ["activations", "dying-relu"], []),
    49: (D, ["activations", "softmax", "outputs"], [52, 51]),
    50: (E, ["activations", "learned-activations"], []),
    51: (E, ["losses", "cross-entropy", "mse"], []),
    52: (E, ["losses", "outputs"], []),
    53: (E, ["losses", "cross-entropy", "convergence"], []),
    54: (D, ["losses", "geometry"], [51, 53]),
    55: (E, ["losses", "class-imbalance"], []),
    56: (D, ["losses", "focal-loss", "class-imbalance"], [55, 23]),
    57: (E, ["overfitting", "generalization"], []),
    58: (D, ["overfitting", "model-capacity"], [57, 91, 16]),
    59: (E, ["regularization", "l1", "l2"], []),
    60: (E, ["regularization", "dropout"], []),
    61: (E, ["dropout", "inference"], []),
    62: (E, ["regularization", "early-stopping"], []),
    63: (E, ["regularization", "batch-norm"], []),
    64: (D, ["backpropagation", "intuition"], [68, 33]),
    65: (D, ["backpropagation", "chain-rule"], [68, 33]),
    66: (D, ["backpropagation", "differentiability"], [67]),
    67: (E, ["gradients", "dead-units"], []),
    68: (E, ["depth", "gradient-flow"], []),
    69: (E, ["initialization", "training-dynamics"], []),
    70: (E, ["exploding-gradients", "gradient-clipping"], []),
    71: (E, ["optimizers", "adam", "sgd"], []),
    72: (E, ["optimizers", "adam", "generalization"], []),
    73: (E, ["optimizers", "rmsprop", "adam"], []),
    74: (E, ["optimizers", "momentum"], []),
    75: (E, ["learning-rate", "per-layer"], []),
    76: (E, ["learning-rate", "schedules"], []),
    77: (D, ["deployment", "production"], []),
    78: (D, ["inference", "production"], []),
    79: (D, ["feature-scaling", "artifacts"], [9, 37]),
    80: (D, ["versioning", "production"], []),
    81: (D, ["drift", "monitoring"], []),
    82: (D, ["interpretability", "black-box"], []),
    83: (D, ["interpretability", "stakeholders"], []),
    84: (D, ["inference", "feature-order"], []),
    85: (E, ["debugging", "loss-vs-accuracy"], []),
    86: (E, ["debugging", "overfitting"], []),
    87: (E, ["debugging", "class-imbalance", "collapse"], []),
    88: (E, ["debugging", "validation-loss", "noise"], []),
    89: (D, ["debugging", "production"], []),
    90: (D, ["testing", "deployment"], []),
    91: (E, ["small-data", "deep-learning"], []),
    92: (D, ["interpretability", "regulation"], []),
    93: (D, ["model-selection", "overkill"], [16, 91]),
    94: (D, ["model-selection", "enterprise"], [16]),
    95: (D, ["cost", "compute", "model-selection"], [16, 91, 101]),
    96: (E, ["generalization", "over-parameterization", "double-descent"], []),
    97: (E, ["pruning", "lottery-ticket"], []),
    98: (E, ["flat-minima", "sharpness", "generalization"], []),
    99: (E, ["batch-size", "generalization", "sharpness"], []),
    100: (E, ["noise", "regularization", "sgd"], []),
    101: (E, ["model-size", "training-speed", "scaling"], []),
    102: (E, ["implicit-regularization", "gradient-descent"], []),
}


def restore(text):
    return text.encode("mac_roman").decode("utf-8").replace("\u2019", "'").replace("\u2018", "'")


def parse(seed):
    sections, questions, current = [], [], None
    for line in restore(open(seed, encoding="utf-8").read()).splitlines():
        if line.startswith("## "):
            title = re.sub(r"^[^A-Za-z0-9]*", "", line[3:]).strip()
            number_match = re.match(r"^(\d+)\D", line[3:])
            title = re.sub(r"^\d+\W*", "", title).strip()
            if number_match:
                current = int(number_match.group(1))
            elif title in UNNUMBERED:
                current = UNNUMBERED[title]
            else:
                current = None  # the tips and credits after the questions
                continue
            sections.append({"number": current, "title": title})
            continue
        m = re.match(r"^(\d+)\.\s+(.*\S)\s*$", line)
        if m and current is not None:
            number = int(m.group(1))
            kind, tags, informed = JUDGEMENT[number]
            questions.append({"number": number, "section": current, "text": m.group(2), "tags": tags,
                              "kind": kind, "informed_by": informed, "claims": []})
    return sections, questions


def main():
    seed = sys.argv[1] if len(sys.argv) > 1 else SEED
    out = sys.argv[2] if len(sys.argv) > 2 else OUT
    sections, questions = parse(seed)
    if os.path.exists(out):  # keep the claims the labs added
        old = {q["number"]: q for q in json.load(open(out, encoding="utf-8"))["questions"]}
        for q in questions:
            q["claims"] = old.get(q["number"], {}).get("claims", [])
    assert len(questions) == 102 and len(sections) == 15, (len(questions), len(sections))
    bank = {
        "source": {"title": "Machine Learning & Deep Learning \u2013 In-Depth Interview Questions",
                   "author": "Abhinav Kanduri", "file": "seeds/" + os.path.basename(seed)},
        "sections": sorted(sections, key=lambda s: s["number"]),
        "questions": questions,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(bank, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"{out}: {len(questions)} questions, {sum(q['kind'] == E for q in questions)} empirical")


if __name__ == "__main__":
    main()
