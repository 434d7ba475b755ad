#!/usr/bin/env bash
# Packs the serving load test for a host with PyTorch but no .NET (the GPU device machine) into .gpu-serve/
# (git-ignored): the .NET and ASP.NET Core runtimes and a publish without a bundled libtorch (it loads PyTorch's
# through TASKLM_LIBTORCH). Then run bench/TaskLM.Bench.Serve/run-device.sh there from the repo root.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu-serve
tar -C "$(dirname "$(readlink -f "$(which dotnet)")")" -cJf .gpu-serve/dotnet-rt.tar.xz dotnet host shared/Microsoft.NETCore.App shared/Microsoft.AspNetCore.App
rm -rf .gpu-serve/app
dotnet publish bench/TaskLM.Bench.Serve -c Release -p:LibTorchRid=none -o .gpu-serve/app
find .gpu-serve/app/runtimes -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} + 2>/dev/null || true
rm -f .gpu-serve/app/runtimes/linux-x64/native/libSkiaSharp.so .gpu-serve/app/runtimes/linux-x64/native/libHarfBuzzSharp.so
tar -C .gpu-serve -cJf .gpu-serve/app.tar.xz app && rm -rf .gpu-serve/app
du -sh .gpu-serve
