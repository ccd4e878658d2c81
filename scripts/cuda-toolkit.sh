#!/usr/bin/env bash
# Assemble a CUDA 13.0 build toolkit from PyPI wheels on a machine with no GPU and no CUDA,
# so that candle's `cuda` feature compiles here (seen working with candle-core/candle-nn 0.11.1,
# cudarc 0.19). Prints the environment to use:   eval "$(scripts/cuda-toolkit.sh)"
# Target: compute capability 9.0 (H100/H200). nvcc 13.0 matches driver 580 (CUDA 13.0);
# a newer nvcc may emit PTX that driver rejects.
set -euo pipefail
root=${CUDA_TOOLKIT_DIR:-$HOME/.cache/martdb-cuda13}
venv=$root/venv
kit=$root/cuda
if [ ! -x "$kit/bin/nvcc" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14 \
    nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88 >&2
  nv=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
  rm -rf "$kit"; mkdir -p "$kit/lib64/stubs" "$root/stub"
  ln -s "$nv/bin" "$kit/bin"; ln -s "$nv/include" "$kit/include"; ln -s "$nv/nvvm" "$kit/nvvm"
  for l in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart_static.a; do
    ln -s "$nv/lib/$l" "$kit/lib64/"
  done
  for b in cudart cublas cublasLt nvrtc; do ln -s "$nv/lib/lib$b.so.13" "$kit/lib64/lib$b.so"; done
  ln -s "$nv/lib/libcurand.so.10" "$kit/lib64/libcurand.so"
  # Link-time stand-in for the driver library (the real one comes with the NVIDIA driver on the GPU machine):
  # every cu* entry point that cudarc declares, returning CUDA_ERROR_NO_DEVICE.
  sys=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null | tail -n 1)
  [ -n "$sys" ] || { echo "fetch cudarc first (cargo fetch in a project that depends on candle-core with cuda)" >&2; exit 1; }
  grep -oE 'pub unsafe fn cu[A-Za-z0-9_]+\(' "$sys" | sed -E 's/.*fn (cu[A-Za-z0-9_]+)\(/\1/' | sort -u \
    | while read -r n; do echo "int $n(void){return 100;}"; done > "$root/stub/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$kit/lib64/stubs/libcuda.so" "$root/stub/cuda_stub.c"
fi
cat <<ENV
export CUDA_HOME=$kit CUDA_PATH=$kit CUDA_ROOT=$kit CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export PATH=$kit/bin:\$PATH
ENV
