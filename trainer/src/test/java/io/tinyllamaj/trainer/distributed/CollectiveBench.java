package io.tinyllamaj.trainer.distributed;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.mpi.Launch;
import io.tinyllamaj.trainer.Backends;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;

/**
 * The communication benchmark of scripts/gpu-scaling, one rank of {@code mpirun -np W java ...
 * CollectiveBench OUT.json [cuda|cpu] [FLOATS] [ITERATIONS]}: all-gather and reduce-scatter of a
 * FLOATS-float fp32 buffer through our bindings (NCCL on cuda, MPI on cpu) as the sharded
 * strategies call them, each call synchronised as training synchronises it. Bus bandwidth as
 * nccl-tests computes it: algbw = buffer bytes / time, busbw = algbw x (W - 1) / W. Rank 0 writes
 * the median over the iterations.
 */
public final class CollectiveBench {

    private CollectiveBench() {
    }

    private interface Call {
        void run(Tensor buffer);
    }

    public static void main(String[] args) throws Exception {
        Path out = Path.of(args[0]);
        String device = args.length > 1 ? args[1] : "cuda";
        long floats = args.length > 2 ? Long.parseLong(args[2]) : 1L << 26; // 256 MiB: a TinyLlama block's worth is 44 M floats
        int iterations = args.length > 3 ? Integer.parseInt(args[3]) : 20;
        Launch launch = Launch.detect();
        try (Backend backend = Backends.create(device, Math.max(0, launch.localRank()));
             Strategy strategy = Distributed.open("ddp", launch.worldSize(), 8, Duration.ofMinutes(5), backend, System.err)) {
            Collectives world = strategy.world();
            Tensor buffer = backend.allocate(floats);
            backend.fill(buffer, 1f);
            ObjectNode result = new ObjectMapper().createObjectNode();
            result.put("ranks", world.size());
            result.put("device", device);
            result.put("bytes", floats * Float.BYTES);
            result.put("iterations", iterations);
            time(result.putObject("all_gather"), world, buffer, iterations, world::allGather);
            time(result.putObject("reduce_scatter"), world, buffer, iterations, world::reduceScatterSum);
            if (world.rank() == 0) {
                new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(out.toFile(), result);
                System.out.printf(Locale.ROOT, "ours (%s, %d ranks, %d MiB): all_gather busbw %.1f GB/s, reduce_scatter busbw %.1f GB/s%n",
                        device, world.size(), floats * Float.BYTES >> 20, result.get("all_gather").get("busbw_gb_s").asDouble(),
                        result.get("reduce_scatter").get("busbw_gb_s").asDouble());
            }
            backend.release(buffer);
        }
    }

    private static void time(ObjectNode into, Collectives world, Tensor buffer, int iterations, Call call) {
        for (int i = 0; i < 3; i++) {
            call.run(buffer);
        }
        double[] seconds = new double[iterations];
        for (int i = 0; i < iterations; i++) {
            world.barrier();
            long start = System.nanoTime();
            call.run(buffer);
            seconds[i] = (System.nanoTime() - start) / 1e9;
        }
        Arrays.sort(seconds);
        double median = seconds[iterations / 2];
        double bytes = (double) buffer.length() * Float.BYTES;
        double algbw = bytes / median / 1e9;
        into.put("median_us", median * 1e6);
        into.put("algbw_gb_s", algbw);
        into.put("busbw_gb_s", algbw * (world.size() - 1) / world.size());
    }
}
