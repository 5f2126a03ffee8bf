package io.tinyllamaj.trainer;

import io.tinyllamaj.trainer.config.ConfigLoader;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

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
        assertStarts("config.yaml: distributed.collective_timeout_s must be at least 1 second",
                error(BASE + "distributed: {collective_timeout_s: 0}\n"));
        assertStarts("config.yaml: train.precision bf16-mixed needs train.device cuda", error(BASE.replace("max_steps: 10", "max_steps: 10, precision: bf16-mixed")));
        assertStarts("config.yaml: data.sources[0].weight must be positive", error(BASE.replace("weight: 0.7", "weight: -1")));
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
}
