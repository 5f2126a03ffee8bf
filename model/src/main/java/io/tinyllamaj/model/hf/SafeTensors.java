package io.tinyllamaj.model.hf;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.files.DurableFiles;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header mapping each
 * tensor name to {dtype, shape, data_offsets} (offsets relative to the end of the header),
 * then the raw little-endian data. Reading maps the file and converts one tensor at a time to
 * fp32; every offset and size is checked against the file so a truncated or damaged file
 * fails with a message naming the file and the tensor.
 */
public final class SafeTensors implements WeightFile {

    public enum DType {
        F32(4), BF16(2), F16(2);

        final int bytes;

        DType(int bytes) {
            this.bytes = bytes;
        }
    }

    public record Info(String name, DType dtype, long[] shape, long begin, long end) {
        public long elements() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path file;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, Info> tensors;
    private final Map<String, String> metadata;

    private SafeTensors(Path file, Arena arena, MemorySegment data, Map<String, Info> tensors, Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    public static SafeTensors open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) {
                throw new IOException(file + ": not a safetensors file (" + size + " bytes, shorter than its header length)");
            }
            MemorySegment whole = channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long headerLength = whole.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            if (headerLength <= 0 || headerLength > size - 8 || headerLength > 100_000_000) {
                throw new IOException(file + ": corrupt or truncated safetensors header (header length " + headerLength
                        + ", file size " + size + ")");
            }
            byte[] headerBytes = whole.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
            MemorySegment data = whole.asSlice(8 + headerLength);
            Map<String, Info> tensors = new LinkedHashMap<>();
            Map<String, String> metadata = new LinkedHashMap<>();
            readHeader(file, headerBytes, data.byteSize(), tensors, metadata);
            requireTiling(file, tensors.values(), data.byteSize());
            return new SafeTensors(file, arena, data, tensors, metadata);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new IOException(file + ": file not found");
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Streams the header's top level, so that a tensor listed twice is seen (a tree keeps only the last). */
    private static void readHeader(Path file, byte[] header, long dataSize, Map<String, Info> tensors, Map<String, String> metadata)
            throws IOException {
        try (JsonParser parser = JSON.createParser(header)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                throw new IOException(file + ": safetensors header is not a JSON object");
            }
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                String name = parser.currentName();
                parser.nextToken();
                JsonNode value = parser.readValueAsTree();
                if (name.equals("__metadata__")) {
                    value.properties().forEach(m -> metadata.put(m.getKey(), m.getValue().asText()));
                } else if (tensors.containsKey(name)) {
                    throw new IOException(file + ": tensor " + name + " is listed twice in the header");
                } else {
                    tensors.put(name, parseInfo(file, name, value, dataSize));
                }
            }
        } catch (JacksonException e) {
            throw new IOException(file + ": safetensors header is not valid JSON (" + e.getOriginalMessage().lines().findFirst().orElse("") + ")");
        }
    }

    private static Info parseInfo(Path file, String name, JsonNode node, long dataSize) throws IOException {
        String where = file + ": tensor " + name;
        DType dtype;
        try {
            dtype = DType.valueOf(node.path("dtype").asText());
        } catch (IllegalArgumentException e) {
            throw new IOException(where + " has dtype '" + node.path("dtype").asText() + "'; supported: F32, BF16, F16");
        }
        JsonNode shapeNode = node.path("shape");
        JsonNode offsets = node.path("data_offsets");
        if (!shapeNode.isArray() || !offsets.isArray() || offsets.size() != 2 || !allWholeNumbers(shapeNode) || !allWholeNumbers(offsets)) {
            throw new IOException(where + " has a malformed header entry");
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = shapeNode.get(i).longValue();
            if (shape[i] < 0) {
                throw new IOException(where + " has a negative dimension");
            }
        }
        long bytes;
        try {
            bytes = dtype.bytes;
            for (long d : shape) {
                bytes = Math.multiplyExact(bytes, d);
            }
        } catch (ArithmeticException e) {
            throw new IOException(where + " has shape " + Arrays.toString(shape) + ", more values than a file can hold");
        }
        long begin = offsets.get(0).longValue(), end = offsets.get(1).longValue();
        if (begin < 0 || end < begin || end - begin != bytes) {
            throw new IOException(where + " has data offsets [" + begin + ", " + end + ") that do not match shape "
                    + Arrays.toString(shape) + " of " + dtype);
        }
        if (end > dataSize) {
            throw new IOException(where + " ends at byte " + end + " but the file holds only " + dataSize
                    + " data bytes: the file is truncated");
        }
        return new Info(name, dtype, shape, begin, end);
    }

    /** Integers that fit a long: 2.5 or "8" would otherwise be read as 2 and 0. */
    private static boolean allWholeNumbers(JsonNode array) {
        for (JsonNode n : array) {
            if (!n.isIntegralNumber() || !n.canConvertToLong()) {
                return false;
            }
        }
        return true;
    }

    /**
     * The tensors' byte ranges must cover the data area exactly once, as the reference
     * safetensors library requires: an overlap would give two tensors the same bytes (silently
     * wrong weights), a gap or a tail marks a damaged or crafted file.
     */
    private static void requireTiling(Path file, Collection<Info> tensors, long dataSize) throws IOException {
        List<Info> byOffset = tensors.stream().sorted(Comparator.comparingLong(Info::begin).thenComparingLong(Info::end)).toList();
        long covered = 0;
        Info previous = null;
        for (Info t : byOffset) {
            if (t.begin() < covered) {
                throw new IOException(file + ": tensors " + previous.name() + " [" + previous.begin() + ", " + previous.end() + ") and "
                        + t.name() + " [" + t.begin() + ", " + t.end() + ") overlap");
            }
            if (t.begin() > covered) {
                throw unclaimed(file, covered, t.begin(), previous == null ? "before " + t.name() : "between " + previous.name() + " and " + t.name());
            }
            covered = t.end();
            previous = t;
        }
        if (covered < dataSize) {
            throw unclaimed(file, covered, dataSize, previous == null ? "the header lists none" : "after " + previous.name());
        }
    }

    private static IOException unclaimed(Path file, long from, long to, String where) {
        return new IOException(file + ": data bytes [" + from + ", " + to + ") belong to no tensor (" + where + ")");
    }

    public Path file() {
        return file;
    }

    public Map<String, Info> tensors() {
        return tensors;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    @Override
    public java.util.Set<String> names() {
        return tensors.keySet();
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public Info info(String name) throws IOException {
        Info info = tensors.get(name);
        if (info == null) {
            throw new IOException(file + ": tensor " + name + " is missing");
        }
        return info;
    }

    /** Converts a tensor to fp32 into dst[dstOffset ...], checking its shape first. */
    @Override
    public void readInto(String name, long[] expectedShape, float[] dst, int dstOffset) throws IOException {
        Info info = info(name);
        if (!Arrays.equals(info.shape(), expectedShape)) {
            throw new IOException(file + ": tensor " + name + " has shape " + Arrays.toString(info.shape())
                    + ", expected " + Arrays.toString(expectedShape));
        }
        MemorySegment segment = data.asSlice(info.begin(), info.end() - info.begin());
        int n = Math.toIntExact(info.elements());
        switch (info.dtype()) {
            case F32 -> MemorySegment.copy(segment, F32_LE, 0, dst, dstOffset, n);
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOffset + i] = Float.intBitsToFloat(segment.getAtIndex(I16_LE, i) << 16);
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOffset + i] = Float.float16ToFloat(segment.getAtIndex(I16_LE, i));
                }
            }
        }
    }

    @Override
    public void close() {
        arena.close();
    }

    /** A tensor to write: fp32 values, stored as {@code dtype}. */
    public record Entry(String name, long[] shape, float[] values, int offset, DType dtype) {
    }

    /** Writes entries to {@code file} whole or not at all ({@link DurableFiles}): a crash never leaves a half-written file. */
    public static void write(Path file, Iterable<Entry> entries, Map<String, String> metadata) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long cursor = 0;
        for (Entry e : entries) {
            long elements = 1;
            for (long d : e.shape()) {
                elements *= d;
            }
            ObjectNode node = header.putObject(e.name());
            node.put("dtype", e.dtype().name());
            node.putArray("shape").addAll(Arrays.stream(e.shape()).mapToObj(JSON.getNodeFactory()::numberNode).toList());
            node.putArray("data_offsets").add(cursor).add(cursor + elements * e.dtype().bytes);
            cursor += elements * e.dtype().bytes;
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8; // the spec pads the header with spaces to 8 bytes
        DurableFiles.SYSTEM.replace(file, out -> {
            ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
            head.putLong(padded).put(json);
            while (head.hasRemaining()) {
                head.put((byte) ' ');
            }
            DurableFiles.writeFully(out, head.flip());
            ByteBuffer buffer = ByteBuffer.allocateDirect(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
            for (Entry e : entries) {
                long elements = 1;
                for (long d : e.shape()) {
                    elements *= d;
                }
                for (long i = 0; i < elements; i++) {
                    if (buffer.remaining() < 4) {
                        DurableFiles.writeFully(out, buffer.flip());
                        buffer.clear();
                    }
                    float v = e.values()[e.offset() + (int) i];
                    switch (e.dtype()) {
                        case F32 -> buffer.putFloat(v);
                        case BF16 -> buffer.putShort(toBf16(v));
                        case F16 -> buffer.putShort(Float.floatToFloat16(v));
                    }
                }
            }
            DurableFiles.writeFully(out, buffer.flip());
        });
    }

    /** Round to nearest even, as PyTorch's float-to-bfloat16 conversion does. */
    static short toBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        if (Float.isNaN(v)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounding = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
