#!/bin/sh
# tests/unit/test_linear_cuts.c under each of OpenBLAS's x86 kernels that this CPU can run
# (OPENBLAS_CORETYPE), so that the kernels linear.c lets merge neighbouring tiles are checked on
# any machine that has them, not only on the one OpenBLAS picks for it. OpenBLAS may run another
# kernel than the one asked for (Debian's 0.3.21 runs Cooperlake for SapphireRapids): each kernel
# actually run is checked once.
. tests/lib.sh
T=$BUILD/tests/test_linear_cuts
if [ ! -x "$T" ]; then
    echo "FAIL linear_kernels: $T not built"
    exit 0
fi
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
cpu_has() {
    for f; do
        case $flags in *" $f "*) ;; *) return 1 ;; esac
    done
}
avx512="avx512f avx512bw avx512vl avx512dq"
seen=" "
for core in Haswell SkylakeX Cooperlake SapphireRapids; do
    case $core in
    Haswell) need="avx2 fma" ;;
    SkylakeX) need=$avx512 ;;
    Cooperlake) need="$avx512 avx512_bf16" ;;
    SapphireRapids) need="$avx512 avx512_bf16 amx_tile amx_bf16" ;;
    esac
    if ! cpu_has $need; then
        skip "linear_cuts_$core" "this CPU lacks some of: $need"
        continue
    fi
    out=$(OPENBLAS_CORETYPE=$core "$T" 2>&1)
    rc=$?
    ran=$(echo "$out" | sed -n 's/^# OpenBLAS kernel \([^:]*\):.*/\1/p')
    case $seen in *" $ran "*) continue ;; esac
    seen="$seen$ran "
    bad=$(echo "$out" | grep '^FAIL' | head -3)
    check "linear_cuts_$ran" "$([ $rc = 0 ] && [ -n "$ran" ] && [ -z "$bad" ] && echo 0 || echo 1)" \
        "OPENBLAS_CORETYPE=$core (kernel ${ran:-unknown}): status $rc; $bad"
done
exit 0
