package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.ModelMemory;
import io.tinyllamaj.trainer.distributed.Collectives;
import io.tinyllamaj.trainer.distributed.Strategy;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * One rank's memory by category, in bytes: the fp32 master parameters, the matmuls' bf16 copy of
 * them (0 on the CPU, whose matmuls read the masters), gradients, AdamW's m and v (this rank's
 * shard of {@code optimizerShards}), parameter and gradient blocks gathered from other ranks
 * (full sharding: the unit buffers; 0 for ddp), activations, and the backend's
 * workspace (device memory in use beyond all of these; 0 on the CPU). {@link #measure} counts the
 * tensors a run allocated; the cluster planner computes the same categories for a shape.
 */
public record RankMemory(long parameters, long operands, long gradients, long optimizer, long gatheredBlocks,
                         long activations, long workspace, int optimizerShards) {

    /** The categories' names in metrics.jsonl's {@code memory} records, in the order of {@link #categories}. */
    public static final List<String> KEYS = List.of("parameters", "operands", "gradients", "optimizer", "gathered_blocks",
            "activations", "workspace");

    public long total() {
        long sum = 0;
        for (long bytes : categories()) {
            sum += bytes;
        }
        return sum;
    }

    /** The bytes of each category, in {@link #KEYS} order. */
    public long[] categories() {
        return new long[] {parameters, operands, gradients, optimizer, gatheredBlocks, activations, workspace};
    }

    /**
     * This rank's account now: call it after a first training step, when the gradients and the
     * activations exist. {@code m} and {@code v} are the AdamW moments the loop allocated.
     */
    static RankMemory measure(LlamaModel model, Strategy strategy, Tensor m, Tensor v) {
        ModelMemory held = model.memory();
        Backend backend = model.backend();
        long optimizer = backend.bytes(m) + backend.bytes(v);
        long gathered = strategy.gatheredBlockBytes();
        long counted = held.parameters() + held.operands() + held.gradients() + optimizer + gathered + held.activations();
        return new RankMemory(held.parameters(), held.operands(), held.gradients(), optimizer, gathered, held.activations(),
                backend.workspaceBytes(counted), strategy.optimizerShards());
    }

    /**
     * Every rank's account in rank order, on every rank (collective). Once a run, so plain scalar
     * sums do: each rank adds its own values at its own index and zeros elsewhere; byte counts stay
     * below 2^53, where a double sum is exact.
     */
    static List<RankMemory> gather(Collectives world, RankMemory own) {
        List<RankMemory> all = new ArrayList<>(world.size());
        for (int rank = 0; rank < world.size(); rank++) {
            long[] mine = own.categories();
            long[] values = new long[mine.length];
            for (int k = 0; k < mine.length; k++) {
                values[k] = Math.round(world.allReduceSum(rank == world.rank() ? mine[k] : 0));
            }
            int shards = (int) Math.round(world.allReduceSum(rank == world.rank() ? own.optimizerShards : 0));
            all.add(of(values, shards));
        }
        return all;
    }

    private static RankMemory of(long[] c, int optimizerShards) {
        return new RankMemory(c[0], c[1], c[2], c[3], c[4], c[5], c[6], optimizerShards);
    }

    /** "memory per rank: parameters 4.40 GB, operands 2.20 GB, ..., optimizer 8.80 GB (shard 1/1), ...; total 48.2 GB". */
    public String line() {
        return String.format(Locale.ROOT, "memory per rank: parameters %s, operands %s, gradients %s, optimizer %s (shard 1/%d), "
                        + "gathered blocks %s, activations %s, workspace %s; total %s", format(parameters), format(operands),
                format(gradients), format(optimizer), optimizerShards, format(gatheredBlocks), format(activations),
                format(workspace), format(total()));
    }

    /** Decimal units, three significant digits: "4.40 GB", "28.1 GB", "512 B", and "0" for nothing. */
    public static String format(double bytes) {
        if (bytes == 0) {
            return "0";
        }
        String[] units = {"B", "kB", "MB", "GB", "TB", "PB"};
        int unit = 0;
        while (Math.abs(bytes) >= 999.5 && unit < units.length - 1) {
            bytes /= 1000;
            unit++;
        }
        String digits = unit == 0 || Math.abs(bytes) >= 99.95 ? "%.0f" : Math.abs(bytes) >= 9.995 ? "%.1f" : "%.2f";
        return String.format(Locale.ROOT, digits + " %s", bytes, units[unit]);
    }

    /** The metrics.jsonl record: {"memory": {category: bytes, ..., "total": bytes}, "optimizer_shards": k, "rank": r, "step": s}. */
    ObjectNode record(int rank, long step) {
        ObjectNode record = MetricsLog.newRecord();
        ObjectNode bytes = record.putObject(MetricsLog.MEMORY);
        long[] values = categories();
        for (int k = 0; k < KEYS.size(); k++) {
            bytes.put(KEYS.get(k), values[k]);
        }
        bytes.put("total", total());
        record.put("optimizer_shards", optimizerShards);
        record.put("rank", rank);
        record.put("step", step);
        return record;
    }

    /** The account of a {@code memory} record of metrics.jsonl. */
    public static RankMemory fromRecord(JsonNode record) {
        JsonNode bytes = record.path(MetricsLog.MEMORY);
        long[] values = new long[KEYS.size()];
        for (int k = 0; k < KEYS.size(); k++) {
            values[k] = bytes.path(KEYS.get(k)).asLong();
        }
        return of(values, record.path("optimizer_shards").asInt());
    }
}
