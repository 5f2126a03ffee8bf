package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.hf.HfCheckpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * score on directories with pytorch_model.bin, from the model module's fixtures (written by
 * model/src/test/resources/torch/make_fixtures.py with Python's pickle and zipfile).
 */
class PyTorchCheckpointCommandTest {

    @TempDir
    Path temp;

    private Path directory(String name, String config, String weights) throws IOException {
        Path dir = temp.resolve(name);
        Files.createDirectories(dir);
        copy("/torch/" + config, dir.resolve("config.json"));
        copy("/torch/" + weights, dir.resolve(weights.endsWith(".safetensors") ? "model.safetensors" : "pytorch_model.bin"));
        return dir;
    }

    private static void copy(String resource, Path to) throws IOException {
        try (InputStream in = PyTorchCheckpointCommandTest.class.getResourceAsStream(resource)) {
            assertTrue(in != null, resource);
            Files.copy(in, to);
        }
    }

    @Test
    void scoreOfPyTorchWeightsPrintsWhatTheSameSafetensorsGive() throws Exception {
        Path torch = directory("torch", "fp32/config.json", "fp32/pytorch_model.bin");
        Path safetensors = directory("st", "ref-fp32/config.json", "ref-fp32/model.safetensors");
        CliRun a = CliRun.of("score", "--checkpoint", torch.toString(), "--tokens", "1,5,9,31,0,7");
        CliRun b = CliRun.of("score", "--checkpoint", safetensors.toString(), "--tokens", "1,5,9,31,0,7");
        assertEquals(0, a.exitCode(), a.err());
        assertEquals(0, b.exitCode(), b.err());
        assertEquals(b.out(), a.out());
    }

    /** TinyLlama's intermediate checkpoints come as pytorch_model.bin: export rewrites one as safetensors, the same bits. */
    @Test
    void exportOfAPyTorchDirectoryWritesTheSameWeightsAsSafetensors() throws Exception {
        Path torch = directory("torch", "fp32/config.json", "fp32/pytorch_model.bin");
        Path out = temp.resolve("converted");
        CliRun run = CliRun.of("export", "--checkpoint", torch.toString(), "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().startsWith("converted " + torch + " (pytorch_model.bin, "), run.out());
        assertTrue(Files.isRegularFile(out.resolve("model.safetensors")));
        Path reference = directory("st", "ref-fp32/config.json", "ref-fp32/model.safetensors");
        try (CpuBackend a = new CpuBackend(); CpuBackend b = new CpuBackend()) {
            assertArrayEquals(b.download(HfCheckpoint.load(reference, b).parameters()), a.download(HfCheckpoint.load(out, a).parameters()));
        }
    }

    @Test
    void aHostilePickleFailsInOneLineWithExitCode1AndRunsNothing() throws Exception {
        Path marker = Path.of("/tmp/tinyllamaj-pickle-marker");
        Files.deleteIfExists(marker);
        Path dir = directory("hostile", "fp32/config.json", "hostile/posix-system.bin");
        CliRun run = CliRun.of("score", "--checkpoint", dir.toString(), "--tokens", "1,2");
        assertEquals(1, run.exitCode());
        assertEquals("", run.out());
        assertEquals(1, run.err().strip().lines().count(), run.err());
        assertTrue(run.err().contains("asks for global posix.system"), run.err());
        assertFalse(Files.exists(marker));
    }

    @Test
    void exportOfALitGptFileWritesTheSameWeightsAsTheSafetensorsReference() throws Exception {
        Path pth = temp.resolve("iter-000480-ckpt.pth"), config = temp.resolve("config.json");
        copy("/torch/lit-index-keyed.pth", pth);
        copy("/torch/lit-config.json", config);
        Path out = temp.resolve("hf");
        CliRun run = CliRun.of("export", "--checkpoint", pth.toString(), "--model-config", config.toString(), "--out", out.toString());
        assertEquals(0, run.exitCode(), run.err());
        Path reference = directory("st", "ref-fp32/config.json", "ref-fp32/model.safetensors");
        try (CpuBackend a = new CpuBackend(); CpuBackend b = new CpuBackend()) {
            assertArrayEquals(b.download(HfCheckpoint.load(reference, b).parameters()), a.download(HfCheckpoint.load(out, a).parameters()));
        }
    }

    @Test
    void aPresetOfAnotherShapeIsNamedBeforeAnyOfItIsAllocated() throws Exception {
        // TinyLlama's 1.1B shape against the test file: refused on the tensor shapes, not by running out of heap building it
        Path pth = temp.resolve("iter-000480-ckpt.pth");
        copy("/torch/lit-index-keyed.pth", pth);
        Path out = temp.resolve("hf");
        CliRun run = CliRun.of("export", "--checkpoint", pth.toString(), "--preset", "tinyllama-1.1b", "--out", out.toString());
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + pth + ": tensor lm_head.weight has shape [32, 16], expected [32000, 2048] for the model "
                + "shape given (" + LlamaConfig.preset("tinyllama-1.1b").describe() + ")", run.err().strip());
        assertFalse(Files.exists(out));
    }

    @Test
    void aLitGptFileWithoutAKnownShapeIsRefusedAndNothingIsWritten() throws Exception {
        Path pth = temp.resolve("iter-000480-ckpt.pth");
        copy("/torch/lit-name-keyed.pth", pth);
        Path out = temp.resolve("hf");
        CliRun run = CliRun.of("export", "--checkpoint", pth.toString(), "--out", out.toString());
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + pth + ": its hparams name 'lit-test', not a lit-gpt config whose shape is known "
                + "(tiny_LLaMA_1b); give the shape with --model-config CONFIG_JSON or --preset NAME", run.err().strip());
        assertFalse(Files.exists(out));
    }
}
