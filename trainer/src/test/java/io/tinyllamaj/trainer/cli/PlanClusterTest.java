package io.tinyllamaj.trainer.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.trainer.TestRuns;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code tinyllama plan --cluster} on test-tiny (5,872 parameters; micro-batch 2 x 8 tokens,
 * global batch 16 sequences) against a made-up benchmark, every expected number worked out by hand.
 */
class PlanClusterTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static final double MS = 1e-9; // expected times are exact sums of a few decimals: compare to a nanosecond

    /** test-tiny: 2 x 61 x 16 embed and lm_head, 2 blocks of 1,952, a final norm of 16. */
    static final long N = 5872;
    /** Activations at 2 x 8, bf16-mixed: 1,760 fp32 values and 8,400 bf16 values (MemoryAccountTest lists them). */
    static final long ACTIVATIONS = 1760 * 4 + 8400 * 2;
    /** The recipe's 2 micro-batches a step queue one loss row of 16 fp32 values more than the bench's one. */
    static final long RECIPE_ACTIVATIONS = ACTIVATIONS + 16 * 4;

    @TempDir
    Path dir;

    /**
     * Measured on an H100 at the recipe's own shape, so the planner's ratios are all 1: 100 ms a step, of
     * which matmuls and attention 75 ms, other ops 15 ms (a "matmul operand" cast among them), the optimizer 10 ms.
     */
    private Path bench(double peakMemGib, boolean opsMs) throws Exception {
        String ops = opsMs ? """
                  "ops_ms": {
                    "matmul fwd c=16 oc=32": {"calls": 4, "ms": 40.0},
                    "matmul bwd c=16 oc=32": {"calls": 4, "ms": 20.0},
                    "attention bwd": {"calls": 2, "ms": 15.0},
                    "matmul operand": {"calls": 1, "ms": 3.0},
                    "rmsnorm fwd": {"calls": 5, "ms": 12.0},
                    "adamw": {"calls": 1, "ms": 8.0},
                    "sumOfSquares": {"calls": 1, "ms": 2.0}
                  },
                """ : "";
        Path file = dir.resolve("gpu-train.json");
        Files.writeString(file, """
                {
                  "device": "NVIDIA H100 80GB HBM3 (sm_90)",
                  "model": "test-tiny",
                  "micro_batch": 2,
                  "seq_len": 8,
                  "step_ms": 100.0,
                %s  "peak_mem_gib": %s
                }
                """.formatted(ops, peakMemGib));
        return file;
    }

    private Path recipe() throws Exception {
        return TestRuns.writeRecipe(dir, "test-tiny", 61, 8, 2, 16, 10, "");
    }

    private JsonNode plan(Path bench, String... cluster) throws Exception {
        List<String> args = new ArrayList<>(List.of("plan", "--config", recipe().toString(), "--bench", bench.toString(), "--json"));
        args.addAll(List.of(cluster));
        CliRun run = CliRun.of(args.toArray(String[]::new));
        assertEquals(0, run.exitCode(), run.err());
        return JSON.readTree(run.out());
    }

    private static JsonNode strategy(JsonNode plan, String name) {
        for (JsonNode s : plan.path("strategies")) {
            if (s.path("name").asText().equals(name)) {
                return s;
            }
        }
        throw new AssertionError("no strategy " + name + " in " + plan);
    }

    private static void assertMemory(JsonNode s, long parameters, long operands, long gradients, long optimizer, long gathered,
                                     long workspace) {
        JsonNode m = s.path("memory");
        String name = s.path("name").asText();
        assertEquals(parameters, m.path("parameters").asLong(), name);
        assertEquals(operands, m.path("operands").asLong(), name);
        assertEquals(gradients, m.path("gradients").asLong(), name);
        assertEquals(optimizer, m.path("optimizer").asLong(), name);
        assertEquals(gathered, m.path("gathered_blocks").asLong(), name);
        assertEquals(RECIPE_ACTIVATIONS, m.path("activations").asLong(), name);
        assertEquals(workspace, m.path("workspace").asLong(), name);
        assertEquals(parameters + operands + gradients + optimizer + gathered + RECIPE_ACTIVATIONS + workspace, m.path("total").asLong(), name);
    }

    /** The serial and overlapped step, the optimizer's share, and tokens/s: 2 micro-batches of 16 tokens a step on each GPU. */
    private static void assertStep(JsonNode s, double optimizerMs, double serialMs, double overlappedMs) {
        String name = s.path("name").asText();
        assertEquals(optimizerMs, s.path("optimizer_ms").asDouble(), MS, name);
        assertEquals(serialMs, s.path("serial").path("step_ms").asDouble(), MS, name);
        assertEquals(overlappedMs, s.path("overlap").path("step_ms").asDouble(), MS, name);
        assertEquals(32 / (serialMs / 1e3), s.path("serial").path("tokens_per_s_per_gpu").asDouble(), 1e-6, name);
        assertEquals(32 / (overlappedMs / 1e3), s.path("overlap").path("tokens_per_s_per_gpu").asDouble(), 1e-6, name);
    }

    /**
     * 4 H100s in 2 nodes of 2, collectives at 0.008 Gb/s inside a node (1e6 B/s) and 0.004 Gb/s of network a
     * node (5e5 B/s, the bus bandwidth of a ring over both nodes). A micro-batch: 90 ms (forward 30, backward
     * 60); 2 of them a step. Buffers: bf16 parameters 2N = 11,744 bytes, fp32 gradients 4N = 23,488.
     */
    @Test
    void memoryAndStepTimesOfEachStrategyAsWorkedOutByHand() throws Exception {
        JsonNode plan = plan(bench(1.0 / 1024, true), "--cluster", "4xH100-80G", "--nodes", "2",
                "--intra-node-gbps", "0.008", "--inter-node-gbps", "0.004");
        assertEquals(2, plan.path("recipe").path("accumulation").asInt(), "16 sequences / (2 x 4 GPUs)");
        assertEquals(90.0, plan.path("micro_batch_ms").path("total").asDouble(), MS, "75 + 15 ms at the measured GPU and shape");
        // the measured 1 MiB minus what the bench's own shape holds on one GPU: 4N + 2N + 4N + 8N bytes and the activations
        long workspace = 1048576 - (4 * N + 2 * N + 4 * N + 8 * N + ACTIVATIONS);
        assertEquals(919040, workspace);

        // ddp: everything on every GPU; one all-reduce of 4N over 4 ranks at 5e5 B/s: 2 x 23,488 x 3/4 / 5e5 = 70.464 ms
        assertMemory(strategy(plan, "ddp"), 4 * N, 2 * N, 4 * N, 8 * N, 0, workspace);
        assertStep(strategy(plan, "ddp"), 10, 2 * 90 + 70.464 + 10, 30 + 30 + 60 + Math.max(60, 70.464) + 10);

        // fsdp: everything split 4 ways; gathered: three unit buffers of a block's parts (its 2 x 16 norm values in fp32,
        // its 1,920 matmul values in bf16; the head has 16 and 976), the embedding's own 976 fp32, and two fp32 gradient
        // buffers of the largest unit, a block of 1,952. Each micro-batch: all-gather 2N in the forward (8,808 B / 5e5 = 17.616 ms),
        // again in the backward with the reduce-scatter of 4N (35.232 ms): 52.848 ms
        long gathered = 3 * (32 * 4 + 1920 * 2) + 976 * 4 + 2 * 1952 * 4;
        assertMemory(strategy(plan, "fsdp"), 4 * 1468, 2 * 1468, 4 * 1468, 8 * 1468, gathered, workspace);
        assertStep(strategy(plan, "fsdp"), 2.5, 2 * (90 + 17.616 + 52.848) + 2.5, 2 * 30 + 2 * 60 + 2.5);

        // hybrid: split 2 ways inside a node (2,936 a GPU) at 1e6 B/s: all-gather 5,872 B = 5.872 ms, reduce-scatter
        // 11.744 ms; once a step each GPU all-reduces its 11,744-byte shard over 2 nodes, sharing the node's 5e5 B/s
        // with the other GPU: 2 x 11,744 x 1/2 / 2.5e5 = 46.976 ms, behind the last backward
        assertMemory(strategy(plan, "hybrid"), 4 * 2936, 2 * 2936, 4 * 2936, 8 * 2936, gathered, workspace);
        assertStep(strategy(plan, "hybrid"), 5, 2 * (90 + 5.872 + 17.616) + 46.976 + 5, 2 * 30 + 60 + Math.max(60, 17.616 + 46.976) + 5);
        assertTrue(plan.path("note").asText().startsWith("a model, not a measurement"));
    }

    /**
     * The cluster above with the recipe's distributed.reduce_dtype bf16: fsdp's and hybrid's unit reductions move 2N
     * bytes (a reduce-scatter of 11,744 B), hybrid's cross-node all-reduce of the fp32 shard stays at 4N / 2, ddp is as
     * before, and on a GPU the two gradient buffers of the largest unit (1,952 values) get bf16 copies: 7,808 bytes more.
     */
    @Test
    void aBf16ReductionHalvesTheUnitReductionsAndAddsTheirCopies() throws Exception {
        JsonNode plan = plan(bench(1.0 / 1024, true), "--cluster", "4xH100-80G", "--nodes", "2", "--intra-node-gbps", "0.008",
                "--inter-node-gbps", "0.004", "--set", "distributed.strategy=fsdp", "--set", "distributed.world_size=4",
                "--set", "distributed.reduce_dtype=bf16");
        long workspace = 1048576 - (4 * N + 2 * N + 4 * N + 8 * N + ACTIVATIONS);
        long gathered = 3 * (32 * 4 + 1920 * 2) + 976 * 4 + 2 * 1952 * 4 + 2 * 1952 * 2;

        assertMemory(strategy(plan, "ddp"), 4 * N, 2 * N, 4 * N, 8 * N, 0, workspace);
        assertStep(strategy(plan, "ddp"), 10, 2 * 90 + 70.464 + 10, 30 + 30 + 60 + Math.max(60, 70.464) + 10);
        assertEquals("fp32", strategy(plan, "ddp").path("reduce_dtype").asText());

        // fsdp: the forward's all-gather 17.616 ms as before; the backward's gather and a reduce-scatter of 2N, 17.616 ms
        assertMemory(strategy(plan, "fsdp"), 4 * 1468, 2 * 1468, 4 * 1468, 8 * 1468, gathered, workspace);
        assertEquals(17.616 + 17.616, strategy(plan, "fsdp").path("communication_ms").path("backward_per_micro_batch").asDouble(), MS);
        assertStep(strategy(plan, "fsdp"), 2.5, 2 * (90 + 17.616 + 35.232) + 2.5, 2 * 30 + 2 * 60 + 2.5);
        assertEquals("bf16", strategy(plan, "fsdp").path("reduce_dtype").asText());

        // hybrid: the node's reduce-scatter 5.872 ms (11.744 in fp32); the cross-node all-reduce 46.976 ms as before, now
        // hidden behind the last backward: 5.872 + 5.872 + 46.976 = 58.72 < 60
        assertMemory(strategy(plan, "hybrid"), 4 * 2936, 2 * 2936, 4 * 2936, 8 * 2936, gathered, workspace);
        assertStep(strategy(plan, "hybrid"), 5, 2 * (90 + 5.872 + 11.744) + 46.976 + 5, 2 * 30 + 60 + 60 + 5);
    }

    /**
     * The same recipe on A100-40Gs from a benchmark without per-op times, of test-tiny at 4 x 16: the step
     * splits by the H100 profile's shares (185.1, 35.6 and 13.2 of 233.9 ms); matmuls and attention scale by
     * 989 / 312 TFLOP/s, the other ops and the optimizer by 3,350 / 1,555 GB/s, the micro-batch by its FLOPs:
     * 6 x 4,816 matmul parameters + 12 x 2 layers x t x 16 per token, 16 tokens at t = 8 against 64 at t = 16.
     */
    @Test
    void anotherGpuAndShapeScaleByPeakBandwidthAndFlops() throws Exception {
        Path bench = dir.resolve("other.json");
        Files.writeString(bench, """
                {"device": "NVIDIA H100 80GB HBM3 (sm_90)", "model": "test-tiny", "micro_batch": 4, "seq_len": 16, "step_ms": 233.9}
                """);
        JsonNode plan = plan(bench, "--cluster", "8xA100-40G");
        double flopRatio = (6.0 * 4816 + 12 * 2 * 8 * 16) * 16 / ((6.0 * 4816 + 12 * 2 * 16 * 16) * 64);
        assertEquals(flopRatio, plan.path("micro_batch_ms").path("flop_ratio").asDouble(), 1e-15);
        assertEquals(185.1 * 989 / 312 * flopRatio, plan.path("micro_batch_ms").path("tensor_core").asDouble(), 1e-9);
        assertEquals(35.6 * 3350 / 1555 * flopRatio, plan.path("micro_batch_ms").path("memory_bound").asDouble(), 1e-9);
        assertFalse(plan.path("bench").path("per_op").asBoolean());
        assertEquals(13.2 * 3350 / 1555, strategy(plan, "ddp").path("optimizer_ms").asDouble(), 1e-9, "the same parameters, all of them");
        assertEquals(13.2 * 3350 / 1555 / 8, strategy(plan, "fsdp").path("optimizer_ms").asDouble(), 1e-9, "5,872 / 8 = 734 each");
        assertEquals(0, plan.path("workspace_bytes").asLong(), "no peak_mem_gib: no workspace");
        assertEquals(1, plan.path("cluster").path("nodes").asInt(), "8 GPUs: one node");
        assertEquals(240.0, plan.path("cluster").path("world_bus_gb_s").asDouble(), 1e-9, "the A100's NVLink default");
    }

    /**
     * A step measured over 4 micro-batches (accumulate 4): the per-op times hold 4 micro-batches of 75 ms of
     * matmuls and attention and 15 of other ops, and one optimizer of 10 ms, 370 ms in all. Planned per
     * micro-batch, it predicts what the one-micro-batch step of 100 ms predicts. Without per-op times, a
     * step of 3 micro-batches and the optimizer in the H100 profile's proportion (3 x 220.7 + 13.2 =
     * 675.3 ms) splits into the 185.1, 35.6 and 13.2 ms of the 233.9 ms step of one.
     */
    @Test
    void aStepOfSeveralMicroBatchesIsPlannedPerMicroBatch() throws Exception {
        Path four = dir.resolve("four.json");
        Files.writeString(four, """
                {"device": "NVIDIA H100 80GB HBM3 (sm_90)", "model": "test-tiny", "micro_batch": 2, "accumulate": 4, "seq_len": 8,
                 "step_ms": 370.0, "peak_mem_gib": %s,
                 "ops_ms": {"matmul fwd c=16 oc=32": {"calls": 16, "ms": 240.0}, "attention bwd": {"calls": 8, "ms": 60.0},
                            "rmsnorm fwd": {"calls": 20, "ms": 60.0}, "adamw": {"calls": 1, "ms": 10.0}}}
                """.formatted(1.0 / 1024));
        JsonNode plan = plan(four, "--cluster", "4xH100-80G");
        JsonNode one = plan(bench(1.0 / 1024, true), "--cluster", "4xH100-80G");
        assertEquals(4, plan.path("bench").path("accumulation").asInt());
        assertEquals(1, one.path("bench").path("accumulation").asInt(), "a file that does not say: one micro-batch");
        assertEquals(75.0, plan.path("micro_batch_ms").path("tensor_core").asDouble(), 1e-9);
        assertEquals(15.0, plan.path("micro_batch_ms").path("memory_bound").asDouble(), 1e-9);
        assertEquals(10.0, plan.path("bench").path("optimizer_ms").asDouble(), 1e-9);
        for (String name : new String[] {"ddp", "fsdp", "hybrid"}) {
            assertEquals(strategy(one, name).path("overlap").path("step_ms").asDouble(),
                    strategy(plan, name).path("overlap").path("step_ms").asDouble(), 1e-9, name);
        }
        Path three = dir.resolve("three.json");
        Files.writeString(three, """
                {"device": "NVIDIA H100 80GB HBM3 (sm_90)", "model": "test-tiny", "micro_batch": 4, "accumulate": 3, "seq_len": 16,
                 "step_ms": 675.3}
                """);
        JsonNode fallback = plan(three, "--cluster", "4xH100-80G");
        assertEquals(185.1 * 16 / 64 * (6.0 * 4816 + 12 * 2 * 8 * 16) / (6.0 * 4816 + 12 * 2 * 16 * 16),
                fallback.path("micro_batch_ms").path("tensor_core").asDouble(), 1e-9);
        assertEquals(13.2, fallback.path("bench").path("optimizer_ms").asDouble(), 1e-9);
        assertEquals(35.6, fallback.path("bench").path("memory_bound_ms").asDouble(), 1e-9);
    }

    /**
     * 1 MiB of workspace measured puts ddp exactly at 1 MiB (and the recipe's second loss row, 64 bytes, above the bench's
     * shape); 16 KiB more than 80 GiB overflows ddp only: fsdp holds 47,848
     * bytes less (18 bytes a parameter over 5,872 against 1,468, plus the unit buffers 3 x (32 x 4 + 1,920 x 2) + 976 x 4
     * + 2 x 1,952 x 4).
     */
    @Test
    void fitsComparesTheTotalWithTheGpusMemory() throws Exception {
        JsonNode plan = plan(bench(80 + 1.0 / 65536, true), "--cluster", "4xH100-80G");
        assertEquals(80L * 1073741824 + 16384 + 64, strategy(plan, "ddp").path("memory").path("total").asLong());
        assertEquals(80L * 1073741824 + 16384 + 64 - 47848, strategy(plan, "fsdp").path("memory").path("total").asLong());
        assertFalse(strategy(plan, "ddp").path("fits").asBoolean());
        for (String name : new String[] {"fsdp", "hybrid"}) {
            assertTrue(strategy(plan, name).path("fits").asBoolean(), name);
        }
    }

    @Test
    void theTextReportNamesItselfAModelAndPredictsTheRecipesStrategy() throws Exception {
        CliRun run = CliRun.of("plan", "--config", recipe().toString(), "--bench", bench(1.0 / 1024, true).toString(),
                "--cluster", "4xH100-80G", "--nodes", "2", "--intra-node-gbps", "0.008", "--inter-node-gbps", "0.004");
        assertEquals(0, run.exitCode(), run.err());
        String out = run.out();
        assertTrue(out.contains("time         4 GPUs at 24,000 tokens/s each"), out);
        assertTrue(out.contains("cluster      4 x H100-80G in 2 nodes of 2: 989 TFLOP/s bf16, 3350 GB/s HBM, 80 GiB each"), out);
        assertTrue(out.contains("recipe       test-tiny, micro-batch 2 x 8, 2 micro-batches a step on each GPU (global batch 16 sequences)"), out);
        assertTrue(out.contains("note         a model, not a measurement"), out);
        // the recipe's strategy is none (one rank): planned as ddp, overlapped 200.464 ms a step: 32 / 0.200464 = 160 tokens/s
        assertTrue(out.contains("predicted    ddp (the recipe's strategy none: one rank, as ddp), overlapped: 160 tokens/s per GPU"), out);
    }

    @Test
    void badClustersAreRefusedInOneLine() throws Exception {
        String recipe = recipe().toString(), bench = bench(1.0 / 1024, true).toString();
        String[][] cases = {
                {"--cluster 0xA100: the GPU count must be at least 1, got 0", "--cluster", "0xA100"},
                {"--cluster 16xB200: unknown GPU B200 (known: A100-40G, A100-80G, H100-80G, H200)", "--cluster", "16xB200"},
                {"--cluster 16A100: expected <GPUs>x<GPU>, for example 16xA100-40G (GPUs: A100-40G, A100-80G, H100-80G, H200)",
                        "--cluster", "16A100"},
                {"--cluster 99999999xH200: the GPU count must be at most 1048576, got 99999999", "--cluster", "99999999xH200"},
                {"--nodes 3 must divide the 16 GPUs of --cluster 16xA100-40G into equal nodes", "--cluster", "16xA100-40G", "--nodes", "3"},
                {"--nodes 0 must divide the 16 GPUs of --cluster 16xA100-40G into equal nodes", "--cluster", "16xA100-40G", "--nodes", "0"},
                {"--cluster 9xH200: 9 GPUs do not split into equal nodes of at most 8 (pass --nodes)", "--cluster", "9xH200"},
                {"--inter-node-gbps must be a positive, finite number, got -5.0", "--cluster", "16xA100-40G", "--inter-node-gbps", "-5"},
                {"--intra-node-gbps must be a positive, finite number, got NaN", "--cluster", "16xA100-40G", "--intra-node-gbps", "NaN"},
                {"--nodes plans a cluster: pass --cluster NxGPU with it", "--nodes", "2"},
                {"--gpus and --cluster both give the GPU count; pass one", "--cluster", "16xA100-40G", "--gpus", "16"},
                {"the global batch of 16 sequences is not a multiple of micro-batch 2 x 3 GPUs; choose train.micro_batch_size or the "
                        + "GPU count so that it is", "--cluster", "3xH200"},
        };
        for (String[] c : cases) {
            List<String> args = new ArrayList<>(List.of("plan", "--config", recipe, "--bench", bench));
            args.addAll(List.of(c).subList(1, c.length));
            CliRun run = CliRun.of(args.toArray(String[]::new));
            assertEquals(1, run.exitCode(), String.join(" ", args) + ": " + run.out() + run.err());
            assertEquals("tinyllama: error: " + c[0] + "\n", run.err(), String.join(" ", args));
        }
    }

    /**
     * A recipe in fp8-mixed is planned from a step measured in fp8-mixed, scaled as any other (its FP8
     * matmuls count as tensor-core time), on GPUs with FP8 tensor cores only; a step measured in the
     * other precision is refused, either way round.
     */
    @Test
    void fp8MixedIsPlannedFromAnFp8StepOnGpusWithFp8() throws Exception {
        String recipe = recipe().toString();
        Path bf16 = bench(1.0 / 1024, true);
        Path fp8 = dir.resolve("fp8.json");
        Files.writeString(fp8, Files.readString(bf16).replace("\"model\"", "\"precision\": \"fp8-mixed\", \"model\""));
        String[] fp8Recipe = {"--set", "train.device=cuda", "--set", "train.precision=fp8-mixed"};
        List<String> args = new ArrayList<>(List.of("plan", "--config", recipe, "--bench", fp8.toString(), "--json",
                "--cluster", "4xH100-80G"));
        args.addAll(List.of(fp8Recipe));
        CliRun run = CliRun.of(args.toArray(String[]::new));
        assertEquals(0, run.exitCode(), run.err());
        JsonNode fp8Plan = JSON.readTree(run.out());
        assertEquals("fp8-mixed", fp8Plan.path("bench").path("precision").asText());
        JsonNode bf16Plan = plan(bf16, "--cluster", "4xH100-80G");
        assertEquals("bf16-mixed", bf16Plan.path("bench").path("precision").asText(), "a file that does not say: bf16-mixed");
        assertEquals(strategy(bf16Plan, "fsdp").path("overlap").path("step_ms").asDouble(),
                strategy(fp8Plan, "fsdp").path("overlap").path("step_ms").asDouble(), MS, "the same times: the same prediction");
        String[][] refused = {
                {fp8.toString(), "8xA100-40G", "fp8", "train.precision fp8-mixed needs FP8 tensor cores, which the A100-40G does not "
                        + "have; plan it in bf16-mixed (--set train.precision=bf16-mixed)"},
                {fp8.toString(), "4xH100-80G", "bf16", fp8 + " measured a step in fp8-mixed and the recipe trains in bf16-mixed: pass "
                        + "--bench with a step measured in bf16-mixed (docs/bench/gpu-train.json), or --set train.precision"},
                {bf16.toString(), "4xH100-80G", "fp8", bf16 + " measured a step in bf16-mixed and the recipe trains in fp8-mixed: pass "
                        + "--bench with a step measured in fp8-mixed (docs/bench/fp8/step-fp8-mixed.json), or --set train.precision"},
        };
        for (String[] c : refused) {
            List<String> a = new ArrayList<>(List.of("plan", "--config", recipe, "--bench", c[0], "--cluster", c[1]));
            if (c[2].equals("fp8")) {
                a.addAll(List.of(fp8Recipe));
            }
            CliRun r = CliRun.of(a.toArray(String[]::new));
            assertEquals(1, r.exitCode(), r.out() + r.err());
            assertEquals("tinyllama: error: " + c[3] + "\n", r.err());
        }
    }

    /**
     * Without --bench, a recipe takes the checkout's measured step of TinyLlama-1.1B in its precision:
     * gpu-train.json (whose precision, "bf16-mixed (fp32 master weights, ...)", is read by its first
     * word) or, for fp8-mixed, step-fp8-mixed.json.
     */
    @Test
    void eachPrecisionTakesTheShippedStepByDefault() throws Exception {
        CliRun run = CliRun.of("plan", "--config", recipe().toString(), "--cluster", "8xH100-80G", "--set", "train.device=cuda",
                "--set", "train.precision=fp8-mixed");
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("step-fp8-mixed.json: tinyllama-1.1b in fp8-mixed at 8 x 2048 on NVIDIA H100"), run.out());
        run = CliRun.of("plan", "--config", recipe().toString(), "--cluster", "8xH100-80G");
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("gpu-train.json: tinyllama-1.1b in bf16-mixed at 8 x 2048 on NVIDIA H100"), run.out());
    }

    @Test
    void aBenchmarkItCannotReadIsRefusedInOneLine() throws Exception {
        String recipe = recipe().toString();
        Path missing = dir.resolve("missing.json");
        Path broken = dir.resolve("broken.json");
        Files.writeString(broken, "{\"device\": \"NVIDIA B200\", \"model\": \"test-tiny\", \"micro_batch\": 2, \"seq_len\": 8, \"step_ms\": 1}");
        Path noStep = dir.resolve("nostep.json");
        Files.writeString(noStep, "{\"device\": \"NVIDIA A100-SXM4-80GB\", \"model\": \"test-tiny\", \"micro_batch\": 2, \"seq_len\": 8}");
        Path fp16 = dir.resolve("fp16.json");
        Files.writeString(fp16, "{\"device\": \"NVIDIA H100\", \"precision\": \"fp16\", \"model\": \"test-tiny\", \"micro_batch\": 2, "
                + "\"seq_len\": 8, \"step_ms\": 1}");
        Path noMicroBatches = dir.resolve("accumulate0.json");
        Files.writeString(noMicroBatches, "{\"device\": \"NVIDIA H100\", \"model\": \"test-tiny\", \"micro_batch\": 2, "
                + "\"accumulate\": 0, \"seq_len\": 8, \"step_ms\": 1}");
        String[][] cases = {
                {missing.toString(), "no GPU benchmark at " + missing + " (pass --bench FILE: a gpu-train.json of scripts/bench-gpu)"},
                {broken.toString(), broken + ": measured on 'NVIDIA B200', a GPU the planner does not know (known: A100-40G, A100-80G, "
                        + "H100-80G, H200)"},
                {noStep.toString(), noStep + ": step_ms must be a positive number, got null"},
                {fp16.toString(), fp16 + ": precision must be bf16-mixed or fp8-mixed, got \"fp16\""},
                {noMicroBatches.toString(), noMicroBatches + ": accumulate must be a positive whole number, got 0"},
        };
        for (String[] c : cases) {
            CliRun run = CliRun.of("plan", "--config", recipe, "--cluster", "8xH100-80G", "--bench", c[0]);
            assertEquals(1, run.exitCode(), run.out() + run.err());
            assertEquals("tinyllama: error: " + c[1] + "\n", run.err());
        }
    }
}
