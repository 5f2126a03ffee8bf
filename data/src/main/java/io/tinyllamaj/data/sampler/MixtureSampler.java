package io.tinyllamaj.data.sampler;

import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Draws training blocks of {@code seqLen + 1} tokens (inputs plus the shifted targets) from a
 * weighted mixture of token sources, the way TinyLlama samples SlimPajama and StarCoderData 7:3.
 *
 * <p><b>Blocks.</b> Source s with N tokens is cut into {@code B = N / (seqLen+1)} consecutive,
 * non-overlapping blocks; the last {@code N mod (seqLen+1)} tokens are never used (the dropped
 * tail). The last {@code valBlocksPerSource} blocks are the validation set and never trained on;
 * the first {@code T = B - valBlocksPerSource} are the training blocks.
 *
 * <p><b>Epochs.</b> Each epoch of a source is a fresh permutation of its T training blocks,
 * keyed by the seed, the source's name and the epoch number; when all T have been drawn, the
 * source starts its next epoch. Every training block is drawn exactly once per epoch.
 *
 * <p><b>Ranks: one global stream.</b> The draws form one sequence for the whole job, the
 * same for every world size: draw g picks a source and that source's next permutation entry.
 * Rank r of W takes the draws r, r+W, r+2W, ...: each call to {@link #nextBlock} advances
 * the global counters by one round of W draws (all ranks compute every choice, which costs a
 * few arithmetic operations per draw) and reads only this rank's block. So a step of G
 * sequences reads the same G blocks on 1 rank or on W ranks, whatever the mixture weights,
 * no two ranks ever share a draw, and the position (taken between rounds) is identical on
 * every rank and valid for any other world size: a checkpoint reshards without replaying.
 *
 * <p><b>Mixture.</b> Which source the next block comes from is decided without randomness:
 * the source with the smallest {@code (blocksDrawn + 0.5) / weight} (ties: the earlier source),
 * so the realised shares follow the weights to within one block at every point, and the
 * choice depends on the counters alone.
 *
 * <p><b>Position.</b> Everything above is a function of the seed and a few counters per source,
 * so {@link #state()} is a small record, and {@link #restore} continues with exactly the block
 * that would have come next; nothing is replayed.
 */
public final class MixtureSampler {

    /**
     * The complete sampler position, the same on every rank; saved in checkpoints (Jackson
     * serialises records as is). {@code rank} and {@code worldSize} record who saved it; a
     * position restores on any rank of any world size.
     */
    public record State(long seed, int seqLen, int rank, int worldSize, boolean shuffle, List<SourcePosition> sources) {
        public State {
            if (sources == null || sources.stream().anyMatch(Objects::isNull)) {
                throw new IllegalArgumentException("the data position lists no sources or a null one");
            }
            sources = List.copyOf(sources);
        }
    }

    /** One source's position: its epoch, blocks drawn (by all ranks) in that epoch, and in total. */
    public record SourcePosition(String name, long trainingBlocks, long epoch, long positionInEpoch, long blocksDrawn) {
        public SourcePosition {
            if (trainingBlocks < 0 || epoch < 0 || positionInEpoch < 0 || blocksDrawn < 0) {
                throw new IllegalArgumentException("source " + name + " has a negative count (trainingBlocks " + trainingBlocks
                        + ", epoch " + epoch + ", positionInEpoch " + positionInEpoch + ", blocksDrawn " + blocksDrawn + ")");
            }
        }
    }

    private final List<WeightedSource> sources;
    private final int seqLen;
    private final int blockLength;
    private final long seed;
    private final int rank;
    private final int worldSize;
    private final boolean shuffle;
    private final int valBlocksPerSource;
    private final long[] trainingBlocks;
    private final long[] epoch;
    private final long[] positionInEpoch;
    private final long[] blocksDrawn;
    private final BlockPermutation[] permutation;

    public MixtureSampler(List<WeightedSource> sources, int seqLen, long seed, int rank, int worldSize,
                          int valBlocksPerSource) {
        this(sources, seqLen, seed, rank, worldSize, valBlocksPerSource, true);
    }

    /** @param shuffle false reads each source's blocks in order, every epoch (for debugging and tests) */
    public MixtureSampler(List<WeightedSource> sources, int seqLen, long seed, int rank, int worldSize,
                          int valBlocksPerSource, boolean shuffle) {
        if (sources.isEmpty()) {
            throw new IllegalArgumentException("the mixture has no sources");
        }
        if (seqLen < 1) {
            throw new IllegalArgumentException("seq_len must be positive, got " + seqLen);
        }
        if (worldSize < 1 || rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank " + rank + " is outside a world of " + worldSize);
        }
        if (valBlocksPerSource < 0) {
            throw new IllegalArgumentException("validation blocks per source must be >= 0, got " + valBlocksPerSource);
        }
        this.sources = List.copyOf(sources);
        this.seqLen = seqLen;
        this.blockLength = seqLen + 1;
        this.seed = seed;
        this.rank = rank;
        this.worldSize = worldSize;
        this.shuffle = shuffle;
        this.valBlocksPerSource = valBlocksPerSource;
        int n = sources.size();
        trainingBlocks = new long[n];
        epoch = new long[n];
        positionInEpoch = new long[n];
        blocksDrawn = new long[n];
        permutation = new BlockPermutation[n];
        for (int s = 0; s < n; s++) {
            WeightedSource source = sources.get(s);
            long blocks = source.tokens().tokenCount() / blockLength;
            trainingBlocks[s] = blocks - valBlocksPerSource;
            if (trainingBlocks[s] < 1) {
                throw new IllegalArgumentException("source " + source.name() + " (" + source.tokens().name() + ") has "
                        + blocks + " blocks of " + blockLength + " tokens; it needs at least " + valBlocksPerSource
                        + " for validation plus one for training");
            }
            permutation[s] = permutationFor(s, 0);
        }
    }

    /** Fills {@code dst} (length seqLen + 1) with this rank's block of the next round of draws. */
    public void nextBlock(int[] dst) {
        if (dst.length != blockLength) {
            throw new IllegalArgumentException("block buffer holds " + dst.length + " tokens, expected seq_len + 1 = " + blockLength);
        }
        int mine = -1;
        long block = -1;
        for (int draw = 0; draw < worldSize; draw++) {
            int s = nextSource();
            if (positionInEpoch[s] == trainingBlocks[s]) {
                epoch[s]++;
                positionInEpoch[s] = 0;
                permutation[s] = permutationFor(s, epoch[s]);
            }
            if (draw == rank) {
                mine = s;
                block = permutation[s].apply(positionInEpoch[s]);
            }
            positionInEpoch[s]++;
            blocksDrawn[s]++;
        }
        readBlock(mine, block, dst);
    }

    /** Reads block {@code block} of source {@code s}; a bad token's message gains the source's name. */
    private void readBlock(int s, long block, int[] dst) {
        try {
            sources.get(s).tokens().read(block * blockLength, dst, 0, blockLength);
        } catch (UncheckedIOException e) {
            throw new UncheckedIOException("data source " + sources.get(s).name() + ": " + e.getMessage(), e.getCause());
        }
    }

    private int nextSource() {
        int best = 0;
        double bestKey = Double.POSITIVE_INFINITY;
        for (int s = 0; s < sources.size(); s++) {
            double key = (blocksDrawn[s] + 0.5) / sources.get(s).weight();
            if (key < bestKey) {
                bestKey = key;
                best = s;
            }
        }
        return best;
    }

    private BlockPermutation permutationFor(int s, long epochNumber) {
        long key = BlockPermutation.mix(seed ^ BlockPermutation.mix(sources.get(s).name().hashCode()))
                + BlockPermutation.mix(epochNumber + 1);
        return new BlockPermutation(trainingBlocks[s], key, shuffle);
    }

    public State state() {
        List<SourcePosition> positions = new ArrayList<>();
        for (int s = 0; s < sources.size(); s++) {
            positions.add(new SourcePosition(sources.get(s).name(), trainingBlocks[s], epoch[s], positionInEpoch[s],
                    blocksDrawn[s]));
        }
        return new State(seed, seqLen, rank, worldSize, shuffle, positions);
    }

    /**
     * Continues from a saved position, on any rank of any world size (the position is global);
     * refuses one taken with other data, seed or length.
     */
    public void restore(State state) {
        requireSame("seed", state.seed(), seed);
        requireSame("seq_len", state.seqLen(), seqLen);
        if (state.shuffle() != shuffle) {
            throw new IllegalArgumentException("cannot resume: the data position was saved with shuffle=" + state.shuffle());
        }
        if (state.sources().size() != sources.size()) {
            throw new IllegalArgumentException("cannot resume: the data position has " + state.sources().size()
                    + " sources, the mixture has " + sources.size());
        }
        for (int s = 0; s < sources.size(); s++) {
            SourcePosition saved = state.sources().get(s);
            String name = sources.get(s).name();
            if (saved.name() == null) {
                throw new IllegalArgumentException("cannot resume: source " + s + " was saved without a name, now " + name);
            }
            if (!saved.name().equals(name)) {
                throw new IllegalArgumentException("cannot resume: source " + s + " was " + saved.name() + ", now " + name);
            }
            requireSame("training blocks of " + name, saved.trainingBlocks(), trainingBlocks[s]);
        }
        for (int s = 0; s < sources.size(); s++) {
            SourcePosition saved = state.sources().get(s);
            if (saved.positionInEpoch() < 0 || saved.positionInEpoch() > trainingBlocks[s] || saved.epoch() < 0) {
                throw new IllegalArgumentException("cannot resume: position " + saved.positionInEpoch() + " of epoch "
                        + saved.epoch() + " is outside source " + saved.name());
            }
            epoch[s] = saved.epoch();
            positionInEpoch[s] = saved.positionInEpoch();
            blocksDrawn[s] = saved.blocksDrawn();
            permutation[s] = permutationFor(s, epoch[s]);
        }
    }

    private static void requireSame(String what, long saved, long now) {
        if (saved != now) {
            throw new IllegalArgumentException("cannot resume: the data position was saved with " + what + " " + saved
                    + ", this run has " + now);
        }
    }

    /** Tokens drawn from each source by all ranks together, training blocks only. */
    public Map<String, Long> tokensPerSource() {
        Map<String, Long> tokens = new LinkedHashMap<>();
        for (int s = 0; s < sources.size(); s++) {
            tokens.put(sources.get(s).name(), blocksDrawn[s] * blockLength);
        }
        return tokens;
    }

    /** Completed-epoch count per source (0 during the first pass). */
    public Map<String, Long> epochs() {
        Map<String, Long> epochs = new LinkedHashMap<>();
        for (int s = 0; s < sources.size(); s++) {
            epochs.put(sources.get(s).name(), epoch[s]);
        }
        return epochs;
    }

    /**
     * Up to {@code max} held-out blocks, taken in turn from each source (block i of every source
     * before block i+1 of any), the same on every rank.
     */
    public List<int[]> validationBlocks(int max) {
        List<int[]> blocks = new ArrayList<>();
        for (int i = 0; i < valBlocksPerSource && blocks.size() < max; i++) {
            for (int s = 0; s < sources.size() && blocks.size() < max; s++) {
                int[] block = new int[blockLength];
                readBlock(s, trainingBlocks[s] + i, block);
                blocks.add(block);
            }
        }
        return blocks;
    }

    /** The source name of each block {@link #validationBlocks}({@code max}) returns, in the same order. */
    public List<String> validationBlockSources(int max) {
        List<String> names = new ArrayList<>();
        for (int i = 0; i < valBlocksPerSource && names.size() < max; i++) {
            for (int s = 0; s < sources.size() && names.size() < max; s++) {
                names.add(sources.get(s).name());
            }
        }
        return names;
    }
}
