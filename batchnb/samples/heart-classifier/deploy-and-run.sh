#!/usr/bin/env bash
# The Azure ML CLI flow for this sample, with `batchnb` in place of `az ml`.
set -euo pipefail
cd "$(dirname "$0")"
ENDPOINT_NAME=heart-classifier

batchnb compute create -n batch-cluster --type amlcompute --min-instances 0 --max-instances 2 -o none
batchnb batch-endpoint create -n "$ENDPOINT_NAME" -f endpoint.yml -o none
batchnb batch-deployment create --file deployment.yml --endpoint "$ENDPOINT_NAME" --set-default -o none
JOB_NAME=$(batchnb batch-endpoint invoke --name "$ENDPOINT_NAME" --input data --input-type uri_folder --query name -o tsv)
batchnb job stream -n "$JOB_NAME" -o none
STATUS=$(batchnb job show -n "$JOB_NAME" --query status -o tsv)
echo "job $JOB_NAME: $STATUS"
batchnb job download --name "$JOB_NAME" --output-name score --download-path ./outputs -o none
head -n 5 outputs/named-outputs/score/predictions.csv
