package io.tinyllamaj.model.hf;

import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.LlamaModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * PyTorch-format Hugging Face directories, against fixtures that make_fixtures.py (in the test
 * resources, standard library only) wrote with Python's own pickle and zipfile, next to the same
 * weights as safetensors. Regenerate them with
 * {@code python3 model/src/test/resources/torch/make_fixtures.py} from the repository root.
 */
class PyTorchCheckpointTest {

    private static final Path MARKER = Path.of("/tmp/tinyllamaj-pickle-marker");

    @TempDir
    Path temp;

    private static Path fixture(String name) throws URISyntaxException {
        return Path.of(PyTorchCheckpointTest.class.getResource("/torch/" + name).toURI());
    }

    /** fp32 and fp16 single files with offset and strided views; bf16 in 3 shards with a tied, storage-sharing lm_head. */
    @ParameterizedTest
    @ValueSource(strings = {"fp32", "fp16", "bf16-sharded-tied"})
    void weightsAndLogitsEqualTheSafetensorsOfTheSameWeights(String name) throws Exception {
        try (CpuBackend a = new CpuBackend(); CpuBackend b = new CpuBackend()) {
            LlamaModel torch = HfCheckpoint.load(fixture(name), a);
            LlamaModel safetensors = HfCheckpoint.load(fixture("ref-" + name), b);
            assertEquals(safetensors.config().withName("x"), torch.config().withName("x"));
            assertArrayEquals(b.download(safetensors.parameters()), a.download(torch.parameters()));
            int[] tokens = {1, 5, 9, 31, 0, 7};
            assertArrayEquals(b.download(safetensors.logits(tokens, 1, tokens.length)), a.download(torch.logits(tokens, 1, tokens.length)));
        }
    }

    @Test
    void aDirectoryWithPyTorchWeightsIsACheckpoint() throws Exception {
        assertTrue(HfCheckpoint.isCheckpoint(fixture("fp32")));
        assertTrue(HfCheckpoint.isCheckpoint(fixture("bf16-sharded-tied")));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "posix-system.bin|asks for global posix.system, which is not part of a state dict; refused",
            "os-system.bin|asks for global os.system, which is not part of a state dict; refused",
            "builtins-eval.bin|asks for global builtins.eval, which is not part of a state dict; refused",
            "stack-global.bin|asks for global posix.system, which is not part of a state dict; refused",
            "inst.bin|opcode INST (0x69) at byte 1 is not one a state dict uses; refused",
            "obj.bin|opcode OBJ (0x6f) at byte 28 is not one a state dict uses; refused"})
    void hostilePicklesAreRefusedInOneLineAndNothingRuns(String file, String problem) throws Exception {
        Files.deleteIfExists(MARKER);
        Path dir = withWeights(file, fixture("hostile/" + file));
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertTrue(e.getMessage().startsWith(dir.resolve("pytorch_model.bin") + " (archive/data.pkl): " + problem), e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
        assertFalse(Files.exists(MARKER), "the payload ran");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "truncated.bin|pytorch_model.bin: corrupt or truncated zip",
            "short-storage.bin|pytorch_model.bin: tensor model.embed_tokens.weight ([32, 16] at offset 0) reaches element 511 of storage 0, which holds 100",
            "short-entry.bin|pytorch_model.bin: tensor model.embed_tokens.weight: storage entry archive/data/0 holds 400 bytes, shorter than its 512 F32 values",
            "complex.bin|pytorch_model.bin (archive/data.pkl): storage type torch.ComplexFloatStorage is not supported",
            "overflow-stride.bin|pytorch_model.bin: tensor model.embed_tokens.weight ([32, 16], strides [4611686018427387904, 1] "
                    + "at offset 0) reaches past 2^63 elements of storage 0, which holds 512",
            "crc-flip.bin|pytorch_model.bin: entry archive/data/0 fails its CRC-32 check (damaged: "})
    void damagedFilesAreRefusedInOneLine(String file, String problem) throws Exception {
        Path dir = withWeights(file, fixture("damaged/" + file));
        // the tensor itself, past the directory's check that the files can hold the shape at all
        IOException e = assertThrows(IOException.class, () -> {
            try (PyTorchWeights weights = PyTorchWeights.open(dir.resolve("pytorch_model.bin"))) {
                weights.readInto("model.embed_tokens.weight", new long[]{32, 16}, new float[512], 0);
            }
        });
        assertTrue(e.getMessage().startsWith(dir + "/" + problem), e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
    }

    @Test
    void aMissingTensorOrAWrongShapeIsNamed() throws Exception {
        Path dir = withWeights("missing", fixture("fp32/pytorch_model.bin"));
        rewriteConfig(dir, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertEquals(dir + ": tensor model.layers.2.input_layernorm.weight is missing from the checkpoint", e.getMessage());

        Path wrong = withWeights("wrong", fixture("fp32/pytorch_model.bin"));
        rewriteConfig(wrong, "\"intermediate_size\": 24", "\"intermediate_size\": 20");
        e = assertThrows(IOException.class, () -> HfCheckpoint.load(wrong, new CpuBackend()));
        assertEquals(wrong.resolve("pytorch_model.bin") + ": tensor model.layers.0.mlp.gate_proj.weight has shape [24, 16], expected [20, 16]",
                e.getMessage());
    }

    @Test
    void weightsTheShapeDoesNotReadAreRefusedNotDropped() throws Exception {
        // config.json says one layer, the file holds two: loading would keep layer 0 and drop layer 1 without a word
        Path fewer = withWeights("fewer", fixture("fp32/pytorch_model.bin"));
        rewriteConfig(fewer, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(fewer, new CpuBackend()));
        assertTrue(e.getMessage().startsWith(fewer.resolve("pytorch_model.bin") + ": tensor model.layers.1.input_layernorm.weight "
                + "is not part of the shape config.json gives ("), e.getMessage());
        assertTrue(e.getMessage().endsWith("); the config and the weights disagree"), e.getMessage());
    }

    @Test
    void anActivationOtherThanSiluIsRefused() throws Exception {
        Path gelu = withWeights("gelu", fixture("fp32/pytorch_model.bin"));
        rewriteConfig(gelu, "\"model_type\": \"llama\",", "\"model_type\": \"llama\", \"hidden_act\": \"gelu\",");
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(gelu, new CpuBackend()));
        assertEquals(gelu.resolve("config.json") + ": hidden_act is 'gelu', only 'silu' (SwiGLU) is supported", e.getMessage());

        Path silu = withWeights("silu", fixture("fp32/pytorch_model.bin"));
        rewriteConfig(silu, "\"model_type\": \"llama\",", "\"model_type\": \"llama\", \"hidden_act\": \"silu\",");
        assertEquals(2, HfCheckpoint.load(silu, new CpuBackend()).config().layers());
    }

    @Test
    void aConfigThatIsNotAnObjectIsNamedAsSuch() throws Exception {
        Path dir = withWeights("array", fixture("fp32/pytorch_model.bin"));
        Files.writeString(dir.resolve("config.json"), "[1, 2]");
        IOException e = assertThrows(IOException.class, () -> HfCheckpoint.load(dir, new CpuBackend()));
        assertEquals(dir.resolve("config.json") + ": not a JSON object (a Hugging Face config.json is one)", e.getMessage());
    }

    @Test
    void safetensorsWinWhereADirectoryHasBoth() throws Exception {
        Path dir = withWeights("both", fixture("fp32/pytorch_model.bin"));
        Files.write(dir.resolve("pytorch_model.bin"), new byte[]{'P', 'K', 3, 4}); // would fail if read
        Files.copy(fixture("ref-fp32/model.safetensors"), dir.resolve("model.safetensors"));
        try (CpuBackend a = new CpuBackend(); CpuBackend b = new CpuBackend()) {
            assertArrayEquals(b.download(HfCheckpoint.load(fixture("ref-fp32"), b).parameters()),
                    a.download(HfCheckpoint.load(dir, a).parameters()));
        }
    }

    private Path withWeights(String name, Path weights) throws Exception {
        Path dir = temp.resolve(name.replace(".bin", ""));
        Files.createDirectories(dir);
        Files.copy(fixture("fp32/config.json"), dir.resolve("config.json"));
        Files.copy(weights, dir.resolve("pytorch_model.bin"));
        return dir;
    }

    private static void rewriteConfig(Path dir, String from, String to) throws IOException {
        Path config = dir.resolve("config.json");
        String text = Files.readString(config);
        assertTrue(text.contains(from), text);
        Files.writeString(config, text.replace(from, to));
    }
}
