package io.tinyllamaj.trainer.checkpoint;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.trainer.config.ConfigLoader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** keep_last beside keep_every, against lists of kept steps worked out by hand. */
class RetentionTest {

    @Test
    void keepsTheNewestAndEveryMilestone() {
        Retention retention = new Retention(3, 5000);
        // checkpoints every 1000 steps up to 12000: newest three 10000, 11000, 12000; milestones 5000, 10000
        List<Long> saved = List.of(1000L, 2000L, 3000L, 4000L, 5000L, 6000L, 7000L, 8000L, 9000L, 10000L, 11000L, 12000L);
        assertEquals(List.of(1000L, 2000L, 3000L, 4000L, 6000L, 7000L, 8000L, 9000L), retention.prune(saved, 12000));
        // a SIGTERM checkpoint at 12345 pushes 10000 out of the newest three; it stays as a milestone
        assertEquals(List.of(), retention.prune(List.of(5000L, 10000L, 11000L, 12000L, 12345L), 12345));
        assertEquals(List.of(11000L), retention.prune(List.of(5000L, 10000L, 11000L, 12000L, 12345L, 13000L), 13000));
    }

    @Test
    void withoutMilestonesOnlyTheNewestStay() {
        assertEquals(List.of(2L, 4L), Retention.last(2).prune(List.of(2L, 4L, 6L, 8L), 8));
        assertEquals(List.of(), Retention.last(2).prune(List.of(6L, 8L), 8));
        // latest is never removed, even when it is not among the newest (a resume from an older one)
        assertEquals(List.of(2L), Retention.last(1).prune(List.of(2L, 4L, 6L), 4));
        assertEquals(List.of(2L, 6L), Retention.last(1).prune(List.of(2L, 4L, 6L, 8L), 4));
    }

    @Test
    void refusesNonsense() {
        assertThrows(IllegalArgumentException.class, () -> new Retention(0, 0));
        assertThrows(IllegalArgumentException.class, () -> new Retention(1, -5));
    }

    @Test
    void theConfigKeyIsAMultipleOfTheInterval() {
        String demo = ConfigLoader.demoYaml();
        assertEquals(new Retention(3, 400), ConfigLoader.parse("demo.yaml", demo,
                List.of("checkpoint.interval=100", "checkpoint.keep_last=3", "checkpoint.keep_every=400")).config().checkpoint().retention());
        assertEquals(0L, ConfigLoader.parse("demo.yaml", demo, List.of()).config().checkpoint().keepEvery());
        assertEquals("demo.yaml: checkpoint.keep_every must be a multiple of checkpoint.interval (100), got 250",
                assertThrows(IllegalArgumentException.class, () -> ConfigLoader.parse("demo.yaml", demo,
                        List.of("checkpoint.interval=100", "checkpoint.keep_every=250"))).getMessage());
        assertEquals("demo.yaml: checkpoint.keep_every must not be negative, got -1",
                assertThrows(IllegalArgumentException.class, () -> ConfigLoader.parse("demo.yaml", demo,
                        List.of("checkpoint.keep_every=-1"))).getMessage());
    }

    @Test
    void theStorePrunesToTheSameSteps(@TempDir Path run) throws Exception {
        CpuBackend backend = new CpuBackend();
        Tensor params = backend.allocate(4), m = backend.allocate(4), v = backend.allocate(4);
        CheckpointStore store = new CheckpointStore(run);
        for (long step = 2; step <= 24; step += 2) {
            store.save(step, backend, params, m, v, 0, CheckpointStore.Writer.SINGLE, JsonNodeFactory.instance.objectNode(),
                    new Retention(2, 8));
        }
        // newest two: 22, 24; milestones: 8, 16, 24
        assertEquals(List.of(8L, 16L, 22L, 24L), store.completeCheckpoints().stream().map(CheckpointStore::stepOf).toList());
        assertEquals(CheckpointStore.name(24), Files.readString(store.directory().resolve(CheckpointStore.LATEST)).strip());
    }
}
