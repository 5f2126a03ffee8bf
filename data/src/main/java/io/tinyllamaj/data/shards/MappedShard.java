package io.tinyllamaj.data.shards;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A token file read through one read-only memory map that lives until {@link #close}: what
 * the two shard formats hold and check the same way (the file, its map, the vocabulary every
 * id read must be below).
 */
abstract sealed class MappedShard implements TokenSource permits ArrowTokenShard, PackedBinShard {

    final Path file;
    final MemorySegment mapped;
    final int vocabSize;
    private final Arena arena;

    MappedShard(Path file, Arena arena, MemorySegment mapped, int vocabSize) {
        this.file = file;
        this.arena = arena;
        this.mapped = mapped;
        this.vocabSize = vocabSize;
    }

    /** Builds a shard from the whole file mapped; the map is released if that fails. */
    interface Opener<S> {
        S open(Arena arena, MemorySegment mapped) throws IOException;
    }

    static <S extends MappedShard> S map(Path file, Opener<S> opener) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            return opener.open(arena, channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena));
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Refuses a read outside the file's tokens. */
    final void requireRange(long offset, int length) {
        TokenSources.requireRange(name(), offset, length, tokenCount());
    }

    /** Refuses ids just read that the model cannot embed, naming the file and position. */
    final void requireInVocabulary(int[] ids, int from, int count, long position) {
        TokenSources.requireInVocabulary(file, ids, from, count, position, vocabSize);
    }

    @Override
    public final String name() {
        return file.toString();
    }

    @Override
    public final void close() {
        arena.close();
    }
}
