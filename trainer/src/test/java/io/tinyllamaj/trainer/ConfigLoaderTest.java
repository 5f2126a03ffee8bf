package io.tinyllamaj.trainer;

import io.tinyllamaj.trainer.config.ConfigLoader;
import io.tinyllamaj.trainer.config.TrainingConfig;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ConfigLoaderTest {

    private static final String BASE = """
            model: {preset: test-tiny}
            data:
              sources:
                - {name: a, path: /data/a, weight: 0.7}
            train: {seq_len: 16, micro_batch_size: 2, global_batch_size: 8, max_steps: 10}
            """;

    private static String error(String yaml, String... overrides) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ConfigLoader.parse("config.yaml", yaml, List.of(overrides)));
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        return e.getMessage();
    }

    /** Each --set value within the limit, the config they make past it: refused at start, not at the resume it would block. */
    @org.junit.jupiter.api.Test
    void aConfigThatWouldBeWrittenOutPastTheLimitIsRefusedAtStart() {
        String name = "n".repeat(40_000);
        String message = error(BASE, "data.sources.0.name=" + name, "data.sources.0.path=/data/" + name);
        assertTrue(message.startsWith("config.yaml with its --set values: the config comes to "), message);
        assertTrue(message.endsWith(" bytes written out; a config may be at most 65536, and a run saved past it could not be "
                + "resumed"), message);
    }

    /** Precision and the attention kernel come from the config; a pair the device cannot run is refused by key. */
    @org.junit.jupiter.api.Test
    void precisionAndAttentionFollowTheDevice() {
        assertEquals("fp32", ConfigLoader.parse("config.yaml", BASE, List.of()).config().train().effectivePrecision());
        assertEquals("bf16-mixed", ConfigLoader.parse("config.yaml", BASE, List.of("train.device=cuda")).config().train()
                .effectivePrecision());
        assertEquals("mma", ConfigLoader.parse("config.yaml", BASE, List.of("train.device=cuda", "train.attention=mma"))
                .config().train().attention());
        assertEquals("config.yaml: train.precision fp32 is not available on cuda (its matmuls multiply bf16 operands); "
                + "use bf16-mixed, or auto", error(BASE, "train.device=cuda", "train.precision=fp32"));
        assertEquals("config.yaml: train.precision bf16-mixed needs train.device cuda (the CPU backend is fp32)",
                error(BASE, "train.precision=bf16-mixed"));
        assertEquals("fp8-mixed", ConfigLoader.parse("config.yaml", BASE, List.of("train.device=cuda", "train.precision=fp8-mixed"))
                .config().train().effectivePrecision());
        assertEquals("config.yaml: train.precision fp8-mixed needs train.device cuda (the CPU backend is fp32)",
                error(BASE, "train.precision=fp8-mixed"));
        assertEquals("config.yaml: train.precision must be one of auto, fp32, bf16-mixed, fp8-mixed, got 'fp8'",
                error(BASE, "train.device=cuda", "train.precision=fp8"));
        assertEquals("config.yaml: train.attention wgmma is a CUDA kernel; the CPU backend has one attention (auto or plain)",
                error(BASE, "train.attention=wgmma"));
        assertEquals("config.yaml: train.attention must be one of auto, plain, mma, wgmma, cudnn, got 'flash'",
                error(BASE, "train.device=cuda", "train.attention=flash"));
    }

    /** fp8-mixed's projections and gradient format: TinyLlama's three by default, any other name, a repeat, none, refused by key. */
    @Test
    void fp8RecipeIsCheckedByKey() {
        TrainingConfig.Train train = ConfigLoader.parse("config.yaml", BASE, List.of("train.device=cuda", "train.precision=fp8-mixed"))
                .config().train();
        assertEquals(List.of("qkv", "gate_up", "down"), train.fp8Projections());
        assertEquals("e5m2", train.fp8Gradients());
        train = ConfigLoader.parse("config.yaml", BASE, List.of("train.device=cuda", "train.precision=fp8-mixed",
                "train.fp8_projections=[gate_up]", "train.fp8_gradients=e4m3")).config().train();
        assertEquals(List.of("gate_up"), train.fp8Projections());
        assertEquals("e4m3", train.fp8Gradients());
        assertEquals("config.yaml: train.fp8_projections[1] must be one of qkv, attention_output, gate_up, down, got 'lm_head'",
                error(BASE, "train.fp8_projections=[qkv, lm_head]"));
        assertEquals("config.yaml: train.fp8_projections[1] 'down' is listed twice", error(BASE, "train.fp8_projections=[down, down]"));
        assertEquals("config.yaml: train.fp8_projections is empty: name at least one of qkv, attention_output, gate_up, down "
                + "(with none, use train.precision bf16-mixed)", error(BASE, "train.fp8_projections=[]"));
        assertEquals("config.yaml: train.fp8_gradients must be one of e5m2, e4m3, got 'bf16'", error(BASE, "train.fp8_gradients=bf16"));
        assertStarts("config.yaml: train.fp8_projections", error(BASE, "train.fp8_projections=[qkv, ~]"));
    }

    private static String fileError(Path file) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(file, List.of()));
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        return e.getMessage();
    }

    private static void assertStarts(String prefix, String actual) {
        assertTrue(actual.startsWith(prefix), "expected a message starting with <" + prefix + "> but was <" + actual + ">");
    }

    private static void assertContains(String part, String actual) {
        assertTrue(actual.contains(part), "expected a message containing <" + part + "> but was <" + actual + ">");
    }

    @Test
    void unknownKeyIsNamed() {
        String message = error(BASE + "logging: {interval: 5, colour: red}\n");
        assertTrue(message.startsWith("config.yaml: unknown key logging.colour"), message);
        assertStarts("config.yaml: unknown key train.foo", error(BASE.replace("max_steps: 10", "max_steps: 10, foo: 1")));
        assertStarts("config.yaml: unknown key data.sources[0].wieght", error(BASE.replace("weight: 0.7", "weight: 0.7, wieght: 1")));
        assertStarts("config.yaml: unknown key optimiser", error(BASE + "optimiser: {}\n"));
    }

    @Test
    void wrongTypeIsNamed() {
        assertEquals("config.yaml: train.micro_batch_size: expected an integer, got 'two'",
                error(BASE.replace("micro_batch_size: 2", "micro_batch_size: two")));
        assertStarts("config.yaml: train.micro_batch_size: expected an integer", error(BASE.replace("micro_batch_size: 2", "micro_batch_size: 2.5")));
        assertStarts("config.yaml: logging.interval: expected an integer", error(BASE + "logging: {interval: [1, 2]}\n"));
        assertStarts("config.yaml: eval: expected a section", error(BASE + "eval: 5\n"));
        assertStarts("config.yaml: data.sources[0].path: expected a string", error(BASE.replace("path: /data/a", "path: 5")));
    }

    @Test
    void worldSizeAutoOrLeftOutIsMpirunsOrOne() {
        Assumptions.assumeTrue(System.getenv("OMPI_COMM_WORLD_SIZE") == null, "this JVM runs under mpirun");
        assertEquals(1, ConfigLoader.parse("config.yaml", BASE + "distributed: {strategy: ddp, world_size: auto}\n", List.of())
                .shape().worldSize());
        assertEquals(1, ConfigLoader.parse("config.yaml", BASE, List.of()).shape().worldSize());
        assertEquals(1, ConfigLoader.parse("config.yaml", BASE, List.of("distributed.world_size=auto")).shape().worldSize());
    }

    @Test
    void impossibleCombinationsAreNamed() {
        assertEquals("config.yaml: train.global_batch_size 8 sequences per step is not divisible by "
                + "train.micro_batch_size x distributed.world_size = 3 x 1", error(BASE.replace("micro_batch_size: 2", "micro_batch_size: 3")));
        assertContains("not divisible by train.micro_batch_size x distributed.world_size = 2 x 3", error(BASE + "distributed: {strategy: ddp, world_size: 3}\n"));
        assertStarts("config.yaml: train.seq_len 32 exceeds the model's max_seq_len 16", error(BASE.replace("seq_len: 16", "seq_len: 32")));
        assertStarts("config.yaml: train.max_steps give exactly one", error(BASE.replace("max_steps: 10", "max_steps: 10, max_tokens: 100")));
        assertStarts("config.yaml: distributed.strategy must be one of none, ddp, fsdp, hybrid", error(BASE + "distributed: {strategy: zero3}\n"));
        assertStarts("config.yaml: distributed.world_size is 2 but distributed.strategy is none", error(BASE + "distributed: {world_size: 2}\n"));
        assertStarts("config.yaml: distributed.ranks_per_node 8 must divide distributed.world_size 4 for the hybrid strategy",
                error(BASE + "distributed: {strategy: hybrid, world_size: 4}\n"));
        assertStarts("config.yaml: distributed.reduce_dtype must be one of fp32, bf16, got 'fp16'",
                error(BASE + "distributed: {strategy: fsdp, reduce_dtype: fp16}\n"));
        assertStarts("config.yaml: distributed.reshard_after_forward applies to fsdp and hybrid only; distributed.strategy is ddp",
                error(BASE + "distributed: {strategy: ddp, reshard_after_forward: false}\n"));
        assertStarts("config.yaml: distributed.reduce_dtype bf16 applies to fsdp and hybrid only",
                error(BASE + "distributed: {strategy: ddp, reduce_dtype: bf16}\n"));
        assertStarts("config.yaml: distributed.transport must be one of nccl, mpi, got 'gloo'",
                error(BASE + "distributed: {strategy: ddp, transport: gloo}\n"));
        assertStarts("config.yaml: distributed.transport nccl carries CUDA tensors only; train.device is cpu",
                error(BASE + "distributed: {strategy: ddp, transport: nccl}\n"));
        assertEquals("bf16", ConfigLoader.parse("config.yaml", BASE.replace("max_steps: 10", "max_steps: 10, device: cuda")
                + "distributed: {strategy: fsdp, reduce_dtype: bf16}\n", List.of()).config().distributed().reduceDtype());
        assertStarts("config.yaml: distributed.collective_timeout_s must be at least 1 second",
                error(BASE + "distributed: {collective_timeout_s: 0}\n"));
        assertStarts("config.yaml: train.precision bf16-mixed needs train.device cuda", error(BASE.replace("max_steps: 10", "max_steps: 10, precision: bf16-mixed")));
        assertStarts("config.yaml: data.sources[0].weight must be positive", error(BASE.replace("weight: 0.7", "weight: -1")));
    }

    @Test
    void scheduleAndSpikeGuardKeysAreChecked() {
        assertEquals("config.yaml: train.lr_schedule must be one of per_step, per_micro_batch, got 'per_token'",
                error(BASE.replace("max_steps: 10", "max_steps: 10, lr_schedule: per_token")));
        assertEquals("config.yaml: train.spike_window must be 0 (off) or at least 2 steps, got 1",
                error(BASE.replace("max_steps: 10", "max_steps: 10, spike_window: 1")));
        assertEquals("config.yaml: train.spike_sigma must be positive, got 0.0",
                error(BASE.replace("max_steps: 10", "max_steps: 10, spike_window: 8, spike_sigma: 0")));
        assertEquals("config.yaml: train.spike_max_in_row must be at least 1, got 0",
                error(BASE.replace("max_steps: 10", "max_steps: 10, spike_max_in_row: 0")));
        assertEquals("config.yaml: train.z_loss must be 0 (off) or positive, got -1.0E-4",
                error(BASE.replace("max_steps: 10", "max_steps: 10, z_loss: -1.0e-4")));
        assertEquals("config.yaml: train.z_loss is computed by the CPU backend's cross-entropy only so far; set it to 0 on cuda",
                error(BASE.replace("max_steps: 10", "max_steps: 10, z_loss: 1.0e-4, device: cuda")));
        TrainingConfig.Train defaults = ConfigLoader.parse("config.yaml", BASE, List.of()).config().train();
        assertEquals(0.0, defaults.zLoss()); // off unless asked for
        assertEquals("per_step", defaults.lrSchedule());
        assertEquals(0, defaults.spikeWindow()); // off unless asked for
    }

    @Test
    void evaluationTaskKeysAreChecked() {
        assertEquals("config.yaml: eval.tasks[1] unknown task 'mmlu' (expected one of hellaswag, piqa, arc_easy, arc_challenge, "
                + "winogrande, boolq, openbookqa)", error(BASE + "eval: {tasks: [piqa, mmlu], task_data: /x}"));
        assertEquals("config.yaml: eval.tasks[1] 'piqa' is listed twice", error(BASE + "eval: {tasks: [piqa, piqa], task_data: /x}"));
        assertEquals("config.yaml: eval.task_data is required with eval.tasks: the directory of <task>.jsonl or <task>.parquet files",
                error(BASE + "eval: {tasks: [piqa]}"));
        assertEquals("config.yaml: eval.task_data is set but eval.tasks is empty", error(BASE + "eval: {task_data: /x}"));
        assertEquals("config.yaml: eval.task_limit must be at least 1, got 0",
                error(BASE + "eval: {tasks: [boolq], task_data: /x, task_limit: 0}"));
        assertEquals("config.yaml: eval.interval is set but there is nothing to evaluate (data.val_blocks is 0 and eval.tasks is empty)",
                error(BASE.replace("data:", "data:\n  val_blocks: 0") + "eval: {interval: 5}"));
        // tasks alone make an interval meaningful
        TrainingConfig.Eval eval = ConfigLoader.parse("config.yaml", BASE.replace("data:", "data:\n  val_blocks: 0")
                + "eval: {interval: 5, tasks: [boolq], task_data: /x}", List.of("eval.task_limit=20")).config().eval();
        assertEquals(List.of("boolq"), eval.tasks());
        assertEquals(20, eval.taskLimit());
    }

    @Test
    void setOverridesUseTheSamePaths() {
        ConfigLoader.Loaded loaded = ConfigLoader.parse("config.yaml", BASE,
                List.of("train.lr=3e-4", "train.max_steps=20", "data.sources.0.weight=0.25", "eval.interval=5", "model.layers=1"));
        assertEquals(3e-4, loaded.config().train().lr());
        assertEquals(20, loaded.shape().maxSteps());
        assertEquals(0.25, loaded.config().data().sources().getFirst().weight());
        assertEquals(1, loaded.shape().model().layers());
        assertEquals(4, loaded.shape().accumulation());
        assertStarts("--set train.lerning_rate: unknown key train.lerning_rate", error(BASE, "train.lerning_rate=1"));
        assertStarts("--set train.micro_batch_size: expected an integer", error(BASE, "train.micro_batch_size=abc"));
        assertStarts("--set data.sources.3.weight: data.sources is a list of 1 entries", error(BASE, "data.sources.3.weight=1"));
        assertStarts("--set train: expected key.path=value", error(BASE, "train"));
    }

    @Test
    void effectiveConfigRoundTrips() {
        ConfigLoader.Loaded loaded = ConfigLoader.parse("config.yaml", BASE, List.of());
        String yaml = ConfigLoader.toYaml(loaded.config());
        assertTrue(yaml.contains("weight_decay: 0.1"), yaml);
        assertEquals(loaded.config(), ConfigLoader.parse("again.yaml", yaml, List.of()).config());
    }

    @Test
    void shippedRecipesParse() {
        ConfigLoader.Loaded demo = ConfigLoader.parse("demo", ConfigLoader.demoYaml(), List.of());
        assertEquals("demo-9m", demo.shape().model().name());
        assertEquals(2, demo.config().data().sources().size());
        assertEquals(ConfigLoader.load(Path.of("..", "configs", "demo-cpu.yaml"), List.of()).config(), demo.config());
        ConfigLoader.Loaded big = ConfigLoader.load(Path.of("..", "configs", "tinyllama-1.1b-3t.yaml"), List.of());
        assertEquals(16, big.shape().worldSize());
        assertEquals(0.693584, big.config().data().sources().get(0).weight());
        assertEquals(0.306416, big.config().data().sources().get(1).weight());
        assertEquals(3407, big.config().train().seed());
    }

    @Test
    void textThatIsNotUtf8IsNamedWithItsOffset(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("config.yaml");
        // "train:\n" is bytes 0-6, "  lr: 1" bytes 7-13, so the stray 0xFF is byte 14
        byte[] prefix = "train:\n  lr: 1".getBytes(StandardCharsets.US_ASCII);
        byte[] bytes = new byte[prefix.length + 2];
        System.arraycopy(prefix, 0, bytes, 0, prefix.length);
        bytes[prefix.length] = (byte) 0xFF;
        bytes[prefix.length + 1] = '\n';
        Files.write(file, bytes);
        assertEquals(file + ": not UTF-8 text (invalid byte 0xFF at offset 14)", fileError(file));
    }

    @Test
    void emptyEntriesAndSectionsAreNamed() {
        String noSource = BASE.replace("- {name: a, path: /data/a, weight: 0.7}", "- ~");
        assertEquals("config.yaml: data.sources[0] is empty (null); give it a value or remove it", error(noSource));
        assertEquals("config.yaml: data.sources[0] is empty (null); give it a value or remove it",
                error(BASE.replace("sources:\n    - {name: a, path: /data/a, weight: 0.7}", "sources: [null]")));
        assertEquals("config.yaml: data.sources[0].prepare.inputs[1] is empty (null); give it a value or remove it",
                error(BASE.replace("weight: 0.7}", "weight: 0.7, prepare: {format: text, inputs: [a.txt, ~]}}")));
        assertEquals("--set data.sources[0] is empty (null); give it a value or remove it", error(BASE, "data.sources.0=~"));
        // An empty value is YAML's null, as ~ is: the section takes its defaults.
        String emptyData = "model: {preset: test-tiny}\ndata:\ntrain: {seq_len: 16, global_batch_size: 8, max_steps: 10}\n";
        assertEquals("config.yaml: data.sources at least one source is required", error(emptyData));
        assertEquals(error(emptyData), error(emptyData.replace("data:", "data: ~")));
    }

    @Test
    void nonFiniteNumbersAreRefusedByKey() {
        String[] keys = {"lr", "min_lr", "beta1", "beta2", "eps", "weight_decay", "grad_clip"};
        for (String literal : List.of(".nan", ".NaN", ".inf", "-.inf", "+.Inf", "1e400", "-1e400")) {
            for (String key : keys) {
                assertEquals("config.yaml: train." + key + ": " + literal + " is not a finite number (line 5)",
                        error(BASE.replace("max_steps: 10}", "max_steps: 10, " + key + ": " + literal + "}")));
            }
            assertEquals("config.yaml: data.sources[0].weight: " + literal + " is not a finite number (line 4)",
                    error(BASE.replace("weight: 0.7", "weight: " + literal)));
            assertEquals("config.yaml: model.norm_eps: " + literal + " is not a finite number (line 1)",
                    error(BASE.replace("preset: test-tiny", "preset: test-tiny, norm_eps: " + literal)));
            assertEquals("config.yaml: model.rope_theta: " + literal + " is not a finite number (line 1)",
                    error(BASE.replace("preset: test-tiny", "preset: test-tiny, rope_theta: " + literal)));
            assertEquals("config.yaml: logging.peak_tflops: " + literal + " is not a finite number (line 6)",
                    error(BASE + "logging: {peak_tflops: " + literal + "}\n"));
            assertEquals("--set train.lr: " + literal + " is not a finite number (line 1)", error(BASE, "train.lr=" + literal));
            assertEquals("--set train: lr: " + literal + " is not a finite number (line 1)", error(BASE, "train={lr: " + literal + "}"));
        }
        // finite as a double but not as the float32 the model and the optimizer compute in
        assertEquals("config.yaml: model.norm_eps is beyond float32 (3.4028235E38 at most)",
                error(BASE.replace("preset: test-tiny", "preset: test-tiny, norm_eps: 1e39")));
        assertEquals("config.yaml: model.rope_theta is beyond float32 (3.4028235E38 at most)", error(BASE, "model.rope_theta=1e39"));
        assertEquals("config.yaml: train.lr 1.0E300 is beyond float32 (3.4028235E38 at most)", error(BASE, "train.lr=1e300"));
        assertEquals("config.yaml: train.eps must be positive as a float32, got 1.0E-50", error(BASE, "train.eps=1e-50"));
        assertEquals("config.yaml: train.beta2 must be in [0, 1) as a float32, got 0.9999999999",
                error(BASE, "train.beta2=0.9999999999"));
        assertEquals("config.yaml: train.weight_decay 1.0E300 is beyond float32 (3.4028235E38 at most)", error(BASE, "train.weight_decay=1e300"));
        assertEquals("config.yaml: data.sources weights add up to more than a double holds; scale them down",
                error(BASE.replace("- {name: a, path: /data/a, weight: 0.7}",
                        "- {name: a, path: /data/a, weight: 1.0e308}\n    - {name: b, path: /data/b, weight: 1.0e308}")));
    }

    @Test
    void duplicateKeysAreRefused() {
        assertEquals("config.yaml: duplicate key train.max_steps (line 5)", error(BASE.replace("max_steps: 10}", "max_steps: 10, max_steps: 20}")));
        assertEquals("config.yaml: duplicate key train (line 6)", error(BASE + "train: {max_steps: 20}\n"));
        assertEquals("config.yaml: duplicate key logging.interval (line 8)", error(BASE + "logging:\n  interval: 5\n  interval: 6\n"));
        assertEquals("config.yaml: duplicate key data.sources[0].name (line 4)", error(BASE.replace("name: a,", "name: a, name: b,")));
        assertEquals("--set logging: duplicate key interval (line 1)", error(BASE, "logging={interval: 1, interval: 2}"));
        // --set of one key twice is not a duplicate: the last one wins, as on any command line
        assertEquals(30, ConfigLoader.parse("config.yaml", BASE, List.of("train.max_steps=20", "train.max_steps=30")).shape().maxSteps());
    }

    @Test
    void aliasesAreRefusedNotReadAsTheirName() {
        // the parser hands an alias over as the bare anchor name: path *p would be the directory "p"
        String aliasedPath = BASE.replace("- {name: a, path: /data/a, weight: 0.7}",
                "- {name: a, path: &p /data/a}\n    - {name: b, path: *p}");
        assertEquals("config.yaml: data.sources[1].path: *p is an alias; a config spells every value out (line 5)", error(aliasedPath));
        StringBuilder laughs = new StringBuilder("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (char c = 'b'; c <= 'i'; c++) {
            char previous = (char) (c - 1);
            laughs.append(c).append(": &").append(c).append(" [").append(("*" + previous + ", ").repeat(8)).append('*').append(previous).append("]\n");
        }
        assertEquals("config.yaml: b[0]: *a is an alias; a config spells every value out (line 2)", error(laughs.toString()));
    }

    @Test
    void oversizedConfigIsRefusedBeforeParsing(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("config.yaml");
        String padded = BASE + "#" + "x".repeat(65536 - BASE.length() - 2) + "\n";
        Files.writeString(file, padded);
        assertEquals(65536, Files.size(file));
        assertEquals(10, ConfigLoader.load(file, List.of()).shape().maxSteps());
        Files.writeString(file, padded + "\n");
        assertEquals(file + " is 65537 bytes; a config may be at most 65536 (a recipe is a few KB)", fileError(file));
        assertEquals("config.yaml: 65537 characters; a config may be at most 65536 (a recipe is a few KB)", error(padded + "\n"));
        assertEquals("--set train.lr: 65537 characters; a config may be at most 65536 (a recipe is a few KB)",
                error(BASE, "train.lr=" + "1".repeat(65537)));
    }

    @Test
    void countsThatWouldOverflowAreRefusedByKey() {
        assertEquals("config.yaml: train.warmup_steps 9223372036854775000 is more than 2147483647, the most steps a run can have",
                error(BASE, "train.warmup_steps=9223372036854775000"));
        assertEquals("config.yaml: train.max_steps 9223372036854775807 is more than 2147483647, the most steps a run can have",
                error(BASE, "train.max_steps=9223372036854775807"));
        // 8 sequences x 16 tokens = 128 tokens a step; (2^63 - 1) / 128 rounds up to 2^56 steps
        assertEquals("config.yaml: train.max_tokens 9223372036854775807 is 72057594037927936 steps of 128 tokens, "
                        + "more than 2147483647, the most steps a run can have",
                error(BASE.replace("max_steps: 10", "max_tokens: 9223372036854775807")));
        // 2^63 - 16 tokens / 16 = 2^59 - 1 sequences
        assertEquals("config.yaml: train.global_batch_tokens 9223372036854775792 is 576460752303423487 sequences of "
                        + "train.seq_len 16, more than 2147483647 a step",
                error(BASE.replace("global_batch_size: 8", "global_batch_tokens: 9223372036854775792")));
        assertEquals("config.yaml: train.seq_len 2147483647 exceeds the model's max_seq_len 16", error(BASE, "train.seq_len=2147483647"));
        assertEquals("config.yaml: train.micro_batch_size x train.seq_len = 1 x 2147483647 tokens is more than one micro-batch "
                        + "holds (2147483646)",
                error(BASE, "model.max_seq_len=2147483647", "train.seq_len=2147483647", "train.micro_batch_size=1"));
        assertEquals("config.yaml: train.micro_batch_size x train.seq_len = 1073741824 x 16 tokens is more than one micro-batch "
                        + "holds (2147483646)",
                error(BASE, "train.micro_batch_size=1073741824", "train.global_batch_size=1073741824"));
        // 2147483647 sequences x 16 tokens = 34359738352 tokens a step; x 2147483647 steps is past 2^63
        assertEquals("config.yaml: train.max_steps gives 2147483647 steps x 34359738352 tokens a step, "
                        + "more than 9223372036854775807 tokens",
                error(BASE, "train.micro_batch_size=1", "train.global_batch_size=2147483647", "train.max_steps=2147483647"));
        ConfigLoader.Loaded longest = ConfigLoader.parse("config.yaml", BASE, List.of("train.max_steps=2147483647",
                "train.warmup_steps=2147483647", "train.start_step=2147483646"));
        assertEquals(2147483647L, longest.shape().maxSteps());
        assertEquals(2147483647L * 128, longest.shape().maxSteps() * longest.shape().tokensPerStep());
    }
}
