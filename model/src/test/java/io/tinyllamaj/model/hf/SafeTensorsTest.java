package io.tinyllamaj.model.hf;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The reader against files written byte by byte here: tensors must tile the data area exactly
 * once each, as the reference safetensors library requires.
 */
class SafeTensorsTest {

    @TempDir
    Path temp;

    /** 8-byte little-endian header length, the header, then {@code floats} as little-endian fp32. */
    private Path file(String header, float... floats) throws IOException {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer bytes = ByteBuffer.allocate(8 + json.length + 4 * floats.length).order(ByteOrder.LITTLE_ENDIAN);
        bytes.putLong(json.length).put(json);
        for (float f : floats) {
            bytes.putFloat(f);
        }
        Path file = temp.resolve("t.safetensors");
        Files.write(file, bytes.array());
        return file;
    }

    private static String tensor(String name, int elements, int begin, int end) {
        return "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + elements + "],\"data_offsets\":[" + begin + "," + end + "]}";
    }

    private static String refusal(Path file) {
        return assertThrows(IOException.class, () -> SafeTensors.open(file).close()).getMessage();
    }

    @Test
    void tensorsInAnyHeaderOrderThatTileTheDataAreRead() throws IOException {
        // b holds bytes [0, 8), the empty tensor e sits at 8, a holds [8, 16)
        Path file = file("{" + tensor("a", 2, 8, 16) + "," + tensor("e", 0, 8, 8) + "," + tensor("b", 2, 0, 8) + "}",
                1f, 2f, 3f, 4f);
        try (SafeTensors t = SafeTensors.open(file)) {
            float[] a = new float[2], b = new float[2];
            t.readInto("a", new long[]{2}, a, 0);
            t.readInto("b", new long[]{2}, b, 0);
            assertArrayEquals(new float[]{3f, 4f}, a);
            assertArrayEquals(new float[]{1f, 2f}, b);
        }
    }

    @Test
    void overlappingTensorsAreRefusedNamingBoth() throws IOException {
        Path file = file("{" + tensor("a", 2, 0, 8) + "," + tensor("b", 2, 4, 12) + "}", 1f, 2f, 3f);
        assertEquals(file + ": tensors a [0, 8) and b [4, 12) overlap", refusal(file));
    }

    @Test
    void aTensorListedTwiceIsRefused() throws IOException {
        Path file = file("{" + tensor("a", 2, 0, 8) + "," + tensor("a", 2, 8, 16) + "}", 1f, 2f, 3f, 4f);
        assertEquals(file + ": tensor a is listed twice in the header", refusal(file));
    }

    @Test
    void bytesThatBelongToNoTensorAreRefused() throws IOException {
        Path gap = file("{" + tensor("a", 2, 0, 8) + "," + tensor("b", 1, 12, 16) + "}", 1f, 2f, 3f, 4f);
        assertEquals(gap + ": data bytes [8, 12) belong to no tensor (between a and b)", refusal(gap));
        Path leading = file("{" + tensor("a", 1, 4, 8) + "}", 1f, 2f);
        assertEquals(leading + ": data bytes [0, 4) belong to no tensor (before a)", refusal(leading));
        Path trailing = file("{" + tensor("a", 1, 0, 4) + "}", 1f, 2f);
        assertEquals(trailing + ": data bytes [4, 8) belong to no tensor (after a)", refusal(trailing));
    }

    @Test
    void aShapeWhoseSizeOverflowsIsRefused() throws IOException {
        // 2^62 x 4 elements of 4 bytes wrap to 0 in a long: it must not pass as an empty tensor
        Path file = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,0]}}");
        assertEquals(file + ": tensor a has shape [4611686018427387904, 4], more values than a file can hold", refusal(file));
    }
}
