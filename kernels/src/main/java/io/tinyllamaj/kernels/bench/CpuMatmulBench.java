package io.tinyllamaj.kernels.bench;

import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;

import java.util.SplittableRandom;

/**
 * Times the CPU backend's three linear-layer GEMMs at TinyLlama shapes and prints one JSON
 * line per shape and pass; scripts/bench-cpu puts numpy's OpenBLAS beside it.
 * Arguments: rows (tokens per call), repetitions.
 */
public final class CpuMatmulBench {

    /** in -> out features of TinyLlama's linear layers (fused qkv and gate/up, as we store them). */
    private static final int[][] SHAPES = {{2048, 2560}, {2048, 2048}, {2048, 11264}, {5632, 2048}};
    private static final String[] NAMES = {"qkv", "attn_out", "gate_up", "down"};

    public static void main(String[] args) {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 512;
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 3;
        CpuBackend backend = new CpuBackend();
        SplittableRandom random = new SplittableRandom(1);
        for (int s = 0; s < SHAPES.length; s++) {
            int c = SHAPES[s][0], oc = SHAPES[s][1];
            Tensor inp = randomTensor(backend, (long) rows * c, random);
            Tensor weight = randomTensor(backend, (long) oc * c, random);
            Tensor out = backend.allocate((long) rows * oc);
            Tensor dinp = backend.allocate((long) rows * c);
            Tensor dweight = backend.allocate((long) oc * c);
            double flops = 2.0 * rows * c * oc;
            double forward = best(reps, () -> backend.matmulForward(out, inp, weight, rows, c, oc));
            double backward = best(reps, () -> backend.matmulBackward(dinp, dweight, out, inp, weight, rows, c, oc));
            System.out.printf("{\"shape\":\"%s\",\"m\":%d,\"k\":%d,\"n\":%d,\"forward_gflops\":%.2f,\"backward_gflops\":%.2f}%n",
                    NAMES[s], rows, c, oc, flops / forward / 1e9, 2 * flops / backward / 1e9);
        }
    }

    private static Tensor randomTensor(CpuBackend backend, long n, SplittableRandom random) {
        float[] values = new float[(int) n];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (random.nextDouble() - 0.5);
        }
        Tensor t = backend.allocate(n);
        backend.upload(t, values, 0, values.length);
        return t;
    }

    /** Best of reps timed runs after one warm-up, in seconds. */
    private static double best(int reps, Runnable body) {
        body.run();
        double best = Double.MAX_VALUE;
        for (int r = 0; r < reps; r++) {
            long start = System.nanoTime();
            body.run();
            best = Math.min(best, (System.nanoTime() - start) / 1e9);
        }
        return best;
    }
}
