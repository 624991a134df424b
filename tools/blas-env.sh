# Sourced by tools/test.sh and tools/demo.sh: LibTorch's GEMMs run in Debian's OpenBLAS, which
# picks its kernels from the CPU model at load time. On CPUs newer than it knows (seen: Xeon
# family 6 model 207, Emerald Rapids, with OpenBLAS 0.3.21) it falls back to the SSE3 "Prescott"
# kernels, about half the speed of the AVX-512 ones for calibration and verify. Name the kernels
# from the CPU's own flags unless the caller chose. docs/runtime.md "BLAS kernels".
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -r /proc/cpuinfo ]; then
  qf_flags=$(grep -m1 '^flags' /proc/cpuinfo)
  qf_has() { case " $qf_flags " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
  if qf_has avx512f && qf_has avx512bw && qf_has avx512vl && qf_has avx512dq; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif qf_has avx2 && qf_has fma; then
    export OPENBLAS_CORETYPE=Haswell
  fi
  unset -f qf_has
  unset qf_flags
fi
