package io.tinyllamaj.trainer.plan;

import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * A GPU as the cluster planner sees it: dense bf16 tensor-core peak, HBM bandwidth, memory, and
 * the bus bandwidth a large all-gather reaches over NVLink inside a node (nccl-tests' busbw, not
 * the link's nominal rate: about 240 GB/s on A100 NVLink 3, 360 GB/s on H100/H200 NVLink 4).
 *
 * @param peakTflops dense bf16, TFLOP/s
 * @param hbmGBps    memory bandwidth, GB/s
 * @param memoryGiB  device memory, GiB
 * @param nvlinkGBps achievable bus bandwidth inside a node, GB/s
 * @param fp8        FP8 tensor cores (Ada, Hopper and later), which train.precision fp8-mixed needs
 */
public record GpuSpec(String name, double peakTflops, double hbmGBps, double memoryGiB, double nvlinkGBps, boolean fp8) {

    /** The GPUs the planner knows; H100 is the SXM part. */
    public static final List<GpuSpec> TABLE = List.of(
            new GpuSpec("A100-40G", 312, 1555, 40, 240, false),
            new GpuSpec("A100-80G", 312, 2039, 80, 240, false),
            new GpuSpec("H100-80G", 989, 3350, 80, 360, true),
            new GpuSpec("H200", 989, 4800, 141, 360, true));

    /** Device memory in bytes. */
    public long memoryBytes() {
        return Math.round(memoryGiB * (1L << 30));
    }

    /** The table's GPU of this name (any case); an unknown name is refused naming the known ones. */
    static GpuSpec named(String name, String context) {
        return TABLE.stream().filter(g -> g.name.equalsIgnoreCase(name)).findFirst().orElseThrow(() ->
                new IllegalArgumentException(context + ": unknown GPU " + name + " (known: " + known() + ")"));
    }

    static String known() {
        return TABLE.stream().map(GpuSpec::name).collect(Collectors.joining(", "));
    }

    /**
     * The table's GPU a CUDA device description names ("NVIDIA H100 80GB HBM3 (sm_90)", "NVIDIA
     * A100-SXM4-40GB"): what a benchmark was measured on.
     */
    static Optional<GpuSpec> describedBy(String device) {
        String d = device.toUpperCase(Locale.ROOT);
        String name = d.contains("H200") ? "H200" : d.contains("H100") ? "H100-80G"
                : d.contains("A100") ? (d.contains("80G") ? "A100-80G" : "A100-40G") : null;
        return name == null ? Optional.empty() : Optional.of(named(name, device));
    }
}
