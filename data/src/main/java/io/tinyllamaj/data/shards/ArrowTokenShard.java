package io.tinyllamaj.data.shards;

import io.tinyllamaj.files.DurableFiles;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BaseFixedWidthVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.UInt2Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.ipc.ArrowFileWriter;
import org.apache.arrow.vector.ipc.ReadChannel;
import org.apache.arrow.vector.ipc.message.ArrowBlock;
import org.apache.arrow.vector.ipc.message.MessageMetadataResult;
import org.apache.arrow.vector.ipc.message.MessageSerializer;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * One token shard: an Arrow IPC file (file format, readable by pyarrow and any Arrow library)
 * with a single non-null column {@code tokens}, uint16 when the vocabulary fits (Llama 2:
 * 32000) and int32 otherwise, in record batches of up to {@value #BATCH_TOKENS} tokens. The
 * schema metadata carries our format name, version and vocabulary size.
 *
 * <p>Writing goes through arrow-vector. Reading does not copy batches into Arrow buffers: the
 * footer and each batch's metadata give where the data buffers lie in the file, and those
 * ranges are read straight from a memory map, so a shard costs no heap however large it is.
 */
public final class ArrowTokenShard extends MappedShard {
    static final String COLUMN = "tokens";
    static final String META_FORMAT = "tinyllamaj.format";
    static final String META_VERSION = "tinyllamaj.version";
    static final String META_VOCAB = "tinyllamaj.vocab_size";
    static final String FORMAT_NAME = "token-shard";
    static final int BATCH_TOKENS = 1 << 20;
    /** The Arrow IPC file format's magic: "ARROW1" padded to 8 bytes at the start, bare at the end. */
    private static final byte[] LEADING_MAGIC = {'A', 'R', 'R', 'O', 'W', '1', 0, 0};
    private static final byte[] TRAILING_MAGIC = {'A', 'R', 'R', 'O', 'W', '1'};

    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final boolean uint16;
    /** batchStart[i]: index of batch i's first token; the last entry is the token count. */
    private final long[] batchStart;
    private final long[] batchDataOffset;

    private ArrowTokenShard(Path file, Arena arena, MemorySegment mapped, boolean uint16, int vocabSize,
                            long[] batchStart, long[] batchDataOffset) {
        super(file, arena, mapped, vocabSize);
        this.uint16 = uint16;
        this.batchStart = batchStart;
        this.batchDataOffset = batchDataOffset;
    }

    /** The column type for a vocabulary: two bytes a token while ids fit in uint16. */
    static boolean fitsUint16(int vocabSize) {
        return vocabSize <= 1 << 16;
    }

    /**
     * Writes {@code tokens[0, count)} to {@code target} whole or not at all ({@link DurableFiles})
     * and returns the file's size and SHA-256 for the manifest.
     */
    public static ShardManifest.Shard write(Path target, int[] tokens, int count, long documents, int vocabSize)
            throws IOException {
        Map<String, String> metadata = new TreeMap<>();
        metadata.put(META_FORMAT, FORMAT_NAME);
        metadata.put(META_VERSION, Integer.toString(ShardManifest.VERSION));
        metadata.put(META_VOCAB, Integer.toString(vocabSize));
        boolean uint16 = fitsUint16(vocabSize);
        ArrowType type = new ArrowType.Int(uint16 ? 16 : 32, !uint16);
        Schema schema = new Schema(List.of(new Field(COLUMN, FieldType.notNullable(type), null)), metadata);
        try (BufferAllocator allocator = new RootAllocator();
             VectorSchemaRoot root = VectorSchemaRoot.create(schema, allocator)) {
            DurableFiles.SYSTEM.replace(target, channel -> {
                try (ArrowFileWriter writer = new ArrowFileWriter(root, null, keptOpen(channel))) {
                    writeBatches(writer, root, tokens, count);
                }
            });
        }
        return new ShardManifest.Shard(target.getFileName().toString(), documents, count, Files.size(target), sha256(target));
    }

    private static void writeBatches(ArrowFileWriter writer, VectorSchemaRoot root, int[] tokens, int count) throws IOException {
        writer.start();
        BaseFixedWidthVector vector = (BaseFixedWidthVector) root.getVector(0);
        for (int start = 0; start < count; start += BATCH_TOKENS) {
            int n = Math.min(BATCH_TOKENS, count - start);
            vector.allocateNew(n);
            if (vector instanceof UInt2Vector u16) {
                for (int i = 0; i < n; i++) {
                    u16.set(i, tokens[start + i]);
                }
            } else {
                IntVector i32 = (IntVector) vector;
                for (int i = 0; i < n; i++) {
                    i32.set(i, tokens[start + i]);
                }
            }
            vector.setValueCount(n);
            root.setRowCount(n);
            writer.writeBatch();
        }
        writer.end();
    }

    /** {@code channel} for Arrow's writer, whose close would otherwise close it before it is flushed to disk. */
    private static WritableByteChannel keptOpen(FileChannel channel) {
        return new WritableByteChannel() {
            @Override
            public int write(ByteBuffer source) throws IOException {
                return channel.write(source);
            }

            @Override
            public boolean isOpen() {
                return channel.isOpen();
            }

            @Override
            public void close() {
            }
        };
    }

    /** Opens and maps a shard, checking its Arrow magic, our format, version and vocabulary. */
    public static ArrowTokenShard open(Path file, int expectedVocabSize) throws IOException {
        List<long[]> batches = new ArrayList<>();
        boolean uint16;
        int vocabSize;
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ);
             BufferAllocator allocator = new RootAllocator();
             ArrowFileReader reader = new ArrowFileReader(channel, allocator)) {
            // Arrow's reader checks the footer's magic only: a damaged start would pass unnoticed.
            checkMagic(file, channel);
            Schema schema;
            List<ArrowBlock> blocks;
            try {
                schema = reader.getVectorSchemaRoot().getSchema();
                blocks = reader.getRecordBlocks();
            } catch (IOException | RuntimeException e) {
                throw new InvalidShardException(file, "not an Arrow IPC file (" + e.getMessage() + ")");
            }
            Map<String, String> metadata = schema.getCustomMetadata() == null ? Map.of() : schema.getCustomMetadata();
            if (!FORMAT_NAME.equals(metadata.get(META_FORMAT))) {
                throw new InvalidShardException(file, "not a token shard (schema metadata " + META_FORMAT + " is "
                        + metadata.get(META_FORMAT) + ")");
            }
            if (!Integer.toString(ShardManifest.VERSION).equals(metadata.get(META_VERSION))) {
                throw new InvalidShardException(file, "shard format version " + metadata.get(META_VERSION)
                        + ", this build reads " + ShardManifest.VERSION);
            }
            vocabSize = parseVocab(file, metadata.get(META_VOCAB));
            if (vocabSize != expectedVocabSize) {
                throw new InvalidShardException(file, "header says vocabulary " + vocabSize + ", the manifest says "
                        + expectedVocabSize);
            }
            uint16 = checkColumn(file, schema, vocabSize);
            for (int i = 0; i < blocks.size(); i++) {
                batches.add(locateData(file, channel, blocks.get(i), i, uint16 ? 2 : 4));
            }
        }
        long[] batchStart = new long[batches.size() + 1];
        long[] dataOffset = new long[batches.size()];
        for (int i = 0; i < batches.size(); i++) {
            batchStart[i + 1] = batchStart[i] + batches.get(i)[0];
            dataOffset[i] = batches.get(i)[1];
        }
        return map(file, (arena, mapped) -> new ArrowTokenShard(file, arena, mapped, uint16, vocabSize, batchStart, dataOffset));
    }

    private static void checkMagic(Path file, FileChannel channel) throws IOException {
        long size = channel.size();
        if (size < LEADING_MAGIC.length + TRAILING_MAGIC.length) {
            throw new InvalidShardException(file, "not an Arrow IPC file (" + size + " bytes, too short)");
        }
        if (!Arrays.equals(readAt(channel, 0, LEADING_MAGIC.length), LEADING_MAGIC)) {
            throw new InvalidShardException(file, "not an Arrow IPC file (it does not start with the magic ARROW1)");
        }
        if (!Arrays.equals(readAt(channel, size - TRAILING_MAGIC.length, TRAILING_MAGIC.length), TRAILING_MAGIC)) {
            throw new InvalidShardException(file, "not an Arrow IPC file (it does not end with the magic ARROW1)");
        }
    }

    private static byte[] readAt(FileChannel channel, long position, int length) throws IOException {
        ByteBuffer bytes = ByteBuffer.allocate(length);
        while (bytes.hasRemaining() && channel.read(bytes, position + bytes.position()) >= 0) {
            // a read may return fewer bytes than asked
        }
        return bytes.array();
    }

    private static int parseVocab(Path file, String value) throws InvalidShardException {
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new InvalidShardException(file, "schema metadata " + META_VOCAB + " is " + value);
        }
    }

    private static boolean checkColumn(Path file, Schema schema, int vocabSize) throws InvalidShardException {
        List<Field> fields = schema.getFields();
        boolean uint16 = fitsUint16(vocabSize);
        ArrowType expected = new ArrowType.Int(uint16 ? 16 : 32, !uint16);
        if (fields.size() != 1 || !COLUMN.equals(fields.getFirst().getName())
                || !expected.equals(fields.getFirst().getType())) {
            throw new InvalidShardException(file, "expected one column '" + COLUMN + "' of " + expected + ", found " + fields);
        }
        // The data buffer of a dictionary-encoded column holds indices into the dictionary, not token ids.
        if (fields.getFirst().getDictionary() != null) {
            throw new InvalidShardException(file, "column '" + COLUMN + "' is dictionary-encoded; a token shard holds the"
                    + " token ids themselves");
        }
        return uint16;
    }

    /** Returns {rows, absolute offset of the data buffer} of one record batch, read from its metadata. */
    private static long[] locateData(Path file, FileChannel channel, ArrowBlock block, int index, int width)
            throws IOException {
        String where = "record batch " + index;
        if (block.getOffset() < 0 || block.getMetadataLength() < 0 || block.getOffset() >= channel.size()) {
            throw new InvalidShardException(file, where + " is outside the file");
        }
        RecordBatch batch;
        try {
            channel.position(block.getOffset());
            MessageMetadataResult message = MessageSerializer.readMessage(new ReadChannel(channel));
            if (message == null || message.getMessage().headerType() != org.apache.arrow.flatbuf.MessageHeader.RecordBatch) {
                throw new InvalidShardException(file, where + " is missing");
            }
            batch = (RecordBatch) message.getMessage().header(new RecordBatch());
        } catch (RuntimeException e) {
            throw new InvalidShardException(file, where + " is unreadable (" + e.getMessage() + ")");
        }
        if (batch.compression() != null) {
            throw new InvalidShardException(file, "compressed record batches are not supported");
        }
        if (batch.buffersLength() != 2 || batch.nodesLength() != 1) {
            throw new InvalidShardException(file, where + " has " + batch.buffersLength() + " buffers and "
                    + batch.nodesLength() + " columns, expected 2 and 1");
        }
        long rows = batch.length();
        if (rows < 0 || batch.nodes(0).length() != rows) {
            throw new InvalidShardException(file, where + " has " + batch.nodes(0).length() + " tokens in a batch of " + rows);
        }
        // A null slot still holds some number in the data buffer, which would be trained on as a token.
        if (batch.nodes(0).nullCount() != 0) {
            throw new InvalidShardException(file, where + " has " + batch.nodes(0).nullCount() + " null tokens");
        }
        long bodyStart = block.getOffset() + block.getMetadataLength();
        long bufferOffset = batch.buffers(1).offset();
        long bufferLength = batch.buffers(1).length();
        long bytes = rows * width; // compared only once rows is known to fit the file, so it cannot have overflowed
        if (bufferOffset < 0 || bufferLength < 0 || rows > channel.size() / width || bufferLength < bytes
                || bufferOffset > channel.size() - bodyStart || bytes > channel.size() - bodyStart - bufferOffset) {
            throw new InvalidShardException(file, where + " runs past the end of the file");
        }
        return new long[] {rows, bodyStart + bufferOffset};
    }

    @Override
    public long tokenCount() {
        return batchStart[batchStart.length - 1];
    }

    @Override
    public void read(long offset, int[] dst, int dstOffset, int length) {
        requireRange(offset, length);
        int batch = batchOf(offset);
        long first = offset;
        int start = dstOffset;
        int count = length;
        while (length > 0) {
            long inBatch = offset - batchStart[batch];
            int n = (int) Math.min(length, batchStart[batch + 1] - offset);
            long base = batchDataOffset[batch];
            if (uint16) {
                for (int i = 0; i < n; i++) {
                    dst[dstOffset + i] = mapped.get(U16, base + (inBatch + i) * 2) & 0xFFFF;
                }
            } else {
                MemorySegment.copy(mapped, I32, base + inBatch * 4, dst, dstOffset, n);
            }
            offset += n;
            dstOffset += n;
            length -= n;
            batch++;
        }
        requireInVocabulary(dst, start, count, first);
    }

    private int batchOf(long offset) {
        return TokenSources.rangeOf(batchStart, batchStart.length - 1, offset);
    }

    static String sha256(Path file) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
        try (DigestInputStream in = new DigestInputStream(Channels.newInputStream(
                FileChannel.open(file, StandardOpenOption.READ)), digest)) {
            in.transferTo(java.io.OutputStream.nullOutputStream());
        }
        return HexFormat.of().formatHex(digest.digest());
    }
}
