package io.tinyllamaj.model.hf;

import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.Checkpoints;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.ReferenceLlama;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HfCheckpointTest {

    @TempDir
    Path temp;

    private Path reference() throws IOException {
        return Checkpoints.write(new ReferenceLlama(LlamaConfig.preset("test-tiny"), 3), temp.resolve("ref"));
    }

    @Test
    void exportThenImportIsBitwise() throws IOException {
        LlamaModel model = HfCheckpoint.load(reference(), new CpuBackend());
        HfCheckpoint.save(model, temp.resolve("out"), SafeTensors.DType.F32, Long.MAX_VALUE);
        LlamaModel again = HfCheckpoint.load(temp.resolve("out"), new CpuBackend());
        assertArrayEquals(model.backend().download(model.parameters()), again.backend().download(again.parameters()));
        assertEquals(model.config().withName("x"), again.config().withName("x"));
    }

    @Test
    void shardedExportCarriesAnIndexAndLoadsBitwise() throws IOException {
        LlamaModel model = HfCheckpoint.load(reference(), new CpuBackend());
        HfCheckpoint.save(model, temp.resolve("sharded"), SafeTensors.DType.F32, 4096);
        assertTrue(Files.exists(temp.resolve("sharded/model.safetensors.index.json")));
        assertTrue(Files.exists(temp.resolve("sharded/model-00001-of-00005.safetensors")) || listShards(temp.resolve("sharded")) > 1);
        LlamaModel again = HfCheckpoint.load(temp.resolve("sharded"), new CpuBackend());
        assertArrayEquals(model.backend().download(model.parameters()), again.backend().download(again.parameters()));
    }

    @Test
    void anExportOverAnEarlierOneLeavesNoStaleWeightsBehind() throws IOException {
        LlamaModel first = HfCheckpoint.load(reference(), new CpuBackend());
        LlamaModel second = HfCheckpoint.load(Checkpoints.write(new ReferenceLlama(LlamaConfig.preset("test-tiny"), 4),
                temp.resolve("ref4")), new CpuBackend());
        Path out = temp.resolve("reused");
        HfCheckpoint.save(first, out, SafeTensors.DType.F32, 4096);
        assertTrue(listShards(out) > 1);
        // one file now: the earlier index would be read instead of it, and its shards beside the new config
        HfCheckpoint.save(second, out, SafeTensors.DType.F32, Long.MAX_VALUE);
        assertFalse(Files.exists(out.resolve("model.safetensors.index.json")));
        assertEquals(0, listShards(out));
        LlamaModel read = HfCheckpoint.load(out, new CpuBackend());
        assertArrayEquals(second.backend().download(second.parameters()), read.backend().download(read.parameters()));
        // and back to shards: the single file goes
        HfCheckpoint.save(first, out, SafeTensors.DType.F32, 4096);
        assertFalse(Files.exists(out.resolve("model.safetensors")));
        read = HfCheckpoint.load(out, new CpuBackend());
        assertArrayEquals(first.backend().download(first.parameters()), read.backend().download(read.parameters()));
    }

    @Test
    void aWriteThatFailsNamesTheFileAndTheSpaceLeftAndLeavesNoTemporary() throws IOException {
        LlamaModel model = HfCheckpoint.load(reference(), new CpuBackend());
        Path out = temp.resolve("out");
        // a directory in the way makes the final rename fail after the temporary is complete
        Path config = out.resolve(HfCheckpoint.CONFIG);
        Files.createDirectories(config.resolve("in-the-way"));
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.save(model, out, SafeTensors.DType.F32, Long.MAX_VALUE));
        assertTrue(e.getMessage().startsWith("renaming " + config + ".tmp to " + config + " failed: ")
                && e.getMessage().matches(".*; [0-9.]+ (bytes|KiB|MiB|GiB|TiB|PiB|EiB) free on .+"), e.getMessage());
        assertTrue(Files.isRegularFile(out.resolve("model.safetensors")));
        assertEquals(List.of(), temporaries(out));

        Path weights = temp.resolve("weights.safetensors");
        Files.createDirectories(weights.resolve("in-the-way"));
        e = assertThrows(IOException.class, () -> SafeTensors.write(weights,
                List.of(new SafeTensors.Entry("w", new long[] {2}, new float[] {1, 2}, 0, SafeTensors.DType.F32)), Map.of()));
        assertTrue(e.getMessage().startsWith("renaming " + weights + ".tmp to " + weights + " failed: ")
                && e.getMessage().contains(" free on "), e.getMessage());
        assertEquals(List.of(), temporaries(temp));
    }

    private static List<Path> temporaries(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            return files.filter(f -> f.getFileName().toString().endsWith(".tmp")).toList();
        }
    }

    private static long listShards(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            return files.filter(f -> f.getFileName().toString().matches("model-\\d{5}-of-\\d{5}\\.safetensors")).count();
        }
    }

    @Test
    void bf16AndF16StoreRoundedValuesAndReadThemBack() throws IOException {
        float[] values = {1f, -2.5f, 3.14159f, 1e-3f, 65504f, 1.00390625f, 1.01171875f};
        Path file = temp.resolve("t.safetensors");
        SafeTensors.write(file, List.of(
                new SafeTensors.Entry("b", new long[]{7}, values, 0, SafeTensors.DType.BF16),
                new SafeTensors.Entry("h", new long[]{7}, values, 0, SafeTensors.DType.F16)), Map.of());
        try (SafeTensors t = SafeTensors.open(file)) {
            float[] b = new float[7], h = new float[7];
            t.readInto("b", new long[]{7}, b, 0);
            t.readInto("h", new long[]{7}, h, 0);
            // bf16 keeps 8 significant bits, rounding to nearest even (hand-rounded):
            // 3.14159 -> 3.140625, 1e-3 = 1.024 * 2^-10 -> 131/128 * 2^-10, 65504 -> 65536,
            // 1.00390625 (a tie) -> 1.0, 1.01171875 (a tie) -> 1.015625
            assertArrayEquals(new float[]{1f, -2.5f, 3.140625f, 0.00099945068359375f, 65536f, 1f, 1.015625f}, b);
            // f16 keeps 11 bits: 3.14159 -> 3.140625, 1e-3 -> 1049/1024 * 2^-10, 65504 exact
            assertArrayEquals(new float[]{1f, -2.5f, 3.140625f, 0.0010004043579101562f, 65504f, 1.00390625f, 1.01171875f}, h);
        }
    }

    @Test
    void missingConfigIsNamed() throws IOException {
        Path dir = reference();
        Files.delete(dir.resolve("config.json"));
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertEquals(dir.resolve("config.json") + ": missing (a Hugging Face checkpoint directory needs config.json)", e.getMessage());
    }

    @Test
    void missingCheckpointDirectoryIsNamed() {
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(temp.resolve("nope"), new CpuBackend()));
        assertEquals(temp.resolve("nope") + ": checkpoint directory not found", e.getMessage());
    }

    @Test
    void truncatedFileNamesFileAndTensor() throws IOException {
        Path dir = reference();
        Path file = dir.resolve("model.safetensors");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 10);
        }
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertTrue(e.getMessage().startsWith(file + ": tensor lm_head.weight ends at byte"), e.getMessage());
        assertTrue(e.getMessage().endsWith("the file is truncated"), e.getMessage());
    }

    @Test
    void wrongShapeNamesFileAndTensor() throws IOException {
        Path dir = reference();
        String config = Files.readString(dir.resolve("config.json")).replace("\"intermediate_size\": 24", "\"intermediate_size\": 32");
        Files.writeString(dir.resolve("config.json"), config);
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertEquals(dir.resolve("model.safetensors") + ": tensor model.layers.0.mlp.gate_proj.weight has shape [24, 16], expected [32, 16]",
                e.getMessage());
    }

    @Test
    void unsupportedDtypeAndMissingTensorAreNamed() throws IOException {
        Path dir = reference();
        Path file = dir.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        long headerLength = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(bytes, 8, (int) headerLength);
        String broken = header.replaceFirst("\"model.norm.weight\":\\{\"dtype\":\"F32\"", "\"model.norm.weight\":{\"dtype\":\"I64\"");
        assertTrue(!broken.equals(header));
        System.arraycopy(broken.getBytes(), 0, bytes, 8, broken.length());
        Files.write(file, bytes);
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertEquals(file + ": tensor model.norm.weight has dtype 'I64'; supported: F32, BF16, F16", e.getMessage());

        Path other = Checkpoints.write(new ReferenceLlama(LlamaConfig.preset("test-tiny"), 3), temp.resolve("other"));
        ReferenceLlama smaller = new ReferenceLlama(LlamaConfig.preset("test-tiny"), 3);
        smaller.w.remove("model.layers.1.self_attn.v_proj.weight");
        Checkpoints.write(smaller, other);
        e = assertThrows(IOException.class, () -> HfCheckpoint.load(other, new CpuBackend()));
        assertEquals(other + ": tensor model.layers.1.self_attn.v_proj.weight is missing from the checkpoint", e.getMessage());
    }

    @Test
    void garbageInsteadOfSafetensorsIsRefused() throws IOException {
        Path dir = reference();
        Files.write(dir.resolve("model.safetensors"), new byte[]{1, 2, 3});
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertTrue(e.getMessage().contains("not a safetensors file"), e.getMessage());
    }

    /** The reference checkpoint with {@code key}'s value in config.json replaced by {@code value} (JSON text). */
    private Path referenceWith(String key, String value) throws IOException {
        Path dir = reference();
        String config = Files.readString(dir.resolve("config.json"));
        String changed = config.replaceFirst("\"" + key + "\": [^,}\\s]+", "\"" + key + "\": " + java.util.regex.Matcher.quoteReplacement(value));
        assertTrue(!changed.equals(config), key + " is in config.json");
        Files.writeString(dir.resolve("config.json"), changed);
        return dir;
    }

    private static String loadFailure(Path dir) {
        return assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend())).getMessage();
    }

    /** config.json with {@code key} set to {@code value} is refused with "config.json: {@code problem}". */
    private void assertConfigRefused(String key, String value, String problem) throws IOException {
        Path dir = referenceWith(key, value);
        assertEquals(dir.resolve("config.json") + ": " + problem, loadFailure(dir));
    }

    @Test
    void shapeValuesOutsideAnIntAreNamedOutOfRange() throws IOException {
        assertConfigRefused("hidden_size", "1099511627776", "hidden_size 1099511627776 is out of range (1 to 2147483647)");
        // an optional key must not wrap around either: 2^32 + 2 once read as 2 kv heads
        assertConfigRefused("num_key_value_heads", "4294967298", "num_key_value_heads 4294967298 is out of range (1 to 2147483647)");
        assertConfigRefused("max_position_embeddings", "-16", "max_position_embeddings -16 is out of range (1 to 2147483647)");
    }

    @Test
    void shapeValuesThatAreNotWholeNumbersAreRefused() throws IOException {
        assertConfigRefused("num_hidden_layers", "2.5", "num_hidden_layers 2.5 is not an integer");
        assertConfigRefused("hidden_size", "\"16\"", "hidden_size \"16\" is not an integer");
        assertConfigRefused("rope_theta", "\"fast\"", "rope_theta \"fast\" is not a number");
        assertConfigRefused("tie_word_embeddings", "\"yes\"", "tie_word_embeddings \"yes\" is not true or false");
        assertConfigRefused("rope_theta", "1e300", "model shape: rope_theta must be a finite positive number, got Infinity");
    }

    @Test
    void aShapeTheWeightFilesCannotHoldIsRefusedBeforeAnythingIsBuilt() throws IOException {
        // 1e8 blocks of 1,952 parameters, the embeddings and the final norm: 195,200,001,968 parameters,
        // at least 2 bytes each = 363.6 GiB, against a file of a few KiB
        Path dir = referenceWith("num_hidden_layers", "1e8");
        String message = loadFailure(dir);
        assertTrue(message.startsWith(dir.resolve("config.json") + ": the shape (vocab 61, dim 16, 100,000,000 layers, 4 heads, "
                + "2 kv heads, intermediate 24) has 195,200,001,968 parameters, at least 363.6 GiB in 16 bits, but the weight files "
                + "hold "), message);
        assertTrue(message.endsWith(" KiB"), message);
    }

    @Test
    void indexEntriesOutsideTheCheckpointAreRefused() throws IOException {
        LlamaModel model = HfCheckpoint.load(reference(), new CpuBackend());
        Path dir = temp.resolve("sharded");
        HfCheckpoint.save(model, dir, SafeTensors.DType.F32, 4096);
        Path index = dir.resolve(HfCheckpoint.INDEX);
        String original = Files.readString(index);
        String shard = new com.fasterxml.jackson.databind.ObjectMapper().readTree(original)
                .path("weight_map").path("model.embed_tokens.weight").asText();
        // the shard moved out of the directory, so following the entry would read a file elsewhere
        Files.createDirectories(temp.resolve("elsewhere"));
        Path moved = temp.resolve("elsewhere").resolve(shard).toAbsolutePath();
        Files.move(dir.resolve(shard), moved);
        Files.writeString(index, original.replace("\"" + shard + "\"", "\"../elsewhere/" + shard + "\""));
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertEquals(index + ": weight_map entry model.embed_tokens.weight names ../elsewhere/" + shard
                + ", outside the checkpoint directory", e.getMessage());
        Files.writeString(index, original.replace("\"" + shard + "\"", "\"" + moved + "\""));
        e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertEquals(index + ": weight_map entry model.embed_tokens.weight names " + moved + ", outside the checkpoint directory",
                e.getMessage());
    }
}
