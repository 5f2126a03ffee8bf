# What the scripts that run on the GPU host share (sourced from the repository root): the bundle
# unpacked into a folder of their own, cuBLASLt 13 found where the loader does not know it, the
# bundled trainer as a command, and the demo recipe over the prepared samples.

# unpack_bundle DIR: .bundle/tinyllama-gpu.tgz into DIR (emptied first), then find_cublaslt; one line
# and exit 1 without the bundle. With VARIANT=NAME, another build's jars and kernels
# (.bundle/variant-NAME.tgz, from `scripts/gpu-bundle --with-trainer --variant NAME` in the other
# checkout) replace the bundle's, on its Java runtime: any GPU script then runs that build.
unpack_bundle() {
  local dir=$1
  if [ ! -f .bundle/tinyllama-gpu.tgz ]; then
    echo "$(basename "$0"): no .bundle/tinyllama-gpu.tgz; run scripts/gpu-bundle --with-trainer on the build machine first" >&2
    exit 1
  fi
  if [ -n "${VARIANT:-}" ] && [ ! -f ".bundle/variant-$VARIANT.tgz" ]; then
    echo "$(basename "$0"): VARIANT=$VARIANT but no .bundle/variant-$VARIANT.tgz; make it in the other checkout with" \
      "scripts/gpu-bundle --with-trainer --variant $VARIANT" >&2
    exit 1
  fi
  rm -rf "$dir" && mkdir -p "$dir" && tar xzf .bundle/tinyllama-gpu.tgz -C "$dir" || exit 1
  if [ -n "${VARIANT:-}" ]; then
    tar xzf ".bundle/variant-$VARIANT.tgz" -C "$dir" || exit 1
  fi
  find_cublaslt
}

# cuBLASLt 13 from the loader's path, else the CUDA toolkit, else a pip wheel (PyTorch's): exported
# as TINYLLAMA_LIBCUBLASLT when the loader does not find it by itself.
find_cublaslt() {
  if ! ldconfig -p 2>/dev/null | grep -q 'libcublasLt.so.13'; then
    local lt
    lt=$(ls /usr/local/cuda/lib64/libcublasLt.so.13 2>/dev/null || find / -xdev -name 'libcublasLt.so.13' 2>/dev/null | head -1)
    [ -n "$lt" ] && export TINYLLAMA_LIBCUBLASLT="$lt"
  fi
  return 0
}

# train_driver HOME OUTDIR ARGS...: scripts/bench-gpu's driver (GpuTrainBench: TinyLlama-1.1B training
# steps, then the attention kernels alone) from the bundle unpacked in HOME, its ours.json and
# ours.txt into OUTDIR; JAVA_OPTS passes through.
train_driver() {
  local home=$1
  shift
  "$home/jre/bin/java" --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC -Xmx32g -Xss8m \
    ${JAVA_OPTS:-} -cp "$home/lib/*:$home/tinyllama.jar" io.tinyllamaj.model.cuda.GpuTrainBench "$@"
}

# write_launcher DIR NAME HEAP [MAIN...]: DIR/NAME, a script that runs the bundled Java with the
# given heap on MAIN (default: the trainer, -jar DIR/tinyllama.jar) and its own arguments. mpirun
# rewrites the arguments of an executable named java (it looks for a class path among them), so
# ranks start through such a script.
write_launcher() {
  local dir=$1 name=$2 heap=$3
  shift 3
  local main=${*:-"-jar $dir/tinyllama.jar"}
  cat > "$dir/$name" <<SH
#!/usr/bin/env bash
exec "$dir/jre/bin/java" --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED \\
  --add-opens=java.base/java.nio=ALL-UNNAMED -XX:+UseParallelGC -Xmx$heap $main "\$@"
SH
  chmod +x "$dir/$name"
}

# demo_recipe FILE [DIR]: configs/demo-cpu.yaml reading its sources from DIR's slimpajama/ and
# starcoder/ (default .bundle/prepared: the demo's samples as the build machine prepared them, since
# the bundle's trainer leaves out the Parquet reader StarCoder's samples need), written to FILE; one
# line and exit 1 where DIR lacks them.
demo_recipe() {
  local file=$1 dir=${2:-$PWD/.bundle/prepared}
  if [ ! -f "$dir/slimpajama/manifest.json" ] || [ ! -f "$dir/starcoder/manifest.json" ]; then
    if [ -n "${2:-}" ]; then
      echo "$(basename "$0"): no $dir/{slimpajama,starcoder}/manifest.json (a folder as tinyllama prepare writes them)" >&2
    else
      echo "$(basename "$0"): no .bundle/prepared/{slimpajama,starcoder}: on the build machine, scripts/tinyllama pretrain prepares" \
        "the demo's samples into runs/prepared; copy that folder to .bundle/prepared" >&2
    fi
    exit 1
  fi
  sed -e "s|path: runs/prepared/|path: $dir/|" -e '/prepare:/,/inputs:/d' configs/demo-cpu.yaml > "$file"
}

# clocks_start FILE: samples GPU 0's SM clock (MHz), power (W) and temperature (C) every 200 ms into
# FILE (CSV, no header) in the background; clocks_stop FILE LABEL ends it and prints one line: the
# median and lowest SM clock and the median power while LABEL ran. A step whose kernels slow down
# together while the clock sits below its maximum is held back by power or heat, not by its code.
clocks_start() {
  nvidia-smi -i 0 --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader,nounits -lms 200 > "$1" 2>/dev/null &
  clocks_pid=$!
}
clocks_stop() {
  kill "$clocks_pid" 2>/dev/null
  wait "$clocks_pid" 2>/dev/null
  python3 - "$1" "$2" <<'PY'
import statistics, sys
rows = []
for line in open(sys.argv[1]):
    try:
        rows.append([float(x) for x in line.split(",")])
    except ValueError:
        pass  # a partial last line, or "[N/A]"
busy = [r for r in rows if r[1] > 150] or rows  # samples of the work, not of start-up
if busy:
    clock, power, temp = (statistics.median(r[i] for r in busy) for i in range(3))
    print(f"{sys.argv[2]}: SM clock median {clock:.0f} MHz (lowest {min(r[0] for r in busy):.0f}), power median {power:.0f} W,"
          f" {temp:.0f} C, over {len(busy)} samples above 150 W")
else:
    print(f"{sys.argv[2]}: no clock samples")
PY
}
