"""Scoring script for the bundled heart-classifier sample, written as for Azure ML batch endpoints."""

import argparse
import glob
import json
import logging
import math
import os

import pandas as pd

model = None


def init():
    global model
    # Azure lays a registered folder out under AZUREML_MODEL_DIR/<folder name>/.
    path = glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "*", "model.json"))[0]
    with open(path) as fh:
        model = json.load(fh)
    # Azure passes driver flags such as --logging_level: parse_known_args ignores what it does not know.
    parser = argparse.ArgumentParser()
    parser.add_argument("--logging_level", default="INFO")
    args, _ = parser.parse_known_args()
    logging.getLogger().setLevel(args.logging_level)
    logging.info("model loaded from %s", path)


def run(mini_batch):
    results = []
    for file_path in mini_batch:
        data = pd.read_csv(file_path)
        score = sum(c * data[f] for c, f in zip(model["coef"], model["features"], strict=True)) + model["intercept"]
        probability = 1 / (1 + score.map(lambda z: math.exp(-z)))
        for row, p in enumerate(probability):
            results.append(
                {
                    "file": os.path.basename(file_path),
                    "row": row,
                    "prediction": int(p >= model["threshold"]),
                    "probability": round(float(p), 4),
                }
            )
    return pd.DataFrame(results)
