package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.kernels.cpu.CpuTensor;
import io.tinyllamaj.model.Initialization;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Full sharding's collectives seen from rank 0 of 2, in one JVM: a recording {@link Collectives}
 * takes the calls (the other rank's pieces stay zero; only the order and sizes are checked).
 * test-tiny by hand: embed 61 x 16 = 976; a block 16 + 32 x 16 (qkv) + 16 x 16 + 16 + 48 x 16
 * + 16 x 24 = 1952; the head 16 + 976 = 992; 5872 in all, rank 0 owns [0, 2936), rank 1 the rest.
 * Units: 0 = [0, 976), 1 = [976, 2928), 2 = [2928, 4880) (8 on rank 0, 1944 on rank 1), 3 = [4880, 5872).
 */
class UnitShardsTest {

    static final List<String> FORWARD = List.of("broadcast 0 976", "broadcast 0 1952", "broadcast 0 8", "broadcast 1 1944",
            "broadcast 1 992");
    static final List<String> REDUCE = List.of("reduce 1 992", "reduce 0 8", "reduce 1 1944", "reduce 0 1952", "reduce 0 976");

    @Test
    void gathersForwardInOrderAndBackwardInReverseAndReducesEachUnitOntoItsOwners() {
        List<String> calls = oneMicroBatch(true);
        List<String> expected = new ArrayList<>(FORWARD);
        // backward: the head's and the last block's buffers are still resident; the embedding needs no parameters
        expected.addAll(List.of("reduce 1 992", "reduce 0 8", "reduce 1 1944", "broadcast 0 1952", "reduce 0 1952", "reduce 0 976"));
        assertEquals(expected, calls);
    }

    @Test
    void keepingGatheredUnitsGathersNothingInTheBackward() {
        List<String> expected = new ArrayList<>(FORWARD);
        expected.addAll(REDUCE);
        assertEquals(expected, oneMicroBatch(false));
    }

    @Test
    void ownRangeOnlyAndTwoParameterBuffersAndOneGradientBufferOfTheLargestUnit() {
        try (CpuBackend backend = new CpuBackend()) {
            Recorder world = new Recorder();
            LlamaModel model = sharded(backend, world, true);
            step(model);
            assertEquals(2936L * 4, model.memory().parameters());
            assertEquals(2936L * 4, model.memory().gradients());
            assertEquals(3L * 1952 * 4, units.bytes());
            // after an update every unit is gathered again, in forward order
            model.adamwUpdate(0, backend.allocate(2936), backend.allocate(2936), new AdamWStep(1e-3f, 0.9f, 0.95f, 1e-8f, 0f, 1, 1f));
            world.calls.clear();
            step(model);
            assertEquals(FORWARD, world.calls.subList(0, FORWARD.size()));
        }
    }

    @Test
    void bf16ReductionRoundsToNearestEven() {
        float[] values = {1f + 0x1p-8f, 1f + 0x1p-8f + 0x1p-9f, 1f + 0x1p-7f + 0x1p-8f, -3f, Float.NaN};
        UnitShards.roundToBf16(new CpuTensor(values, 0, values.length));
        assertEquals(1f, values[0]);                 // a tie rounds to the even 1.0
        assertEquals(1f + 0x1p-7f, values[1]);       // above the tie rounds up
        assertEquals(1f + 0x1p-6f, values[2]);       // a tie from an odd last bit rounds up to even
        assertEquals(-3f, values[3]);
        assertEquals(Float.NaN, values[4]);
    }

    private static List<String> oneMicroBatch(boolean reshard) {
        try (CpuBackend backend = new CpuBackend()) {
            Recorder world = new Recorder();
            LlamaModel model = sharded(backend, world, reshard);
            step(model);
            return world.calls;
        }
    }

    private static UnitShards units; // the last sharded model's

    private static LlamaModel sharded(CpuBackend backend, Recorder world, boolean reshard) {
        LlamaModel model = new LlamaModel(backend, LlamaConfig.preset("test-tiny"));
        Initialization.initialize(model, 7);
        assertEquals(5872, model.layout().total());
        units = new UnitShards(world, backend, model.layout(), reshard, false);
        Shard own = world.shard(model.layout().total());
        model.shard(own.offset(), own.length(), units);
        return model;
    }

    private static void step(LlamaModel model) {
        int[] tokens = {1, 5, 9, 13, 17, 21, 25, 29}, targets = {5, 9, 13, 17, 21, 25, 29, 33};
        model.zeroGradients();
        model.forwardBackward(tokens, targets, 1, 8, 1f / 8);
    }

    /** Rank 0 of 2: records broadcasts and reductions, moves no data. */
    static final class Recorder implements Collectives {
        final List<String> calls = new ArrayList<>();

        @Override
        public int rank() {
            return 0;
        }

        @Override
        public int size() {
            return 2;
        }

        @Override
        public void allReduceSum(Tensor t) {
            calls.add("allReduce " + t.length());
        }

        @Override
        public void reduceSum(Tensor t, int root) {
            calls.add("reduce " + root + " " + t.length());
        }

        @Override
        public void reduceScatterSum(Tensor buffer) {
            calls.add("reduceScatter " + buffer.length());
        }

        @Override
        public void allGather(Tensor buffer) {
            calls.add("allGather " + buffer.length());
        }

        @Override
        public void broadcast(Tensor t, int root) {
            calls.add("broadcast " + root + " " + t.length());
        }

        @Override
        public void barrier() {
        }

        @Override
        public double allReduceSum(double value) {
            return value;
        }

        @Override
        public double allReduceMax(double value) {
            return value;
        }

        @Override
        public Collectives split(int color, int key) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void close() {
        }
    }
}
