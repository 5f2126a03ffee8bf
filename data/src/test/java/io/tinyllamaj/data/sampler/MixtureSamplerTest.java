package io.tinyllamaj.data.sampler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * The data position: a restored sampler continues the uninterrupted stream exactly, and every
 * training block is drawn once per epoch across ranks and resumes; plus the mixture and the
 * validation split.
 */
class MixtureSamplerTest {
    private static final int SEQ_LEN = 7;
    private static final int BLOCK = SEQ_LEN + 1;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** SlimPajama-like: 1003 blocks + a 5-token tail; StarCoder-like: 401 blocks + 3. Tokens never overlap. */
    private static List<WeightedSource> mixture() {
        return List.of(
                new WeightedSource("slimpajama", new PositionTokens("slim", 1003L * BLOCK + 5, 0), 0.7),
                new WeightedSource("starcoder", new PositionTokens("star", 401L * BLOCK + 3, 1_000_000), 0.3));
    }

    private static MixtureSampler sampler(int rank, int world, boolean shuffle) {
        return new MixtureSampler(mixture(), SEQ_LEN, 3407, rank, world, 4, shuffle);
    }

    private static List<int[]> draw(MixtureSampler sampler, int n) {
        List<int[]> blocks = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] block = new int[BLOCK];
            sampler.nextBlock(block);
            blocks.add(block);
        }
        return blocks;
    }

    private static MixtureSampler.State roundTrip(MixtureSampler.State state) throws Exception {
        return JSON.readValue(JSON.writeValueAsString(state), MixtureSampler.State.class);
    }

    /** Starcoder's epoch is 397 blocks of the global stream; at 0.3 of 2 draws per round it ends near round 662. */
    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void resumeAtAnyPointContinuesTheUninterruptedStream(boolean shuffle) throws Exception {
        int total = 1500;
        List<int[]> reference = draw(sampler(0, 2, shuffle), total);
        int starcoderEpochEnd = firstDrawOfEpoch(shuffle, 1);
        int[][] stops = {{0}, {1}, {333}, {starcoderEpochEnd}, {starcoderEpochEnd + 1}, {100, 250}};
        for (int[] stopsInOneRun : stops) {
            List<int[]> resumed = new ArrayList<>();
            MixtureSampler current = sampler(0, 2, shuffle);
            int drawn = 0;
            for (int stop : stopsInOneRun) {
                resumed.addAll(draw(current, stop - drawn));
                drawn = stop;
                MixtureSampler.State saved = roundTrip(current.state());
                current = sampler(0, 2, shuffle);
                current.restore(saved);
            }
            resumed.addAll(draw(current, total - drawn));
            for (int i = 0; i < total; i++) {
                assertArrayEquals(reference.get(i), resumed.get(i), "block " + i + " after stops " + List.of(stopsInOneRun));
            }
        }
    }

    /** The draw count at which starcoder's given epoch has just been entered on rank 0 of 2. */
    private static int firstDrawOfEpoch(boolean shuffle, long epoch) {
        MixtureSampler sampler = sampler(0, 2, shuffle);
        int[] block = new int[BLOCK];
        int draws = 0;
        while (sampler.epochs().get("starcoder") < epoch) {
            sampler.nextBlock(block);
            draws++;
        }
        return draws - 1;
    }

    @Test
    void everyTrainingTokenIsDrawnOncePerEpochAcrossRanksEvenAcrossAResume() throws Exception {
        int world = 3;
        long blocks = 1003 - 4;
        List<WeightedSource> single = List.of(new WeightedSource("slim", new PositionTokens("slim", 1003L * BLOCK + 5, 0), 1));
        Set<Integer> seen = new HashSet<>();
        for (int rank = 0; rank < world; rank++) {
            long share = (blocks - rank + world - 1) / world;
            MixtureSampler sampler = new MixtureSampler(single, SEQ_LEN, 7, rank, world, 4);
            List<int[]> drawn = draw(sampler, (int) share / 2);
            MixtureSampler resumed = new MixtureSampler(single, SEQ_LEN, 7, rank, world, 4);
            resumed.restore(roundTrip(sampler.state()));
            drawn.addAll(draw(resumed, (int) (share - share / 2)));
            assertEquals(0L, resumed.epochs().get("slim"));
            for (int[] block : drawn) {
                assertEquals(0, block[0] % BLOCK, "blocks start on block boundaries");
                for (int token : block) {
                    assertTrue(seen.add(token), "token " + token + " drawn twice in one epoch");
                }
            }
            draw(resumed, 1);
            assertEquals(1L, resumed.epochs().get("slim"), "the next draw starts epoch 1");
        }
        // Used: exactly the training blocks. Dropped: the 5-token tail; held out: the last 4 blocks.
        assertEquals(blocks * BLOCK, seen.size());
        for (int token = 0; token < blocks * BLOCK; token++) {
            assertTrue(seen.contains(token), "token " + token + " never drawn");
        }
    }

    @Test
    void realisedShareFollowsTheWeightsAndTokensAreCounted() {
        MixtureSampler sampler = sampler(1, 2, true);
        int slim = 0;
        for (int[] block : draw(sampler, 10_000)) {
            slim += block[0] < 1_000_000 ? 1 : 0;
        }
        for (int[] block : draw(sampler(0, 2, true), 10_000)) {
            slim += block[0] < 1_000_000 ? 1 : 0;
        }
        assertEquals(0.7, slim / 20_000.0, 0.01);
        assertEquals((long) slim * BLOCK, sampler.tokensPerSource().get("slimpajama"), "counted for all ranks");
        assertEquals((long) (20_000 - slim) * BLOCK, sampler.tokensPerSource().get("starcoder"));
        assertTrue(sampler.epochs().get("starcoder") >= 5, "starcoder wrapped into new epochs: " + sampler.epochs());
    }

    @Test
    void validationBlocksNeverAppearInTraining() {
        MixtureSampler sampler = sampler(0, 1, true);
        List<int[]> validation = sampler.validationBlocks(100);
        assertEquals(8, validation.size(), "4 per source");
        assertEquals(999 * BLOCK, validation.get(0)[0], "slimpajama's first held-out block");
        assertEquals(1_000_000 + 397 * BLOCK, validation.get(1)[0], "then starcoder's");
        Set<Integer> held = new HashSet<>();
        validation.forEach(block -> { for (int t : block) held.add(t); });
        for (int[] block : draw(sampler, 5000)) {
            for (int token : block) {
                assertTrue(!held.contains(token), "validation token " + token + " drawn for training");
            }
        }
        assertEquals(2, sampler.validationBlocks(2).size());
    }

    @Test
    void ranksAreDisjointAndUnshuffledRunsReadInOrder() {
        Set<Integer> rank0 = new HashSet<>();
        draw(sampler(0, 2, true), 100).forEach(b -> rank0.add(b[0]));
        draw(sampler(1, 2, true), 100).forEach(b -> assertTrue(!rank0.contains(b[0]), "ranks share block " + b[0]));
        List<int[]> slimInOrder = draw(sampler(0, 1, false), 10).stream().filter(b -> b[0] < 1_000_000).toList();
        assertEquals(0, slimInOrder.get(0)[0]);
        assertEquals(BLOCK, slimInOrder.get(1)[0]);
    }

    /**
     * One global stream: W ranks together read, round by round, exactly the blocks one rank
     * reads, for any mixture weights; a position saved at one world size continues the same
     * stream at another (2 ranks -> 1 -> 3), so checkpoints reshard without replaying.
     */
    @Test
    void ranksSplitOneGlobalStreamAndAPositionReshardsToAnyWorldSize() throws Exception {
        int total = 1200;
        List<int[]> single = draw(sampler(0, 1, true), total);
        List<int[]> merged = new ArrayList<>();
        MixtureSampler.State saved = null;
        int[][] phases = {{2, 300}, {1, 300}, {3, 600}};
        for (int[] phase : phases) {
            int world = phase[0], draws = phase[1];
            List<List<int[]>> perRank = new ArrayList<>();
            MixtureSampler.State next = null;
            for (int rank = 0; rank < world; rank++) {
                MixtureSampler sampler = sampler(rank, world, true);
                if (saved != null) {
                    sampler.restore(roundTrip(saved));
                }
                perRank.add(draw(sampler, draws / world));
                if (rank == 0) {
                    next = sampler.state();
                } else {
                    assertEquals(JSON.writeValueAsString(next.sources()), JSON.writeValueAsString(sampler.state().sources()),
                            "every rank holds the same position");
                }
            }
            for (int i = 0; i < draws / world; i++) {
                for (int rank = 0; rank < world; rank++) {
                    merged.add(perRank.get(rank).get(i));
                }
            }
            saved = next;
        }
        assertEquals(total, merged.size());
        for (int i = 0; i < total; i++) {
            assertArrayEquals(single.get(i), merged.get(i), "draw " + i);
        }
    }

    @Test
    void incompatibleResumeIsRefusedWithOneLine() {
        MixtureSampler.State state = sampler(0, 2, true).state();
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
                () -> new MixtureSampler(mixture(), SEQ_LEN, 1, 0, 2, 4).restore(state));
        assertEquals("cannot resume: the data position was saved with seed 3407, this run has 1", error.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new MixtureSampler(mixture(), SEQ_LEN + 1, 3407, 0, 2, 4).restore(state));
    }

    @Test
    void savedPositionWithNullsIsRefusedWithOneLine() throws Exception {
        String saved = JSON.writeValueAsString(sampler(0, 2, true).state());
        MixtureSampler.State unnamed = JSON.readValue(saved.replace("\"name\":\"slimpajama\"", "\"name\":null"),
                MixtureSampler.State.class);
        assertEquals("cannot resume: source 0 was saved without a name, now slimpajama",
                assertThrows(IllegalArgumentException.class, () -> sampler(0, 2, true).restore(unnamed)).getMessage());

        String nullEntry = saved.replaceFirst("\"sources\":\\[.*]", "\"sources\":[null]");
        Exception error = assertThrows(Exception.class, () -> JSON.readValue(nullEntry, MixtureSampler.State.class));
        assertTrue(error.getMessage().contains("the data position lists no sources or a null one"), error.getMessage());
    }
}
