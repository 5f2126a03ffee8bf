package io.tinyllamaj.data.shards;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A lit-gpt / TinyLlama {@code PackedDataset} chunk ({@code *.bin}), so data prepared by the
 * original scripts trains as is. Layout (lit-gpt packed_dataset.py): 7 bytes {@code LITPKDS},
 * u64 version 1, u8 dtype code, u64 chunk size (tokens in the file), all little-endian, then
 * exactly chunk-size tokens of that dtype. Dtype codes: 1 uint8, 2 int8, 3 int16, 4 int32,
 * 5 int64, 6 float32, 7 float64, 8 uint16 (TinyLlama writes uint16). Floating-point chunks
 * hold no token ids and are refused.
 */
public final class PackedBinShard extends MappedShard {
    static final byte[] MAGIC = "LITPKDS".getBytes(StandardCharsets.US_ASCII);
    static final int HEADER_BYTES = 24;
    static final long VERSION = 1;

    /** The integer dtypes by lit-gpt code, with their width in bytes; codes 6 and 7 (floats) are absent. */
    enum Dtype {
        UINT8(1, 1), INT8(2, 1), INT16(3, 2), INT32(4, 4), INT64(5, 8), UINT16(8, 2);

        final int code;
        final int width;

        Dtype(int code, int width) {
            this.code = code;
            this.width = width;
        }

        static Dtype of(int code) {
            return Arrays.stream(values()).filter(d -> d.code == code).findFirst().orElse(null);
        }
    }

    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Dtype dtype;
    private final long tokens;

    private PackedBinShard(Path file, Arena arena, MemorySegment mapped, Dtype dtype, long tokens, int vocabSize) {
        super(file, arena, mapped, vocabSize);
        this.dtype = dtype;
        this.tokens = tokens;
    }

    /** @param vocabSize the model's vocabulary: the header holds none, so reads check ids against this */
    public static PackedBinShard open(Path file, int vocabSize) throws IOException {
        return map(file, (arena, mapped) -> {
            long size = mapped.byteSize();
            if (size < HEADER_BYTES) {
                throw new InvalidShardException(file, size + " bytes, shorter than the " + HEADER_BYTES + "-byte LITPKDS header");
            }
            byte[] magic = mapped.asSlice(0, MAGIC.length).toArray(ValueLayout.JAVA_BYTE);
            if (!Arrays.equals(magic, MAGIC)) {
                throw new InvalidShardException(file, "bad magic (expected LITPKDS, a lit-gpt packed dataset chunk)");
            }
            long version = mapped.get(U64, 7);
            if (version != VERSION) {
                throw new InvalidShardException(file, "LITPKDS version " + version + ", this build reads " + VERSION);
            }
            int code = mapped.get(ValueLayout.JAVA_BYTE, 15) & 0xFF;
            Dtype dtype = Dtype.of(code);
            if (dtype == null) {
                throw new InvalidShardException(file, "dtype code " + code + " is not an integer token type");
            }
            long chunkSize = mapped.get(U64, 16);
            long expected = bytesFor(chunkSize, dtype);
            if (expected < 0 || size != expected) {
                throw new InvalidShardException(file, size + " bytes, the header's chunk size "
                        + Long.toUnsignedString(chunkSize) + " of " + dtype + " needs "
                        + (expected < 0 ? "more than any file holds" : Long.toString(expected)));
            }
            return new PackedBinShard(file, arena, mapped, dtype, chunkSize, vocabSize);
        });
    }

    /**
     * The file size a header describes, or -1 when it does not fit a long: a chunk size of
     * 2^61 + 4000 int64s would otherwise wrap to a small size and pass the size check.
     */
    private static long bytesFor(long chunkSize, Dtype dtype) {
        if (chunkSize < 0) {
            return -1; // an unsigned u64 past Long.MAX_VALUE
        }
        try {
            return Math.addExact(HEADER_BYTES, Math.multiplyExact(chunkSize, dtype.width));
        } catch (ArithmeticException e) {
            return -1;
        }
    }

    Dtype dtype() {
        return dtype;
    }

    @Override
    public long tokenCount() {
        return tokens;
    }

    @Override
    public void read(long offset, int[] dst, int dstOffset, int length) {
        requireRange(offset, length);
        long base = HEADER_BYTES + offset * dtype.width;
        for (int i = 0; i < length; i++) {
            long at = base + (long) i * dtype.width;
            dst[dstOffset + i] = switch (dtype) {
                case UINT8 -> mapped.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
                case INT8 -> mapped.get(ValueLayout.JAVA_BYTE, at);
                case INT16 -> mapped.get(I16, at);
                case UINT16 -> mapped.get(I16, at) & 0xFFFF;
                case INT32 -> mapped.get(I32, at);
                case INT64 -> narrow(mapped.get(U64, at), offset + i);
            };
        }
        requireInVocabulary(dst, dstOffset, length, offset);
    }

    /** An int64 id as an int; one too large for an int is outside any vocabulary. */
    private int narrow(long id, long position) {
        if (id != (int) id) {
            throw TokenSources.outsideVocabulary(file, id, position, vocabSize);
        }
        return (int) id;
    }
}
