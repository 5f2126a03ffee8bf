package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.kernels.cpu.CpuTensor;
import io.tinyllamaj.model.Initialization;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.ParameterLayout;
import io.tinyllamaj.model.UnitParameters;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
    void keepingGatheredUnitsGathersNothingInTheBackward() {
        List<String> expected = new ArrayList<>(FORWARD);
        expected.addAll(REDUCE);
        assertEquals(expected, oneMicroBatch(LlamaConfig.preset("test-tiny"), false, false));
    }

    /**
     * test-tiny with 4 blocks, resharding, traced by hand: 976 + 4 x 1952 + 992 = 9776, rank 0 owns
     * [0, 4888). Units: 0 embedding, 1 = [976, 2928), 2 = [2928, 4880), 3 = [4880, 6832) (8 on rank 0,
     * 1944 on rank 1), 4 = [6832, 8784), 5 = head [8784, 9776). Three unit buffers A, B, C, least
     * recently used first; gradient buffers by unit parity.
     */
    @Test
    void prefetchesTheNextUnitWhileOneComputesAndFinishesEachReductionOneUnitLater() {
        List<String> forward = List.of(
                "start broadcast 0 976", "complete broadcast 0 976",        // acquire(0) into A
                "start broadcast 0 1952", "complete broadcast 0 1952",      // acquire(1) into B
                "start broadcast 0 1952",                                   // prefetch(2) into C, before the embedding runs
                "complete broadcast 0 1952",                                // block 0: acquire(2)
                "start broadcast 0 8", "start broadcast 1 1944",            //   prefetch(3) into A (unit 0 released)
                "complete broadcast 0 8", "complete broadcast 1 1944",      // block 1: acquire(3)
                "start broadcast 1 1952",                                   //   prefetch(4) into B
                "complete broadcast 1 1952",                                // block 2: acquire(4)
                "start broadcast 1 992",                                    //   prefetch(5), the head, into C
                "complete broadcast 1 992");                                // block 3: acquire(5)
        List<String> backward = List.of(
                "start reduce 1 992",                                       // head
                // block 3: units 4 (B) and 3 (A) are still resident, nothing to gather
                "start reduce 1 1952",
                "start broadcast 0 1952",                                   // block 2: prefetch(2) into C (the head's)
                "complete reduce 1 992",                                    //   its gradient buffer: the head's reduction ends
                "start reduce 0 8", "start reduce 1 1944",
                "complete broadcast 0 1952",                                // block 1: acquire(2)
                "start broadcast 0 1952",                                   //   prefetch(1) into B
                "complete reduce 1 1952",                                   //   unit 4's reduction ends
                "start reduce 0 1952",
                "complete broadcast 0 1952",                                // block 0: acquire(1)
                "complete reduce 0 8", "complete reduce 1 1944",            //   unit 3's reduction ends
                "start reduce 0 1952",
                "complete reduce 0 1952",                                   // embedding: unit 2's reduction ends
                "start reduce 0 976",
                "complete reduce 0 1952", "complete reduce 0 976");         // gradients read: the last two end, oldest first
        List<String> expected = new ArrayList<>(forward);
        expected.addAll(backward);
        LlamaConfig tiny = LlamaConfig.preset("test-tiny");
        LlamaConfig fourBlocks = new LlamaConfig("test-tiny-4", tiny.vocabSize(), tiny.dim(), 4, tiny.heads(), tiny.kvHeads(),
                tiny.intermediate(), tiny.normEps(), tiny.ropeTheta(), tiny.maxSeqLen(), false);
        assertEquals(expected, oneMicroBatch(fourBlocks, true, true));
    }

    /** An update while a prefetch is in flight: the gather still completes (every rank started it), then is gathered anew. */
    @Test
    void anUpdateCompletesAGatherInFlightAndGathersTheUnitAgain() {
        try (CpuBackend backend = new CpuBackend()) {
            Recorder world = new Recorder(true);
            LlamaModel model = sharded(backend, LlamaConfig.preset("test-tiny"), world, true);
            Tensor own = model.parameters();
            world.calls.clear();
            units.prefetch(3, own, own);
            model.adamwUpdate(0, backend.allocate(2936), backend.allocate(2936), new AdamWStep(1e-3f, 0.9f, 0.95f, 1e-8f, 0f, 1, 1f));
            units.acquire(3, own, own);
            assertEquals(List.of("start broadcast 1 992", "complete broadcast 1 992", "start broadcast 1 992", "complete broadcast 1 992"),
                    world.calls);
        }
    }

    @Test
    void ownRangeOnlyAndThreeParameterBuffersAndTwoGradientBuffersOfTheLargestUnit() {
        try (CpuBackend backend = new CpuBackend()) {
            Recorder world = new Recorder(false);
            LlamaModel model = sharded(backend, LlamaConfig.preset("test-tiny"), world, true);
            step(model);
            assertEquals(2936L * 4, model.memory().parameters());
            assertEquals(2936L * 4, model.memory().gradients());
            assertEquals(5L * 1952 * 4, units.bytes());
            // after an update every unit is gathered again, in forward order
            model.adamwUpdate(0, backend.allocate(2936), backend.allocate(2936), new AdamWStep(1e-3f, 0.9f, 0.95f, 1e-8f, 0f, 1, 1f));
            world.calls.clear();
            step(model);
            assertEquals(FORWARD, world.calls.subList(0, FORWARD.size()));
        }
    }

    /**
     * Where the matmuls read a copy (the GPU's bf16), each unit is gathered in runs: test-tiny's block
     * [976, 2928) is attn_norm 16 (masters), qkv 512 + attn_out 256 (copy), mlp_norm 16 (masters),
     * gate_up 768 + down 384 (copy); unit 2 [2928, 4880) starts with attn_norm [2928, 2944), 8 values
     * on each side of rank 0's end at 2936; the head is final_norm 16 (masters), lm_head 976 (copy).
     * The buffers, each run packed after the previous one of its kind: three shared ones of a block's
     * 2 x 16 norm values and 1,920 matmul values, the embedding's own 976, two gradient buffers of 1,952.
     */
    @Test
    void aCopyOfTheWeightsIsGatheredRunByRun() {
        try (CpuBackend backend = new CpuBackend()) {
            Recorder world = new Recorder(false);
            LlamaModel model = new LlamaModel(backend, LlamaConfig.preset("test-tiny"));
            UnitShards split = new UnitShards(world, backend, model.layout(), true, false, true);
            Tensor own = backend.allocate(2936), copy = backend.allocate(2936);
            for (int unit = 0; unit < 4; unit++) {
                split.acquire(unit, own, copy);
                split.release(unit);
            }
            assertEquals(List.of("broadcast 0 976",
                    "broadcast 0 16", "broadcast 0 768", "broadcast 0 16", "broadcast 0 1152",
                    "broadcast 0 8", "broadcast 1 8", "broadcast 1 768", "broadcast 1 16", "broadcast 1 1152",
                    "broadcast 1 16", "broadcast 1 976"), world.calls);
            assertEquals((3L * (32 + 1920) + 976 + 2 * 1952) * 4, split.bytes());
        }
    }

    /** In a group of one: the matmul weights come from the copy, the norms and the embedding from the masters, each into its own buffer. */
    @Test
    void aSplitGatherReadsEachEntryFromItsSource() {
        try (CpuBackend backend = new CpuBackend()) {
            LlamaModel model = new LlamaModel(backend, LlamaConfig.preset("test-tiny"));
            ParameterLayout layout = model.layout();
            int total = Math.toIntExact(layout.total());
            float[] masters = new float[total], copy = new float[total];
            for (int i = 0; i < total; i++) {
                masters[i] = i;
                copy[i] = -i - 1;
            }
            UnitShards split = new UnitShards(SingleRankCollectives.INSTANCE, backend, layout, true, false, true);
            for (int unit = 0; unit < layout.units(); unit++) {
                UnitParameters.Gathered g = split.acquire(unit, new CpuTensor(masters, 0, total), new CpuTensor(copy, 0, total));
                long start = layout.unitStart(unit);
                for (ParameterLayout.Entry e : layout.stored()) {
                    if (e.offset() < start || e.offset() >= layout.unitEnd(unit)) {
                        continue;
                    }
                    boolean matmul = ParameterLayout.matmulWeight(e);
                    float[] values = backend.download(matmul ? g.operand(e) : g.master(e));
                    for (int i = 0; i < values.length; i++) { // every value: the copy's for matmul weights, the masters' for the rest
                        long at = e.offset() + i;
                        assertEquals(matmul ? -at - 1 : at, values[i], e.name() + "[" + i + "]");
                    }
                }
                split.release(unit);
            }
        }
    }

    /**
     * The GPU's arrangement on the CPU: a backend whose matmuls read a copy of the weights (an fp32
     * copy here, so the bits cannot change). A model sharded over a group of one, gathering its
     * matmul weights from the copy and its norms and embedding from the masters, trains step for
     * step to the bits of the unsharded model: losses, and the parameters after three AdamW updates.
     */
    @Test
    void aModelWhoseMatmulsReadACopyTrainsBitwiseAsAnUnshardedOne() {
        try (CpuBackend cpu = new CpuBackend()) {
            Backend copying = copyingOperands(cpu);
            LlamaConfig tiny = LlamaConfig.preset("test-tiny");
            LlamaModel plain = new LlamaModel(cpu, tiny), sharded = new LlamaModel(copying, tiny);
            Initialization.initialize(plain, 7);
            Initialization.initialize(sharded, 7);
            long total = plain.layout().total();
            sharded.shard(0, total, new UnitShards(SingleRankCollectives.INSTANCE, copying, sharded.layout(), true, false, true));
            Tensor[] moments = {cpu.allocate(total), cpu.allocate(total), cpu.allocate(total), cpu.allocate(total)};
            int[] tokens = {1, 5, 9, 13, 17, 21, 25, 29}, targets = {5, 9, 13, 17, 21, 25, 29, 33};
            for (int s = 1; s <= 3; s++) {
                AdamWStep adamw = new AdamWStep(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, s, 1f);
                plain.zeroGradients();
                sharded.zeroGradients();
                double expected = plain.forwardBackward(tokens, targets, 1, 8, 1f / 8);
                assertEquals(expected, sharded.forwardBackward(tokens, targets, 1, 8, 1f / 8), "loss at step " + s);
                plain.adamwUpdate(0, moments[0], moments[1], adamw);
                sharded.adamwUpdate(0, moments[2], moments[3], adamw);
            }
            assertArrayEquals(cpu.download(plain.parameters()), cpu.download(sharded.parameters()));
        }
    }

    /** The CPU backend, except that matmulOperand copies the weight (into {@code into} when it fits). */
    private static Backend copyingOperands(CpuBackend cpu) {
        InvocationHandler handler = (proxy, method, args) -> switch (method.getName()) {
            case "matmulOperandsAreCopies" -> true;
            case "matmulOperand" -> {
                Tensor weight = (Tensor) args[0], into = (Tensor) args[1];
                Tensor copy = into != null && into != weight && into.length() >= weight.length() ? into.slice(0, weight.length())
                        : cpu.allocate(weight.length());
                cpu.copy(copy, weight);
                yield copy.length() == (into == null ? -1 : into.length()) ? into : copy;
            }
            case "adamwUpdateAndCopy" -> { // the interface's default, through this proxy's matmulOperand
                Tensor params = (Tensor) args[0], operands = (Tensor) args[1];
                cpu.adamwUpdate(params, (Tensor) args[2], (Tensor) args[3], (Tensor) args[4], (AdamWStep) args[5]);
                cpu.copy(operands, params);
                yield null;
            }
            default -> {
                try {
                    yield method.invoke(cpu, args);
                } catch (InvocationTargetException e) {
                    throw e.getCause();
                }
            }
        };
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, handler);
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

    /** The collectives of one micro-batch and the read of the gradients. */
    private static List<String> oneMicroBatch(LlamaConfig config, boolean reshard, boolean startsAndCompletions) {
        try (CpuBackend backend = new CpuBackend()) {
            Recorder world = new Recorder(startsAndCompletions);
            LlamaModel model = sharded(backend, config, world, reshard);
            step(model);
            model.gradients();
            return world.calls;
        }
    }

    private static UnitShards units; // the last sharded model's

    private static LlamaModel sharded(CpuBackend backend, LlamaConfig config, Recorder world, boolean reshard) {
        LlamaModel model = new LlamaModel(backend, config);
        Initialization.initialize(model, 7);
        units = new UnitShards(world, backend, model.layout(), reshard, false, false);
        Shard own = world.shard(model.layout().total());
        model.shard(own.offset(), own.length(), units);
        return model;
    }

    private static void step(LlamaModel model) {
        int[] tokens = {1, 5, 9, 13, 17, 21, 25, 29}, targets = {5, 9, 13, 17, 21, 25, 29, 33};
        model.zeroGradients();
        model.forwardBackward(tokens, targets, 1, 8, 1f / 8);
    }

    /**
     * Rank 0 of 2: records broadcasts and reductions, moves no data; with {@code startsAndCompletions}
     * the started ones as "start ..." and their completion as "complete ...", else each once, when started.
     */
    static final class Recorder implements Collectives {
        final List<String> calls = new ArrayList<>();
        private final boolean startsAndCompletions;

        Recorder(boolean startsAndCompletions) {
            this.startsAndCompletions = startsAndCompletions;
        }

        @Override
        public Pending broadcastAsync(Tensor t, int root) {
            return started("broadcast " + root + " " + t.length());
        }

        @Override
        public Pending reduceSumAsync(Tensor t, int root) {
            return started("reduce " + root + " " + t.length());
        }

        private Pending started(String call) {
            if (!startsAndCompletions) {
                calls.add(call);
                return Pending.DONE;
            }
            calls.add("start " + call);
            return () -> calls.add("complete " + call);
        }

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
