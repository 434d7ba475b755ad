#!/usr/bin/env bash
# Runs the serving load test on a PyTorch host (after pack-device.sh): CPU (16 cores, idle) and CUDA. Writes $OUT/serve-*.txt.
set -u
mkdir -p "$HOME/dotnet-rt" && tar -C "$HOME/dotnet-rt" -xJf .gpu-serve/dotnet-rt.tar.xz
export DOTNET_ROOT="$HOME/dotnet-rt"
tar -C .gpu-serve -xJf .gpu-serve/app.tar.xz
export TASKLM_LIBTORCH=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__)+'/lib')")
B="$DOTNET_ROOT/dotnet .gpu-serve/app/TaskLM.Bench.Serve.dll"
OUT=${OUT:-.}
nproc; nvidia-smi --query-gpu=name --format=csv,noheader
$B seconds=${SECONDS_PER_RUN:-8} clients=16 device=cuda threads=4 2>&1 | tee $OUT/serve-cuda.txt
$B seconds=${SECONDS_PER_RUN:-8} clients=16 device=cpu threads=4 2>&1 | tee $OUT/serve-cpu16.txt
