#!/usr/bin/env bash
# Packs what a GPU host with PyTorch but no .NET needs into .gpu/ (git-ignored): the .NET runtime and a
# framework-dependent publish of tasklm without a bundled libtorch (it loads PyTorch's via TASKLM_LIBTORCH).
# Then copy .gpu/ to the host (with the repo) and run bench/gpu/env-check.sh or bench/gpu/train-vs-pytorch.sh there.
# train-vs-pytorch.sh also wants the PyTorch reference script copied to .gpu/gpt_bench.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu
tar -C "$(dirname "$(readlink -f "$(which dotnet)")")" -cJf .gpu/dotnet-rt.tar.xz dotnet host shared/Microsoft.NETCore.App
rm -rf .gpu/app
dotnet publish src/TaskLM.Cli -c Release -p:LibTorchRid=none -o .gpu/app
# Only linux-x64 natives, and not the plotting ones (a training host draws no PNGs): keeps .gpu/ near 32 MB.
find .gpu/app/runtimes -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
rm -f .gpu/app/runtimes/linux-x64/native/libSkiaSharp.so .gpu/app/runtimes/linux-x64/native/libHarfBuzzSharp.so
tar -C .gpu -cJf .gpu/app.tar.xz app && rm -rf .gpu/app
du -sh .gpu
