package io.tinyllamaj.kernels.cpu;

import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/** Splits loops over all cores with the common fork-join pool; small loops stay on the caller. */
final class Parallel {

    static final int THREADS = Runtime.getRuntime().availableProcessors();

    /**
     * Reductions split into this many partial sums whatever the core count, so a result is
     * the same bits on a laptop and on a 128-core host (exact resume across machines).
     */
    static final int REDUCTION_CHUNKS = 64;

    private Parallel() {
    }

    /** Runs body(i) for i in [0, count); {@code work} is a rough cost of the whole loop in flops. */
    static void forEach(int count, long work, IntConsumer body) {
        if (count <= 1 || THREADS == 1 || work < 200_000) {
            for (int i = 0; i < count; i++) {
                body.accept(i);
            }
        } else {
            IntStream.range(0, count).parallel().forEach(body);
        }
    }

    /** Splits [0, n) into about THREADS * 4 contiguous chunks: body(start, end). */
    static void forChunks(int n, long work, ChunkBody body) {
        int chunks = Math.min(n, THREADS * 4);
        if (chunks <= 1 || THREADS == 1 || work < 200_000) {
            body.run(0, n);
            return;
        }
        IntStream.range(0, chunks).parallel().forEach(i -> {
            int start = (int) ((long) n * i / chunks);
            int end = (int) ((long) n * (i + 1) / chunks);
            body.run(start, end);
        });
    }

    @FunctionalInterface
    interface ChunkBody {
        void run(int start, int end);
    }
}
