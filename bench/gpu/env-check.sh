#!/usr/bin/env bash
# GPU check of TaskLM's bring-your-own libtorch path (run on the device machine from the repo root).
set -u
mkdir -p "$HOME/dotnet-rt" && tar -C "$HOME/dotnet-rt" -xJf .gpu/dotnet-rt.tar.xz
export DOTNET_ROOT="$HOME/dotnet-rt"
tar -C .gpu -xJf .gpu/app.tar.xz
D="$DOTNET_ROOT/dotnet .gpu/app/TaskLM.Cli.dll"
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"
echo "== without TASKLM_LIBTORCH (no libtorch bundled): expect one clear error"
$D env; echo "exit $?"
export TASKLM_LIBTORCH=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__)+'/lib')")
echo "== env --device cuda --check"
LD_BIND_NOW=1 $D env --device cuda --check --json | tee $OUT/env-cuda.json; echo "exit $?"
echo "== env (auto)"
$D env --device auto --check; echo "exit $?"
echo "== env --device cuda:7: expect error"
$D env --device cuda:7; echo "exit $?"
echo "== quickstart on cuda"
$D quickstart --device cuda --steps 300 | tee $OUT/quickstart-cuda.txt; echo "exit $?"
echo "== quickstart on cpu (16 cores)"
$D quickstart --device cpu --steps 300 | tail -2; echo "exit $?"
