package io.tinyllamaj.model.hf;

import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * lit-gpt checkpoints written by make_fixtures.py: the fp32 fixture's weights in lit-gpt's names,
 * with q/k/v packed per query group as lit-gpt's own converter packs them.
 */
class LitGptCheckpointTest {

    private static Path fixture(String name) throws URISyntaxException {
        return Path.of(LitGptCheckpointTest.class.getResource("/torch/" + name).toURI());
    }

    @Test
    void weightsEqualTheSameWeightsReadFromSafetensors() throws Exception {
        LlamaConfig config = HfCheckpoint.readConfigFile(fixture("lit-config.json"));
        try (CpuBackend a = new CpuBackend(); CpuBackend b = new CpuBackend();
             LitGptCheckpoint lit = LitGptCheckpoint.open(fixture("lit-index-keyed.pth"))) {
            LlamaModel model = new LlamaModel(a, config);
            lit.loadWeights(model);
            LlamaModel reference = HfCheckpoint.load(fixture("ref-fp32"), b);
            assertArrayEquals(b.download(reference.parameters()), a.download(model.parameters()));
            int[] tokens = {3, 1, 4, 1, 5, 9};
            assertArrayEquals(b.download(reference.logits(tokens, 1, 6)), a.download(model.logits(tokens, 1, 6)));
        }
    }

    @Test
    void hparamsNamingAnUnknownModelGiveNoShape() throws Exception {
        try (LitGptCheckpoint lit = LitGptCheckpoint.open(fixture("lit-name-keyed.pth"))) {
            assertTrue(lit.configFromHparams().isEmpty());
            assertEquals("'lit-test'", lit.modelName());
        }
    }

    @Test
    void aShapeTheStateDictDoesNotHoldIsNamed() throws Exception {
        LlamaConfig config = LlamaConfig.preset("test-tiny"); // vocab 61, the file's is 32
        try (CpuBackend a = new CpuBackend(); LitGptCheckpoint lit = LitGptCheckpoint.open(fixture("lit-index-keyed.pth"))) {
            IOException e = assertThrows(IOException.class, () -> lit.loadWeights(new LlamaModel(a, config)));
            assertEquals(fixture("lit-index-keyed.pth") + ": tensor lm_head.weight has shape [32, 16], expected [61, 16] "
                    + "for the model shape given (" + config.describe() + ")", e.getMessage());
        }
    }

    @Test
    void tensorsTheShapeDoesNotUseAreRefusedBeforeAModelIsBuilt() throws Exception {
        // the file's shape with one layer fewer: layer 1 would be dropped without a word
        LlamaConfig full = HfCheckpoint.readConfigFile(fixture("lit-config.json"));
        LlamaConfig fewer = new LlamaConfig("fewer", full.vocabSize(), full.dim(), 1, full.heads(), full.kvHeads(), full.intermediate(),
                full.normEps(), full.ropeTheta(), full.maxSeqLen(), full.tieEmbeddings());
        try (LitGptCheckpoint lit = LitGptCheckpoint.open(fixture("lit-index-keyed.pth"))) {
            IOException e = assertThrows(IOException.class, () -> lit.requireShape(fewer));
            assertEquals(fixture("lit-index-keyed.pth") + ": tensor transformer.h.1.attn.attn.weight is not part of the model "
                    + "shape given (" + fewer.describe() + "); the shape and the checkpoint disagree", e.getMessage());
            lit.requireShape(full);
        }
    }
}
