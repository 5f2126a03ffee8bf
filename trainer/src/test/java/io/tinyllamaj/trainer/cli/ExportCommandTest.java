package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.model.Checkpoints;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ReferenceLlama;
import io.tinyllamaj.model.hf.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code export} of a Hugging Face directory: rewritten as safetensors in the dtype asked for, with its tokenizer. */
class ExportCommandTest {

    @TempDir
    Path temp;

    /** The fp32 value rounded to bf16 by hand: round to nearest, ties to even, on the upper 16 bits. */
    private static float bf16(float x) {
        int bits = Float.floatToRawIntBits(x);
        int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
        return Float.intBitsToFloat(rounded & 0xFFFF0000);
    }

    @Test
    void aHuggingFaceDirectoryIsRewrittenInBf16WithItsTokenizer() throws Exception {
        ReferenceLlama ref = new ReferenceLlama(LlamaConfig.preset("test-tiny"), 1);
        Path hf = Checkpoints.write(ref, temp.resolve("hf"));
        Files.writeString(hf.resolve("tokenizer.json"), "{\"model\": \"a tokenizer\"}");
        Path out = temp.resolve("out");
        CliRun run = CliRun.of("export", "--checkpoint", hf.toString(), "--out", out.toString(), "--dtype", "bf16");
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().startsWith("converted " + hf + " (safetensors, "), run.out());
        assertEquals("{\"model\": \"a tokenizer\"}", Files.readString(out.resolve("tokenizer.json")));
        try (SafeTensors file = SafeTensors.open(out.resolve("model.safetensors"))) {
            for (Map.Entry<String, double[]> e : ref.w.entrySet()) {
                SafeTensors.Info info = file.info(e.getKey());
                assertEquals(SafeTensors.DType.BF16, info.dtype(), e.getKey());
                float[] values = new float[e.getValue().length];
                file.readInto(e.getKey(), info.shape(), values, 0);
                for (int i = 0; i < values.length; i++) {
                    assertEquals(bf16((float) e.getValue()[i]), values[i], e.getKey() + "[" + i + "]");
                }
            }
        }
    }

    @Test
    void theCheckpointDirectoryItselfIsRefusedAsOut() throws Exception {
        Path hf = Checkpoints.write(new ReferenceLlama(LlamaConfig.preset("test-tiny"), 1), temp.resolve("hf"));
        byte[] before = Files.readAllBytes(hf.resolve("model.safetensors"));
        CliRun run = CliRun.of("export", "--checkpoint", hf.toString(), "--out", hf.toString(), "--dtype", "bf16");
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: --out " + hf + " is the checkpoint directory itself; choose another", run.err().strip());
        assertTrue(java.util.Arrays.equals(before, Files.readAllBytes(hf.resolve("model.safetensors"))), "left as it was");
    }
}
