package io.tinyllamaj.trainer.eval;

import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.model.ReferenceLlama;
import io.tinyllamaj.model.hf.SafeTensors;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/** lm-evaluation-harness's log-likelihood of one request, computed alone by the float64 reference model. */
public final class HarnessReference {

    private HarnessReference() {
    }

    /**
     * The sum of log-softmax over exactly the continuation's tokens, context and continuation
     * split as the harness splits them (the context's trailing spaces move to the continuation;
     * both encoded together, the context's tokens first), no BOS.
     */
    public static double loglikelihood(ReferenceLlama ref, LlamaTokenizer tokenizer, String context, String continuation) {
        String kept = context.stripTrailing();
        continuation = context.substring(kept.length()) + continuation;
        int[] contextIds = tokenizer.encode(kept, false, false);
        int[] whole = tokenizer.encode(kept + continuation, false, false);
        int[] input = Arrays.copyOf(contextIds, whole.length - 1);
        System.arraycopy(whole, contextIds.length, input, contextIds.length, whole.length - 1 - contextIds.length);
        double[] logits = ref.logits(input, 1, input.length);
        int v = ref.c.vocabSize();
        double sum = 0;
        for (int p = contextIds.length - 1; p < input.length; p++) {
            double max = Double.NEGATIVE_INFINITY, z = 0;
            for (int j = 0; j < v; j++) {
                max = Math.max(max, logits[p * v + j]);
            }
            for (int j = 0; j < v; j++) {
                z += Math.exp(logits[p * v + j] - max);
            }
            sum += logits[p * v + whole[p + 1]] - max - Math.log(z);
        }
        return sum;
    }

    /** Replaces the reference's weights with those of a Hugging Face safetensors file (same shape). */
    public static void loadWeights(ReferenceLlama ref, Path safetensors) throws IOException {
        try (SafeTensors file = SafeTensors.open(safetensors)) {
            for (Map.Entry<String, double[]> e : ref.w.entrySet()) {
                float[] values = new float[e.getValue().length];
                file.readInto(e.getKey(), file.info(e.getKey()).shape(), values, 0);
                for (int i = 0; i < values.length; i++) {
                    e.getValue()[i] = values[i];
                }
            }
        }
    }
}
