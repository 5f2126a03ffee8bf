package io.tinyllamaj.trainer;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Projection;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.kernels.cuda.CudaBackend;
import io.tinyllamaj.trainer.config.TrainingConfig;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The one place a device name becomes a backend. Asking for cuda where it cannot run (no
 * driver, no GPU, a build without nvcc) fails with the backend's one-line reason.
 */
public final class Backends {

    private Backends() {
    }

    /**
     * The device with its default kernels, for score, eval, generate and export. Their batches
     * change shape from one to the next (rows of each batch's longest length), so cuBLASLt's
     * tuning, which times the candidates of every new shape once, would cost more than it saves;
     * it is off (it never changes a result, only which bit-identical algorithm runs).
     */
    public static Backend create(String device) {
        return create(device, 0, "auto", null, false);
    }

    /**
     * The backend for training {@code train} on GPU {@code gpu} of those visible (a rank's local
     * rank): train.attention (auto: the fastest kernels per direction, see
     * {@link CudaBackend.Attention#AUTO}) and train.precision as it takes effect: on cuda
     * bf16-mixed (bf16 activations and matmul operands over fp32 masters) or fp8-mixed (the same,
     * with the transformer blocks' projections that train.fp8_projections names in FP8). The CPU
     * ignores all three. The matmuls tune once per shape.
     */
    public static Backend create(TrainingConfig.Train train, int gpu) {
        CudaBackend.Fp8Recipe fp8 = train.effectivePrecision().equals("fp8-mixed")
                ? new CudaBackend.Fp8Recipe(projections(train.fp8Projections()), train.fp8Gradients().equals("e4m3")) : null;
        return create(train.device(), gpu, train.attention(), fp8, true);
    }

    /** {@code device} with its default kernels and tuning on, on GPU {@code gpu}: for benchmarks of other parts (the collectives). */
    public static Backend create(String device, int gpu) {
        return create(device, gpu, "auto", null, true);
    }

    private static Backend create(String device, int gpu, String attention, CudaBackend.Fp8Recipe fp8, boolean matmulTuning) {
        return switch (device) {
            case "cpu" -> new CpuBackend();
            case "cuda" -> new CudaBackend(gpu, new CudaBackend.Options(attentionKernel(attention), true, matmulTuning, fp8));
            default -> throw new IllegalArgumentException("unknown device '" + device + "' (expected cpu or cuda)");
        };
    }

    /** train.fp8_projections' names (the config check has refused any other) as the backend's projections. */
    private static Set<Projection> projections(List<String> names) {
        Set<Projection> projections = EnumSet.noneOf(Projection.class);
        for (String name : names) {
            projections.add(Projection.valueOf(name.toUpperCase(Locale.ROOT)));
        }
        return projections;
    }

    /** The backend falls back from the kernel named here to the next one down where the GPU or the shape needs it. */
    private static CudaBackend.Attention attentionKernel(String name) {
        for (CudaBackend.Attention kernel : CudaBackend.Attention.values()) {
            if (kernel.key().equals(name)) {
                return kernel;
            }
        }
        throw new IllegalArgumentException("train.attention must be auto, plain, mma, wgmma or cudnn, got '" + name + "'");
    }
}
